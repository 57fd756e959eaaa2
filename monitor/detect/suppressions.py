"""Suppression rules: known-good activity that should be stored and counted, never sent.

A rule names fields of a finding and matches when every field it names matches (exact values,
or full-match globs for principals and user agents, a CIDR for the source IP); rules are OR-ed.
Nothing matches by substring: `ci-logs` never silences `ci-logs-replica`. Every rule carries a
reason, an owner and an expiry date; an expired rule stops applying and is reported, so a
forgotten exception cannot hide activity for ever.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from detectors.core.base import full_match
from monitor.config import ConfigError, read_toml
from monitor.outbox.finding import Finding

_EXACT = ("detector", "account", "event_name")
_GLOBS = ("principal", "user_agent")
_MATCHERS = (*_EXACT, *_GLOBS, "source_cidr")
_REQUIRED = ("reason", "owner", "expires")


@dataclass(frozen=True)
class Rule:
    number: int
    fields: Mapping[str, str]
    reason: str
    owner: str
    expires: date

    @property
    def name(self) -> str:
        return f"rule {self.number} ({self.reason}, {self.owner}, until {self.expires})"

    def matches(self, finding: Finding) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "detector": lambda v: finding.detector == v,
            "account": lambda v: finding.account_id == v,
            # every event of the finding must be the named one: a merged finding with other events still alerts
            "event_name": lambda v: bool(finding.event_names) and set(finding.event_names) == {v},
            "principal": lambda v: _glob(v, finding.principal),
            "user_agent": lambda v: _glob(v, finding.user_agent),
            "source_cidr": lambda v: _in_network(finding.source_ip, v),
        }
        return all(checks[key](value) for key, value in self.fields.items())


def _glob(pattern: str, value: object) -> bool:
    compiled = full_match((pattern,))
    return isinstance(value, str) and compiled is not None and compiled.fullmatch(value) is not None


def _in_network(ip: object, cidr: str) -> bool:
    try:
        return isinstance(ip, str) and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:  # a service hostname or "AWS Internal" is in no network
        return False


@dataclass(frozen=True)
class Suppressions:
    rules: Sequence[Rule] = ()

    def active(self, today: date) -> list[Rule]:
        return [r for r in self.rules if r.expires >= today]

    def expired(self, today: date) -> list[Rule]:
        return [r for r in self.rules if r.expires < today]

    def matcher(self, today: date) -> Callable[[Finding], str | None]:
        """A function finding -> the name of the first active rule that matches it, or None."""
        rules = self.active(today)
        return lambda finding: next((r.name for r in rules if r.matches(finding)), None)


def with_burn_in(
    matcher: Callable[[Finding], str | None], staged: Mapping[str, datetime]
) -> Callable[[Finding], str | None]:
    """The suppression rules, and before them the burn-in of the detectors on it: their findings are stored and
    counted, never sent (a promotion or the end of the burn-in starts their alerts, not these)."""

    def suppressed_by(finding: Finding) -> str | None:
        end = staged.get(finding.detector)
        if end is not None:
            return f"burn-in until {end:%Y-%m-%d} (trailguard rules promote {finding.detector})"
        return matcher(finding)

    return suppressed_by


def _rule(number: int, table: Any, problems: list[str]) -> Rule | None:
    where = f"suppress[{number}]"
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a table")
        return None
    found = len(problems)
    problems += [f"{where}.{k}: unknown key" for k in table if k not in (*_MATCHERS, *_REQUIRED)]
    problems += [f"{where}.{k}: required" for k in _REQUIRED if k not in table]
    fields = {k: table[k] for k in _MATCHERS if k in table}
    if not fields:
        problems.append(f"{where}: names no field to match (one of {', '.join(_MATCHERS)})")
    problems += [f"{where}.{k}: expected a string" for k, v in fields.items() if not isinstance(v, str)]
    if isinstance(fields.get("source_cidr"), str):
        try:
            ipaddress.ip_network(fields["source_cidr"], strict=False)
        except ValueError:
            problems.append(f"{where}.source_cidr: {fields['source_cidr']!r} is not a CIDR")
    if "expires" in table and type(table["expires"]) is not date:  # a date-time is not an expiry date
        problems.append(f"{where}.expires: expected a date (YYYY-MM-DD)")
    for key in ("reason", "owner"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            problems.append(f"{where}.{key}: expected a non-empty string")
    if len(problems) > found:
        return None
    return Rule(number, fields, table["reason"], table["owner"], table["expires"])


def load(path: Path | None) -> Suppressions:
    """Rules from a TOML file of `[[suppress]]` tables (none without a file); ConfigError lists every problem."""
    if path is None:
        return Suppressions()
    data = read_toml(path)
    problems = [f"{k}: unknown section" for k in data if k != "suppress"]
    tables = data.get("suppress", [])
    rules = [_rule(n, t, problems) for n, t in enumerate(tables if isinstance(tables, list) else [], 1)]
    if problems:
        raise ConfigError(str(path), problems)
    return Suppressions(tuple(r for r in rules if r is not None))
