"""Prometheus metrics and the request-id middleware (pure ASGI, cheap per request).

Per route *template* (``/v1/items/{item_id}/similar``, never the raw path, so cardinality stays
bounded): ``shoprank_requests_total{method,route,status}`` and
``shoprank_request_duration_seconds{method,route}`` (methods outside :data:`METHODS` as
``other``). Model versions in service:
``shoprank_model_info{name,version} 1``. Each app has its own registry (tests build many apps).

Several uvicorn workers: ``shoprank serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR``
(emptied at start), so every worker writes its samples to files there and ``/metrics``,
whichever worker answers, reports the sum over workers (prometheus_client's multiprocess
mode; gauges report the maximum over live workers).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_VALID_RID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode, when several workers serve."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry(auto_describe=True)
        own = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)
            own = CollectorRegistry()  # samples go to the shared files; this one is never read
        self.requests = Counter(
            "shoprank_requests", "HTTP requests", ["method", "route", "status"], registry=own
        )
        self.latency = Histogram(
            "shoprank_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.model_info = Gauge(
            "shoprank_model_info", "Model version in service (value 1)", ["name", "version"],
            registry=own, multiprocess_mode="livemax",
        )
        self.catalog_items = Gauge(
            "shoprank_catalog_items",
            "Items in the catalog",
            registry=own,
            multiprocess_mode="livemax",
        )
        self.events_accepted = Counter(
            "shoprank_events_accepted", "Events written to the event log", registry=own
        )
        self._shown: dict[str, str] = {}
        # the labelled series of each (method, route, status) seen: prometheus_client's
        # labels() takes a lock and builds the key on every call. Bounded: the methods are
        # METHODS and "other", the routes are the app's templates and "unmatched".
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered: its count and its latency."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (self.requests.labels(method, route, str(status)),
                                          self.latency.labels(method, route))
        series[0].inc()
        series[1].observe(seconds)

    def set_models(self, versions: dict[str, str]) -> None:
        if versions == self._shown:
            return
        for name, version in self._shown.items():
            if self.multiprocess:  # files cannot forget a label: 0 means "no longer served"
                self.model_info.labels(name, version).set(0)
                continue
            try:
                self.model_info.remove(name, version)
            except KeyError:
                pass
        for name, version in versions.items():
            self.model_info.labels(name, version).set(1)
        self._shown = dict(versions)

    def close(self) -> None:
        """A worker's live gauges leave the sums when it stops."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


def new_request_id() -> str:
    """32 hex digits, as a UUID's: the time in milliseconds (12 digits), then 80 random bits.
    Ids made later sort later, so the request log's primary-key index grows at its end;
    random ids (uuid4) made every insert touch a random page of it, 2-3× the CPU per row
    at a few million rows (``INSERT`` into ``requests.sqlite``), more once it outgrows memory."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods with a label of their own; every other method a client sends counts as ``other``
(each label value is a time series kept for the life of the process)."""


class ObservabilityMiddleware:
    """Gives every request an id (``X-Request-ID`` in, or a new one) and records metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                cand = v.decode("latin-1")
                rid = cand if _VALID_RID.match(cand) else None
                break
        rid = rid or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            if method not in METHODS:  # any token is a valid HTTP method: one label for the rest
                method = "other"
            self.metrics.observe_request(method, template, status[0],
                                         time.perf_counter() - start)
