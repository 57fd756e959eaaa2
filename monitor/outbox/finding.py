"""The finding as the outbox, the sinks and the stores know it, and the one severity order.

Detectors stay pure and return frames; `from_frame` turns a frame (a detector's, a posture check's)
into findings, and `Finding.record` / `Finding.from_record` are the one JSON form: what the outbox
stores, JSON Lines and `scan` print, and the investigation notebooks read. Times are ISO-8601 UTC
strings with microseconds, as every sink shows them. Severities are their names ("high");
`Severity` (from the detector contract) orders them, here and in SQL, so no other module lists them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from detectors.core.base import FINDING_COLUMNS, nulls_as_none
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity

OWN_DETECTOR = "trailguard-health"  # the monitor's findings about itself (see monitor.service.watchdog)
NAMES: tuple[str, ...] = tuple(str(s) for s in Severity)  # least severe first
ALONE = Severity.HIGH  # at or above: always posted as a message of its own, never only inside a summary
MOST_SEVERE_FIRST = (  # an SQL ordering over a `severity` column; the monitor's own after detections
    "CASE severity " + " ".join(f"WHEN '{name}' THEN {-n}" for n, name in enumerate(NAMES)) + " END, "
    f"detector = '{OWN_DETECTOR}'"
)


def rank(severity: str) -> Severity:
    return Severity.parse(severity)


def worst(*severities: str) -> str:
    return max(severities, key=rank)


def alone(severity: str) -> bool:
    """Too severe to reach people only inside a summary's thread, which notifies no one."""
    return rank(severity) >= ALONE


def order(severity: str, detector: str) -> tuple[int, bool]:
    """A sort key: most severe first, and at one severity, detections before the monitor's own findings."""
    return -rank(severity), detector == OWN_DETECTOR


@dataclass(frozen=True)
class Finding:
    """One finding: the findings contract (see `detectors.core.base.FINDING_COLUMNS`)."""

    finding_id: str
    detector: str
    kind: str
    severity: str
    title: str
    summary: str
    event_ids: tuple[str, ...]
    event_names: tuple[str, ...]
    event_time: str
    last_seen: str
    account_id: str | None = None
    target_account_id: str | None = None
    region: str | None = None
    principal: str | None = None
    identity_type: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    dedup_key: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON form, every contract field in the contract's order. Only `details` is copied deeply: the
        other fields are immutable, and a scan prints tens of thousands of findings with thousands of ids."""
        body = {name: getattr(self, name) for name in _FIELDS}
        body["event_ids"], body["event_names"] = list(self.event_ids), list(self.event_names)
        body["details"] = copy.deepcopy(self.details)
        return body

    @classmethod
    def from_record(cls, body: Mapping[str, Any]) -> Finding:
        values = {k: v for k, v in body.items() if k in _FIELDS}
        values["event_ids"], values["event_names"] = tuple(body["event_ids"]), tuple(body["event_names"])
        return cls(**values)

    def merge(self, new: Finding) -> Finding:
        """The same finding seen again (a late event, an overlapping cycle): events accumulate, the worst
        severity stays."""
        return replace(
            self,
            event_ids=tuple(dict.fromkeys([*self.event_ids, *new.event_ids])),
            event_names=tuple(dict.fromkeys([*self.event_names, *new.event_names])),
            event_time=min(self.event_time, new.event_time),
            last_seen=max(self.last_seen, new.last_seen),
            severity=worst(self.severity, new.severity),
        )


_FIELDS = tuple(f.name for f in fields(Finding))
_SLICE = 4096  # rows turned into findings at a time: all of a large scan's at once would weigh tens of MiB


def iso(moment: datetime) -> str:
    """The one written form of a finding's times: ISO-8601 UTC with microseconds and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_column(times: pd.Series) -> list[str]:
    """`iso` over a whole column at once (a scan prints tens of thousands of findings)."""
    utc = pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
    return [f"{t}Z" for t in np.datetime_as_string(utc, unit="us").tolist()]


def from_frame(findings: pd.DataFrame) -> Iterator[Finding]:
    """A findings frame's rows as findings."""
    return map(Finding.from_record, records(findings))


def records(findings: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """A findings frame's rows in the JSON form (`Finding.record`): times in ISO-8601 UTC, `details` parsed,
    nulls as None. The columns become Python values a column at a time, not a row at a time, for a slice of
    rows at a time."""
    for start in range(0, len(findings), _SLICE):
        part = findings.iloc[start : start + _SLICE]
        times = {"event_time": _iso_column(part["event_time"]), "last_seen": _iso_column(part["last_seen"])}
        columns = {c: times[c] if c in times else nulls_as_none(part[c]) for c in FINDING_COLUMNS}
        columns["details"] = list(map(orjson.loads, columns["details"]))
        for listed in ("event_ids", "event_names"):
            columns[listed] = list(map(list, columns[listed]))
        for row in zip(*columns.values(), strict=True):
            yield dict(zip(FINDING_COLUMNS, row, strict=True))
