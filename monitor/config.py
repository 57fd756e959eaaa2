"""Typed settings from one TOML file plus environment overrides, validated at start.

Each table is a model whose keys declare their default, bounds and meaning once; the guide's configuration
reference is generated from them (`monitor.reference`). Every problem is reported at once, one line
each, naming its key (or the environment variable that set it). Secrets (the Slack token, the webhook URL)
never come from here: only from the environment or files it names. `TRAILGUARD__<SECTION>__<KEY>=value`
overrides a key; the value is read as a TOML value when it is one (`60`, `true`, `["a", "b"]`) and as a
string otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import cache, cached_property
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, ConfigDict, Field, InstanceOf, ValidationError, create_model, model_validator

from detectors.core import registry
from detectors.core.base import Check, Settings
from monitor.detect.links import Linking
from monitor.ingest.limits import Limits
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.settings import parse as parse_source
from monitor.outbox.finding import NAMES
from monitor.typed import ACCOUNT, ROLE_ARN, Account, FilePath, Flag, Problems, RoleArn, Section, Text, Whole

ENV_PREFIX = "TRAILGUARD__"
DAY = 86_400
YEAR_HOURS = 366 * 24
MAX_OPTION = 100_000
SEVERITY = Text("a severity (" + ", ".join(NAMES) + ")", NAMES.__contains__)
Name = Annotated[str | None, Text()]


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one line per problem, each naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class NamedAccount(Section):
    """An account named in the configuration: a trusted external one, or names for one of the organization's."""

    id: Account = Field(description="its 12-digit id")
    name: Annotated[str, Text()] = Field(description="what alerts call it")
    owner: Name = Field(None, description="who to ask about it")
    channel: Name = Field(None, description="the Slack channel id its findings go to")


class InventorySettings(Section):
    """Which accounts exist and what they are called."""

    organizations: Flag = Field(False, description="read the organization's accounts (organizations:ListAccounts)")
    role_arn: Annotated[str | None, ROLE_ARN] = Field(
        None, description="assumed to read them (the management or delegated administrator account)"
    )
    refresh_hours: Annotated[int, Whole(1, YEAR_HOURS)] = Field(24, description="how often the list is read again")


_HYGIENE_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/.+")


class HygieneSettings(Section):
    """The IAM hygiene checks: which accounts, through which role, how often."""

    enabled: Flag = Field(False, description="the service reads IAM state every interval_hours")
    interval_hours: Annotated[int, Whole(1, YEAR_HOURS)] = Field(24, description="hours between reads")
    accounts: tuple[Account, ...] = Field((), description="accounts to read; empty: the credentials' own")
    role_arn: Annotated[
        str | None,
        Text(
            "an IAM role ARN (with {account} for each account's id)",
            lambda v: _HYGIENE_ROLE.fullmatch(v.replace("{account}", "123456789012")),
        ),
    ] = Field(None, description="assumed in each account; {account} stands for its id")

    @model_validator(mode="after")
    def _one_role_per_account(self) -> Self:
        if self.role_arn and not self.accounts:
            raise Problems([("role_arn", "needs hygiene.accounts: the role is assumed in each of them")])
        if self.role_arn and len(self.accounts) > 1 and "{account}" not in self.role_arn:
            raise Problems([("role_arn", "with several accounts, use {account} where each account's id goes")])
        return self

    def targets(self) -> list[tuple[str | None, str | None]]:
        """(account, role) pairs to read; a None account is the one the credentials belong to."""
        if not self.accounts:
            return [(None, None)]
        return [(a, self.role_arn.replace("{account}", a) if self.role_arn else None) for a in self.accounts]


MODES = ("interval", "stream")


class ScheduleSettings(Section):
    """When the service works."""

    mode: Annotated[str, Text("interval or stream", MODES.__contains__)] = Field(
        "interval",
        description="interval: a cycle every interval_seconds; stream: sqs:// sources are read continuously, each "
        "batch of notifications ingested, detected and delivered as it arrives (other sources keep the interval)",
    )
    stream_wait_seconds: Annotated[int, Whole(1, 20)] = Field(
        10, description="stream mode: how long one receive waits for a notification (also how long a stop may wait)"
    )
    interval_seconds: Annotated[int, Whole(1, DAY)] = Field(300, description="seconds between cycles")
    jitter_seconds: Annotated[int | None, Whole(0, DAY)] = Field(
        None, description="a random delay added to each cycle (default: a tenth of the interval, at most 30)"
    )
    misfire_grace_seconds: Annotated[int | None, Whole(1, DAY)] = Field(
        None, description="how late a cycle may still start (default: the interval)"
    )
    workers: Annotated[int | None, Whole(1, 256)] = Field(None, description="parsing processes (default: one per core)")
    detect_lookback_hours: Annotated[int, Whole(1, YEAR_HOURS)] = Field(
        48, description="how far back a cycle looks for newly ingested events"
    )
    delivery_seconds: Annotated[int, Whole(1, 3600)] = Field(
        10, description="how often delivery runs (and at once after every cycle)"
    )

    @model_validator(mode="after")
    def _jitter_within_interval(self) -> Self:
        if self.jitter_seconds is None:
            object.__setattr__(self, "jitter_seconds", min(30, self.interval_seconds // 10))
        elif self.jitter_seconds >= self.interval_seconds:
            raise Problems([("jitter_seconds", "must be shorter than schedule.interval_seconds")])
        return self


def _pairs(value: object) -> object:
    """`123456789012/us-east-1` as (account, region)."""
    if not isinstance(value, list | tuple):
        return value
    found = []
    for item in value:
        if isinstance(item, str):
            if not _PAIR.fullmatch(item):
                raise ValueError(f"{item!r} is not an account/region pair like 123456789012/us-east-1")
            account, _, region = item.partition("/")
            found.append((account, region))
        else:
            found.append(item)
    return tuple(found)


_PAIR = re.compile(r"\d{12}/[a-z]{2}(-[a-z]+)+-\d")


class ServiceSettings(Section):
    """Health, metrics and self-monitoring."""

    metrics_host: Annotated[str, Text()] = Field("127.0.0.1", description="where /livez, /healthz and /metrics listen")
    metrics_port: Annotated[int, Whole(0, 65_535)] = Field(9108, description="their port (0: any free port, logged)")
    burn_in_days: Annotated[int, Whole(0, 365)] = Field(
        7, description="a detector or rule added to a running service: findings stored, not sent, this long (0: off)"
    )
    silent_after_minutes: Annotated[int, Whole(5, YEAR_HOURS * 60)] = Field(
        180, description="an account/region without events this long raises a finding"
    )
    incomplete_cycles: Annotated[int, Whole(1, 10_000)] = Field(
        3, description="a source read incompletely this many cycles in a row raises a finding"
    )
    settle_hours: Annotated[int, Whole(1, YEAR_HOURS)] = Field(
        24, description="a pair is watched for silence once it has delivered this long (or is in watch)"
    )
    watch: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_pairs)] = Field(
        (), description='account/region pairs watched from the start, like "123456789012/us-east-1"'
    )
    max_tracked_pairs: Annotated[int, Whole(1, 1_000_000)] = Field(
        10_000, description="account/region pairs remembered: forged events cannot grow this"
    )
    failing_cycles: Annotated[int, Whole(1, 10_000)] = Field(
        3, description="readiness (/healthz) answers 503 once this many cycles in a row have failed"
    )


class AlertSettings(Section):
    """Files findings are also kept in."""

    suppressions: FilePath | None = Field(None, description="TOML [[suppress]] rules: matched findings never sent")
    jsonl: FilePath | None = Field(None, description="also append every finding to this file")
    fallback_jsonl: FilePath | None = Field(
        None, description="undeliverable alerts go here (default: undelivered.jsonl beside the state file)"
    )


class SigmaSettings(Section):
    """Sigma rules run as detectors."""

    paths: tuple[FilePath, ...] = Field(
        (), description="Sigma rule files or folders (e.g. a SigmaHQ clone's rules/cloud/aws)"
    )
    enabled: tuple[Annotated[str, Text()], ...] = Field(
        (), description="only these rules run, by detector id (sigma-<rule id>) or tag (attack.t1078); empty: all"
    )
    disabled: tuple[Annotated[str, Text()], ...] = Field(
        (), description="rules not run, by detector id or tag (wins over enabled)"
    )


def _network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


class IncidentSettings(Section):
    """How findings are linked into incidents."""

    window_hours: Annotated[int, Whole(1, 24 * 30)] = Field(
        24, description="two findings sharing an identity or an unusual address link when this close in time"
    )
    trusted_ranges: tuple[Annotated[str, Text("a CIDR range like 198.51.100.0/24", _network)], ...] = Field(
        (), description="addresses that never link findings (a corporate NAT, a VPN): CIDR ranges"
    )

    def linking(self) -> Linking:
        networks = tuple(ipaddress.ip_network(r, strict=False) for r in self.trusted_ranges)
        return Linking(timedelta(hours=self.window_hours), networks)


def _channels(keys: Text) -> BeforeValidator:
    """A table of channel ids keyed by what `keys` accepts."""

    def check(value: object) -> object:
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            raise ValueError("expected a table of channel ids")
        bad = []
        for key in value:
            try:
                keys.check(key)
            except ValueError as exc:
                bad.append((str(key), str(exc)))
        if bad:
            raise Problems(bad)
        return value

    return BeforeValidator(check)


_BRACES = "write a literal brace as {{ or }}"


def _runbook(url: str) -> bool:
    """An https:// URL whose only placeholder is {detector}: any other would fail every alert's message, so it is
    refused at load, naming the placeholder (a literal brace is doubled, as in str.format)."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(url) if name is not None]
    except ValueError as exc:  # a lone brace
        raise ValueError(f"{url!r}: {exc} ({_BRACES})") from None
    for name, spec, conversion in fields:
        if (name, spec, conversion) != ("detector", "", None):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{url!r}: unknown placeholder {shown}: only {{detector}} is replaced ({_BRACES})")
    return url.startswith("https://")


class SlackSettings(Section):
    """Where alerts go. The bot token and webhook URL are secrets and never live here."""

    channel: Name = Field(None, description="the channel id alerts go to (the bot token: SLACK_BOT_TOKEN[_FILE])")
    severity_channels: Annotated[dict[str, str], _channels(SEVERITY)] = Field(
        default_factory=dict, description="a channel per severity, e.g. critical = a paging channel"
    )
    account_channels: Annotated[dict[str, str], _channels(ACCOUNT)] = Field(
        default_factory=dict, description="a channel per account id (wins over severity)"
    )
    summary_over: Annotated[int, Whole(1, 10_000)] = Field(
        10, description="more new findings at once in one channel than this: one summary, details in its thread"
    )
    runbook_url: Annotated[str | None, Text("an https:// URL (it may contain {detector})", _runbook)] = Field(
        None, description="a link in every alert, {detector} replaced by its id"
    )
    webhook: Flag = Field(False, description="post through SLACK_WEBHOOK_URL (minimal mode: no threads)")
    min_severity: Annotated[str, SEVERITY] = Field("low", description="less severe findings are stored, not posted")


class DetectionSettings(Section):
    """What detectors need to know about the estate."""

    trusted_accounts: tuple[Account, ...] = Field((), description="outside accounts allowed to assume roles in")
    external_idp_roles: tuple[Annotated[str, Text()], ...] = Field(
        (),
        description="role ARN patterns a corporate identity provider signs in through (SSO); `*` stops at a `/`",
    )
    monitor_role_arns: tuple[RoleArn, ...] = Field(
        (), description="the monitor's own roles: their calls are its own (the roles it assumes are added)"
    )


def _source(value: object) -> object:
    """A source URI, or a table with uri = ... and its options."""
    if isinstance(value, SourceSettings):
        return value
    if isinstance(value, str):
        return parse_source(value)
    if not isinstance(value, dict):
        raise ValueError("expected a URI or a table with uri = ...")
    kinds = {"uri": str, "role_arn": str, "kms_key_arn": str, "bucket": str, "accounts": list, "regions": list}
    known = {*kinds, "visibility"}
    problems = [(k, "unknown key") for k in value if k not in known]
    wrong = [(k, t) for k, t in kinds.items() if k in value and not isinstance(value[k], t)]
    problems += [(k, "expected a list of strings" if t is list else "expected a non-empty string") for k, t in wrong]
    if "uri" not in value:
        problems.append(("uri", "missing: every source needs a uri"))
    if problems:
        raise Problems(problems)
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k != "uri"}
    return parse_source(value["uri"], **options)


def _inside(key: str, check: Callable[[object], object]) -> BeforeValidator:
    """A value kept in a one-key table (`[lake] uri = ...`), or given directly."""

    def unwrap(value: object) -> object:
        if not isinstance(value, dict):
            return check(value)
        extra = [(k, "unknown key") for k in value if k != key]
        if extra:
            raise Problems(extra)
        try:
            return check(value.get(key))
        except ValueError as exc:
            raise Problems([(key, str(exc))]) from None

    return BeforeValidator(unwrap)


def _path(value: object) -> object:
    if isinstance(value, Path):
        return value
    checked = Text().check(value)
    return Path(str(checked)).expanduser() if checked else None


class Config(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    trust: DetectionSettings = Field(default_factory=DetectionSettings, alias="detection")
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per detector: enabled, options")
    slack: SlackSettings = Field(default_factory=SlackSettings)
    sources: tuple[Annotated[InstanceOf[SourceSettings], BeforeValidator(_source)], ...] = ()
    lake: Annotated[str | None, _inside("uri", Text().check)] = Field(
        None, description="the Parquet lake: a directory or s3://bucket/prefix"
    )
    state: Annotated[Path | None, _inside("path", _path)] = Field(None, description="the SQLite state file")
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    accounts: tuple[NamedAccount, ...] = ()
    inventory: InventorySettings = Field(default_factory=InventorySettings)
    hygiene: HygieneSettings = Field(default_factory=HygieneSettings)
    sigma: SigmaSettings = Field(default_factory=SigmaSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    limits: Limits = Field(default_factory=Limits)

    @cached_property
    def detection(self) -> Settings:
        """What the detectors are told: the estate, the monitor's own roles (those it assumes too), their options."""
        roles = {s.role_arn for s in self.sources} | {self.inventory.role_arn}
        roles |= {role for _, role in self.hygiene.targets()}  # `trailguard hygiene` uses them even when not scheduled
        own = frozenset(self.trust.monitor_role_arns) | {r for r in roles if r}
        options = {d: {k: v for k, v in t.items() if k != "enabled"} for d, t in self.detectors.items()}
        return Settings(frozenset(self.trust.trusted_accounts), tuple(self.trust.external_idp_roles), own, options)

    @property
    def disabled_detectors(self) -> frozenset[str]:
        return frozenset(d for d, table in self.detectors.items() if table.get("enabled") is False)

    def missing_for_run(self) -> list[str]:
        """What `trailguard run` needs that this configuration does not give."""
        problems = []
        if not self.sources:
            problems.append("sources: at least one source is needed to run")
        if not self.lake:
            problems.append("lake.uri: missing: where the Parquet lake lives")
        if self.state is None:
            problems.append("state.path: missing: the SQLite state file")
        if self.schedule.mode == "stream" and not any(s.scheme == "sqs" for s in self.sources):
            problems.append(
                "schedule.mode: stream reads sqs:// sources as notifications arrive, and none is configured"
            )
        return problems

    def streamed(self) -> tuple[list[SourceSettings], list[SourceSettings]]:
        """The sources read as their notifications arrive (stream mode's sqs:// sources, each receive waiting up to
        schedule.stream_wait_seconds), and those read every interval."""
        if self.schedule.mode != "stream":
            return [], list(self.sources)
        wait = self.schedule.stream_wait_seconds
        return (
            [replace(s, wait=wait) for s in self.sources if s.scheme == "sqs"],
            [s for s in self.sources if s.scheme != "sqs"],
        )

    def watched_pairs(self) -> frozenset[tuple[str, str]]:
        """The account/region pairs watched for silence from the start: `service.watch`, and every pair an
        s3:// source names with both its accounts and its regions."""
        listed = {
            (a, r) for s in self.sources if s.scheme in ("s3", "securitylake") for a in s.accounts for r in s.regions
        }
        return frozenset(self.service.watch) | listed

    def fallback_path(self) -> Path:
        if self.alerts.fallback_jsonl is not None:
            return self.alerts.fallback_jsonl
        return (self.state or Path("state.db")).with_name("undelivered.jsonl")


def tunables(detector: type[Check]) -> dict[str, Any]:
    """A detector's configurable options with their defaults: its own, and its baseline window."""
    return dict(detector.options) | ({"history_days": detector.history.days} if detector.history else {})


_KINDS: dict[type, Any] = {int: Annotated[int, Whole(1, MAX_OPTION)], bool: Flag, str: Annotated[str, Text()]}


@cache
def detector_tables() -> dict[str, type[Section]]:
    """`[detectors.<id>]` for every detector in the catalog: `enabled` and its options, each typed like its default."""
    tables = {}
    for detector in [*registry.load(), *registry.POSTURE]:
        fields: dict[str, Any] = {"enabled": (Flag, Field(True, description="run it"))}
        for key, default in tunables(detector).items():
            fields[key] = (_KINDS.get(type(default), list[Any]), Field(default))
        tables[detector.id] = create_model(f"Options_{detector.id}", __base__=Section, **fields)
    return tables


def _detectors(data: object, origin: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The `[detectors.<id>]` tables as given (only the keys given), and their problems: each key's, then the
    detector's own checks of its options."""
    if not isinstance(data, dict):
        return {}, ["detectors: expected a table of detector ids"]
    known, found, given = detector_tables(), [], {}
    catalog = {d.id: d for d in [*registry.load(), *registry.POSTURE]}
    for ident, table in data.items():
        if ident not in known:
            found.append(f"detectors.{ident}: unknown detector (known: {', '.join(sorted(known))})")
            continue
        try:
            given[ident] = known[ident].model_validate(table).model_dump(exclude_unset=True)
        except ValidationError as exc:
            defaults = tunables(catalog[ident])
            for line in problems(exc, origin, f"detectors.{ident}"):
                key = line.split(":", 1)[0].rpartition(".")[2]
                found.append(
                    line + (f", like the default {defaults[key]!r}" if "expected" in line and key in defaults else "")
                )
        if isinstance(table, dict):
            options = {k: v for k, v in table.items() if k != "enabled"}
            found += [f"detectors.{ident}: {problem}" for problem in catalog[ident].option_problems(options)]
    return given, found


def _key(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "missing",
    "bool_type": "expected true or false",
    "string_type": "expected a non-empty string",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}


def problems(exc: ValidationError, origin: Mapping[str, str], under: str = "") -> list[str]:
    """One line per problem, naming its key (and the environment variable that set it)."""
    lines = []
    for error in exc.errors():
        key = _key(((under,) if under else ()) + tuple(error["loc"]))
        cause = (error.get("ctx") or {}).get("error")
        message = _MESSAGES.get(error["type"], error["msg"])
        if error["type"] == "extra_forbidden" and len(error["loc"]) == 1 and not under:
            message = "unknown section"
        found = cause.problems if isinstance(cause, Problems) else [("", message)]
        for sub, said in found:
            full, text = ".".join(p for p in (key, sub) if p), said.removeprefix("Value error, ")
            lines.append(f"{full}: {text}" + (f" (from {origin[full]})" if full in origin else ""))
    return lines


def parse(data: Mapping[str, Any], source: str = "config", origin: Mapping[str, str] | None = None) -> Config:
    """The configuration from a TOML document's tables; every problem at once (a ConfigError)."""
    origin = origin or {}
    tables, found = _detectors(data.get("detectors", {}), origin)
    try:
        cfg = Config.model_validate({**data, "detectors": tables})
    except ValidationError as exc:
        found += problems(exc, origin)
    if found:
        order = {key: n for n, key in enumerate(data)}
        raise ConfigError(
            source, sorted(found, key=lambda line: order.get(re.split(r"[.\[:]", line, maxsplit=1)[0], len(order)))
        )
    return cfg


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
