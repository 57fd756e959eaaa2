"""Incidents as stored: each finding's link keys over its span, the incident each finding is in, and each
incident as last told. The linking itself is `monitor.detect.incidents`'; this store only remembers it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from monitor.outbox.finding import Finding
from monitor.store.database import Database, _now


class Incidents(Database):
    def set_clues(self, clues: Mapping[str, frozenset[str]], findings: Mapping[str, Finding]) -> None:
        """Each finding's link keys, over its span as it is now (a finding that grew is linked again)."""
        with self.transaction():
            for finding_id, keys in clues.items():
                finding = findings[finding_id]
                self.db.execute("DELETE FROM clues WHERE finding_id = ?", (finding_id,))
                self.db.executemany(
                    "INSERT INTO clues (finding_id, key, first_seen, last_seen) VALUES (?, ?, ?, ?)",
                    [(finding_id, k, finding.event_time, finding.last_seen) for k in sorted(keys)],
                )

    def clues(self, finding_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """The link keys of these findings."""
        found: dict[str, set[str]] = {}
        for chunk in _chunks(list(finding_ids)):
            rows = self.db.execute(
                f"SELECT finding_id, key FROM clues WHERE finding_id IN ({', '.join('?' * len(chunk))})", chunk
            )
            for finding_id, key in rows:
                found.setdefault(finding_id, set()).add(key)
        return {f: frozenset(k) for f, k in found.items()}

    def linked(self, finding_ids: Iterable[str], window: timedelta) -> set[str]:
        """The findings holding one of these findings' keys whose span comes within `window` of theirs."""
        days, found = window / timedelta(days=1), set[str]()
        for chunk in _chunks(list(finding_ids)):
            rows = self.db.execute(
                "SELECT DISTINCT b.finding_id FROM clues a JOIN clues b ON b.key = a.key"
                f" WHERE a.finding_id IN ({', '.join('?' * len(chunk))})"
                " AND julianday(b.first_seen) <= julianday(a.last_seen) + ?"
                " AND julianday(b.last_seen) >= julianday(a.first_seen) - ?",
                [*chunk, days, days],
            )
            found.update(r[0] for r in rows)
        return found

    def save_incidents(self, told: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> None:
        """Each incident (its JSON form) with its findings, which now belong to it; incidents left without
        findings (merged into another) are forgotten."""
        now = _now()
        with self.transaction():
            for body, members in told:
                for chunk in _chunks(list(members)):
                    self.db.execute(
                        f"UPDATE findings SET incident_id = ? WHERE finding_id IN ({', '.join('?' * len(chunk))})",
                        [body["incident_id"], *chunk],
                    )
                self.db.execute(
                    "INSERT INTO incidents (incident_id, severity, first_seen, last_seen, findings, body, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET"
                    " severity = excluded.severity, first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
                    " findings = excluded.findings, body = excluded.body, updated_at = excluded.updated_at",
                    (
                        body["incident_id"],
                        body["severity"],
                        body["first_seen"],
                        body["last_seen"],
                        len(members),
                        json.dumps(body, sort_keys=True),
                        now,
                    ),
                )
            self.db.execute(
                "DELETE FROM incidents WHERE incident_id NOT IN"
                " (SELECT incident_id FROM findings WHERE incident_id IS NOT NULL)"
            )

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """An incident as last told, with whether it is open (any of its findings is)."""
        row = self.db.execute("SELECT body FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row[0])
        return body | {"status": self._status(incident_id)}

    def list_incidents(self, status: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """Incidents, newest first, optionally only open or resolved ones, or those seen since a time."""
        rows = self.db.execute(
            "SELECT i.body, max(f.status = 'open') FROM incidents i JOIN findings f USING (incident_id)"
            " WHERE (? IS NULL OR i.last_seen >= ?) GROUP BY i.incident_id ORDER BY i.first_seen DESC",
            (since, since),
        )
        told = [json.loads(body) | {"status": "open" if is_open else "resolved"} for body, is_open in rows]
        return [t for t in told if status is None or t["status"] == status]

    def incident_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        return self.starting("incidents", "incident_id", prefix, limit)

    def incident_of(self, finding_id: str) -> str | None:
        row = self.db.execute("SELECT incident_id FROM findings WHERE finding_id = ?", (finding_id,)).fetchone()
        return row[0] if row else None

    def members(self, incident_id: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT finding_id FROM findings WHERE incident_id = ?", (incident_id,))]

    def _status(self, incident_id: str) -> str:
        row = self.db.execute(
            "SELECT max(status = 'open') FROM findings WHERE incident_id = ?", (incident_id,)
        ).fetchone()
        return "open" if row and row[0] else "resolved"


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
