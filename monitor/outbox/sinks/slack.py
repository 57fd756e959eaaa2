"""Delivering findings to Slack from the outbox: each finding once, and none lost.

A delivery is marked `posting` (committed) before the API call and `sent` only after Slack
acknowledged it, with the channel and message `ts`. Every message carries its finding id in
Slack message metadata, so when the outcome of a post is unknown (a crash between "posted" and
"recorded", a timeout, a 5xx, a dropped connection) the channel's history (or the summary's
thread), read page after page, tells whether it went through: it is re-posted only if absent.
So a post is never retried blindly: slack_sdk's retry handlers repeat a post only after a rate
limit (Slack refused it) or a connection that never opened, and repeat reads freely. A definite
refusal stays pending and is retried with backoff, then marked failed for `findings retry`. A
finding that gains events later gets a thread reply and its parent's counter updated instead of
a new message. Posts are paced to one per second per channel, most severe first. (A lookup by
channel history needs the channel's id: route to channel ids, not names.)
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from detectors.core.base import Guide
from monitor.outbox.dispatcher import MAX_ATTEMPTS, Dispatcher, Due, Outcome, Receipt
from monitor.outbox.finding import Finding, alone, order
from monitor.outbox.sinks.slack_message import METADATA_EVENT, Message, escape, render
from monitor.store.outbox import Outbox

SINK = "slack"
HISTORY_LOOKBACK = timedelta(minutes=10)
MAX_PAGES = 1_000  # of 200 messages: the history a lookup reads before it gives up (and retries later)


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


def _creates(request: HttpRequest) -> bool:
    """A call that makes a new message each time it succeeds: never repeated unless it surely never arrived."""
    return request.url.rstrip("/").endswith("/chat.postMessage")


def _never_sent(error: Exception | None) -> bool:
    """The connection was refused or the name did not resolve: Slack cannot have received the request."""
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


class _Careful(RetryHandler):
    """slack_sdk's own handler, with the sleep injected (its handlers call time.sleep directly), repeating a
    post only when `_may_repeat_post` says the request cannot have reached Slack."""

    interval_calculator: Any

    def __init__(self, sleep: Callable[[float], None], max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep

    def _may_repeat_post(self, error: Exception | None) -> bool:
        return False

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        possible = super()._can_retry(state=state, request=request, response=response, error=error)
        return possible and (not _creates(request) or self._may_repeat_post(error))

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


class ServerErrorHandler(_Careful, ServerErrorRetryHandler):
    """5xx: Slack may have posted before failing, so a post is left to the history lookup, never repeated."""


class ConnectionErrorHandler(_Careful, ConnectionErrorRetryHandler):
    """A dropped connection or a timeout after the request went out may hide a post Slack accepted: a post is
    repeated here only when the request never left (a refused connection, a name that did not resolve)."""

    def _may_repeat_post(self, error: Exception | None) -> bool:
        return _never_sent(error)


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

    def channel(self, finding: Finding) -> str:
        account = self.by_account.get(str(finding.account_id))
        return account or self.by_severity.get(str(finding.severity), self.default)


@dataclass
class Report(Outcome):
    replies: int = 0
    resolutions: int = 0
    escalations: int = 0
    summaries: int = 0
    more: bool = False  # posts were left for the next pass (more were due than one pass posts)


BACKFILL = "backfill-"  # a backfill's batch: its findings are delivered through the summary, never one by one
BURST = "burst-"  # a burst's batch: its findings are posted in the summary's thread
SUMMARY_EVENT = "trailguard_summary"


def backfill_batch(since: datetime, until: datetime, detectors: Collection[str]) -> str:
    """The batch of a backfill over these days with these detectors: the same after any restart that day."""
    text = "\x1f".join([since.date().isoformat(), until.date().isoformat(), *sorted(detectors)])
    return BACKFILL + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SlackSink:
    web: WebClient
    state: Outbox
    routes: Routes
    guides: Mapping[str, Guide] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    burst: int = 10  # more new findings than this in one channel at once: a summary, details in its thread
    runbook: str | None = None  # URL template with {detector}, from the configuration
    accounts: Mapping[str, str] = field(default_factory=dict)  # account id -> name, from the inventory
    max_posts: int = 10  # per pass: a backlog yields to new, more severe findings between passes
    floor: str = "low"  # less severe findings are not posted (`slack.min_severity`)
    _last_post: dict[str, float] = field(default_factory=dict)

    def deliver(self, stop: threading.Event | None = None) -> Report:
        """One pass: settle posts whose outcome is unknown, post what is due (most severe first, at most
        `max_posts`, none once `stop` is set), and reply in threads for findings that grew, escalated or
        were resolved.

        A batch (a backfill's, or a burst of more than `burst` findings in one channel) gets one
        summary per channel, recorded like a post: a backfill's findings are delivered through it,
        a burst's are posted in its thread. High and critical findings are never in a summary: each is
        a message of its own (a thread reply notifies no one). Findings below `floor` are not posted
        (suppressed with the rule `BELOW_FLOOR`, and posted if they grow more severe).
        """
        report = Report()
        for batch, channel, summary in self.state.summaries_in(SINK, "posting"):
            self._recover_summary(batch, channel, summary, report)
        for finding, delivery in self.state.deliveries_in(SINK, "posting"):
            self._recover(finding, delivery, report)
        pending = self.state.deliveries_in(SINK, "pending", due_by=self.now().isoformat())
        due = self._bursts(self.outbox.below_floor(SINK, pending, self.floor))
        threads: dict[tuple[str, str], str | None] = {}
        posts = 0
        for finding, delivery in due:
            channel, group, thread = self.routes.channel(finding), _batch(finding, delivery), None
            if group is not None:
                if (group, channel) not in threads:
                    members = [f for f, d in due if _batch(f, d) == group and self.routes.channel(f) == channel]
                    threads[group, channel] = self._summary(group, channel, members, report)
                thread = threads[group, channel]
                if thread is None:  # its summary is not posted (yet): its findings wait with it
                    continue
                if group.startswith(BACKFILL):
                    self._delivered(finding, channel, None, thread)
                    continue
            if posts >= self.max_posts or (stop is not None and stop.is_set()):
                report.more = True
                break
            self._post(finding, delivery, report, thread)
            posts += 1
        for batch, channel in threads:
            if batch.startswith(BACKFILL):
                self._recount(batch, channel, report)
        for finding, delivery in self.state.grown_since_delivery(SINK):
            self._reply(finding, delivery, report)
        for finding, delivery in self.state.escalated_since_delivery(SINK):
            self._escalate(finding, delivery, report)
        self.post_resolutions(report)
        return report

    def _bursts(self, due: list[Due]) -> list[Due]:
        """More than `burst` findings due at once in one channel, outside any batch, become a burst's batch."""
        loose: dict[str, list[dict[str, Any]]] = {}
        for finding, delivery in due:
            if delivery["batch"] is None and not alone(finding.severity):
                loose.setdefault(self.routes.channel(finding), []).append(delivery | {"id": finding.finding_id})
        for members in loose.values():
            if len(members) > self.burst:
                ids = sorted(d["id"] for d in members)
                batch = BURST + hashlib.sha256("\x1f".join(ids).encode()).hexdigest()[:16]
                self.state.join_batch(SINK, ids, batch)
                joined = set(ids)
                due = [(f, d | {"batch": batch}) if f.finding_id in joined else (f, d) for f, d in due]
        return due

    def _summary(self, batch: str, channel: str, findings: list[Finding], report: Report) -> str | None:
        """The batch's summary in this channel, posted once whatever restarts: its ts, or None while it is
        not (known to be) posted. A backfill restarted later adds its new findings to the same summary."""
        known = self.state.summary(batch, SINK, channel)
        if known is not None and known["status"] == "sent":
            return str(known["ts"])
        if known is not None:  # posting, and its lookup failed this pass: not posted again until it is found
            return None
        text = _summary_text(findings, "from a backfill" if batch.startswith(BACKFILL) else "at once")
        self.state.set_summary(batch, SINK, channel, "posting", None, len(findings))
        self._pace(channel)
        try:
            answer = self.web.chat_postMessage(
                channel=channel,
                text=text,
                metadata={"event_type": SUMMARY_EVENT, "event_payload": {"batch": batch}},
                unfurl_links=False,
                unfurl_media=False,
            )
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: summary for {channel}: {_reason(exc)}")
            if _definite(exc):  # not posted: the next pass tries again
                self.state.forget_summary(batch, SINK, channel)
            return None
        self.state.set_summary(batch, SINK, channel, "sent", str(answer["ts"]), len(findings))
        report.summaries += 1
        return str(answer["ts"])

    def _recount(self, batch: str, channel: str, report: Report) -> None:
        """A backfill's summary that gained findings (a restarted backfill's): its count is updated, best effort."""
        known = self.state.summary(batch, SINK, channel)
        if known is None or known["status"] != "sent":
            return
        total = self.state.delivered_through(SINK, batch, known["ts"])
        if total == int(known["findings"]):
            return
        text = f"{total} new findings from a backfill (it was resumed; details in `trailguard findings list`)."
        try:
            self.web.chat_update(channel=channel, ts=known["ts"], text=text)
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: summary for {channel}: count update: {_reason(exc)}")
            return
        self.state.set_summary(batch, SINK, channel, "sent", known["ts"], total)

    def _recover_summary(self, batch: str, channel: str, summary: dict[str, Any], report: Report) -> None:
        """A summary whose post has an unknown outcome: found by its metadata, or forgotten so it is posted."""
        since = datetime.fromisoformat(summary["updated_at"]) - HISTORY_LOOKBACK
        try:
            found = _first(
                self._history(channel, since),
                lambda meta: (
                    meta.get("event_type") == SUMMARY_EVENT and meta.get("event_payload", {}).get("batch") == batch
                ),
            )
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: summary for {channel}: history lookup: {_reason(exc)}")
            return
        if found is None:
            self.state.forget_summary(batch, SINK, channel)
            return
        self.state.set_summary(batch, SINK, channel, "sent", str(found["ts"]), int(summary["findings"]))
        report.recovered += 1

    def _history(self, channel: str, since: datetime) -> Iterator[dict[str, Any]]:
        """Every top-level message of a channel since then, page after page (newest first)."""
        yield from self._pages(
            self.web.conversations_history,
            channel=channel,
            oldest=f"{since.timestamp():.6f}",
            include_all_metadata=True,
        )

    def _thread(self, channel: str, thread: str) -> Iterator[dict[str, Any]]:
        yield from self._pages(self.web.conversations_replies, channel=channel, ts=thread, include_all_metadata=True)

    @staticmethod
    def _pages(method: Callable[..., Any], **arguments: Any) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = method(**arguments, limit=200, **({"cursor": cursor} if cursor else {}))
            yield from page.get("messages", [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
        raise OSError(f"more than {MAX_PAGES} pages of history: cannot tell whether it was posted")

    def _delivered(self, finding: Finding, channel: str, ts: str | None, thread: str | None) -> None:
        self.outbox.sent(SINK, finding, Receipt(channel, ts, thread))

    @property
    def outbox(self) -> Dispatcher:
        return Dispatcher(self.state, self.now)

    def post_resolutions(self, report: Report) -> None:
        """Resolved findings (by an operator, or a posture check that no longer sees the problem): a reply
        with the note in each one's thread, retried by later deliveries until it is posted."""
        for finding, delivery in self.state.resolutions_due(SINK):
            fid = finding.finding_id
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

    def _escalate(self, finding: Finding, delivery: dict[str, Any], report: Report) -> None:
        """A posted finding grew more severe: its thread says so, and when its severity routes it to
        another channel (a paging one), the whole alert is posted there too."""
        fid, channel = finding.finding_id, self.routes.channel(finding)
        text = f"Escalated from {escape(delivery['delivered_severity'], 20)} to {escape(finding.severity, 20)}"
        try:
            self._threaded(delivery["channel"], delivery["ts"] or delivery["thread_ts"], text)
            if channel != delivery["channel"]:
                message = render(finding, self.guides.get(finding.detector), self.accounts, self.runbook)
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
        self.state.update_delivery(fid, SINK, delivered_severity=finding.severity)
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

    def _post(self, finding: Finding, delivery: dict[str, Any], report: Report, thread: str | None = None) -> None:
        fid, channel = finding.finding_id, self.routes.channel(finding)
        attempts = int(delivery["attempts"]) + 1
        try:
            message = render(finding, self.guides.get(finding.detector), self.accounts, self.runbook)
        except SlackObjectFormationError as exc:  # cannot be sent as it is: retrying would not help
            self.state.update_delivery(fid, SINK, status="failed", attempts=attempts, error=f"render: {exc}")
            report.failed += 1
            return
        self.state.update_delivery(fid, SINK, status="posting", channel=channel, thread_ts=thread, attempts=attempts)
        self._pace(channel)
        try:
            answer = self.web.chat_postMessage(**message.post(channel, thread))
        except (SlackApiError, OSError) as exc:
            if _definite(exc):
                self.outbox.retry_later(SINK, fid, attempts, _reason(exc), report)
            else:  # it may have been posted: stays `posting`, so the history is checked before any re-post
                self.state.update_delivery(fid, SINK, error=_reason(exc))
                report.errors.append(f"slack: finding {fid}: outcome unknown: {_reason(exc)}")
            return
        self._delivered(finding, str(answer["channel"]), str(answer["ts"]), thread)
        report.sent += 1

    def _recover(self, finding: Finding, delivery: dict[str, Any], report: Report) -> None:
        """A post whose outcome is unknown (a crash, a timeout, a dropped connection): looked for, page after
        page, before it is ever posted again."""
        fid, channel, thread = (
            finding.finding_id,
            delivery["channel"] or self.routes.channel(finding),
            delivery["thread_ts"],
        )
        since = datetime.fromisoformat(delivery["updated_at"]) - HISTORY_LOOKBACK
        # posted into a summary's thread: replies are not in the channel history
        messages = self._thread(channel, thread) if thread else self._history(channel, since)
        try:
            found = _first(
                messages,
                lambda meta: (
                    meta.get("event_type") == METADATA_EVENT and meta.get("event_payload", {}).get("finding_id") == fid
                ),
            )
        except (SlackApiError, OSError) as exc:  # cannot tell yet: stays `posting`, looked up next time
            report.errors.append(f"slack: finding {fid}: history lookup: {_reason(exc)}")
            if int(delivery["attempts"]) >= MAX_ATTEMPTS:
                self.state.update_delivery(fid, SINK, status="failed", error=f"history lookup: {_reason(exc)}")
                report.failed += 1
            return
        if found is not None:
            self._delivered(finding, channel, str(found["ts"]), thread)
            report.recovered += 1
            return
        self._post(finding, delivery, report, thread)

    def _reply(self, finding: Finding, delivery: dict[str, Any], report: Report) -> None:
        """More events joined a posted finding: a thread reply, and (best effort) the parent's counter."""
        fid, channel, ts = finding.finding_id, delivery["channel"], delivery["ts"]
        count, before = len(finding.event_ids), int(delivery["delivered_events"])
        names = ", ".join(escape(n, 60) for n in finding.event_names[:5])
        text = f"{count - before} more events ({names}), last {escape(finding.last_seen, 40)}"
        try:
            self._threaded(channel, ts or delivery["thread_ts"], text)
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: finding {fid}: thread reply: {_reason(exc)}")
            return
        self.state.update_delivery(fid, SINK, delivered_events=count)
        report.replies += 1
        if not ts:  # delivered through a summary: there is no message of its own to update
            return
        parent: Message = render(finding, self.guides.get(finding.detector), self.accounts, self.runbook)
        seen = f"seen {count} times, last {escape(finding.last_seen, 40)}"
        blocks = [*parent.blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": seen, "verbatim": True}]}]
        try:
            self.web.chat_update(channel=channel, ts=ts, text=parent.text, blocks=blocks)
        except (SlackApiError, OSError) as exc:
            report.errors.append(f"slack: finding {fid}: counter update: {_reason(exc)}")


def _batch(finding: Finding, delivery: Mapping[str, Any]) -> str | None:
    """The summary a finding is delivered through: none for one too severe to be folded into a summary."""
    return None if alone(finding.severity) else delivery["batch"]


def _first(messages: Iterable[dict[str, Any]], wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The first message whose metadata is wanted; pages are only fetched until it is found."""
    return next((m for m in messages if wanted(m.get("metadata") or {})), None)


def _summary_text(findings: list[Finding], how: str) -> str:
    """Counts by severity (most severe first) and detector."""
    counts: dict[tuple[int, bool, str, str], int] = {}
    for f in findings:
        key = (*order(f.severity, f.detector), f.severity, f.detector)
        counts[key] = counts.get(key, 0) + 1
    lines = "\n".join(f"• {n} × {escape(sev, 20)} {escape(det, 100)}" for (*_, sev, det), n in sorted(counts.items()))
    return f"{len(findings)} new findings {how}.\n{lines}"


def _definite(exc: Exception) -> bool:
    """Slack answered and said no (not a 5xx, not a broken connection): the message was not posted."""
    return isinstance(exc, SlackApiError) and exc.response.status_code < 500


def _reason(exc: Exception) -> str:
    return str(exc.response.get("error", exc)) if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
