"""Findings linked into incidents: one story per attacker, not one alert per event.

Two findings are linked when they share a key (an identity or an unusual address, see `links`) and at most the
linking window lies between them; linking is transitive. An incident is a set of linked findings, named after
its earliest finding, so the same findings make the same incident whatever order or slices they came in.
Its severity is its worst finding's, one step higher when its findings span three or more ATT&CK tactics or
when defence evasion follows the creation of credentials; its story is its findings' own words in order.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detectors.core.base import TACTICS, Check
from detectors.core.severity import Severity
from monitor.detect.links import COLUMNS, IDENTITY_COLUMNS, SESSION, Linking, identity, keys
from monitor.lake import Lake
from monitor.outbox.finding import Finding, iso, rank
from monitor.store.state import State

CREDENTIALS = ("T1098.001", "T1136")  # ATT&CK: additional cloud credentials, create account
SHOWN = 4  # findings quoted in an incident's summary
CONTEXT = 50  # context events an incident keeps
DENIAL_COLUMNS = (*IDENTITY_COLUMNS, "event_id", "event_time", "event_name", "error_code", "role_arn")


def incident_id(members: Iterable[Finding]) -> str:
    """The id of the incident these findings make: its earliest finding's, hashed into its own name space."""
    first = min(members, key=lambda f: (f.event_time, f.finding_id))
    return hashlib.sha256(f"incident\x1f{first.finding_id}".encode()).hexdigest()[:32]


def components(findings: Sequence[Finding], keys: Mapping[str, frozenset[str]], window: timedelta) -> list[list[str]]:
    """The linked sets of these findings (their ids): a shared key and at most `window` between two findings'
    spans, transitively."""
    spans = {f.finding_id: (_at(f.event_time), _at(f.last_seen)) for f in findings}
    parent = {f: f for f in spans}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    holders: dict[str, list[str]] = {}
    for finding_id in spans:
        for key in keys.get(finding_id, ()):
            holders.setdefault(key, []).append(finding_id)
    for members in holders.values():  # along each key in time: a gap wider than the window starts anew
        members.sort(key=lambda f: spans[f])
        reach = spans[members[0]][1]
        for previous, current in itertools.pairwise(members):
            start, end = spans[current]
            if start - reach <= window:
                parent[root(current)] = root(previous)
                reach = max(reach, end)
            else:
                reach = end
    grouped: dict[str, list[str]] = {}
    for finding_id in spans:
        grouped.setdefault(root(finding_id), []).append(finding_id)
    return list(grouped.values())


@dataclass(frozen=True)
class Incident:
    incident_id: str
    severity: str
    raised: str  # why the severity is above its worst finding's ("" when it is not)
    tactics: tuple[str, ...]  # in ATT&CK's order
    findings: tuple[Finding, ...]  # in time order
    identities: tuple[str, ...]
    addresses: tuple[str, ...]
    accounts: tuple[str, ...]
    summary: str
    context: tuple[Mapping[str, str], ...] = ()  # events that are no finding of their own: denied retries

    @property
    def first_seen(self) -> str:
        return self.findings[0].event_time

    @property
    def last_seen(self) -> str:
        return max(f.last_seen for f in self.findings)

    def record(self) -> dict[str, Any]:
        """The JSON form the store keeps and the sinks and commands show: the findings by id."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "findings"}
        return body | {
            "finding_ids": [f.finding_id for f in self.findings],
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


def story(
    members: Iterable[Finding],
    keys: Mapping[str, frozenset[str]],
    catalog: Mapping[str, type[Check]],
    context: Sequence[Mapping[str, str]] = (),
) -> Incident:
    """An incident from its findings: severity, tactics, who and where, and a summary in the findings' words;
    `context` is what its identities did that is no finding of its own."""
    findings = tuple(sorted(members, key=lambda f: (f.event_time, f.finding_id)))
    checks = [catalog.get(f.detector) for f in findings]
    tactics = tuple(t for t in TACTICS if any(c is not None and t in c.tactics for c in checks))
    worst = max((rank(f.severity) for f in findings), default=Severity.INFO)
    made = [f.event_time for f, c in zip(findings, checks, strict=True) if c is not None and _creates_credentials(c)]
    evaded = [
        f.event_time for f, c in zip(findings, checks, strict=True) if c is not None and "defense-evasion" in c.tactics
    ]
    raised = ""
    if len(tactics) >= 3:
        raised = f"its findings span {len(tactics)} ATT&CK tactics"
    elif made and any(at >= min(made) for at in evaded):
        raised = "defence evasion followed the creation of credentials"
    severity = Severity(min(worst + 1, Severity.CRITICAL)) if raised else worst
    linked = sorted({k for f in findings for k in keys.get(f.finding_id, ())})
    accounts = tuple(sorted({a for f in findings for a in (f.account_id, f.target_account_id) if a}))
    return Incident(
        incident_id(findings),
        str(severity),
        raised if severity > worst else "",
        tactics,
        findings,
        tuple(describe(k) for k in linked if not k.startswith("addr:")),
        tuple(k.removeprefix("addr:") for k in linked if k.startswith("addr:")),
        accounts,
        _summary(findings, accounts),
        tuple(context),
    )


def describe(key: str) -> str:
    """A link key as people read it: `jack (IAM user in 111111111111)`."""
    kind, _, rest = key.partition(":")
    account, _, name = rest.partition(":")
    shown = {
        "root": f"root of {rest}",
        "user": f"{name} (IAM user in {account})",
        "role": f"{name} (role in {account}, any session)",
        "caller": f"{name} (a principal of {account}, seen from the account it called)",
    }
    return shown.get(kind, rest)


def _summary(findings: Sequence[Finding], accounts: Sequence[str]) -> str:
    if len(findings) == 1:
        return findings[0].summary
    detectors = len({f.detector for f in findings})
    where = f" in {', '.join(accounts)}" if accounts else ""
    head = f"{len(findings)} findings from {detectors} detectors{where}, {findings[0].event_time[:16]} to "
    head += f"{max(f.last_seen for f in findings)[:16]} UTC: "
    told = [f.summary.rstrip(".") for f in findings[:SHOWN]]
    more = f"; and {len(findings) - SHOWN} more" if len(findings) > SHOWN else ""
    return head + "; then ".join(told) + more + "."


def _creates_credentials(check: type[Check]) -> bool:
    return any(code in reference for reference in check.references for code in CREDENTIALS)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def link(
    lake: Lake, state: State, findings: Sequence[Finding], linking: Linking, catalog: Mapping[str, type[Check]]
) -> list[str]:
    """Link these just-stored findings into incidents: their keys from the lake (their events, and the calls
    that issued the access keys they used), then every finding they reach, told again as incidents. Returns the
    ids of the incidents told."""
    stored = state.stored([f.finding_id for f in findings])
    if not stored:
        return []
    start = min(_at(f.event_time) for f in stored.values()) - SESSION
    end = max(_at(f.last_seen) for f in stored.values()) + timedelta(microseconds=1)
    wanted = pa.array(sorted({i for f in stored.values() for i in f.event_ids}), pa.string())

    def theirs(keyed: pa.Table) -> np.ndarray:  # what `keys` reads: their events, and every key's issuing call
        chosen = pc.or_(pc.is_in(keyed["event_id"], wanted), pc.is_valid(keyed["new_access_key_id"]))
        return np.asarray(chosen, dtype=bool)

    events = lake.candidates(start, end, ["event_id", "new_access_key_id"], list(COLUMNS), theirs).to_pandas()
    state.set_clues(keys({i: f.event_ids for i, f in stored.items()}, events, linking), stored)
    reached, frontier = set(stored), set(stored)
    while frontier:  # every finding linked to these, however far the chain goes, a step at a time
        frontier = state.linked(frontier, linking.window) - reached
        reached |= frontier
    members, clues = state.stored(sorted(reached)), state.clues(reached)
    parts = [[members[i] for i in part] for part in components(list(members.values()), clues, linking.window)]
    retries = _denied(lake, list(stored.values()), linking.window)  # around the new findings: what is new
    told = []
    for part in parts:
        before = [c for i in {state.incident_of(f.finding_id) for f in part} if i for c in _told_context(state, i)]
        context = _context(part, clues, retries, linking.window, before)
        incident = story(part, clues, catalog, context)
        told.append((incident.record(), [f.finding_id for f in part]))
    state.save_incidents(told)
    return [body["incident_id"] for body, _ in told]


def _denied(lake: Lake, findings: Sequence[Finding], window: timedelta) -> dict[str, list[dict[str, str]]]:
    """The denied AssumeRole calls around these findings, by their caller's identity key: a known pair's retry is
    no finding (see cross-account-assume-role), but it belongs in the story of its caller."""
    start = min(_at(f.event_time) for f in findings) - window
    end = max(_at(f.last_seen) for f in findings) + window

    def denied(keyed: pa.Table) -> np.ndarray:
        chosen = pc.and_(pc.equal(keyed["event_name"], "AssumeRole"), pc.is_valid(keyed["error_code"]))
        return np.asarray(pc.fill_null(chosen, False), dtype=bool)

    tried = lake.candidates(start, end, ["event_name", "error_code"], list(DENIAL_COLUMNS), denied).to_pandas()
    said = tried["principal"].fillna("-") + " was denied assuming " + tried["role_arn"].fillna("a role")
    said += " (" + tried["error_code"].fillna("-") + ")"
    times = [iso(moment) for moment in tried["event_time"].dt.to_pydatetime()]
    by_caller: dict[str, list[dict[str, str]]] = {}
    for caller, at, event_id, text in zip(identity(tried), times, tried["event_id"], said, strict=True):
        if caller:
            by_caller.setdefault(caller, []).append({"event_time": at, "event_id": str(event_id), "summary": text})
    return by_caller


def _told_context(state: State, incident_id: str) -> list[dict[str, str]]:
    told = state.incident(incident_id)
    return list(told.get("context", [])) if told else []


def _context(
    part: Sequence[Finding],
    clues: Mapping[str, frozenset[str]],
    retries: Mapping[str, list[dict[str, str]]],
    window: timedelta,
    before: Sequence[Mapping[str, str]] = (),
) -> list[dict[str, str]]:
    """The incident's identities' denied retries within its span and the window around it, not already findings:
    those found `before` (when its incidents were told) and those around its new findings."""
    known = {k for f in part for k in clues.get(f.finding_id, ()) if not k.startswith("addr:")}
    seen = {e for f in part for e in f.event_ids}
    start = iso(min(_at(f.event_time) for f in part) - window)
    end = iso(max(_at(f.last_seen) for f in part) + window)
    found = [r for k in known for r in retries.get(k, ()) if start <= r["event_time"] <= end]
    kept = {c["event_id"]: dict(c) for c in [*before, *found] if c["event_id"] not in seen}
    return sorted(kept.values(), key=lambda c: (c["event_time"], c["event_id"]))[:CONTEXT]
