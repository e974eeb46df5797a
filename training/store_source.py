"""Training input from the shared stores: the events replicas wrote to the event store, and
who may be trained on from the user store (erasures and consent).

``shoprank train | evaluate | retrain | scheduler`` pass one when ``SHOPRANK_DATABASE_URL``
names a shared database; the embedded default reads the event log folder and the users
journal instead (``training.jobs.load_input``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from stores.protocols import EventStore, UserStore


@dataclass(frozen=True)
class StoreSource:
    events: EventStore
    users: UserStore

    def events_table(self, since: date | None, until: date | None,
                     columns: tuple[str, ...]) -> pa.Table:
        """The stored events of days ``since`` … ``until`` (inclusive), in time order."""
        return self.events.read_table(since=since, until=until).select(list(columns))

    def consent(self) -> tuple[set[str], set[str]]:
        """``(excluded, consented)``: users erased or without consent in the user store, and
        users whose stored consent is given (it overrides the users file)."""
        excluded = set(self.users.erasures())
        consented: set[str] = set()
        for user in self.users.iter_users():
            (consented if user.consent else excluded).add(user.user_id)
        return excluded, consented - set(self.users.erasures())
