"""SQLite state: the ledger of processed inputs, source cursors, and quarantined inputs.

The ledger, not a "last key" cursor, decides what is new: CloudTrail delivers objects out of
key order, so a poller that remembers only the last key misses files. A row is written only
after the object's events are durably in the lake, so a crash can cause re-processing (removed
by the lake's de-duplication) but never a loss.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Append-only: a released migration is never edited; the schema version is its index + 1.
MIGRATIONS = (
    """
    CREATE TABLE objects (
        source TEXT NOT NULL,        -- s3, sqs, file, lookup
        bucket TEXT NOT NULL,        -- '' for local files
        key TEXT NOT NULL,
        etag TEXT NOT NULL,          -- S3 ETag, or size-mtime for local files
        status TEXT NOT NULL CHECK (status IN ('ingested', 'quarantined')),
        events INTEGER NOT NULL,
        bad_records INTEGER NOT NULL,
        reason TEXT,
        processed_at TEXT NOT NULL,
        PRIMARY KEY (source, bucket, key, etag)
    );
    CREATE TABLE cursors (
        source TEXT NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        position TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (source, account, region)
    );
    """,
)


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


def _now() -> str:
    return datetime.now(UTC).isoformat()


class State:
    """One SQLite file in WAL mode, opened by one process at a time (the service has one replica)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"{self.path}: state schema version {version} is newer than this TrailGuard")
        for number, script in enumerate(MIGRATIONS[version:], version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def seen(self, source: str, bucket: str, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (key, etag) pairs of a bucket are already in the ledger."""
        wanted = list(keys)
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            clause = " OR ".join(["(key = ? AND etag = ?)"] * len(chunk))
            args = [source, bucket, *(v for pair in chunk for v in pair)]
            rows = self.db.execute(
                f"SELECT key, etag FROM objects WHERE source = ? AND bucket = ? AND ({clause})", args
            )
            found.update((k, e) for k, e in rows)
        return found

    def record(self, objects: Iterable[ObjectRecord]) -> None:
        """Add processed objects to the ledger, all or none."""
        rows = [
            (o.source, o.bucket, o.key, o.etag, o.status, o.events, o.bad_records, o.reason, _now()) for o in objects
        ]
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def objects(self, status: str | None = None) -> list[ObjectRecord]:
        query = "SELECT source, bucket, key, etag, status, events, bad_records, reason FROM objects"
        rows = self.db.execute(query + " WHERE status = ?", (status,)) if status else self.db.execute(query)
        return [ObjectRecord(*row) for row in rows]

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
