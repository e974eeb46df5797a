"""Users (admin): upsert attributes and consent, read a profile, erase a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from data.models import User
from serving.deps import AdminDep, RequestIdDep, ServicesDep
from serving.errors import DocumentedRoute, NotFound
from serving.schemas import UserErasedOut, UserIn, UserOut
from serving.services import erase_user as erase_everywhere

router = APIRouter(
    prefix="/v1/users", tags=["users"], dependencies=[AdminDep], route_class=DocumentedRoute
)

UserIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/\\]+$")]


def _out(services: ServicesDep, user_id: str) -> UserOut:
    p = services.profiles.get(user_id)
    return UserOut(
        user_id=user_id,
        attributes=dict(p.attributes),
        consent=p.consent,
        recent_items=list(p.recent_items),
        top_categories=p.top_categories(),
    )


@router.put("/{user_id}", response_model=UserOut, summary="Create or update a user")
def upsert_user(user_id: UserIdPath, body: UserIn, services: ServicesDep) -> UserOut:
    user = User(user_id=user_id, attributes=body.attributes, consent=body.consent)
    services.users.upsert([user])
    services.profiles.upsert_users([user])
    return _out(services, user_id)


@router.get("/{user_id}", response_model=UserOut, summary="A user's profile as ranking sees it")
def get_user(user_id: UserIdPath, services: ServicesDep) -> UserOut:
    if user_id not in services.profiles:
        raise NotFound(f"user_id: no user {user_id!r}", field="user_id")
    return _out(services, user_id)


@router.delete(
    "/{user_id}",
    response_model=UserErasedOut,
    summary="Erase a user",
    description="Erases the user everywhere the service keeps them: the profile and every event "
    "(event log, and the shop's own users and events files when they hold any), the user id and "
    "queries of the requests served to them, their cached feed pages and the cached profile "
    "snapshots; records the erasure so future training leaves the user out, and the models' "
    "learned factors for this id are no longer used for them. A large shop events file is "
    "rewritten when it holds the user (seconds per 10M events).",
)
def erase_user(
    user_id: UserIdPath, services: ServicesDep, request_id: RequestIdDep
) -> UserErasedOut:
    gone = erase_everywhere(services, user_id)
    return UserErasedOut(
        request_id=request_id, user_id=user_id, events_erased=gone.events,
        profile_erased=gone.profile, shop_file_records_erased=gone.shop_file_records,
        served_requests_anonymized=gone.served_requests, cached_feeds_dropped=gone.cached_feeds,
    )
