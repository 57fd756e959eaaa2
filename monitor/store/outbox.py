"""The findings outbox: every finding stored before any delivery, with one delivery row per sink whose
status records exactly how far it got, and the summaries posted for batches of findings."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.outbox.finding import MOST_SEVERE_FIRST, Finding, rank
from monitor.store.database import Database, _now


@dataclass
class StoreResult:
    new: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)


BELOW_FLOOR = "below the sink's min_severity"  # the rule of a delivery held back by a sink's minimum


class Outbox(Database):
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
            known = self.stored([f.finding_id for f in items])
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

    def stored(self, finding_ids: Sequence[str]) -> dict[str, Finding]:
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

    def ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        return self.starting("findings", "finding_id", prefix, limit)

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
            " d.delivered_severity, d.batch, f.incident_id,"
            " (SELECT count(*) FROM findings g WHERE g.incident_id = f.incident_id)"
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
            "incident_id",
            "incident_size",
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

    def incident_head(self, incident_id: str | None, sink: str, besides: str) -> dict[str, Any] | None:
        """Where an incident is in a sink: the first of its other findings posted there as a message of its own
        (one delivered in a thread or through a summary is no head)."""
        if incident_id is None:
            return None
        row = self.db.execute(
            "SELECT d.finding_id, d.channel, d.ts FROM deliveries d JOIN findings f USING (finding_id)"
            " WHERE f.incident_id = ? AND d.sink = ? AND d.finding_id != ? AND d.status = 'sent'"
            " AND d.ts IS NOT NULL AND d.thread_ts IS NULL ORDER BY CAST(d.ts AS REAL) LIMIT 1",
            (incident_id, sink, besides),
        ).fetchone()
        return None if row is None else dict(zip(("finding_id", "channel", "ts"), row, strict=True))

    def heads_behind(self, sink: str) -> list[tuple[Finding, dict[str, Any], dict[str, Any]]]:
        """(head finding, its delivery, its incident) for each incident message in a sink that shows fewer
        findings, or a lower severity, than its incident has now."""
        rows = self.db.execute(
            "SELECT f.body, d.channel, d.ts, d.incident_shown, coalesce(d.incident_severity, d.delivered_severity),"
            " i.body FROM incidents i JOIN findings f USING (incident_id) JOIN deliveries d USING (finding_id)"
            " WHERE d.sink = ? AND d.status = 'sent' AND d.ts IS NOT NULL AND d.thread_ts IS NULL"
            " AND CAST(d.ts AS REAL) = (SELECT min(CAST(e.ts AS REAL)) FROM deliveries e JOIN findings g"
            " USING (finding_id) WHERE g.incident_id = i.incident_id AND e.sink = d.sink AND e.status = 'sent'"
            " AND e.ts IS NOT NULL AND e.thread_ts IS NULL)",
            (sink,),
        )
        found = []
        for body, channel, ts, shown, severity, told in rows:
            incident = json.loads(told)
            if len(incident["finding_ids"]) != shown or rank(incident["severity"]) > rank(severity or "info"):
                where = {"channel": channel, "ts": ts, "incident_shown": shown, "incident_severity": severity}
                found.append((Finding.from_record(json.loads(body)), where, incident))
        return found

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
            # an earlier note's reply still waiting (refused, backing off) is replaced by this note's, due now
            self.db.execute("DELETE FROM deliveries WHERE finding_id = ? AND sink LIKE '%:resolved'", (finding_id,))
        return bool(cursor.rowcount)

    def update_delivery(self, finding_id: str, sink: str, told: Sequence[str] = (), **values: Any) -> None:
        """Set delivery fields (status, channel, ts, delivered_events, attempts, error, next_attempt_at); a follow-up
        `told` (every part sent) goes with them, in the same transaction: its parts are never sent again."""
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
            "incident_shown",
            "incident_severity",
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
            self.db.executemany(
                "DELETE FROM deliveries WHERE finding_id = ? AND sink = ?", [(finding_id, part) for part in told]
            )

    def follow_up(self, finding_id: str, part: str) -> dict[str, Any]:
        """The delivery of one message of a follow-up in a posted finding's thread (`part`: its sink's name and
        what it says), queued when it has none yet: the dispatcher moves it as it moves a finding's."""
        now = _now()
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO deliveries (finding_id, sink, status, updated_at) VALUES (?, ?, 'pending', ?)",
                (finding_id, part, now),
            )
        row = self.db.execute(
            "SELECT status, channel, thread_ts, attempts, next_attempt_at, updated_at FROM deliveries"
            " WHERE finding_id = ? AND sink = ?",
            (finding_id, part),
        ).fetchone()
        names = ("status", "channel", "thread_ts", "attempts", "next_attempt_at", "updated_at")
        return dict(zip(names, row, strict=True))

    def lookup_failed(self, finding_id: str, sink: str, attempts: int, due: str, error: str) -> None:
        """A `posting` delivery whose sink could not be asked: counted and due again later, its time left as the
        time of the post it may have made (where the next lookup searches from)."""
        with self.transaction():
            self.db.execute(
                "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, error = ? WHERE finding_id = ? AND sink = ?",
                (attempts, due, error, finding_id, sink),
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

    def counts(self) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], int]]:
        """Findings by (detector, severity, status) and deliveries by (sink, status): the outbox at a glance."""
        findings = self.db.execute("SELECT detector, severity, status, count(*) FROM findings GROUP BY 1, 2, 3")
        deliveries = self.db.execute("SELECT sink, status, count(*) FROM deliveries GROUP BY 1, 2")
        return {(d, s, st): n for d, s, st, n in findings}, {(k, st): n for k, st, n in deliveries}

    def undelivered(self, sinks: Sequence[str], min_attempts: int) -> list[dict[str, Any]]:
        """Deliveries to these sinks (findings, and their follow-ups' messages: `<sink>:<what>`) that failed, or
        are still pending or unconfirmed (`posting`: the sink could not be asked whether it arrived) after
        `min_attempts` tries."""
        marks = ", ".join("?" * len(sinks))
        rows = self.db.execute(
            "SELECT finding_id, sink, status, attempts, error FROM deliveries"
            " WHERE (sink IN (" + marks + ") OR substr(sink, 1, instr(sink, ':') - 1) IN (" + marks + "))"
            " AND (status = 'failed' OR (status IN ('pending', 'posting') AND attempts >= ?)) ORDER BY finding_id",
            [*sinks, *sinks, min_attempts],
        )
        names = ("finding_id", "sink", "status", "attempts", "error")
        return [dict(zip(names, row, strict=True)) for row in rows]
