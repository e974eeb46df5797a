"""Users (admin): upsert attributes and consent, read a profile, erase a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from data.models import User
from serving.deps import AdminDep, RequestIdDep, ServicesDep
from serving.errors import NotFound
from serving.schemas import UserErasedOut, UserIn, UserOut

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[AdminDep])

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
    description="Erases the profile and every event of the user from the event log, and records "
    "the erasure so future training leaves the user out.",
)
def erase_user(user_id: UserIdPath, services: ServicesDep, request_id: RequestIdDep) -> UserErasedOut:
    erased = services.events.erase_user(user_id)
    services.users.erase(user_id)
    known = services.profiles.erase(user_id)
    n = erased if isinstance(erased, int) else 0
    return UserErasedOut(request_id=request_id, user_id=user_id, events_erased=n, profile_erased=known)
