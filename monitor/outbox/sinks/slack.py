"""Slack through a bot token: the threaded transport, with each finding delivered exactly once.

The dispatcher marks a delivery `posting` before the call and `sent` after Slack acknowledged it.
Every message carries its finding id in Slack message metadata, so when the outcome of a post is
unknown (a crash between "posted" and "recorded", a timeout, a 5xx, a dropped connection) the
channel's history (or the summary's thread), read page after page, tells whether it went through.
So a post is never retried blindly: slack_sdk's retry handlers repeat a post only after a rate limit
(Slack refused it) or a connection that never opened, and repeat reads freely. Posts are paced to
one per second per channel. (A lookup by channel history needs the channel's id: route to channel
ids, not names.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from detectors.core.base import Guide
from monitor.outbox.dispatcher import Route
from monitor.outbox.finding import Finding, alone, order
from monitor.outbox.sinks.kind import Kind, Setup
from monitor.outbox.sinks.slack_client import client, reason
from monitor.outbox.sinks.slack_message import METADATA_EVENT, Message, escape, render, render_incident
from monitor.outbox.transport import Mark, Receipt, Refused, Tag, Unknown, Unsendable

SINK = "slack"
SUMMARY_EVENT = "trailguard_summary"
FOLLOW_UP_EVENT = "trailguard_follow_up"
HISTORY_LOOKBACK = timedelta(minutes=10)
MAX_PAGES = 1_000  # of 200 messages: the history a lookup reads before it gives up (and retries later)


@dataclass(frozen=True)
class Channels:
    """Which channel gets a finding: the account's channel if it has one, else by severity, else the default."""

    default: str
    by_severity: Mapping[str, str] = field(default_factory=dict)
    by_account: Mapping[str, str] = field(default_factory=dict)

    def channel(self, finding: Finding) -> str:
        account = self.by_account.get(str(finding.account_id))
        return account or self.by_severity.get(str(finding.severity), self.default)


@contextmanager
def _answered() -> Iterator[None]:
    """Slack's errors as the dispatcher's: Slack answered no (not a 5xx), or the outcome is unknown."""
    try:
        yield
    except SlackApiError as exc:
        raise (Refused if exc.response.status_code < 500 else Unknown)(reason(exc)) from None
    except OSError as exc:
        raise Unknown(reason(exc)) from None


@dataclass
class SlackSink:
    """Posts with the finding id in the message metadata, so that a post is looked up (`find`) in the
    channel's history or the summary's thread, page after page, before it is ever made again."""

    web: WebClient
    channels: Channels
    guides: Mapping[str, Guide] = field(default_factory=dict)
    accounts: Mapping[str, str] = field(default_factory=dict)  # account id -> name, from the inventory
    runbook: str | None = None  # URL template with {detector}, from the configuration
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    name: str = SINK
    _last_post: dict[str, float] = field(default_factory=dict)

    def channel(self, finding: Finding) -> str:
        return self.channels.channel(finding)

    def send(self, finding: Finding) -> Receipt:
        return self.send_in(None, finding)

    def send_in(self, thread: str | None, finding: Finding, channel: str | None = None) -> Receipt:
        """Post a finding, into `thread` in `channel` when given; a high or critical reply shows in the channel
        too (a thread reply alone notifies no one)."""
        message, channel = self._render(finding), channel or self.channel(finding)
        self._pace(channel)
        with _answered():
            answer = self.web.chat_postMessage(**message.post(channel, thread, broadcast=alone(finding.severity)))
        return Receipt(str(answer["channel"]), str(answer["ts"]), thread)

    def find(self, finding: Finding, mark: Mark) -> Receipt | None:
        fid = finding.finding_id
        return self._look(
            replace(mark, channel=mark.channel or self.channel(finding)),
            lambda meta: (
                meta.get("event_type") == METADATA_EVENT and meta.get("event_payload", {}).get("finding_id") == fid
            ),
        )

    def find_follow_up(self, tag: Tag, mark: Mark) -> Receipt | None:
        wanted = _tagged(tag)
        return self._look(mark, lambda meta: all(meta.get(key) == value for key, value in wanted.items()))

    def summarize(self, batch: str, channel: str, findings: list[Finding], backfill: bool) -> Receipt:
        self._pace(channel)
        with _answered():
            answer = self.web.chat_postMessage(
                channel=channel,
                text=_summary_text(findings, "from a backfill" if backfill else "at once"),
                metadata={"event_type": SUMMARY_EVENT, "event_payload": {"batch": batch}},
                unfurl_links=False,
                unfurl_media=False,
            )
        return Receipt(channel, str(answer["ts"]))

    def find_summary(self, batch: str, channel: str, since: datetime) -> Receipt | None:
        return self._look(
            Mark(channel, None, since),
            lambda meta: (
                meta.get("event_type") == SUMMARY_EVENT and meta.get("event_payload", {}).get("batch") == batch
            ),
        )

    def recount(self, summary: Receipt, findings: int) -> None:
        text = f"{findings} new findings from a backfill (it was resumed; details in `trailguard findings list`)."
        with _answered():
            self.web.chat_update(channel=str(summary.channel), ts=str(summary.ts), text=text)

    def grew(self, where: Receipt, tag: Tag, finding: Finding, before: int) -> Receipt:
        names = ", ".join(escape(n, 60) for n in finding.event_names[:5])
        more = len(finding.event_ids) - before
        return self._threaded(where, tag, f"{more} more events ({names}), last {escape(finding.last_seen, 40)}")

    def refresh(self, where: Receipt, finding: Finding) -> None:
        """The finding's own message, with how often it was seen."""
        parent = self._render(finding)
        seen = f"seen {len(finding.event_ids)} times, last {escape(finding.last_seen, 40)}"
        blocks = [*parent.blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": seen, "verbatim": True}]}]
        with _answered():
            self.web.chat_update(channel=str(where.channel), ts=str(where.ts), text=parent.text, blocks=blocks)

    def escalated(self, where: Receipt, tag: Tag, finding: Finding, before: str) -> Receipt:
        """The thread says so; in another channel (the new severity's: a paging one) the whole alert, led by it."""
        text = f"Escalated from {escape(before, 20)} to {escape(finding.severity, 20)}"
        return self._announce(where, tag, text, lambda: self._render(finding))

    def resolved(self, where: Receipt, tag: Tag, note: str) -> Receipt:
        return self._threaded(where, tag, f"Resolved: {escape(note, 2000)}")

    def retell(self, where: Receipt, head: Finding, incident: Mapping[str, Any]) -> None:
        """The first finding's message becomes its incident's, with every finding that joined it."""
        message = render_incident(incident, head, self.accounts)
        with _answered():
            self.web.chat_update(
                channel=str(where.channel),
                ts=str(where.ts),
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
            )

    def incident_escalated(
        self, where: Receipt, tag: Tag, head: Finding, incident: Mapping[str, Any], before: str
    ) -> Receipt:
        """The thread says so; in another channel (the new severity's) the incident's message, led by it."""
        text = f"Incident escalated from {escape(before, 20)} to {escape(incident['severity'], 20)}"
        return self._announce(where, tag, text, lambda: render_incident(incident, head, self.accounts))

    def _announce(self, where: Receipt, tag: Tag, text: str, message: Callable[[], Message]) -> Receipt:
        """`text` in a thread; in a channel alone, the message led by it."""
        if where.thread:
            return self._threaded(where, tag, text)
        channel, shown = str(where.channel), message()
        lead = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
        self._pace(channel)
        with _answered():
            answer = self.web.chat_postMessage(
                channel=channel,
                text=f"{text}: {shown.text}",
                blocks=[lead, *shown.blocks],
                metadata=_tagged(tag),
                unfurl_links=False,
                unfurl_media=False,
            )
        return Receipt(str(answer["channel"]), str(answer["ts"]))

    def _render(self, finding: Finding) -> Message:
        """Whatever rendering one finding raises (Slack's limits, a stored finding or a runbook template it cannot
        fill) fails that finding's delivery as unsendable, never the sink's pass."""
        try:
            return render(finding, self.guides.get(finding.detector), self.accounts, self.runbook)
        except Exception as exc:  # a pure function of the finding: sent again as it is, it would fail again
            raise Unsendable(f"render: {type(exc).__name__}: {exc}") from None

    def _threaded(self, where: Receipt, tag: Tag, text: str) -> Receipt:
        """A reply in a posted finding's thread; its text is escaped by the caller and sent verbatim."""
        channel = str(where.channel)
        self._pace(channel)
        block = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
        with _answered():
            answer = self.web.chat_postMessage(
                channel=channel,
                thread_ts=where.thread,
                text=text,
                blocks=[block],
                metadata=_tagged(tag),
                unfurl_links=False,
                unfurl_media=False,
            )
        return Receipt(str(answer["channel"]), str(answer["ts"]), where.thread)

    def _look(self, mark: Mark, wanted: Callable[[dict[str, Any]], bool]) -> Receipt | None:
        """The first message whose metadata is wanted: in the mark's thread (replies are not in the channel
        history), else in the channel's history since a little before the mark."""
        channel = str(mark.channel)
        messages = (
            self._thread(channel, mark.thread_ts)
            if mark.thread_ts
            else self._history(channel, mark.since - HISTORY_LOOKBACK)
        )
        with _answered():
            found = _first(messages, wanted)
        return None if found is None else Receipt(channel, str(found["ts"]), mark.thread_ts)

    def _pace(self, channel: str) -> None:
        wait = self._last_post.get(channel, -1e9) + 1.0 - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last_post[channel] = self.clock()

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


def _first(messages: Iterable[dict[str, Any]], wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The first message whose metadata is wanted; pages are only fetched until it is found."""
    return next((m for m in messages if wanted(m.get("metadata") or {})), None)


def _tagged(tag: Tag) -> dict[str, Any]:
    """A follow-up's message metadata: what it is, so that it is found, never posted twice."""
    return {"event_type": FOLLOW_UP_EVENT, "event_payload": {"follow_up": tag.about, "of_finding": tag.finding_id}}


def _summary_text(findings: list[Finding], how: str) -> str:
    """Counts by severity (most severe first) and detector."""
    counts: dict[tuple[int, bool, str, str], int] = {}
    for f in findings:
        key = (*order(f.severity, f.detector), f.severity, f.detector)
        counts[key] = counts.get(key, 0) + 1
    lines = "\n".join(f"• {n} × {escape(sev, 20)} {escape(det, 100)}" for (*_, sev, det), n in sorted(counts.items()))
    return f"{len(findings)} new findings {how}.\n{lines}"


def _route(setup: Setup) -> Route:
    """Posts paced and at most 10 a pass, so a backlog yields to new, more severe findings between passes."""
    cfg = setup.cfg.slack
    web = client(setup.secrets.token or "", os.environ.get("SLACK_API_URL"))
    channels = Channels(cfg.channel or "", cfg.severity_channels, setup.channels)
    sink = SlackSink(web, channels, setup.guides, setup.accounts, cfg.runbook_url)
    return Route(sink, cfg.min_severity, max_posts=10, burst=cfg.summary_over)


KIND = Kind(lambda cfg, extra: bool(cfg.slack.channel), _route)
