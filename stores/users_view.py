"""The shop's users as offline jobs see them: the users file, with the user store on top.

The users file (``<data_dir>/users.jsonl``) is what the shop was loaded or generated with;
the user store holds every change made since (the API, ``shoprank load users``, segment
runs) and the erasures. The store is filled from the file at the first start of the service,
so before that the file alone describes the users.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from core.errors import describe
from data.models import User
from data.quarantine import set_aside
from stores.protocols import UserStore


def read_users_file(path: Path) -> Iterator[User]:
    """The users of a users file; an unreadable line is set aside (``data.quarantine``)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield User.model_validate_json(line)
            except ValidationError as exc:
                set_aside(path, [(lineno, describe(exc), line)])


def current_users(users_file: Path, store: UserStore) -> dict[str, User]:
    """Every user now: the file's, replaced by the store's record of the same user, without
    the users erased (unless the store holds them again)."""
    users = {u.user_id: u for u in read_users_file(users_file)}
    stored = {u.user_id: u for u in store.iter_users()}
    users.update(stored)
    for user_id in store.erasures():
        if user_id not in stored:
            users.pop(user_id, None)
    return users


def consent_changes(store: UserStore) -> tuple[set[str], set[str]]:
    """``(excluded, consented)``: users erased or without consent in the user store (their
    events stay out of training and profiles whatever the users file says), and users whose
    stored consent is given (it overrides ``consent: false`` in the users file)."""
    erased = set(store.erasures())
    excluded = set(erased)
    consented: set[str] = set()
    for user in store.iter_users():
        (consented if user.consent else excluded).add(user.user_id)
    return excluded, consented - erased
