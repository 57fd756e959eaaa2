"""All the stores over one state file, for the commands and the service that need several at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitor.store.accounts import Accounts
from monitor.store.database import MIGRATIONS, StateBusy, StateError, deliverer
from monitor.store.incidents import Incidents
from monitor.store.ledger import Ledger
from monitor.store.outbox import Outbox
from monitor.store.staging import Staging


class State(Ledger, Outbox, Accounts, Staging, Incidents):
    """One connection to the state file with every store's methods; a module that needs one store takes
    that store's type (a State is each of them)."""


def check(path: Path) -> list[tuple[str, str | None]]:
    """`trailguard state check`: (what was checked, problem or None), without changing the file."""
    try:
        state = State(path, create=False, upgrade=False)
    except StateError as exc:
        return [(f"state file {path}", str(exc).removeprefix(f"{path}: "))]
    try:
        try:
            integrity = [row[0] for row in state.db.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:  # too damaged for the check itself to finish
            integrity = [str(exc)]
        lines: list[tuple[str, str | None]] = [
            (f"state file {path}: SQLite integrity", None if integrity == ["ok"] else "; ".join(integrity[:5]))
        ]
        if integrity != ["ok"]:  # what it holds cannot be trusted, nor always read
            return lines
        if state.version < len(MIGRATIONS):
            lines.append(
                (
                    f"version {state.version}: upgraded to {len(MIGRATIONS)} (after a backup) by the next "
                    "command that writes it",
                    None,
                )
            )
            return lines
        lines.append((f"version {state.version}", None))
        ledger = dict(state.db.execute("SELECT status, count(*) FROM objects GROUP BY 1").fetchall())
        lines.append(
            (f"ledger: {ledger.get('ingested', 0)} inputs ingested, {ledger.get('quarantined', 0)} quarantined", None)
        )
        findings, deliveries = state.counts()
        by_status: dict[str, int] = {}
        for (_, status), n in deliveries.items():
            by_status[status] = by_status.get(status, 0) + n
        lines.append(
            (
                f"outbox: {sum(findings.values())} findings, deliveries "
                + (", ".join(f"{n} {st}" for st, n in sorted(by_status.items())) or "none"),
                None,
            )
        )
        holder = _lock_holder(path)
        lines.append((f"delivery lock: {holder or 'free'}", None))
        return lines
    finally:
        state.close()


def _lock_holder(path: Path) -> str | None:
    try:
        with deliverer(path):
            return None
    except StateBusy as exc:
        return str(exc).removeprefix(f"{path}: ")
