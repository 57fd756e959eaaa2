"""The ledger of processed inputs, the sources' cursors, and the activity per account/region.

The ledger, not a "last key" cursor, decides what is new: CloudTrail delivers objects out of key
order, so a poller that remembers only the last key misses files. A row is written only after the
object's events are durably in the lake, so a crash can cause re-processing (removed by the lake's
de-duplication) but never a loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.store.database import Database, _now
from monitor.text import path_text


@dataclass(frozen=True)
class ObjectRecord:
    """One processed input, as the ledger keeps it."""

    source: str
    bucket: str
    key: str
    etag: str
    status: str = "ingested"
    events: int = 0
    bad_records: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Activity:
    """What the monitor knows of one account and region's deliveries."""

    newest_event: datetime
    first_seen: datetime | None  # by the monitor's clock; None: before it kept this
    last_seen: datetime


class Ledger(Database):
    def seen(self, source: str, bucket: str, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (key, etag) pairs of a bucket are already in the ledger (keys as given, stored as text)."""
        given = {(path_text(key), etag): (key, etag) for key, etag in keys}
        wanted = list(given)
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            clause = " OR ".join(["(key = ? AND etag = ?)"] * len(chunk))
            args = [source, bucket, *(v for pair in chunk for v in pair)]
            rows = self.db.execute(
                f"SELECT key, etag FROM objects WHERE source = ? AND bucket = ? AND ({clause})", args
            )
            found.update(given[(k, e)] for k, e in rows)
        return found

    def record(self, objects: Iterable[ObjectRecord]) -> None:
        """Add processed objects to the ledger, all or none."""
        rows = [
            (o.source, o.bucket, path_text(o.key), o.etag, o.status, o.events, o.bad_records, o.reason, _now())
            for o in objects
        ]
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def objects(self, status: str | None = None) -> list[ObjectRecord]:
        query = "SELECT source, bucket, key, etag, status, events, bad_records, reason FROM objects"
        rows = self.db.execute(query + " WHERE status = ?", (status,)) if status else self.db.execute(query)
        return [ObjectRecord(*row) for row in rows]

    def record_activity(self, newest: Iterable[tuple[str, str, datetime]], now: datetime, limit: int) -> int:
        """Move each (account, region)'s newest event time forward (never back: late events are older), noting
        when the monitor first saw it. At most `limit` pairs are kept; returns how many new ones were not."""
        rows = [(account, region, when.astimezone(UTC).isoformat()) for account, region, when in newest]
        stamp = now.astimezone(UTC).isoformat()
        dropped = 0
        with self.transaction():
            room = limit - int(self.db.execute("SELECT count(*) FROM activity").fetchone()[0])
            for account, region, when in rows:
                cursor = self.db.execute(
                    "UPDATE activity SET newest_event = max(newest_event, ?), updated_at = ?"
                    " WHERE account_id = ? AND region = ?",
                    (when, stamp, account, region),
                )
                if cursor.rowcount:
                    continue
                if room <= 0:
                    dropped += 1
                    continue
                self.db.execute("INSERT INTO activity VALUES (?, ?, ?, ?, ?)", (account, region, when, stamp, stamp))
                room -= 1
        return dropped

    def activity(self) -> dict[tuple[str, str], Activity]:
        """Every (account, region) that delivered events: its newest event, and when the monitor first and last
        saw it deliver (first: None for pairs seen before the monitor noted it)."""
        rows = self.db.execute("SELECT account_id, region, newest_event, first_seen, updated_at FROM activity")
        return {
            (a, r): Activity(
                datetime.fromisoformat(t), datetime.fromisoformat(f) if f else None, datetime.fromisoformat(u)
            )
            for a, r, t, f, u in rows
        }

    def cursor(self, source: str, account: str, region: str) -> str | None:
        row = self.db.execute(
            "SELECT position FROM cursors WHERE source = ? AND account = ? AND region = ?", (source, account, region)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, account: str, region: str, position: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?, ?)", (source, account, region, position, _now())
            )
