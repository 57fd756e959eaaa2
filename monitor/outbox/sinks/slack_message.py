"""A finding as a Slack message: Block Kit built with slack_sdk's models, safe for hostile event text.

Every value that comes from an event (user agents, user names, role session names inside ARNs,
error messages, IPs, even account ids and regions in a forged file) is attacker-controlled. It is
stripped of control characters and newlines, escaped for mrkdwn (exactly `&`, `<`, `>`,
ampersand first), length-capped, and placed in `verbatim` text objects, so it can never become a
mention, a channel broadcast or a link. Links are built only from values that match strict
patterns. The models check Slack's size limits when the message is serialized.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from detectors.core.base import Guide
from monitor.outbox.finding import Finding

METADATA_EVENT = "trailguard_finding"
# controls, line separators, and the invisible bidi/zero-width characters that can disguise text
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")
_DETECTOR = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_blue_circle:",
    "info": ":white_circle:",
}


def escape(value: object, limit: int = 300) -> str:
    """Event text made inert for mrkdwn: no controls or newlines, `& < >` escaped, at most `limit`
    characters *after* escaping (so hostile text cannot outgrow Slack's limits), never cutting an entity."""
    text = _CONTROL.sub(" ", "-" if value is None or value == "" else str(value)).strip()
    out: list[str] = []
    size = 0
    for char in text:
        piece = _ENTITIES.get(char, char)
        if size + len(piece) > limit - 1:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


def date_token(moment: datetime) -> str:
    """Slack shows this in the reader's time zone; the fallback (our own digits) is UTC."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{moment:%Y-%m-%d %H:%M:%S} UTC>"


@dataclass(frozen=True)
class Message:
    text: str  # the notification fallback, escaped like the blocks
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]

    def post(self, channel: str, thread: str | None = None, broadcast: bool = False) -> dict[str, Any]:
        """The arguments of its `chat.postMessage` (links never unfurled: they come from event text); a reply
        `broadcast` shows in the channel too."""
        where: dict[str, Any] = {"channel": channel} | ({"thread_ts": thread} if thread else {})
        where |= {"reply_broadcast": True} if thread and broadcast else {}
        return where | {
            "text": self.text,
            "blocks": self.blocks,
            "metadata": self.metadata,
            "unfurl_links": False,
            "unfurl_media": False,
        }


def render(
    finding: Finding,
    guide: Guide | None = None,
    accounts: Mapping[str, str] | None = None,
    runbook: str | None = None,
) -> Message:
    """The alert for one finding.

    `runbook` is a URL template from the configuration, e.g. `https://wiki.example.com/runbooks/{detector}`; one
    it cannot fill is a ValueError (the finding's alone: the sink fails that delivery).
    """
    names = accounts or {}
    severity = finding.severity
    when = datetime.fromisoformat(finding.event_time.replace("Z", "+00:00"))

    def named(account_id: Any) -> str:
        name = f" ({escape(names[account_id], 60)})" if account_id in names else ""
        return escape(account_id, 40) + name

    fields = [
        f"*Account*\n{named(finding.account_id)}",
        f"*Region*\n{escape(finding.region, 40)}",
        f"*Principal*\n{escape(finding.principal, 400)}",
        f"*Identity type*\n{escape(finding.identity_type, 40)}",
        f"*Source IP*\n{escape(finding.source_ip, 60)}",
        f"*Time*\n{date_token(when)}",
        f"*User agent*\n{escape(finding.user_agent, 300)}",
    ]
    if finding.target_account_id:
        fields.insert(1, f"*Target account*\n{named(finding.target_account_id)}")
    ids = list(finding.event_ids)
    blocks: list[Block] = [
        HeaderBlock(text=f"{severity.upper()} · {str(finding.title)[:130]}"),
        SectionBlock(text=_md(f"{_EMOJI.get(severity, '')} {escape(finding.summary, 1500)}")),
        SectionBlock(fields=[_md(f) for f in fields]),
    ]
    if guide is not None and guide.triage:
        steps = "\n".join(f"• {escape(step, 400)}" for step in guide.triage[:3])
        meaning = guide.kinds.get(str(finding.kind))
        lead = f"*{escape(finding.kind, 60)}*: {escape(meaning, 400)}\n" if meaning else ""
        blocks.append(SectionBlock(text=_md(f"{lead}*Triage*\n{steps}")))
    shown = ", ".join(escape(i, 60) for i in ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
    blocks.append(
        ContextBlock(
            elements=[
                _md(f"finding `{escape(finding.finding_id, 64)}` · {escape(finding.detector, 64)}"),
                _md(f"{len(ids)} events: {shown}" if ids else "found in the account's IAM state, not in events"),
            ]
        )
    )
    buttons = []
    link = console_link(finding.region, ids[0] if ids else None)
    if link:
        buttons.append(ButtonElement(text="Open in CloudTrail", url=link, action_id="cloudtrail"))
    if runbook and _DETECTOR.fullmatch(str(finding.detector)):
        try:
            url = runbook.format(detector=finding.detector)
        except (LookupError, ValueError, AttributeError) as exc:  # a template the configuration did not check
            raise ValueError(f"runbook_url {runbook!r} cannot be filled: {type(exc).__name__}: {exc}") from None
        buttons.append(ButtonElement(text="Runbook", url=url, action_id="runbook"))
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    text = f"{severity.upper()}: {escape(finding.title, 150)}: {escape(finding.summary, 500)}"
    metadata = {"event_type": METADATA_EVENT, "event_payload": {"finding_id": str(finding.finding_id)}}
    return Message(text, [b.to_dict() for b in blocks], metadata)


def render_incident(incident: Mapping[str, Any], head: Finding, accounts: Mapping[str, str] | None = None) -> Message:
    """An incident's message: its summary, severity, tactics, accounts, identities and addresses, each finding a
    reply in its thread. It keeps its first finding's metadata: the message is still that finding's post."""
    names = accounts or {}
    severity, count = str(incident["severity"]), len(incident["finding_ids"])
    accounts_shown = ", ".join(
        escape(a, 40) + (f" ({escape(names[a], 60)})" if a in names else "") for a in incident["accounts"][:10]
    )
    fields = [
        f"*Tactics*\n{escape(', '.join(incident['tactics']) or 'none declared', 300)}",
        f"*Accounts*\n{accounts_shown or '-'}",
        f"*Identities*\n{escape('; '.join(incident['identities'][:10]) or '-', 900)}",
        f"*Addresses*\n{escape(', '.join(incident['addresses'][:10]) or '-', 400)}",
        f"*First seen*\n{date_token(datetime.fromisoformat(incident['first_seen'].replace('Z', '+00:00')))}",
        f"*Last seen*\n{date_token(datetime.fromisoformat(incident['last_seen'].replace('Z', '+00:00')))}",
    ]
    if incident.get("raised"):
        fields.append(f"*Raised a step*\n{escape(incident['raised'], 200)}")
    context = incident.get("context") or []
    if context:
        more = f" (and {len(context) - 1} more)" if len(context) > 1 else ""
        fields.append(f"*No finding of its own*\n{escape(context[0]['summary'], 300)}{more}")
    blocks: list[Block] = [
        HeaderBlock(text=f"{severity.upper()} · Incident: {count} findings"),
        SectionBlock(text=_md(f"{_EMOJI.get(severity, '')} {escape(incident['summary'], 2500)}")),
        SectionBlock(fields=[_md(f) for f in fields]),
        ContextBlock(
            elements=[_md(f"incident `{escape(incident['incident_id'], 64)}` · each finding is a reply in the thread")]
        ),
    ]
    text = f"{severity.upper()}: incident of {count} findings: {escape(incident['summary'], 500)}"
    metadata = {"event_type": METADATA_EVENT, "event_payload": {"finding_id": str(head.finding_id)}}
    return Message(text, [b.to_dict() for b in blocks], metadata)


def console_link(region: object, event_id: object) -> str | None:
    """The CloudTrail console page of an event, only when both parts are exactly what AWS uses."""
    if not (isinstance(region, str) and _REGION.fullmatch(region)):
        return None
    if not (isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id)):
        return None
    return f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}"
