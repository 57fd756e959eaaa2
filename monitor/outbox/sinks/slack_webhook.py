"""Slack through an incoming-webhook URL: the minimal mode, for workspaces without a bot.

A webhook cannot thread, carry message metadata or read history, so this mode posts each
finding's message once per successful call but cannot close the crash window between "posted"
and "recorded" (a post interrupted there may be repeated: at least once, not exactly once), and
a finding that grows is not followed up. Use the bot token mode for the full guarantees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlparse

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.webhook import WebhookClient

from detectors.core.base import Guide
from monitor.outbox.sinks.slack import Report, below_floor, retry_later
from monitor.outbox.sinks.slack_message import render
from monitor.state import State

SINK = "slack-webhook"


def url_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """The webhook URL is a secret: from SLACK_WEBHOOK_URL, never from the configuration. A value that is not
    an http(s) URL is refused (ValueError) without repeating it anywhere."""
    url = env.get("SLACK_WEBHOOK_URL") or None
    if url is not None:
        parsed = urlparse(url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ValueError("SLACK_WEBHOOK_URL is not an http(s) URL")
    return url


@dataclass
class WebhookSink:
    url: str
    state: State
    guides: Mapping[str, Guide] = field(default_factory=dict)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    accounts: Mapping[str, str] = field(default_factory=dict)  # account id -> name, from the inventory
    floor: str = "low"  # less severe findings are not posted (`slack.min_severity`)

    def deliver(self) -> Report:
        report = Report()
        web = WebhookClient(self.url)
        pending = self.state.deliveries_in(SINK, "pending", due_by=self.now().isoformat())
        due = below_floor(self.state, SINK, pending, self.floor)
        for finding, delivery in [*self.state.deliveries_in(SINK, "posting"), *due]:
            fid = finding.finding_id
            try:
                message = render(finding, self.guides.get(finding.detector), self.accounts)
            except SlackObjectFormationError as exc:
                self.state.update_delivery(fid, SINK, status="failed", error=f"render: {exc}")
                report.failed += 1
                continue
            self.state.update_delivery(fid, SINK, status="posting")
            try:
                answer = web.send(text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False)
            except Exception as exc:  # named by its type only: the message of some would repeat the secret URL
                error = f"{type(exc).__name__} posting to the webhook"
                retry_later(self.state, SINK, fid, int(delivery["attempts"]) + 1, error, self.now(), report)
                continue
            if answer.status_code != 200:
                error = f"HTTP {answer.status_code}: {answer.body[:200]}"
                retry_later(self.state, SINK, fid, int(delivery["attempts"]) + 1, error, self.now(), report)
                continue
            self.state.update_delivery(fid, SINK, status="sent", delivered_events=len(finding.event_ids))
            report.sent += 1
        return report
