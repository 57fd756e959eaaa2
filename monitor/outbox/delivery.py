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
from monitor.outbox import threads
from monitor.outbox.dispatcher import Dispatcher, Outcome, Route
from monitor.outbox.sinks.jsonl import JsonlSink
from monitor.outbox.sinks.kind import Secrets, Setup
from monitor.outbox.sinks.registry import REGISTRY
from monitor.outbox.sinks.slack import Channels, SlackSink
from monitor.outbox.sinks.slack_client import client, token_from_environment
from monitor.outbox.sinks.slack_webhook import url_from_environment
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
    """The sinks of one process, each delivered by the dispatcher."""

    outbox: Dispatcher | None = None
    routes: list[Route] = field(default_factory=list)
    fallback: JsonlSink | None = None  # only the monitor's own "alerts cannot be delivered" findings

    @property
    def names(self) -> tuple[str, ...]:
        """The sinks every new finding is queued for (the fallback is not one of them)."""
        return tuple(r.transport.name for r in self.routes)

    def deliver(self, stop: threading.Event | None = None) -> Delivered:
        """Deliver what is due to every sink, in passes, each starting again from the most severe finding
        due, until nothing is left or `stop` is set."""
        out = Delivered()
        for route in self.routes:
            total = Outcome()
            while True:
                done = self._guarded(route, stop)
                total.add(done)
                if not done.more or (stop is not None and stop.is_set()):
                    break
            out.sent += total.sent
            out.errors += total.errors
            out.lines.append(_line(route.transport.name, total))
        return out

    def _guarded(self, route: Route, stop: threading.Event | None) -> Outcome:
        """One sink's pass; a sink that cannot be written at all (a full disk) fails its own deliveries only."""
        assert self.outbox is not None
        try:
            return self.outbox.deliver(route, stop)
        except OSError as exc:
            return Outcome(errors=[f"{route.transport.name}: {exc}"])

    def deliver_fallback(self) -> int:
        """Deliver the monitor's own findings about undeliverable alerts: the log and the fallback file."""
        if self.outbox is None:
            return 0
        logs = [r for r in self.routes if r.transport.name == "log"]
        fallback = [Route(self.fallback)] if self.fallback else []
        return sum(self._guarded(r, None).sent for r in [*logs, *fallback])


def _line(name: str, done: Outcome) -> str:
    counts = [
        (done.sent, "delivered"),
        (done.summaries, "summaries"),
        (done.recovered, "found already delivered"),
        (done.replies, "thread replies"),
        (done.escalations, "escalations"),
        (done.retold, "incident updates"),
        (done.resolutions, "resolutions"),
        (done.retrying, "to retry"),
        (done.failed, "failed"),
    ]
    shown = [f"{n} {what}" for n, what in counts if n or what in ("delivered", "to retry", "failed")]
    return f"{name}: " + ", ".join(shown)


def configured(cfg: Config, *, channel: str | None = None, webhook: bool = False, jsonl: Path | None = None) -> Config:
    """The configuration with a command line's sink choices on top."""
    slack = cfg.slack.model_copy(
        update={"channel": channel or cfg.slack.channel, "webhook": webhook or cfg.slack.webhook}
    )
    alerts = cfg.alerts.model_copy(update={"jsonl": jsonl or cfg.alerts.jsonl})
    return cfg.model_copy(update={"slack": slack, "alerts": alerts})


def sink_names(cfg: Config, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The sinks new findings are queued for, from the configuration alone (no secret is needed to queue)."""
    return tuple(name for name, kind in REGISTRY.items() if kind.wanted(cfg, frozenset(extra)))


def secrets(cfg: Config) -> Secrets:
    """The secrets the configured sinks need, from the environment: every one missing or unusable is a
    ConfigError (one line each), so `run` refuses to start rather than ingest with alerts that cannot leave."""
    problems, keys = [], Secrets()
    if cfg.slack.channel:
        try:
            keys = Secrets(token=token_from_environment())
        except OSError as exc:
            problems.append(f"SLACK_BOT_TOKEN_FILE cannot be read: {exc.strerror}")
        else:
            if not keys.token:
                problems.append("no bot token: set SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_FILE")
    if cfg.slack.webhook:
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
    extra: Iterable[str] = (),
    fallback: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    inventory: Inventory | None = None,
    console: Console | None = None,
) -> Sinks:
    """The sinks the configuration wants (see `configured` for a command line's), and those in `extra` ("log",
    "console"), from the registry. Secrets come from the environment; `now` is the clock retries are scheduled
    by; the inventory names accounts and gives their channels (the configuration's `slack.account_channels` win).
    """
    inventory = inventory or Inventory()
    setup = Setup(
        cfg,
        guides,
        inventory.names(),
        inventory.channels() | dict(cfg.slack.account_channels),
        secrets(cfg),
        frozenset(extra),
        console,
    )
    routes = [REGISTRY[name].route(setup) for name in sink_names(cfg, extra)]
    return Sinks(Dispatcher(state, now), routes, JsonlSink(cfg.fallback_path(), name=FALLBACK) if fallback else None)


def resolve_in_slack(state: State, path: Path) -> str:
    """After `findings resolve`: the note goes to the finding's Slack thread now when this process may deliver
    (nobody else holds the state's delivery lock), else by the process delivering. Returns what happened."""
    token = token_from_environment()
    if not token:
        return "resolved (no Slack token set: the thread was not updated)"
    report = Outcome()
    try:
        with deliverer(path):
            sink = SlackSink(client(token, os.environ.get("SLACK_API_URL")), Channels(""))
            threads.resolutions(state, sink, report)
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
    return threads.backfill_batch(since, until, detectors)
