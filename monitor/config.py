"""Typed settings from one TOML file plus environment overrides, validated at start.

Every problem is reported at once, one line each, naming its key (or the environment variable
that set it). Secrets (the Slack token, the webhook URL) never come from here: only from the
environment or files it names. `TRAILGUARD__<SECTION>__<KEY>=value` overrides a key; the value
is read as a TOML value when it is one (`60`, `true`, `["a", "b"]`) and as a string otherwise.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from detectors.core import registry
from detectors.core.base import Check, Settings
from monitor.ingest.limits import Limits
from monitor.ingest.sources.settings import ACCOUNT as _ACCOUNT
from monitor.ingest.sources.settings import ROLE_ARN as _ROLE_ARN
from monitor.ingest.sources.settings import SourceError, SourceSettings
from monitor.ingest.sources.settings import parse as parse_source
from monitor.outbox.finding import NAMES

ENV_PREFIX = "TRAILGUARD__"
_DAY_SECONDS = 86_400
_YEAR_HOURS = 366 * 24
_MAX_OPTION = 100_000
_PAIR = re.compile(r"\d{12}/[a-z]{2}(-[a-z]+)+-\d")


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one line per problem, each naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class NamedAccount:
    """An account named in the configuration: a trusted external one, or names for one of the organization's."""

    id: str
    name: str
    owner: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class InventorySettings:
    organizations: bool = False  # read the organization's accounts with organizations:ListAccounts
    role_arn: str | None = None  # assumed for it (the management or delegated administrator account)
    refresh_hours: int = 24


@dataclass(frozen=True)
class HygieneSettings:
    """The IAM hygiene checks: which accounts, through which role, how often."""

    enabled: bool = False
    interval_hours: int = 24
    accounts: tuple[str, ...] = ()  # empty: the account of the credentials in use
    role_arn: str | None = None  # assumed in each account; `{account}` stands for its id

    def targets(self) -> list[tuple[str | None, str | None]]:
        """(account, role) pairs to read; a None account is the one the credentials belong to."""
        if not self.accounts:
            return [(None, None)]
        return [(a, self.role_arn.replace("{account}", a) if self.role_arn else None) for a in self.accounts]


@dataclass(frozen=True)
class ScheduleSettings:
    interval_seconds: int = 300
    jitter_seconds: int = 30
    misfire_grace_seconds: int | None = None  # default: the interval
    workers: int | None = None  # parsing processes; default one per core
    detect_lookback_hours: int = 48  # how far back a cycle looks for newly ingested events
    delivery_seconds: int = 10  # how often delivery runs (and at once after every cycle)


@dataclass(frozen=True)
class ServiceSettings:
    """Health, metrics and self-monitoring."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108  # 0: any free port (it is logged)
    silent_after_minutes: int = 180  # an account/region without events this long raises a finding
    incomplete_cycles: int = 3  # a source incomplete this many cycles in a row raises a finding
    settle_hours: int = 24  # a pair is watched for silence once it has delivered this long (or is in `watch`)
    watch: tuple[tuple[str, str], ...] = ()  # (account, region) pairs watched from the start
    max_tracked_pairs: int = 10_000  # account/region pairs remembered: forged events cannot grow this
    failing_cycles: int = 3  # readiness answers 503 once this many cycles in a row have failed


@dataclass(frozen=True)
class AlertSettings:
    suppressions: Path | None = None
    jsonl: Path | None = None  # also append every finding to this file
    fallback_jsonl: Path | None = None  # undeliverable alerts go here; default: beside the state file


@dataclass(frozen=True)
class SlackSettings:
    """Where alerts go. The bot token and webhook URL are secrets and never live here."""

    channel: str | None = None
    severity_channels: Mapping[str, str] = field(default_factory=dict)
    account_channels: Mapping[str, str] = field(default_factory=dict)
    summary_over: int = 10
    runbook_url: str | None = None  # e.g. https://wiki.example.com/runbooks/{detector}
    webhook: bool = False  # post through SLACK_WEBHOOK_URL (minimal mode) instead of, or besides, the bot
    min_severity: str = "low"  # less severe findings are stored and listed, not posted


@dataclass(frozen=True)
class Config:
    detection: Settings = field(default_factory=Settings)
    disabled_detectors: frozenset[str] = frozenset()
    slack: SlackSettings = field(default_factory=SlackSettings)
    sources: tuple[SourceSettings, ...] = ()
    lake: str | None = None
    state: Path | None = None
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    accounts: tuple[NamedAccount, ...] = ()
    inventory: InventorySettings = field(default_factory=InventorySettings)
    hygiene: HygieneSettings = field(default_factory=HygieneSettings)
    limits: Limits = field(default_factory=Limits)
    origin: Mapping[str, str] = field(default_factory=dict)  # key -> environment variable that set it

    def missing_for_run(self) -> list[str]:
        """What `trailguard run` needs that this configuration does not give."""
        problems = []
        if not self.sources:
            problems.append("sources: at least one source is needed to run")
        if not self.lake:
            problems.append("lake.uri: missing: where the Parquet lake lives")
        if self.state is None:
            problems.append("state.path: missing: the SQLite state file")
        return problems

    def watched_pairs(self) -> frozenset[tuple[str, str]]:
        """The account/region pairs watched for silence from the start: `service.watch`, and every pair an
        s3:// source names with both its accounts and its regions."""
        listed = {(a, r) for s in self.sources if s.uri.startswith("s3://") for a in s.accounts for r in s.regions}
        return frozenset(self.service.watch) | listed

    def fallback_path(self) -> Path:
        if self.alerts.fallback_jsonl is not None:
            return self.alerts.fallback_jsonl
        return (self.state or Path("state.db")).with_name("undelivered.jsonl")


class _Reader:
    """Reads typed values out of nested tables, collecting one problem per bad key."""

    def __init__(self, origin: Mapping[str, str]) -> None:
        self.problems: list[str] = []
        self.origin = origin

    def problem(self, key: str, text: str) -> None:
        where = f" (from {self.origin[key]})" if key in self.origin else ""
        self.problems.append(f"{key}: {text}{where}")

    def table(self, value: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(key, "expected a table")
            return {}
        for name in value:
            if name not in allowed:
                self.problem(f"{key}.{name}", "unknown key")
        return value

    def number(self, table: Mapping[str, Any], key: str, default: int | None, minimum: int, maximum: int) -> int | None:
        value = table.get(key.rpartition(".")[2], default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            self.problem(key, f"expected a whole number from {minimum:,} to {maximum:,}")
            return default
        return value

    def text(
        self, table: Mapping[str, Any], key: str, check: Callable[[str], object] | None = None, what: str = ""
    ) -> str | None:
        value = table.get(key.rpartition(".")[2])
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "expected a non-empty string")
            return None
        if check is not None and not check(value):
            self.problem(key, f"{value!r} is not {what}")
            return None
        return value

    def strings(
        self, table: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None = None, what: str = ""
    ) -> list[str]:
        value = table.get(key.rpartition(".")[2], [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "expected a list of strings")
            return []
        for v in value:
            if pattern is not None and not pattern.fullmatch(v):
                self.problem(key, f"{v!r} is not {what}")
        return list(value)

    def flag(self, table: Mapping[str, Any], key: str, default: bool) -> bool:
        value = table.get(key.rpartition(".")[2], default)
        if not isinstance(value, bool):
            self.problem(key, "expected true or false")
            return default
        return value

    def path(self, table: Mapping[str, Any], key: str) -> Path | None:
        value = self.text(table, key)
        return Path(value).expanduser() if value else None


_SECTIONS = {
    "detection",
    "detectors",
    "slack",
    "sources",
    "lake",
    "state",
    "schedule",
    "service",
    "alerts",
    "accounts",
    "inventory",
    "hygiene",
    "limits",
}


def _accounts(r: _Reader, data: Mapping[str, Any]) -> tuple[tuple[NamedAccount, ...], InventorySettings]:
    raw = data.get("accounts", [])
    if not isinstance(raw, list):
        r.problem("accounts", "expected [[accounts]] tables")
        raw = []
    named = []
    for n, item in enumerate(raw):
        key = f"accounts[{n}]"
        table = r.table(item, key, {"id", "name", "owner", "channel"})
        account_id = r.text(table, f"{key}.id", _ACCOUNT.fullmatch, "a 12-digit account id")
        name = r.text(table, f"{key}.name")
        if account_id is None or name is None:
            r.problem(key, "every account needs an id and a name")
            continue
        named.append(NamedAccount(account_id, name, r.text(table, f"{key}.owner"), r.text(table, f"{key}.channel")))
    table = r.table(data.get("inventory", {}), "inventory", {"organizations", "role_arn", "refresh_hours"})
    inventory = InventorySettings(
        r.flag(table, "inventory.organizations", False),
        r.text(table, "inventory.role_arn", _ROLE_ARN.fullmatch, "an IAM role ARN"),
        r.number(table, "inventory.refresh_hours", 24, 1, _YEAR_HOURS) or 24,
    )
    return tuple(named), inventory


def _hygiene(r: _Reader, data: Mapping[str, Any]) -> HygieneSettings:
    table = r.table(data.get("hygiene", {}), "hygiene", set(HygieneSettings.__dataclass_fields__))
    accounts = r.strings(table, "hygiene.accounts", _ACCOUNT, "a 12-digit account id")
    role = r.text(
        table,
        "hygiene.role_arn",
        lambda v: _ROLE_ARN.fullmatch(v.replace("{account}", "123456789012")),
        "an IAM role ARN (with {account} for each account's id)",
    )
    if role and not accounts:
        r.problem("hygiene.role_arn", "needs hygiene.accounts: the role is assumed in each of them")
    if role and len(accounts) > 1 and "{account}" not in role:
        r.problem("hygiene.role_arn", "with several accounts, use {account} where each account's id goes")
    return HygieneSettings(
        r.flag(table, "hygiene.enabled", False),
        r.number(table, "hygiene.interval_hours", 24, 1, _YEAR_HOURS) or 24,
        tuple(accounts),
        role,
    )


def _source(r: _Reader, item: Any, key: str) -> SourceSettings | None:
    if isinstance(item, str):
        item = {"uri": item}
    if not isinstance(item, dict):
        r.problem(key, "expected a URI or a table with uri = ...")
        return None
    table = r.table(item, key, set(SourceSettings.__dataclass_fields__))
    uri = r.text(table, f"{key}.uri")
    if uri is None:
        r.problem(f"{key}.uri", "missing: every source needs a uri")
        return None
    options = {
        "role_arn": r.text(table, f"{key}.role_arn"),
        "accounts": tuple(r.strings(table, f"{key}.accounts")),
        "regions": tuple(r.strings(table, f"{key}.regions")),
        "kms_key_arn": r.text(table, f"{key}.kms_key_arn"),
        "bucket": r.text(table, f"{key}.bucket"),
        "visibility": r.number(table, f"{key}.visibility", None, 0, 43_200),
    }
    try:
        return parse_source(uri, **options)
    except SourceError as exc:
        for option, problem in exc.problems:
            r.problem(f"{key}.{option}", problem)
        return None


def _slack(r: _Reader, data: Mapping[str, Any]) -> SlackSettings:
    keys = set(SlackSettings.__dataclass_fields__)
    table = r.table(data.get("slack", {}), "slack", keys)
    maps: dict[str, dict[str, str]] = {}
    for key, valid, what in (
        ("severity_channels", NAMES.__contains__, "a severity"),
        ("account_channels", _ACCOUNT.fullmatch, "a 12-digit account id"),
    ):
        value = table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            r.problem(f"slack.{key}", "expected a table of channel names")
            continue
        for k in value:
            if not valid(k):
                r.problem(f"slack.{key}.{k}", f"{k!r} is not {what}")
        maps[key] = dict(value)
    return SlackSettings(
        r.text(table, "slack.channel"),
        maps.get("severity_channels", {}),
        maps.get("account_channels", {}),
        r.number(table, "slack.summary_over", 10, 1, 10_000) or 10,
        r.text(
            table,
            "slack.runbook_url",
            lambda v: v.startswith("https://"),
            "an https:// URL (it may contain {detector})",
        ),
        r.flag(table, "slack.webhook", False),
        r.text(table, "slack.min_severity", NAMES.__contains__, "a severity (" + ", ".join(NAMES) + ")") or "low",
    )


_KINDS = {int: f"a whole number from 1 to {_MAX_OPTION:,}", str: "a string", list: "a list", bool: "true or false"}


def _tunables(detector: type[Check]) -> dict[str, Any]:
    """A detector's configurable options with their defaults: its own, and its baseline window."""
    return dict(detector.options) | ({"history_days": detector.history.days} if detector.history else {})


def _detection(r: _Reader, data: Mapping[str, Any]) -> tuple[Settings, frozenset[str]]:
    table = r.table(
        data.get("detection", {}), "detection", {"trusted_accounts", "external_idp_roles", "monitor_role_arns"}
    )
    trusted = r.strings(table, "detection.trusted_accounts", _ACCOUNT, "a 12-digit account id")
    idp = r.strings(table, "detection.external_idp_roles")
    own = r.strings(table, "detection.monitor_role_arns", _ROLE_ARN, "an IAM role ARN")
    detectors = data.get("detectors", {})
    options: dict[str, dict[str, Any]] = {}
    disabled = set()
    if not isinstance(detectors, dict):
        r.problem("detectors", "expected a table of detector ids")
        detectors = {}
    checks: list[type[Check]] = [*registry.load(), *registry.POSTURE]
    catalog = {d.id: d for d in checks}
    for ident in detectors:
        if ident not in catalog:
            r.problem(f"detectors.{ident}", f"unknown detector (known: {', '.join(sorted(catalog))})")
            continue
        table = r.table(detectors[ident], f"detectors.{ident}", {"enabled", *_tunables(catalog[ident])})
        if not r.flag(table, f"detectors.{ident}.enabled", True):
            disabled.add(ident)
        options[ident] = {k: v for k, v in table.items() if k != "enabled"}
        for key, default in _tunables(catalog[ident]).items():
            value = options[ident].get(key, default)
            if type(value) is not type(default) or (isinstance(value, int) and not 1 <= value <= _MAX_OPTION):
                r.problem(f"detectors.{ident}.{key}", f"expected {_KINDS[type(default)]}, like the default {default!r}")
        for problem in catalog[ident].option_problems(options[ident]):
            r.problem(f"detectors.{ident}", problem)
    return Settings(frozenset(trusted), tuple(idp), frozenset(own), options), frozenset(disabled)


def parse(data: Mapping[str, Any], source: str = "config", origin: Mapping[str, str] | None = None) -> Config:
    r = _Reader(origin or {})
    for key in data:
        if key not in _SECTIONS:
            r.problem(key, "unknown section")
    settings, disabled = _detection(r, data)
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        r.problem("sources", "expected a list of source URIs or [[sources]] tables")
        raw_sources = []
    sources = [_source(r, item, f"sources[{n}]") for n, item in enumerate(raw_sources)]
    lake = r.text(r.table(data.get("lake", {}), "lake", {"uri"}), "lake.uri")
    state = r.path(r.table(data.get("state", {}), "state", {"path"}), "state.path")
    sched = r.table(data.get("schedule", {}), "schedule", set(ScheduleSettings.__dataclass_fields__))
    interval = r.number(sched, "schedule.interval_seconds", 300, 1, _DAY_SECONDS) or 300
    schedule = ScheduleSettings(
        interval,
        r.number(sched, "schedule.jitter_seconds", min(30, interval // 10), 0, _DAY_SECONDS) or 0,
        r.number(sched, "schedule.misfire_grace_seconds", None, 1, _DAY_SECONDS),
        r.number(sched, "schedule.workers", None, 1, 256),
        r.number(sched, "schedule.detect_lookback_hours", 48, 1, _YEAR_HOURS) or 48,
        r.number(sched, "schedule.delivery_seconds", 10, 1, 3600) or 10,
    )
    if schedule.jitter_seconds >= interval:
        r.problem("schedule.jitter_seconds", "must be shorter than schedule.interval_seconds")
    svc = r.table(data.get("service", {}), "service", set(ServiceSettings.__dataclass_fields__))
    service = ServiceSettings(
        r.text(svc, "service.metrics_host") or "127.0.0.1",
        r.number(svc, "service.metrics_port", 9108, 0, 65535) or 0,
        r.number(svc, "service.silent_after_minutes", 180, 5, _YEAR_HOURS * 60) or 180,
        r.number(svc, "service.incomplete_cycles", 3, 1, 10_000) or 3,
        r.number(svc, "service.settle_hours", 24, 1, _YEAR_HOURS) or 24,
        tuple(
            _pair(v)
            for v in r.strings(svc, "service.watch", _PAIR, "an account/region pair like 123456789012/us-east-1")
        ),
        r.number(svc, "service.max_tracked_pairs", 10_000, 1, 1_000_000) or 10_000,
        r.number(svc, "service.failing_cycles", 3, 1, 10_000) or 3,
    )
    alerts_table = r.table(data.get("alerts", {}), "alerts", {"suppressions", "jsonl", "fallback_jsonl"})
    alerts = AlertSettings(
        r.path(alerts_table, "alerts.suppressions"),
        r.path(alerts_table, "alerts.jsonl"),
        r.path(alerts_table, "alerts.fallback_jsonl"),
    )
    slack = _slack(r, data)
    accounts, inventory = _accounts(r, data)
    hygiene = _hygiene(r, data)
    limits = _limits(r, data)
    if r.problems:
        raise ConfigError(source, r.problems)
    used = [s for s in sources if s is not None]
    own = _roles_in_use(used, inventory, hygiene)
    return Config(
        replace(settings, monitor_role_arns=settings.monitor_role_arns | own),
        disabled,
        slack,
        tuple(used),
        lake,
        state,
        schedule,
        service,
        alerts,
        accounts,
        inventory,
        hygiene,
        limits,
        dict(origin or {}),
    )


def _roles_in_use(
    sources: list[SourceSettings], inventory: InventorySettings, hygiene: HygieneSettings
) -> frozenset[str]:
    """The roles TrailGuard itself assumes: its calls through them (the `check` probes among them) are its own."""
    roles = {s.role_arn for s in sources} | {inventory.role_arn}
    roles |= {role for _, role in hygiene.targets()}  # `trailguard hygiene` uses them even when not scheduled
    return frozenset(r for r in roles if r)


def _pair(text: str) -> tuple[str, str]:
    account, _, region = text.partition("/")
    return account, region


def _limits(r: _Reader, data: Mapping[str, Any]) -> Limits:
    table = r.table(data.get("limits", {}), "limits", set(Limits.__dataclass_fields__))
    default = Limits()
    return Limits(
        r.number(table, "limits.max_inflated_mb", default.max_inflated_mb, 1, 16_384) or default.max_inflated_mb,
        r.number(table, "limits.max_depth", default.max_depth, 16, 500) or default.max_depth,
        r.number(table, "limits.max_record_kb", default.max_record_kb, 1, 1 << 20) or default.max_record_kb,
        r.number(table, "limits.max_records", default.max_records, 1, 100_000_000) or default.max_records,
        r.number(table, "limits.max_cpu_seconds", default.max_cpu_seconds, 1, _DAY_SECONDS) or default.max_cpu_seconds,
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; an unreadable or invalid file is a ConfigError naming it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc


def overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Apply `TRAILGUARD__SECTION__KEY` variables to `data`; returns key -> variable, for error messages."""
    origin = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name.removeprefix(ENV_PREFIX).split("__")]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) else {}
        target[path[-1]] = value
        origin[".".join(path)] = name
    return origin


def load(path: Path | None, env: Mapping[str, str] = os.environ) -> Config:
    """The configuration in `path` (or the embedded defaults), with the environment's overrides."""
    data = read_toml(path) if path is not None else {}
    origin = overrides(data, env)
    return parse(data, str(path) if path else "configuration", origin)
