"""The organization's accounts as last read from AWS Organizations, for the inventory."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from monitor.store.database import Database, _now


class Accounts(Database):
    def replace_org_accounts(self, accounts: Iterable[tuple[str, str, str | None]]) -> None:
        """The organization's (id, name, status) as just read: the whole list, replaced at once."""
        now = _now()
        with self.transaction():
            self.db.execute("DELETE FROM org_accounts")
            self.db.executemany(
                "INSERT INTO org_accounts VALUES (?, ?, ?, ?)", [(i, n, st, now) for i, n, st in accounts]
            )

    def org_accounts(self) -> tuple[list[tuple[str, str, str | None]], datetime | None]:
        """The stored organization accounts and when they were read (None: never)."""
        rows = self.db.execute("SELECT account_id, name, status, fetched_at FROM org_accounts ORDER BY 1").fetchall()
        when = max((datetime.fromisoformat(r[3]) for r in rows), default=None)
        return [(r[0], r[1], r[2]) for r in rows], when
