"""`trailguard check`: is this configuration ready to run, and what may it do?

Validates the configuration (and the suppressions file), shows the AWS identity in use, tries
each source's read permissions and Slack access, and prints the least-privilege IAM policy the
configured sources need. `--offline` stops after validation and the policy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from detectors import sigma
from monitor.config import Config, ConfigError
from monitor.detect import suppressions
from monitor.ingest.files import discover
from monitor.ingest.sources.permissions import MONITOR, policies
from monitor.ingest.sources.probe import caller, probe
from monitor.ingest.sources.s3 import S3Source, lookback_days
from monitor.ingest.sources.settings import SourceSettings
from monitor.outbox.sinks import slack_client as slack
from monitor.service.inventory import learned
from monitor.store.state import State


@dataclass
class Checked:
    lines: list[tuple[str, str | None]] = field(default_factory=list)  # (what, problem or None)
    warnings: list[str] = field(default_factory=list)  # what works but will not do what one may expect

    @property
    def failed(self) -> bool:
        return any(problem for _, problem in self.lines)

    def attempt(self, what: str, action: Callable[[], str]) -> None:
        try:
            self.lines.append((f"{what}: {action()}", None))
        except (ClientError, BotoCoreError, OSError, ValueError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            self.lines.append((what, code or f"{type(exc).__name__}: {exc}"))


def role_policies(cfg: Config) -> dict[str, dict[str, Any]]:
    """The IAM policy documents the configuration needs, by role: `monitor` (TrailGuard's own) and each read role."""
    readers = [role for _, role in cfg.hygiene.targets()] if cfg.hygiene.enabled else []
    return policies(cfg.sources, cfg.inventory.organizations, cfg.inventory.role_arn, readers, cfg.lake)


def policy_text(cfg: Config) -> str:
    """The IAM policies, one JSON document per role that needs one, each under a comment line naming it."""
    parts = []
    for who, document in role_policies(cfg).items():
        title = "TrailGuard's own role" if who == MONITOR else f"the read role {who}"
        parts.append(
            f"// least-privilege policy for {title}\n" + orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
        )
    return "\n".join(parts)


def run(cfg: Config, offline: bool) -> Checked:
    checked = Checked()
    for problem in cfg.missing_for_run():
        checked.lines.append(("configuration", problem))
    try:
        suppressions.load(cfg.alerts.suppressions)
    except ConfigError as exc:
        checked.lines += [(f"suppressions {exc.source}", p) for p in exc.problems]
    if not checked.failed:
        checked.lines.append((f"configuration: {len(cfg.sources)} sources, lake {cfg.lake}, state {cfg.state}", None))
        checked.lines.append((_organization(cfg), None))
    if cfg.sigma.paths:  # what `trailguard rules check` says, in short: every rule not loaded is named
        rules = sigma.load(cfg.sigma.paths, cfg.sigma.disabled, cfg.sigma.enabled)
        checked.lines.append((f"sigma: {len(rules.detectors)} rules run as detectors", None))
        checked.warnings += [f"sigma rule not loaded: {path}: {why}" for path, why in rules.refused]
    if offline:
        return checked
    if _reads_aws(cfg):
        checked.attempt("AWS identity", lambda: _identity(cfg))
    for source in cfg.sources:
        checked.attempt(f"source {source.name}", partial(probe, source))
        try:
            note = recency(source, timedelta(hours=cfg.schedule.detect_lookback_hours), datetime.now(UTC))
        except (ClientError, BotoCoreError, OSError):  # the probe above says why
            note = None
        if note:
            checked.warnings.append(f"source {source.name}: {note}")
    if cfg.lake and "://" not in cfg.lake:
        checked.attempt("lake", lambda: _writable(Path(cfg.lake or ".")))
    channels = {
        c for c in (cfg.slack.channel, *cfg.slack.severity_channels.values(), *cfg.slack.account_channels.values()) if c
    }
    token = slack.token_from_environment()
    if channels and not token:
        checked.lines.append(("slack", "channels are configured but SLACK_BOT_TOKEN / SLACK_BOT_TOKEN_FILE is not set"))
    elif channels and token:
        checked.lines += slack.check_access(slack.client(token, os.environ.get("SLACK_API_URL")), channels)
    return checked


_STAMP = re.compile(r"_(\d{8}T\d{4})Z_")  # CloudTrail's file names: <account>_CloudTrail_<region>_<time>_<id>


def recency(source: SourceSettings, lookback: timedelta, now: datetime) -> str | None:
    """Whether `run` will find and detect what the source holds: a bucket with nothing for today or yesterday
    (all it lists), or local files older than a cycle's lookback."""
    if source.scheme == "s3":
        first, last = lookback_days(now)
        if next(iter(S3Source.from_settings(source).works(first, last)), None) is None:
            return (
                f"no objects for {first} or {last} (UTC), the days run lists: "
                "backfill older days with trailguard ingest --since DATE"
            )
    if source.scheme == "":
        found, _ = discover([source.uri])
        stamps = [datetime.strptime(m[1], "%Y%m%dT%H%M") for f in found if (m := _STAMP.search(f.path.name))]
        newest = max(stamps, default=None)
        if newest is not None and newest.replace(tzinfo=UTC) < now - lookback:
            return (
                f"its newest file is from {newest:%Y-%m-%d %H:%M} UTC, before the last "
                f"{lookback.total_seconds() / 3600:.0f} h a cycle detects (schedule.detect_lookback_hours): run "
                f"ingests it, then detect it with trailguard detect --since {newest:%Y-%m-%d}"
            )
    return None


def _organization(cfg: Config) -> str:
    """Where the detectors' idea of the organization comes from, and which accounts it holds."""
    if cfg.inventory.organizations:
        return "organization: read from AWS Organizations (inventory.organizations)"
    known = learned(State(cfg.state, create=False)) if cfg.state and cfg.state.exists() else []
    taken = f"so far {len(known)}: {', '.join(known)}" if known else "none yet: the first cycle learns them"
    return (
        "organization: not configured (inventory.organizations), so the accounts that deliver events are taken "
        f"as its accounts, {taken}"
    )


def _reads_aws(cfg: Config) -> bool:
    """Whether the service calls AWS at all: a configuration of local folders and a local lake needs no
    credentials, and a check that asked for them would fail it."""
    remote = any(source.scheme for source in cfg.sources) or (cfg.lake or "").startswith("s3://")
    own_roles = bool(cfg.detection.monitor_role_arns)  # the identity in use is checked against them
    return remote or own_roles or cfg.inventory.organizations or cfg.hygiene.enabled


def _identity(cfg: Config) -> str:
    """The identity in use, and whether TrailGuard will know its calls as its own."""
    arn = caller()
    account, resource = arn.split(":", 5)[4:]
    kind, _, rest = resource.partition("/")
    name = rest.split("/")[0] if kind == "assumed-role" else None
    own = {(r.split(":")[4], r.rsplit("/", 1)[1]) for r in cfg.detection.monitor_role_arns}
    if (account, name) in own:
        return f"{arn} (one of TrailGuard's own roles)"
    return f"{arn} (not in detection.monitor_role_arns: its denied calls would raise findings like anyone's)"


def _writable(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    probe_file = path / ".trailguard-check"
    probe_file.write_bytes(b"")
    probe_file.unlink()
    return f"{path} is writable"
