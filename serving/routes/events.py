"""``POST /v1/events``: a batch of storefront events, validated one by one, written durably."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from core.errors import describe
from data.models import Event, valid_unicode
from serving.deps import StorefrontCtx
from serving.errors import DocumentedRoute, SafeJSONResponse, Unavailable, is_rule_error
from serving.schemas import EventsIn, EventsOut, RejectedEventOut
from serving.strict import strict_event

log = logging.getLogger(__name__)

router = APIRouter(route_class=DocumentedRoute, prefix="/v1", tags=["events"])


def _first_field(exc: ValidationError) -> str | None:
    errs = exc.errors()
    if not errs:
        return None
    return ".".join(str(p) for p in errs[0]["loc"]) or None


def _printable(text: str) -> bool:
    try:
        valid_unicode(text)
    except ValueError:
        return False
    return True


@router.post(
    "/events",
    response_model=EventsOut,
    summary="Record a batch of events",
    description="Each event is validated on its own: a bad event is listed in `rejected` with its "
    "index and reason, the good ones are written to the durable event log before the response "
    "is sent, and the user's recent history is updated at once. Re-sending an `event_id` that "
    "was already accepted is harmless (counted in `duplicates`). When every event is rejected "
    "the status is 422.",
    responses={
        422: {
            "description": "Every event in the batch was rejected: the error body (error, "
            "message, field) plus the fields of a normal answer (rejected lists each event)."
        }
    },
)
def post_events(body: EventsIn, request: Request, ctx: StorefrontCtx) -> EventsOut | JSONResponse:
    services, request_id = ctx.services, ctx.request_id
    valid: list[Event] = []
    rejected: list[RejectedEventOut] = []
    schema_broken = False  # some rejection breaks the schema (422), not only a rule (400)
    for idx, raw in enumerate(body.events):
        try:
            valid.append(strict_event(raw))  # JSON kinds checked, then the Event model
        except ValidationError as exc:
            schema_broken |= not all(is_rule_error(e) for e in exc.errors())
            eid = raw.get("event_id") if isinstance(raw, dict) else None
            if isinstance(eid, str) and not _printable(eid):
                eid = None  # not echoed: the reason names the field
            rejected.append(
                RejectedEventOut(
                    index=idx,
                    event_id=eid if isinstance(eid, str) else None,
                    field=_first_field(exc),
                    reason=describe(exc),
                )
            )
    fresh_flags = services.seen_events.claim([e.event_id for e in valid])
    fresh = [e for e, new in zip(valid, fresh_flags, strict=True) if new]
    if fresh:
        try:
            result = services.events.append(fresh)
        except Exception as exc:
            services.seen_events.release([e.event_id for e in fresh])
            log.exception("event log write failed")
            raise Unavailable(
                f"events could not be written to the event log ({exc}); retry the batch"
            ) from exc
        stored = getattr(result, "accepted", None)
        if stored is not None:  # the log's own idempotency index is the authority
            ids = set(stored)
            fresh = [e for e in fresh if e.event_id in ids]
        services.record_events(fresh)
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.events_accepted.inc(len(fresh))
    out = EventsOut(
        request_id=request_id,
        accepted=len(fresh),
        duplicates=len(valid) - len(fresh),
        rejected=rejected,
    )
    if not valid:
        first = rejected[0]
        body = {
            "error": "validation_error" if schema_broken else "bad_request",
            "message": f"every event was rejected; events.{first.index}: {first.reason}",
            "field": f"events.{first.index}" + (f".{first.field}" if first.field else ""),
            **out.model_dump(),
        }
        return SafeJSONResponse(body, status_code=422 if schema_broken else 400)
    return out
