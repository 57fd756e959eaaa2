"""The one SQLite file behind every store: opening it safely, its migrations, transactions, the
delivery lock, and `trailguard state check`.

A file that exists but is not a usable TrailGuard state (empty, corrupt, from a newer version,
unreadable) is refused with a StateError, never started over: starting over would ingest and alert
everything again. A state file is created only where none exists, and only when asked, and it is
backed up before a migration.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from monitor import RequestError

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
    """
    CREATE TABLE findings (
        finding_id TEXT PRIMARY KEY,
        detector TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        account_id TEXT,
        event_time TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        event_count INTEGER NOT NULL,
        body TEXT NOT NULL,                  -- the finding as JSON, with every contract field
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        note TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX findings_by_time ON findings (event_time);
    CREATE TABLE deliveries (
        finding_id TEXT NOT NULL REFERENCES findings (finding_id),
        sink TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'posting', 'sent', 'failed', 'suppressed')),
        channel TEXT,
        ts TEXT,                             -- the Slack message, once acknowledged
        delivered_events INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        rule TEXT,                           -- the suppression rule, when suppressed
        next_attempt_at TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (finding_id, sink)
    );
    """,
    # the thread a delivery was posted into (a burst's or a backfill's summary), for crash recovery
    "ALTER TABLE deliveries ADD COLUMN thread_ts TEXT",
    # the newest event seen per account and region: ingestion lag, and silence when it stops moving
    """
    CREATE TABLE activity (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        newest_event TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (account_id, region)
    );
    """,
    # the organization's accounts as last read from AWS Organizations
    """
    CREATE TABLE org_accounts (
        account_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT,
        fetched_at TEXT NOT NULL
    );
    """,
    # a resolution is replied in the finding's thread through the outbox (until now it was posted at once):
    # resolution_posted is 0 while due, 1 once posted, 2 when Slack refused it for good
    """
    ALTER TABLE deliveries ADD COLUMN resolution_posted INTEGER NOT NULL DEFAULT 0;
    UPDATE deliveries SET resolution_posted = 1
        WHERE finding_id IN (SELECT finding_id FROM findings WHERE status = 'resolved');
    CREATE INDEX findings_by_detector ON findings (detector, account_id, status);
    """,
    # the severity a finding had when it was posted: a finding that grows more severe is announced again
    "ALTER TABLE deliveries ADD COLUMN delivered_severity TEXT",
    # the summary a delivery belongs to (a backfill's: delivered through it; a burst's: posted in its thread),
    # and each summary as posted, so that one is posted once per channel whatever crashes or restarts
    """
    ALTER TABLE deliveries ADD COLUMN batch TEXT;
    CREATE INDEX deliveries_by_status ON deliveries (sink, status);
    CREATE TABLE summaries (
        batch TEXT NOT NULL,
        sink TEXT NOT NULL,
        channel TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('posting', 'sent')),
        ts TEXT,
        findings INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (batch, sink, channel)
    );
    """,
    # when the monitor first saw each account and region deliver (its own clock, not the events'): a pair is
    # watched for silence only once it has delivered for a while; the pairs already watched stay watched
    "ALTER TABLE activity ADD COLUMN first_seen TEXT",
    # the detectors the service has run, and when each started: a new one is on burn-in until promoted
    """
    CREATE TABLE detectors (
        detector TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        promoted_at TEXT
    );
    """,
    # findings linked into incidents: each finding's link keys (identities, unusual addresses) over its span, the
    # incident it is in, and each incident as last told (its severity, tactics, who, where, summary)
    """
    ALTER TABLE findings ADD COLUMN incident_id TEXT;
    CREATE INDEX findings_by_incident ON findings (incident_id);
    CREATE TABLE clues (
        finding_id TEXT NOT NULL REFERENCES findings (finding_id),
        key TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (finding_id, key)
    );
    CREATE INDEX clues_by_key ON clues (key, first_seen);
    CREATE TABLE incidents (
        incident_id TEXT PRIMARY KEY,
        severity TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        findings INTEGER NOT NULL,
        body TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX incidents_by_time ON incidents (first_seen);
    """,
    # an incident's Slack message is its first posted finding's, retold as the incident: how many findings and
    # which severity it shows, so that a joining finding updates it and a rise in severity is announced once
    """
    ALTER TABLE deliveries ADD COLUMN incident_shown INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE deliveries ADD COLUMN incident_severity TEXT;
    """,
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _check_file(path: Path, create: bool) -> None:
    """Refuse what SQLite would silently treat as a new database, or fail on obscurely."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if not create:
            raise StateError(f"{path}: no such state file") from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"{path}: cannot create the state file ({exc.strerror})") from None
        return
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file ({exc.strerror})") from None
    if size == 0:
        raise StateError(
            f"{path}: the state file is empty (a full disk or an interrupted restore?): restore it from a backup, "
            "or remove it to start over (everything is then ingested and alerted again)"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise StateError(f"{path}: cannot read and write the state file (permission denied)")


def backup(db: sqlite3.Connection, target: Path) -> None:
    """A consistent copy of the database (SQLite's online backup), written before it changes shape."""
    copy = sqlite3.connect(target)
    try:
        db.backup(copy)
    finally:
        copy.close()


@contextmanager
def deliverer(path: Path) -> Iterator[None]:
    """Hold the state's delivery lock: one process at a time delivers findings from a state file.

    The lock is an flock on `<state>.lock` beside the file itself (a symbolic link to it locks the same), so a
    holder that crashes or is killed loses it at once; the file names the holder for the error a second
    process gets (StateBusy).
    """
    real = path.resolve()
    lock = real.with_name(real.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StateBusy(f"{path}: {holder} delivers from this state file (one process at a time)") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"TrailGuard process {os.getpid()} ({' '.join(sys.argv[:2])})".encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class StateError(RequestError):
    """The state file cannot be used as it is; the message is one line that names it and what to do."""


class StateBusy(StateError):
    """Another process holds the state's delivery lock."""


class Database:
    """One SQLite file in WAL mode. Many processes may read and write it; one at a time delivers (see
    `deliverer`). Each store is a view of it: open one alone, or a State for all of them at once."""

    BUSY_SECONDS = 30.0  # how long a write waits for another process's transaction to end

    def __init__(self, path: Path, create: bool = True, upgrade: bool = True) -> None:
        self.path = path
        _check_file(path, create)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=self.BUSY_SECONDS)
            version = self._version()  # before anything is written: a file refused is left as it was
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            if upgrade:
                self._migrate(version)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a usable TrailGuard state file ({exc})") from None

    def _version(self) -> int:
        """The schema version, or StateError for a file from a newer TrailGuard or from something else."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StateError(
                f"{self.path}: state version {version} is newer than this TrailGuard's ({len(MIGRATIONS)}): upgrade it"
            )
        if version == 0 and self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StateError(f"{self.path}: an SQLite database, but not a TrailGuard state file")
        return version

    def _migrate(self, version: int) -> None:
        """Bring the schema up to date, after a backup of the file as it was."""
        if 0 < version < len(MIGRATIONS):
            backup(self.db, self.path.with_name(f"{self.path.name}.v{version}.bak"))
        for number, script in enumerate(MIGRATIONS[version:], version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    def starting(self, table: str, column: str, prefix: str, limit: int = 2) -> list[str]:
        """The ids in `table.column` that start with `prefix`, a lowercase hex start (at most `limit`: two tell an
        ambiguous prefix). Table and column are the stores' own names, never input."""
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            return []
        rows = self.db.execute(
            f"SELECT {column} FROM {table} WHERE {column} >= ? AND {column} < ? ORDER BY 1 LIMIT ?",
            (prefix, prefix + "g", limit),
        )
        return [r[0] for r in rows]

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # another process held it for longer than BUSY_SECONDS
            raise StateError(f"{self.path}: cannot be written now ({exc}): another process holds it") from None
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
