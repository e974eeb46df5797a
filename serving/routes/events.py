"""``POST /v1/events``: a batch of storefront events, validated one by one, written durably."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from core.errors import describe
from data.models import Event, valid_unicode
from serving.deps import EventIngestDep, RequestIdDep
from serving.errors import DocumentedRoute, SafeJSONResponse, is_rule_error
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
def post_events(
    body: EventsIn, ingest: EventIngestDep, request_id: RequestIdDep
) -> EventsOut | JSONResponse:
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
    fresh = ingest.store(valid) if valid else []
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
