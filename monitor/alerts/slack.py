"""Delivering findings to Slack from the outbox: each finding once, and none lost.

A delivery is marked `posting` (committed) before the API call and `sent` only after Slack
acknowledged it, with the channel and message `ts`. Every message carries its finding id in
Slack message metadata, so when the outcome of a post is unknown (a crash between "posted" and
"recorded", a timeout, a 5xx) the channel's history (or the summary's thread) tells whether it
went through: it is re-posted only if absent. A definite refusal stays pending and is retried
with backoff, then marked failed for `findings retry`. A finding that gains events later gets a
thread reply and its parent's counter updated instead of a new message. Posts are paced to one
per second per channel; slack_sdk retry handlers cover rate limits, server errors and dropped
connections. (A retry inside one call after an ambiguous failure is the one window this cannot
close; a lookup by channel history needs the channel's id, which Slack returns on the first post.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from detectors.base import Guide
from monitor.alerts.slack_message import METADATA_EVENT, Message, escape, render
from monitor.state import State

SINK = "slack"
MAX_ATTEMPTS = 8
HISTORY_LOOKBACK = timedelta(minutes=10)


class RateLimitHandler(RetryHandler):
    """Honours `Retry-After` (seconds or an HTTP date) with an injectable sleep, so tests need not wait."""

    def __init__(self, max_retry_count: int = 5, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code == 429

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        value = next(
            (v[0] for k, v in (response.headers if response else {}).items() if k.lower() == "retry-after"), "1"
        )
        try:
            wait = float(value)
        except ValueError:  # an HTTP date, or nonsense: then a second
            try:
                wait = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                wait = 1.0
        self.sleep(max(0.0, min(wait, 60.0)))
        state.next_attempt_requested = True
        state.increment_current_attempt()


class _SleepsThrough:
    """slack_sdk's backoff, with the sleep injected (its own handlers call time.sleep directly)."""

    sleep: Callable[[float], None]
    interval_calculator: Any

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self.sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


class ServerErrorHandler(_SleepsThrough, ServerErrorRetryHandler):
    def __init__(self, sleep: Callable[[float], None], max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep


class ConnectionErrorHandler(_SleepsThrough, ConnectionErrorRetryHandler):
    def __init__(self, sleep: Callable[[float], None], max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep


def client(token: str, base_url: str | None = None, sleep: Callable[[float], None] = time.sleep) -> WebClient:
    """slack_sdk's WebClient with retries for rate limits (honouring Retry-After), server and connection errors."""
    handlers: list[RetryHandler] = [
        RateLimitHandler(sleep=sleep),
        ServerErrorHandler(sleep),
        ConnectionErrorHandler(sleep),
    ]
    return WebClient(token=token, base_url=base_url or "https://slack.com/api/", retry_handlers=handlers)


def token_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """The bot token, from SLACK_BOT_TOKEN or the file named by SLACK_BOT_TOKEN_FILE; never from the config."""
    if env.get("SLACK_BOT_TOKEN"):
        return env["SLACK_BOT_TOKEN"]
    path = env.get("SLACK_BOT_TOKEN_FILE")
    return Path(path).read_text().strip() if path else None


def check_access(web: WebClient, channels: Collection[str]) -> list[tuple[str, str | None]]:
    """(what was checked, problem or None): the token (`auth.test`) and every routed channel (`conversations.info`)."""
    try:
        who = web.auth_test()
    except (SlackApiError, OSError) as exc:
        return [("slack token", _reason(exc))]
    results: list[tuple[str, str | None]] = [(f"slack token: bot {who.get('user')} in {who.get('team')}", None)]
    for channel in sorted(channels):
        try:
            info = web.conversations_info(channel=channel)["channel"]
        except (SlackApiError, OSError) as exc:
            results.append((f"slack channel {channel}", _reason(exc) + " (use the channel id; invite the bot)"))
            continue
        problem = None if info.get("is_member", True) else "the bot is not a member: /invite it"
        results.append((f"slack channel {channel} (#{info.get('name')})", problem))
    return results


@dataclass(frozen=True)
class Routes:
    """Which channel gets a finding: the account's channel if it has one, else by severity, else the default."""

    default: str
    by_severity: Mapping[str, str] = field(default_factory=dict)
    by_account: Mapping[str, str] = field(default_factory=dict)

    def channel(self, finding: Mapping[str, Any]) -> str:
        account = self.by_account.get(str(finding.get("account_id")))
        return account or self.by_severity.get(str(finding["severity"]), self.default)


@dataclass
class Report:
    sent: int = 0
    recovered: int = 0
    replies: int = 0
    resolutions: int = 0
    escalations: int = 0
    summaries: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class SlackSink:
    web: WebClient
    state: State
    routes: Routes
    guides: Mapping[str, Guide] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    burst: int = 10  # more new findings than this in one channel at once: a summary, details in its thread
    runbook: str | None = None  # URL template with {detector}, from the configuration
    accounts: Mapping[str, str] = field(default_factory=dict)  # account id -> name, from the inventory
    _last_post: dict[str, float] = field(default_factory=dict)

    def deliver(self, summary_only: Collection[str] = ()) -> Report:
        """Settle crashed posts, post what is due, and reply in threads for findings that grew.

        Findings in `summary_only` (a backfill's) are covered by one summary per channel, recorded
        as delivered through it and never posted one by one; others due at the same time still are.
        """
        report = Report()
        for finding, delivery in self.state.deliveries_in(SINK, "posting"):
            self._recover(finding, delivery, report)
        due = self.state.deliveries_in(SINK, "pending", due_by=self.now().isoformat())
        by_channel: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for finding, delivery in due:
            by_channel.setdefault(self.routes.channel(finding), []).append((finding, delivery))
        for channel, items in by_channel.items():
            quiet = [f for f, _ in items if f["finding_id"] in summary_only]
            loud = [(f, d) for f, d in items if f["finding_id"] not in summary_only]
            if quiet and (ts := self._summary(channel, quiet, report)):
                for finding in quiet:
                    self.state.update_delivery(
                        finding["finding_id"],
                        SINK,
                        status="sent",
                        channel=channel,
                        thread_ts=ts,
                        delivered_events=len(finding["event_ids"]),
                        delivered_severity=finding["severity"],
                    )
            thread = self._summary(channel, [f for f, _ in loud], report) if len(loud) > self.burst else None
            for finding, delivery in loud:
                self._post(finding, delivery, report, thread)
        for finding, delivery in self.state.grown_since_delivery(SINK):
            self._reply(finding, delivery, report)
        for finding, delivery in self.state.escalated_since_delivery(SINK):
            self._escalate(finding, delivery, report)
        self.post_resolutions(report)
        return report

    def post_resolutions(self, report: Report) -> None:
        """Resolved findings (by an operator, or a posture check that no longer sees the problem): a reply
        with the note in each one's thread, retried by later deliveries until it is posted."""
        for finding, delivery in self.state.resolutions_due(SINK):
            fid = finding["finding_id"]
            try:
                self._threaded(
                    delivery["channel"],
                    delivery["ts"] or delivery["thread_ts"],
                    f"Resolved: {escape(delivery['note'] or '', 2000)}",
                )
            except (SlackApiError, OSError) as exc:
                report.errors.append(f"slack: finding {fid}: resolution reply: {_reason(exc)}")
                if _definite(exc):  # Slack said no (an archived channel, a deleted thread): retrying cannot help
                    self.state.update_delivery(fid, SINK, resolution_posted=2)
                continue
            self.state.update_delivery(fid, SINK, resolution_posted=1)
            report.resolutions += 1

    def _escalate(self, finding: dict[str, Any], delivery: dict[str, Any], report: Report) -> None:
        """A posted finding grew more severe: its thread says so, and when its severity routes it to
        another channel (a paging one), the whole alert is posted there too."""
        fid, channel = finding["finding_id"], self.routes.channel(finding)
        text = f"Escalated from {escape(delivery['delivered_severity'], 20)} to {escape(finding['severity'], 20)}"
        try:
            self._threaded(delivery["channel"], delivery["ts"] or delivery["thread_ts"], text)
            if channel != delivery["channel"]:
                message = render(finding, self.guides.get(finding["detector"]), self.accounts, self.runbook)
                lead = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
                self._pace(channel)
                self.web.chat_postMessage(
                    channel=channel,
                    text=f"{text}: {message.text}",
                    blocks=[lead, *message.blocks],
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except (SlackApiError, OSError, SlackObjectFormationError) as exc:
            report.errors.append(f"slack: finding {fid}: escalation: {_reason(exc)}")
            return
        self.state.update_delivery(fid, SINK, delivered_severity=finding["severity"])
        report.escalations += 1

    def _pace(self, channel: str) -> None:
        wait = self._last_post.get(channel, -1e9) + 1.0 - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last_post[channel] = self.clock()

    def _threaded(self, channel: str, thread: str, text: str) -> None:
        """A reply in a thread; its text is escaped by the caller and sent verbatim."""
        self._pace(channel)
        block = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
        self.web.chat_postMessage(
            channel=channel, thread_ts=thread, text=text, blocks=[block], unfurl_links=False, unfurl_media=False
        )

    def _summary(self, channel: str, findings: list[dict[str, Any]], report: Report) -> str | None:
        """Many findings at once: one message that counts them (the details, if posted, go in its thread)."""
        counts: dict[str, int] = {}
        for f in findings:
            counts[f"{f['severity']} {f['detector']}"] = counts.get(f"{f['severity']} {f['detector']}", 0) + 1
        lines = "\n".join(f"• {n} × {escape(k, 100)}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        text = f"{len(findings)} new findings at once.\n{lines}"
        self._pace(channel)
        try:
            answer = self.web.chat_postMessage(channel=channel, text=text, unfurl_links=False, unfurl_media=False)
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: summary for {channel}: {_reason(exc)}")
            return None
        report.summaries += 1
        return str(answer["ts"])

    def _post(
        self, finding: dict[str, Any], delivery: dict[str, Any], report: Report, thread: str | None = None
    ) -> None:
        fid, channel = finding["finding_id"], self.routes.channel(finding)
        attempts = int(delivery["attempts"]) + 1
        try:
            message = render(finding, self.guides.get(finding["detector"]), self.accounts, self.runbook)
        except SlackObjectFormationError as exc:  # cannot be sent as it is: retrying would not help
            self.state.update_delivery(fid, SINK, status="failed", attempts=attempts, error=f"render: {exc}")
            report.failed += 1
            return
        self.state.update_delivery(fid, SINK, status="posting", channel=channel, thread_ts=thread, attempts=attempts)
        self._pace(channel)
        try:
            answer = self.web.chat_postMessage(
                channel=channel,
                thread_ts=thread,
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
        except (SlackApiError, OSError) as exc:
            if _definite(exc):
                retry_later(self.state, SINK, fid, attempts, _reason(exc), self.now(), report)
            else:  # it may have been posted: stays `posting`, so the history is checked before any re-post
                self.state.update_delivery(fid, SINK, error=_reason(exc))
                report.errors.append(f"slack: finding {fid}: outcome unknown: {_reason(exc)}")
            return
        self.state.update_delivery(
            fid,
            SINK,
            status="sent",
            channel=answer["channel"],
            ts=answer["ts"],
            delivered_events=len(finding["event_ids"]),
            delivered_severity=finding["severity"],
            error=None,
        )
        report.sent += 1

    def _recover(self, finding: dict[str, Any], delivery: dict[str, Any], report: Report) -> None:
        """A post whose outcome is unknown (a crash, a timeout): look for it before posting again."""
        fid, channel, thread = (
            finding["finding_id"],
            delivery["channel"] or self.routes.channel(finding),
            delivery["thread_ts"],
        )
        since = datetime.fromisoformat(delivery["updated_at"]) - HISTORY_LOOKBACK
        try:
            if thread:  # posted into a summary's thread: replies are not in the channel history
                found = self.web.conversations_replies(channel=channel, ts=thread, include_all_metadata=True, limit=200)
            else:
                found = self.web.conversations_history(
                    channel=channel, oldest=f"{since.timestamp():.6f}", include_all_metadata=True, limit=200
                )
        except (SlackApiError, OSError) as exc:  # cannot tell yet: stays `posting`, looked up next time
            report.errors.append(f"slack: finding {fid}: history lookup: {_reason(exc)}")
            if int(delivery["attempts"]) >= MAX_ATTEMPTS:
                self.state.update_delivery(fid, SINK, status="failed", error=f"history lookup: {_reason(exc)}")
                report.failed += 1
            return
        messages: list[dict[str, Any]] = found.get("messages", [])
        for msg in messages:
            meta = msg.get("metadata") or {}
            if meta.get("event_type") == METADATA_EVENT and meta.get("event_payload", {}).get("finding_id") == fid:
                self.state.update_delivery(
                    fid,
                    SINK,
                    status="sent",
                    channel=channel,
                    ts=msg["ts"],
                    delivered_events=len(finding["event_ids"]),
                    delivered_severity=finding["severity"],
                )
                report.recovered += 1
                return
        self._post(finding, delivery, report, thread)

    def _reply(self, finding: dict[str, Any], delivery: dict[str, Any], report: Report) -> None:
        """More events joined a posted finding: a thread reply, and (best effort) the parent's counter."""
        fid, channel, ts = finding["finding_id"], delivery["channel"], delivery["ts"]
        count, before = len(finding["event_ids"]), int(delivery["delivered_events"])
        names = ", ".join(escape(n, 60) for n in finding["event_names"][:5])
        text = f"{count - before} more events ({names}), last {escape(finding['last_seen'], 40)}"
        try:
            self._threaded(channel, ts or delivery["thread_ts"], text)
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: finding {fid}: thread reply: {_reason(exc)}")
            return
        self.state.update_delivery(fid, SINK, delivered_events=count)
        report.replies += 1
        if not ts:  # delivered through a summary: there is no message of its own to update
            return
        parent: Message = render(finding, self.guides.get(finding["detector"]), self.accounts, self.runbook)
        seen = f"seen {count} times, last {escape(finding['last_seen'], 40)}"
        blocks = [*parent.blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": seen, "verbatim": True}]}]
        try:
            self.web.chat_update(channel=channel, ts=ts, text=parent.text, blocks=blocks)
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: finding {fid}: counter update: {_reason(exc)}")


def retry_later(
    state: State, sink: str, finding_id: str, attempts: int, error: str, now: datetime, report: Report
) -> None:
    """A failed post stays pending, due again after a growing delay; past MAX_ATTEMPTS it is failed."""
    report.errors.append(f"{sink}: finding {finding_id}: {error}")
    if attempts >= MAX_ATTEMPTS:
        state.update_delivery(finding_id, sink, status="failed", attempts=attempts, error=error)
        report.failed += 1
        return
    due = now + timedelta(seconds=min(30 * 2**attempts, 3600))
    state.update_delivery(
        finding_id, sink, status="pending", attempts=attempts, error=error, next_attempt_at=due.isoformat()
    )
    report.retrying += 1


def _definite(exc: Exception) -> bool:
    """Slack answered and said no (not a 5xx, not a broken connection): the message was not posted."""
    return isinstance(exc, SlackApiError) and exc.response.status_code < 500


def _reason(exc: Exception) -> str:
    return str(exc.response.get("error", exc)) if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
