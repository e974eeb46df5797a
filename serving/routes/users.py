"""Users (admin): upsert attributes and consent, read a profile, erase a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from data.models import User
from ranking.profile import UserProfile
from serving.deps import AdminDep, RequestIdDep, UsersDep
from serving.errors import DocumentedRoute, NotFound
from serving.schemas import UserErasedOut, UserIn, UserOut

router = APIRouter(
    prefix="/v1/users", tags=["users"], dependencies=[AdminDep], route_class=DocumentedRoute
)

UserIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/\\]+$")]


def _out(p: UserProfile) -> UserOut:
    return UserOut(
        user_id=p.user_id,
        attributes=dict(p.attributes),
        consent=p.consent,
        recent_items=list(p.recent_items),
        top_categories=p.top_categories(),
    )


@router.put("/{user_id}", response_model=UserOut, summary="Create or update a user")
def upsert_user(user_id: UserIdPath, body: UserIn, users: UsersDep) -> UserOut:
    return _out(users.upsert(User(user_id=user_id, attributes=body.attributes,
                                  consent=body.consent)))


@router.get("/{user_id}", response_model=UserOut, summary="A user's profile as ranking sees it")
def get_user(user_id: UserIdPath, users: UsersDep) -> UserOut:
    p = users.profile(user_id)
    if p is None:
        raise NotFound(f"user_id: no user {user_id!r}", field="user_id")
    return _out(p)


@router.delete(
    "/{user_id}",
    response_model=UserErasedOut,
    summary="Erase a user",
    description="Erases the user everywhere the service keeps them: the profile and every event "
    "(event log, and the shop's own users and events files when they hold any), the user id and "
    "queries of the requests served to them, their cached feed pages and their searches; "
    "records the erasure so future training leaves the user out, and the models' "
    "learned factors for this id are no longer used for them. A large shop events file is "
    "rewritten when it holds the user (seconds per 10M events).",
)
def erase_user(user_id: UserIdPath, users: UsersDep, request_id: RequestIdDep) -> UserErasedOut:
    gone = users.erase(user_id)
    return UserErasedOut(
        request_id=request_id, user_id=user_id, events_erased=gone.events,
        profile_erased=gone.profile, shop_file_records_erased=gone.shop_file_records,
        served_requests_anonymized=gone.served_requests, cached_feeds_dropped=gone.cached_feeds,
    )
