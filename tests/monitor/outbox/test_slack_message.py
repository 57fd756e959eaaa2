"""Hostile event text never becomes Slack markup: a property test over thousands of examples."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.cross_account_assume_role import CrossAccountAssumeRole
from detectors.root_usage import RootUsage
from monitor.outbox.finding import Finding
from monitor.outbox.sinks.slack_message import console_link, escape, render, render_incident
from monitor.text import printable
from tests.cloudtrail import PROD, stored_finding

_DATE = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time_secs\}\|[0-9: -]+ UTC>")
_SAFE_AMP = re.compile(r"&(?!amp;|lt;|gt;)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_OUR_NEWLINES = re.compile(r"(\*[A-Za-z ]+\*)\n|\n(• )")  # the template's own line breaks


def texts(message_blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn string in the blocks."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                assert node.get("verbatim") is True
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message_blocks)
    return found


def assert_inert(text: str) -> None:
    rest = _OUR_NEWLINES.sub(r"\1 \2", _DATE.sub("", text))
    assert "<" not in rest
    assert ">" not in rest
    assert not _SAFE_AMP.search(rest)
    assert not _CONTROL.search(rest)
    assert printable(rest) == rest  # nothing the project's own list of reordering or hiding characters holds


def finding(**values: Any) -> Finding:
    return stored_finding(**values)


hostile = st.text(max_size=3000) | st.sampled_from(
    [
        "<!channel>",
        "<!here|here>",
        "<https://evil.example|click>",
        "&lt;!channel&gt;",
        "@channel",
        "a\nb\r\x1b[31m",
        "\u2028",
        "evil\u061cgpj.exe",  # the Arabic letter mark: it reorders what follows
    ]
)


@settings(max_examples=2000, deadline=None)
@given(
    summary=hostile,
    principal=hostile,
    user_agent=hostile,
    source_ip=hostile,
    region=hostile,
    account_id=hostile,
    identity_type=hostile,
    target=hostile,
    event_id=hostile,
)
def test_any_event_text_renders_inert_and_valid(**v: str) -> None:
    message = render(
        finding(
            summary=v["summary"],
            principal=v["principal"],
            user_agent=v["user_agent"],
            source_ip=v["source_ip"],
            region=v["region"],
            account_id=v["account_id"],
            identity_type=v["identity_type"],
            target_account_id=v["target"],
            event_ids=[v["event_id"], "x"],
        ),
        RootUsage.guide,
    )
    for text in [*texts(message.blocks), message.text]:
        assert_inert(text)
    urls = [e["url"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert urls == [u for u in [console_link(v["region"], v["event_id"])] if u]


@settings(max_examples=500, deadline=None)
@given(summary=hostile, identity=hostile, address=hostile, account=hostile, context=hostile, raised=hostile)
def test_any_event_text_in_an_incident_renders_inert_and_valid(**v: str) -> None:
    """An incident's summary, identities, addresses, accounts and context come from event text too."""
    incident = {
        "incident_id": "ab" * 16,
        "severity": "critical",
        "raised": v["raised"],
        "tactics": ["initial-access", "defense-evasion"],
        "finding_ids": ["1" * 32, "2" * 32],
        "identities": [v["identity"], "root of 111111111111"],
        "addresses": [v["address"]],
        "accounts": [v["account"]],
        "summary": v["summary"],
        "context": [{"event_time": "2024-05-01T10:00:00.000000Z", "event_id": "e", "summary": v["context"]}],
        "first_seen": "2024-05-01T10:00:00.000000Z",
        "last_seen": "2024-05-01T12:00:00.000000Z",
    }
    message = render_incident(incident, finding(), {v["account"]: v["identity"]})
    for text in [*texts(message.blocks), message.text]:
        assert_inert(text)
    assert message.metadata["event_payload"] == {"finding_id": finding().finding_id}  # still the head's post


def test_mentions_and_links_are_escaped() -> None:
    message = render(finding(user_agent="<!channel> <https://evil.example|login here> & more"))
    joined = "\n".join(texts(message.blocks))
    assert "&lt;!channel&gt; &lt;https://evil.example|login here&gt; &amp; more" in joined
    assert escape("&lt;") == "&amp;lt;"  # ampersand first: an escaped-looking input stays visible text


def test_message_carries_the_finding_id_and_a_console_link() -> None:
    message = render(finding(), RootUsage.guide)
    assert message.metadata == {
        "event_type": "trailguard_finding",
        "event_payload": {"finding_id": "0123456789abcdef0123456789abcdef"},
    }
    assert message.blocks[0]["text"]["text"] == "CRITICAL · Root user activity"
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert actions["elements"][0]["url"].endswith("#/events/7c3f1a52-0d2e-4c4b-9a57-1b2c3d4e5f60")
    assert "<!date^1714558500^" in "\n".join(texts(message.blocks))
    assert console_link("us-east-1", "not-an-id") is None
    assert console_link("evil.example/x?", "7c3f1a52-0d2e-4c4b-9a57-1b2c3d4e5f60") is None


def test_runbook_button_from_the_configured_template() -> None:
    message = render(finding(), runbook="https://wiki.example.com/runbooks/{detector}")
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["url"] for e in actions["elements"]][1] == "https://wiki.example.com/runbooks/root-usage"
    forged = render(finding(detector="x/../../evil"), runbook="https://wiki.example.com/runbooks/{detector}")
    assert "evil" not in str([b for b in forged.blocks if b["type"] == "actions"])


def test_both_accounts_are_named_and_the_kind_explained() -> None:
    cross = finding(
        detector="cross-account-assume-role", kind="external-account", account_id="777788889999", target_account_id=PROD
    )
    message = render(cross, CrossAccountAssumeRole.guide, {PROD: "prod <core>", "777788889999": "vendor-ci"})
    joined = "\n".join(texts(message.blocks))
    assert "*Account*\n777788889999 (vendor-ci)" in joined
    assert f"*Target account*\n{PROD} (prod &lt;core&gt;)" in joined
    assert "*external-account*: The caller's account is neither in the organization nor a trusted account." in joined
