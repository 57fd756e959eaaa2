"""The sinks a finding is delivered to, built once from the configuration, and one delivery pass.

Every sink works from the outbox, so one failing sink never keeps the others from delivering and
whatever it could not deliver stays there for the next pass.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from detectors.core.base import Detector, Guide
from detectors.core.registry import POSTURE
from monitor.config import Config, ConfigError
from monitor.outbox.sinks import slack as slack_module
from monitor.outbox.sinks.jsonl import JsonlSink
from monitor.outbox.sinks.log import LogSink
from monitor.outbox.sinks.slack import Report, SlackSink
from monitor.outbox.sinks.slack_webhook import SINK as WEBHOOK
from monitor.outbox.sinks.slack_webhook import WebhookSink, url_from_environment
from monitor.service import watchdog
from monitor.service.inventory import Inventory
from monitor.state import State

FALLBACK = "fallback"


@dataclass
class Delivered:
    lines: list[str] = field(default_factory=list)  # one human summary per sink
    errors: list[str] = field(default_factory=list)
    sent: int = 0


@dataclass
class Sinks:
    slack: SlackSink | None = None
    webhook: WebhookSink | None = None
    jsonl: JsonlSink | None = None
    log: LogSink | None = None
    fallback: JsonlSink | None = None  # only the monitor's own "alerts cannot be delivered" findings

    @property
    def names(self) -> tuple[str, ...]:
        """The sinks every new finding is queued for (the fallback is not one of them)."""
        named = (("log", self.log), ("jsonl", self.jsonl), (WEBHOOK, self.webhook), (slack_module.SINK, self.slack))
        return tuple(name for name, sink in named if sink is not None)

    def deliver(self, stop: threading.Event | None = None) -> Delivered:
        """Deliver what is due to every sink; Slack in passes, each starting again from the most severe
        finding due, until nothing is left or `stop` is set."""
        out = Delivered()
        for sink in (self.log, self.fallback, self.jsonl):
            if sink is None:
                continue
            try:
                count = sink.deliver()
            except OSError as exc:
                out.errors.append(f"{sink.name}: {exc}")
                continue
            out.sent += count
            if isinstance(sink, JsonlSink):
                out.lines.append(f"{sink.name}: {count} findings appended to {sink.path}")
        if self.webhook is not None:
            hooked = self.webhook.deliver()
            out.sent += hooked.sent
            out.errors += hooked.errors
            out.lines.append(f"slack webhook: {hooked.sent} posted, {hooked.retrying} to retry")
        if self.slack is not None:
            total = Report()
            while True:
                report = self.slack.deliver(stop)
                for name in ("sent", "recovered", "replies", "resolutions", "summaries", "retrying", "failed"):
                    setattr(total, name, getattr(total, name) + getattr(report, name))
                total.errors += report.errors
                if not report.more or (stop is not None and stop.is_set()):
                    break
            out.sent += total.sent
            out.errors += total.errors
            out.lines.append(
                f"slack: {total.sent} posted, {total.summaries} summaries, {total.recovered} found already posted, "
                f"{total.replies} thread replies, {total.resolutions} resolutions, {total.retrying} to retry, "
                f"{total.failed} failed"
            )
        return out

    def deliver_fallback(self) -> int:
        """Deliver the monitor's own findings about undeliverable alerts: the log and the fallback file."""
        return sum(sink.deliver() for sink in (self.log, self.fallback) if sink is not None)


def sink_names(
    cfg: Config, *, channel: str | None = None, webhook: bool = False, jsonl: Path | None = None, log: bool = False
) -> tuple[str, ...]:
    """The sinks new findings are queued for, from the configuration alone (no secret is needed to queue)."""
    named = (
        ("log", log),
        ("jsonl", bool(jsonl or cfg.alerts.jsonl)),
        (WEBHOOK, webhook or cfg.slack.webhook),
        (slack_module.SINK, bool(channel or cfg.slack.channel)),
    )
    return tuple(name for name, wanted in named if wanted)


@dataclass(frozen=True)
class Secrets:
    token: str | None = None
    webhook_url: str | None = None


def secrets(cfg: Config, *, channel: str | None = None, webhook: bool = False) -> Secrets:
    """The secrets the configured sinks need, from the environment: every one missing or unusable is a
    ConfigError (one line each), so `run` refuses to start rather than ingest with alerts that cannot leave."""
    problems, keys = [], Secrets()
    if channel or cfg.slack.channel:
        try:
            keys = Secrets(token=slack_module.token_from_environment())
        except OSError as exc:
            problems.append(f"SLACK_BOT_TOKEN_FILE cannot be read: {exc.strerror}")
        else:
            if not keys.token:
                problems.append("no bot token: set SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_FILE")
    if webhook or cfg.slack.webhook:
        try:
            keys = Secrets(keys.token, url_from_environment())
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if not keys.webhook_url:
                problems.append("no webhook URL: set SLACK_WEBHOOK_URL")
    if problems:
        raise ConfigError("slack", problems)
    return keys


def guides(detectors: Iterable[type[Detector]]) -> dict[str, Guide]:
    """Investigation guides by detector id, the posture checks' and the monitor's own findings included."""
    return {d.id: d.guide for d in (*detectors, *POSTURE)} | dict(watchdog.GUIDES)


def build(
    cfg: Config,
    state: State,
    guides: Mapping[str, Guide],
    *,
    channel: str | None = None,
    webhook: bool = False,
    jsonl: Path | None = None,
    log: bool = False,
    fallback: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    inventory: Inventory | None = None,
) -> Sinks:
    """Sinks from the configuration, with command-line choices on top. Secrets come from the environment.

    `now` is the clock retries are scheduled by; the inventory names accounts and gives their channels
    (the configuration's `slack.account_channels` win).
    """
    sinks = Sinks()
    inventory = inventory or Inventory()
    names = inventory.names()
    keys = secrets(cfg, channel=channel, webhook=webhook)
    channel = channel or cfg.slack.channel
    if channel and keys.token:
        web = slack_module.client(keys.token, os.environ.get("SLACK_API_URL"))
        by_account = inventory.channels() | dict(cfg.slack.account_channels)
        routes = slack_module.Routes(channel, cfg.slack.severity_channels, by_account)
        sinks.slack = SlackSink(
            web,
            state,
            routes,
            guides,
            now=now,
            burst=cfg.slack.summary_over,
            runbook=cfg.slack.runbook_url,
            accounts=names,
            floor=cfg.slack.min_severity,
        )
    if keys.webhook_url:
        sinks.webhook = WebhookSink(keys.webhook_url, state, guides, now, names, cfg.slack.min_severity)
    if jsonl or cfg.alerts.jsonl:
        sinks.jsonl = JsonlSink(jsonl or cfg.alerts.jsonl or Path(), state)
    if log:
        sinks.log = LogSink(state)
    if fallback:
        sinks.fallback = JsonlSink(cfg.fallback_path(), state, name=FALLBACK)
    return sinks
