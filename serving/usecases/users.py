"""Users over the API (``/v1/users``): attributes and consent, the profile ranking sees,
erasure everywhere the service keeps them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from data.models import User
from ranking.profile import UserProfile
from ranking.store_profiles import StoreProfiles
from serving.services import Erasure


@dataclass(frozen=True, slots=True)
class Users:
    profiles: StoreProfiles
    store: Callable[[Sequence[User]], None]
    """Write users to the user store (the other processes' caches follow its feed)."""
    erase_everywhere: Callable[[str], Erasure]

    def upsert(self, user: User) -> UserProfile:
        self.store([user])
        self.profiles.upsert_users([user])
        return self.profiles.get(user.user_id)

    def profile(self, user_id: str) -> UserProfile | None:
        """The user's profile, None for a user the service does not know."""
        return self.profiles.get(user_id) if user_id in self.profiles else None

    def erase(self, user_id: str) -> Erasure:
        return self.erase_everywhere(user_id)
