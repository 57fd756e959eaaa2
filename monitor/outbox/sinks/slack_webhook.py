"""Slack through an incoming-webhook URL: the minimal mode, for workspaces without a bot.

A webhook cannot thread, carry message metadata or read history, so this mode posts each
finding's message once per successful call but cannot close the crash window between "posted"
and "recorded" (a post interrupted there may be repeated: at least once, not exactly once), and
a finding that grows is not followed up. Use the bot token mode for the full guarantees.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.webhook import WebhookClient

from detectors.core.base import Guide
from monitor.outbox.dispatcher import Route
from monitor.outbox.finding import Finding
from monitor.outbox.sinks.kind import Kind, Setup
from monitor.outbox.sinks.slack_message import render
from monitor.outbox.transport import Receipt, Refused, Unsendable

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
    guides: Mapping[str, Guide] = field(default_factory=dict)
    accounts: Mapping[str, str] = field(default_factory=dict)  # account id -> name, from the inventory
    name: str = SINK

    def send(self, finding: Finding) -> Receipt:
        try:
            message = render(finding, self.guides.get(finding.detector), self.accounts)
        except SlackObjectFormationError as exc:
            raise Unsendable(f"render: {exc}") from None
        try:
            answer = WebhookClient(self.url).send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:  # named by its type only: the message of some would repeat the secret URL
            raise Refused(f"{type(exc).__name__} posting to the webhook") from None
        if answer.status_code != 200:
            raise Refused(f"HTTP {answer.status_code}: {answer.body[:200]}")
        return Receipt()


def _route(setup: Setup) -> Route:
    sink = WebhookSink(setup.secrets.webhook_url or "", setup.guides, setup.accounts)
    return Route(sink, setup.cfg.slack.min_severity)


KIND = Kind(lambda cfg, extra: cfg.slack.webhook, _route)
