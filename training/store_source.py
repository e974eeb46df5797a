"""Training input from the stores: the events the API and ``shoprank load`` stored, and who
may be trained on from the user store (erasures and consent).

``shoprank train | evaluate | retrain | scheduler`` open the stores the settings name
(embedded under ``SHOPRANK_HOME`` by default, PostgreSQL when ``SHOPRANK_DATABASE_URL`` names
one) and pass them to ``training.jobs.load_input``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from stores.protocols import CatalogStore, EventStore, UserStore
from stores.users_view import consent_changes
from training.interactions import Catalog


@dataclass(frozen=True)
class StoreSource:
    events: EventStore
    users: UserStore
    catalog: CatalogStore | None = None

    def current_catalog(self) -> Catalog | None:
        """The catalog store's items (with every API change), or None while it is empty (the
        service never started: the items file is the catalog)."""
        if self.catalog is None or self.catalog.count() == 0:
            return None
        return Catalog.from_items(self.catalog.iter_items())

    def events_table(self, since: date | None, until: date | None,
                     columns: tuple[str, ...]) -> pa.Table:
        """The stored events of days ``since`` … ``until`` (inclusive), in time order."""
        return self.events.read_table(since=since, until=until).select(list(columns))

    def consent(self) -> tuple[set[str], set[str]]:
        """``(excluded, consented)``: users erased or without consent in the user store, and
        users whose stored consent is given (it overrides the users file)."""
        return consent_changes(self.users)
