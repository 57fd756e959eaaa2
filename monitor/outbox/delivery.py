"""The sinks a finding is delivered to, built once from the configuration, and one delivery pass.

Every sink works from the outbox, so one failing sink never keeps the others from delivering and
whatever it could not deliver stays there for the next pass.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from detectors.core.base import Detector, Guide
from detectors.core.registry import POSTURE
from monitor.config import Config, ConfigError
from monitor.outbox.dispatcher import Dispatcher, Outcome, Transport
from monitor.outbox.sinks import slack as slack_module
from monitor.outbox.sinks.console import ConsoleSink
from monitor.outbox.sinks.jsonl import JsonlSink
from monitor.outbox.sinks.log import LogSink
from monitor.outbox.sinks.slack import Report, SlackSink
from monitor.outbox.sinks.slack_webhook import SINK as WEBHOOK
from monitor.outbox.sinks.slack_webhook import WebhookSink, url_from_environment
from monitor.service import watchdog
from monitor.service.inventory import Inventory
from monitor.store.database import StateBusy, deliverer
from monitor.store.state import State

FALLBACK = "fallback"


@dataclass
class Delivered:
    lines: list[str] = field(default_factory=list)  # one human summary per sink
    errors: list[str] = field(default_factory=list)
    sent: int = 0


@dataclass
class Sinks:
    """The sinks of one process, each delivered by the dispatcher (Slack with its threads and summaries)."""

    outbox: Dispatcher | None = None
    transports: list[tuple[Transport, str]] = field(default_factory=list)  # with each one's minimum severity
    slack: SlackSink | None = None
    fallback: JsonlSink | None = None  # only the monitor's own "alerts cannot be delivered" findings

    @property
    def names(self) -> tuple[str, ...]:
        """The sinks every new finding is queued for (the fallback is not one of them)."""
        return (*(t.name for t, _ in self.transports), *((slack_module.SINK,) if self.slack else ()))

    def deliver(self, stop: threading.Event | None = None) -> Delivered:
        """Deliver what is due to every sink; Slack in passes, each starting again from the most severe
        finding due, until nothing is left or `stop` is set."""
        out = Delivered()
        for transport, floor in self.transports:
            done = self._guarded(transport, floor, stop)
            out.sent += done.sent
            out.errors += done.errors
            out.lines.append(
                f"{transport.name}: {done.sent} delivered, {done.recovered} found already delivered, "
                f"{done.retrying} to retry, {done.failed} failed"
            )
        if self.slack is not None:
            total = Report()
            while True:
                report = self.slack.deliver(stop)
                total.add(report)
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

    def _guarded(self, transport: Transport, floor: str, stop: threading.Event | None) -> Outcome:
        """One sink's pass; a sink that cannot be written at all (a full disk) fails its own deliveries only."""
        assert self.outbox is not None
        try:
            return self.outbox.deliver(transport, floor, stop)
        except OSError as exc:
            return Outcome(errors=[f"{transport.name}: {exc}"])

    def deliver_fallback(self) -> int:
        """Deliver the monitor's own findings about undeliverable alerts: the log and the fallback file."""
        if self.outbox is None:
            return 0
        logs = [t for t, _ in self.transports if t.name == "log"]
        return sum(self._guarded(t, "info", None).sent for t in [*logs, *filter(None, [self.fallback])])


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
    console: Console | None = None,
) -> Sinks:
    """Sinks from the configuration, with command-line choices on top. Secrets come from the environment.

    `now` is the clock retries are scheduled by; the inventory names accounts and gives their channels
    (the configuration's `slack.account_channels` win).
    """
    inventory = inventory or Inventory()
    names = inventory.names()
    keys = secrets(cfg, channel=channel, webhook=webhook)
    sinks = Sinks(Dispatcher(state, now))
    if log:
        sinks.transports.append((LogSink(), "info"))
    if jsonl or cfg.alerts.jsonl:
        sinks.transports.append((JsonlSink(jsonl or cfg.alerts.jsonl or Path()), "info"))
    if keys.webhook_url:
        sinks.transports.append((WebhookSink(keys.webhook_url, guides, names), cfg.slack.min_severity))
    if console is not None:
        sinks.transports.append((ConsoleSink(console, names), "info"))
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
    if fallback:
        sinks.fallback = JsonlSink(cfg.fallback_path(), name=FALLBACK)
    return sinks


def resolve_in_slack(state: State, path: Path) -> str:
    """After `findings resolve`: the note goes to the finding's Slack thread now when this process may deliver
    (nobody else holds the state's delivery lock), else by the process delivering. Returns what happened."""
    token = slack_module.token_from_environment()
    if not token:
        return "resolved (no Slack token set: the thread was not updated)"
    try:
        with deliverer(path):
            web = slack_module.client(token, os.environ.get("SLACK_API_URL"))
            report = Report()
            SlackSink(web, state, slack_module.Routes("")).post_resolutions(report)
    except StateBusy as exc:
        return f"resolved; the note is posted by the process delivering: {exc}"
    if report.errors:
        return f"resolved; the Slack reply failed and is retried by the service: {report.errors[0]}"
    return "resolved; note posted to the Slack thread" if report.resolutions else "resolved (never posted to Slack)"


def backfill(since: datetime, until: datetime, detectors: Sequence[str], post_each: bool) -> str | None:
    """A range that ended more than a day ago is a backfill: its findings below high get one summary per channel,
    the same after a restart (the batch returned), unless each is to be posted."""
    if post_each or until >= datetime.now(UTC) - timedelta(days=1):
        return None
    return slack_module.backfill_batch(since, until, detectors)
