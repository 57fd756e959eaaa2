"""Detectors on burn-in: a rule, a pack or any detector added to a running service has its findings stored and
counted, not delivered, until its burn-in ends or it is promoted (StreamAlert's rule staging, with a backfill
to see what it would have sent)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from monitor.store.database import Database


class Staging(Database):
    def introduce(self, detectors: Iterable[str], now: datetime) -> None:
        """Record the detectors the service runs; those it sees for the first time start their burn-in now. The
        first time ever, every detector is the service's starting set: none is staged."""
        with self.transaction():
            first = self.db.execute("SELECT count(*) FROM detectors").fetchone()[0] == 0
            self.db.executemany(
                "INSERT INTO detectors (detector, first_seen, promoted_at) VALUES (?, ?, ?)"
                " ON CONFLICT (detector) DO NOTHING",
                [(d, now.isoformat(), now.isoformat() if first else None) for d in detectors],
            )

    def staged(self, now: datetime, burn_in: timedelta) -> dict[str, datetime]:
        """Detector -> when its burn-in ends, for those still in it."""
        rows = self.db.execute("SELECT detector, first_seen FROM detectors WHERE promoted_at IS NULL").fetchall()
        ends = {d: datetime.fromisoformat(seen) + burn_in for d, seen in rows}
        return {d: end for d, end in ends.items() if end > now}

    def promote(self, detector: str, now: datetime) -> bool:
        """End a detector's burn-in now; False when it was not on burn-in (unknown, or already alerting)."""
        with self.transaction():
            done = self.db.execute(
                "UPDATE detectors SET promoted_at = ? WHERE detector = ? AND promoted_at IS NULL",
                (now.isoformat(), detector),
            )
        return done.rowcount > 0

    def findings_per_day(self, detectors: Iterable[str]) -> dict[str, tuple[dict[str, int], str | None]]:
        """Detector -> (findings stored per day of their first event, the newest one's summary)."""
        wanted = list(detectors)
        marks = ",".join("?" * len(wanted))
        out: dict[str, tuple[dict[str, int], str | None]] = {d: ({}, None) for d in wanted}
        rows = self.db.execute(
            f"SELECT detector, substr(event_time, 1, 10), count(*) FROM findings WHERE detector IN ({marks})"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            wanted,
        )
        for detector, day, count in rows:
            out[detector][0][day] = count
        newest = self.db.execute(
            f"SELECT detector, json_extract(body, '$.summary') FROM findings WHERE detector IN ({marks})"
            " ORDER BY event_time",
            wanted,
        )
        for detector, summary in newest:
            out[detector] = (out[detector][0], summary)
        return out
