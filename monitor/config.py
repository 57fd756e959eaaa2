"""Typed settings from one TOML file, validated at start with one error per problem.

Detection settings and alert routing live here for now; the service grows the same loader.
Secrets never come from this file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.base import Settings

_ACCOUNT = re.compile(r"\d{12}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/.+")
_DETECTION_KEYS = {"trusted_accounts", "external_idp_roles", "monitor_role_arns"}
_DETECTOR_KEYS = {"enabled"}


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one line per problem, each naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class SlackSettings:
    """Where alerts go. The bot token and webhook URL are secrets and never live here."""

    channel: str | None = None
    severity_channels: Mapping[str, str] = field(default_factory=dict)
    account_channels: Mapping[str, str] = field(default_factory=dict)
    summary_over: int = 10
    runbook_url: str | None = None  # e.g. https://wiki.example.com/runbooks/{detector}


@dataclass(frozen=True)
class Config:
    detection: Settings = field(default_factory=Settings)
    disabled_detectors: frozenset[str] = frozenset()
    slack: SlackSettings = field(default_factory=SlackSettings)


_SEVERITIES = ("info", "low", "medium", "high", "critical")
_SLACK_KEYS = {"channel", "severity_channels", "account_channels", "summary_over", "runbook_url"}


def _slack(table: Any, problems: list[str]) -> SlackSettings:
    if not isinstance(table, dict):
        problems.append("slack: expected a table")
        return SlackSettings()
    problems += [f"slack.{k}: unknown key" for k in table if k not in _SLACK_KEYS]
    channel = table.get("channel")
    if channel is not None and not (isinstance(channel, str) and channel.strip()):
        problems.append("slack.channel: expected a channel name or id")
    maps: dict[str, dict[str, str]] = {}
    for key, valid, what in (
        ("severity_channels", _SEVERITIES.__contains__, "a severity"),
        ("account_channels", _ACCOUNT.fullmatch, "a 12-digit account id"),
    ):
        value = table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            problems.append(f"slack.{key}: expected a table of channel names")
            continue
        problems += [f"slack.{key}.{k}: {k!r} is not {what}" for k in value if not valid(k)]
        maps[key] = dict(value)
    summary = table.get("summary_over", 10)
    if not isinstance(summary, int) or isinstance(summary, bool) or summary < 1:
        problems.append("slack.summary_over: expected a whole number of at least 1")
        summary = 10
    runbook = table.get("runbook_url")
    if runbook is not None and not (isinstance(runbook, str) and runbook.startswith("https://")):
        problems.append("slack.runbook_url: expected an https:// URL (it may contain {detector})")
    routes = (maps.get("severity_channels", {}), maps.get("account_channels", {}))
    return SlackSettings(channel, *routes, summary, runbook)


def _strings(problems: list[str], key: str, value: Any, pattern: re.Pattern[str] | None, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: expected a list of strings")
        return []
    for v in value:
        if pattern is not None and not pattern.fullmatch(v):
            problems.append(f"{key}: {v!r} is not {what}")
    return list(value)


def parse(data: Mapping[str, Any], source: str = "config") -> Config:
    problems: list[str] = []
    for key in data:
        if key not in ("detection", "detectors", "slack"):
            problems.append(f"{key}: unknown section")
    detection = data.get("detection", {})
    if not isinstance(detection, dict):
        raise ConfigError(source, ["detection: expected a table"])
    problems += [f"detection.{k}: unknown key" for k in detection if k not in _DETECTION_KEYS]
    trusted = _strings(
        problems, "detection.trusted_accounts", detection.get("trusted_accounts", []), _ACCOUNT, "a 12-digit account id"
    )
    idp = _strings(problems, "detection.external_idp_roles", detection.get("external_idp_roles", []), None, "")
    own = _strings(
        problems, "detection.monitor_role_arns", detection.get("monitor_role_arns", []), _ROLE_ARN, "an IAM role ARN"
    )
    detectors = data.get("detectors", {})
    options: dict[str, dict[str, Any]] = {}
    disabled = set()
    if not isinstance(detectors, dict):
        problems.append("detectors: expected a table of detector ids")
        detectors = {}
    for ident, table in detectors.items():
        if not isinstance(table, dict):
            problems.append(f"detectors.{ident}: expected a table")
            continue
        problems += [f"detectors.{ident}.{k}: unknown key" for k in table if k not in _DETECTOR_KEYS]
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(f"detectors.{ident}.enabled: expected true or false")
        elif not enabled:
            disabled.add(ident)
        options[ident] = dict(table)
    slack = _slack(data.get("slack", {}), problems)
    if problems:
        raise ConfigError(source, problems)
    settings = Settings(frozenset(trusted), tuple(idp), frozenset(own), options)
    return Config(settings, frozenset(disabled), slack)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; an unreadable or invalid file is a ConfigError naming it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc


def load(path: Path | None) -> Config:
    """The configuration in `path`, or the embedded defaults when there is none."""
    return Config() if path is None else parse(read_toml(path), str(path))
