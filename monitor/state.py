"""SQLite state: the ledger of processed inputs, source cursors, and the findings outbox.

The ledger, not a "last key" cursor, decides what is new: CloudTrail delivers objects out of
key order, so a poller that remembers only the last key misses files. A row is written only
after the object's events are durably in the lake, so a crash can cause re-processing (removed
by the lake's de-duplication) but never a loss. Findings are stored in the outbox before any
delivery, with one delivery row per sink whose status records exactly how far it got.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.outbox.finding import MOST_SEVERE_FIRST, Finding, rank

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


@dataclass(frozen=True)
class Activity:
    """What the monitor knows of one account and region's deliveries."""

    newest_event: datetime
    first_seen: datetime | None  # by the monitor's clock; None: before it kept this
    last_seen: datetime


@dataclass
class StoreResult:
    new: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)


BELOW_FLOOR = "below the sink's min_severity"  # the rule of a delivery held back by a sink's minimum


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

    The lock is an flock on `<state>.lock`, so a holder that crashes or is killed loses it at once;
    the file names the holder for the error a second process gets (StateBusy).
    """
    lock = path.with_name(path.name + ".lock")
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


class StateError(Exception):
    """The state file cannot be used as it is; the message is one line that names it and what to do."""


class StateBusy(StateError):
    """Another process holds the state's delivery lock."""


class State:
    """One SQLite file in WAL mode. Many processes may read and write it; one at a time delivers (see `deliverer`).

    A file that exists but is not a usable TrailGuard state (empty, corrupt, from a newer version,
    unreadable) is refused with a StateError, never started over: starting over would ingest and
    alert everything again. A state file is created only where none exists, and only when `create`.
    """

    def __init__(self, path: Path, create: bool = True, upgrade: bool = True) -> None:
        self.path = path
        _check_file(path, create)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
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

    def store_findings(
        self,
        findings: Iterable[Finding],
        sinks: Sequence[str] = (),
        suppressed_by: Callable[[Finding], str | None] | None = None,
        batch: str | None = None,
    ) -> StoreResult:
        """Every finding is stored before any delivery; a finding seen again grows (its events merge).

        New findings get a delivery per sink: pending, or suppressed (with the rule) when
        `suppressed_by` names a rule for it, and in `batch` when they belong to a summary (a
        backfill's). Returns which findings were new, grew, or were suppressed.
        """
        result = StoreResult()
        now = _now()
        items = list(findings)
        with self.transaction():
            known = self._stored([f.finding_id for f in items])
            for item in items:
                fid = item.finding_id
                old = known.get(fid)
                if old is None:
                    body = item
                    result.new.append(fid)
                else:
                    body = old.merge(item)
                    if len(body.event_ids) > len(old.event_ids):
                        result.grown.append(fid)
                    if rank(body.severity) > rank(old.severity):  # a sink's minimum may let it through now
                        self.db.execute(
                            "UPDATE deliveries SET status = 'pending', rule = NULL, updated_at = ?"
                            " WHERE finding_id = ? AND status = 'suppressed' AND rule = ?",
                            (now, fid, BELOW_FLOOR),
                        )
                known[fid] = body
                self.db.execute(
                    "INSERT INTO findings (finding_id, detector, kind, severity, account_id, event_time, last_seen,"
                    " event_count, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (finding_id) DO UPDATE SET severity = excluded.severity,"
                    " event_time = excluded.event_time, last_seen = excluded.last_seen,"
                    " event_count = excluded.event_count, body = excluded.body, updated_at = excluded.updated_at",
                    (
                        fid,
                        body.detector,
                        body.kind,
                        body.severity,
                        body.account_id,
                        body.event_time,
                        body.last_seen,
                        len(body.event_ids),
                        json.dumps(body.record(), sort_keys=True),
                        now,
                        now,
                    ),
                )
                # every sink gets a delivery once, even for a finding first stored without that sink
                have = {r[0] for r in self.db.execute("SELECT sink FROM deliveries WHERE finding_id = ?", (fid,))}
                missing = [sink for sink in sinks if sink not in have]
                rule = suppressed_by(body) if suppressed_by and missing else None
                if rule:
                    result.suppressed.append(fid)
                self.db.executemany(
                    "INSERT INTO deliveries (finding_id, sink, status, rule, batch, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(fid, sink, "suppressed" if rule else "pending", rule, batch, now) for sink in missing],
                )
        return result

    def _stored(self, finding_ids: Sequence[str]) -> dict[str, Finding]:
        """The stored findings among these ids, read in chunks (not one query per finding)."""
        found: dict[str, Finding] = {}
        unique = list(dict.fromkeys(finding_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self.db.execute(
                f"SELECT finding_id, body FROM findings WHERE finding_id IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update((fid, Finding.from_record(json.loads(body))) for fid, body in rows)
        return found

    def finding(self, finding_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body, status, note FROM findings WHERE finding_id = ?", (finding_id,)).fetchone()
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row[0])
        return body | {"status": row[1], "note": row[2], "deliveries": self.deliveries(finding_id)}

    def deliveries(self, finding_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT sink, status, channel, ts, thread_ts, delivered_events, attempts, error, rule FROM deliveries"
            " WHERE finding_id = ? ORDER BY sink",
            (finding_id,),
        )
        names = ("sink", "status", "channel", "ts", "thread_ts", "delivered_events", "attempts", "error", "rule")
        return [dict(zip(names, r, strict=True)) for r in rows]

    def list_findings(self, status: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """Findings (newest first) as stored, optionally only open/resolved ones or since a time."""
        query = "SELECT body, status FROM findings WHERE (? IS NULL OR status = ?) AND (? IS NULL OR last_seen >= ?)"
        rows = self.db.execute(query + " ORDER BY event_time DESC", (status, status, since, since))
        return [json.loads(body) | {"status": st} for body, st in rows]

    def deliveries_in(self, sink: str, status: str, due_by: str | None = None) -> list[tuple[Finding, dict[str, Any]]]:
        """(finding, delivery) pairs of a sink in one status; with `due_by`, only those due by then."""
        rows = self.db.execute(
            "SELECT f.body, d.status, d.channel, d.ts, d.delivered_events, d.attempts, d.updated_at, d.thread_ts,"
            " d.delivered_severity, d.batch"
            " FROM deliveries d JOIN findings f USING (finding_id)"
            " WHERE d.sink = ? AND d.status = ? AND (? IS NULL OR d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)"
            f" ORDER BY {MOST_SEVERE_FIRST}, f.event_time",
            (sink, status, due_by, due_by),
        )
        names = (
            "status",
            "channel",
            "ts",
            "delivered_events",
            "attempts",
            "updated_at",
            "thread_ts",
            "delivered_severity",
            "batch",
        )
        return [(Finding.from_record(json.loads(body)), dict(zip(names, rest, strict=True))) for body, *rest in rows]

    def escalated_since_delivery(self, sink: str) -> list[tuple[Finding, dict[str, Any]]]:
        """Sent findings that are more severe now than when they were posted."""
        return [
            (f, d)
            for f, d in self.deliveries_in(sink, "sent")
            if d["delivered_severity"] and rank(f.severity) > rank(d["delivered_severity"])
        ]

    def grown_since_delivery(self, sink: str) -> list[tuple[Finding, dict[str, Any]]]:
        """Sent findings that have gained events since they were posted: their thread gets a reply."""
        return [(f, d) for f, d in self.deliveries_in(sink, "sent") if len(f.event_ids) > int(d["delivered_events"])]

    def resolutions_due(self, sink: str) -> list[tuple[Finding, dict[str, Any]]]:
        """Posted findings resolved since: their thread gets the resolution note."""
        rows = self.db.execute(
            "SELECT f.body, f.note, d.channel, d.ts, d.thread_ts FROM findings f JOIN deliveries d USING (finding_id)"
            " WHERE d.sink = ? AND d.status = 'sent' AND f.status = 'resolved' AND d.resolution_posted = 0",
            (sink,),
        )
        names = ("note", "channel", "ts", "thread_ts")
        return [(Finding.from_record(json.loads(body)), dict(zip(names, rest, strict=True))) for body, *rest in rows]

    def open_findings(self, detector: str, account_id: str) -> list[Finding]:
        """The open findings of one detector in one account (posture checks resolve those they no longer see)."""
        rows = self.db.execute(
            "SELECT body FROM findings WHERE detector = ? AND account_id = ? AND status = 'open'",
            (detector, account_id),
        )
        return [Finding.from_record(json.loads(body)) for (body,) in rows]

    def retry_failed(self, finding_ids: Sequence[str] = ()) -> int:
        """Failed deliveries (of these findings, or all) go back to pending, due now; returns how many."""
        only = f" AND finding_id IN ({', '.join('?' * len(finding_ids))})" if finding_ids else ""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ?"
                " WHERE status = 'failed'" + only,
                [_now(), *finding_ids],
            )
        return int(cursor.rowcount)

    def resolve(self, finding_id: str, note: str) -> bool:
        """Mark a finding resolved with a note, which its thread gets next (again, for a new note);
        False if there is no such finding."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE findings SET status = 'resolved', note = ?, updated_at = ? WHERE finding_id = ?",
                (note, _now(), finding_id),
            )
            self.db.execute("UPDATE deliveries SET resolution_posted = 0 WHERE finding_id = ?", (finding_id,))
        return bool(cursor.rowcount)

    def update_delivery(self, finding_id: str, sink: str, **values: Any) -> None:
        """Set delivery fields (status, channel, ts, delivered_events, attempts, error, next_attempt_at)."""
        allowed = {
            "batch",
            "status",
            "channel",
            "ts",
            "delivered_events",
            "attempts",
            "error",
            "rule",
            "next_attempt_at",
            "thread_ts",
            "resolution_posted",
            "delivered_severity",
        }
        unknown = set(values) - allowed
        if unknown:
            raise KeyError(f"not delivery fields: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self.db.execute(
                f"UPDATE deliveries SET {assignments}, updated_at = ? WHERE finding_id = ? AND sink = ?",
                [*values.values(), _now(), finding_id, sink],
            )

    def summary(self, batch: str, sink: str, channel: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT status, ts, findings, updated_at FROM summaries WHERE batch = ? AND sink = ? AND channel = ?",
            (batch, sink, channel),
        ).fetchone()
        return None if row is None else dict(zip(("status", "ts", "findings", "updated_at"), row, strict=True))

    def set_summary(self, batch: str, sink: str, channel: str, status: str, ts: str | None, findings: int) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch, sink, channel, status, ts, findings, _now()),
            )

    def forget_summary(self, batch: str, sink: str, channel: str) -> None:
        """A summary found never to have been posted: it is posted again."""
        with self.transaction():
            self.db.execute(
                "DELETE FROM summaries WHERE batch = ? AND sink = ? AND channel = ?", (batch, sink, channel)
            )

    def summaries_in(self, sink: str, status: str) -> list[tuple[str, str, dict[str, Any]]]:
        rows = self.db.execute(
            "SELECT batch, channel, status, ts, findings, updated_at FROM summaries WHERE sink = ? AND status = ?",
            (sink, status),
        )
        names = ("status", "ts", "findings", "updated_at")
        return [(b, c, dict(zip(names, rest, strict=True))) for b, c, *rest in rows]

    def delivered_through(self, sink: str, batch: str, thread_ts: str) -> int:
        """How many of a batch's findings were delivered through the summary posted as `thread_ts`."""
        row = self.db.execute(
            "SELECT count(*) FROM deliveries WHERE sink = ? AND batch = ? AND thread_ts = ? AND status = 'sent'",
            (sink, batch, thread_ts),
        ).fetchone()
        return int(row[0])

    def join_batch(self, sink: str, finding_ids: Sequence[str], batch: str) -> None:
        """These deliveries become one summary's (a burst's), all or none."""
        with self.transaction():
            self.db.executemany(
                "UPDATE deliveries SET batch = ?, updated_at = ? WHERE finding_id = ? AND sink = ?",
                [(batch, _now(), fid, sink) for fid in finding_ids],
            )

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

    def counts(self) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], int]]:
        """Findings by (detector, severity, status) and deliveries by (sink, status): the outbox at a glance."""
        findings = self.db.execute("SELECT detector, severity, status, count(*) FROM findings GROUP BY 1, 2, 3")
        deliveries = self.db.execute("SELECT sink, status, count(*) FROM deliveries GROUP BY 1, 2")
        return {(d, s, st): n for d, s, st, n in findings}, {(k, st): n for k, st, n in deliveries}

    def undelivered(self, sinks: Sequence[str], min_attempts: int) -> list[dict[str, Any]]:
        """Deliveries to these sinks that failed, or are still pending after `min_attempts` tries."""
        marks = ", ".join("?" * len(sinks))
        rows = self.db.execute(
            "SELECT finding_id, sink, status, attempts, error FROM deliveries WHERE sink IN (" + marks + ")"
            " AND (status = 'failed' OR (status = 'pending' AND attempts >= ?)) ORDER BY finding_id",
            [*sinks, min_attempts],
        )
        names = ("finding_id", "sink", "status", "attempts", "error")
        return [dict(zip(names, row, strict=True)) for row in rows]

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


def check(path: Path) -> list[tuple[str, str | None]]:
    """`trailguard state check`: (what was checked, problem or None), without changing the file."""
    try:
        state = State(path, create=False, upgrade=False)
    except StateError as exc:
        return [(f"state file {path}", str(exc).removeprefix(f"{path}: "))]
    try:
        integrity = [row[0] for row in state.db.execute("PRAGMA integrity_check")]
        lines: list[tuple[str, str | None]] = [
            (f"state file {path}: SQLite integrity", None if integrity == ["ok"] else "; ".join(integrity[:5]))
        ]
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
