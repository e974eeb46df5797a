"""A circuit breaker for calls to a remote dependency (an OpenSearch node).

After ``failures`` calls in a row fail to reach the dependency (connection refused, timeout),
the breaker opens: for ``cooldown_seconds`` every call fails at once instead of waiting for
another timeout, so a frozen node costs one timeout per cooldown rather than one per request.
After the cooldown one call is let through (half-open); its success closes the breaker, its
failure opens it again.
"""

from __future__ import annotations

import threading
import time


class CircuitOpen(Exception):
    """Raised by :meth:`CircuitBreaker.check` while the breaker is open."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"retry in {retry_in:.1f} s")
        self.retry_in = retry_in


class CircuitBreaker:
    def __init__(self, failures: int = 2, cooldown_seconds: float = 5.0) -> None:
        self.failures = failures
        self.cooldown = cooldown_seconds
        self._lock = threading.Lock()
        self._count = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._count >= self.failures and time.monotonic() < self._open_until

    def check(self) -> None:
        """Raise :class:`CircuitOpen` when calls should not be tried now."""
        with self._lock:
            if self._count < self.failures:
                return
            now = time.monotonic()
            if now < self._open_until:
                raise CircuitOpen(self._open_until - now)
            if self._probing:  # another call is already probing the dependency
                raise CircuitOpen(0.0)
            self._probing = True

    def success(self) -> None:
        with self._lock:
            self._count = 0
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            self._probing = False
            if self._count >= self.failures:
                self._open_until = time.monotonic() + self.cooldown
