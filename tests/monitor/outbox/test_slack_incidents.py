"""Incidents in Slack, through the real WebClient to the local endpoint: one top-level message per incident, each
further finding a reply in its thread, the message retold as findings join, a rise in severity announced once in
the new severity's channel; a reply whose outcome is unknown is looked up, never posted twice."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from detectors.core.base import Context
from detectors.core.registry import BUILTIN
from monitor.demo.generator import story
from monitor.detect.pipeline import Plan, detect
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import PROD, console_login, event, iam_user, normalize_batch
from tests.detectors.sigma.test_sigmahq import key_created
from tests.monitor.detect.test_incidents import DAY
from tests.monitor.outbox.test_slack_delivery import Clock, drain, sink
from tests.slack_server import FakeSlack, SlackRoute


def cycle(lake: Lake, state: State, hour: int, hours: int = 1) -> None:
    since = DAY + timedelta(hours=hour)
    detect(lake, state, BUILTIN, Context(), since, since + timedelta(hours=hours), Plan(("slack",)))


def lake_of(root: Path, records: list[dict[str, Any]]) -> Lake:
    lake = Lake(str(root / "lake"))
    lake.write(pa.Table.from_batches([normalize_batch(*records)]))
    return lake


def top_level(fake: FakeSlack) -> list[dict[str, Any]]:
    return fake.posts(thread=False)


def demo(tmp_path: Path, url: str) -> tuple[Lake, State, SlackRoute]:
    """The demo's story in a lake, a state file, and the Slack route delivering from it."""
    state = State(tmp_path / "state.db")
    lake = lake_of(tmp_path, [r for beat in story(random.Random(7), DAY) for r in beat.records])
    return lake, state, sink(state, url, Clock())


def test_the_demo_intrusion_is_one_message_and_its_late_findings_join_its_thread(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, url = slack
    lake, state, route = demo(tmp_path, url)
    cycle(lake, state, 9)  # root: sign-in without MFA, its key, its listing
    drain(route)
    [head] = top_level(fake)
    assert head["channel"] == "#page"  # the most severe of the incident's findings is its message
    replies = fake.posts(thread=True)
    assert len(replies) == 2
    assert all(r["thread_ts"] for r in replies)
    assert all(r.get("reply_broadcast") for r in replies)  # high and critical: the channel sees them too
    updates = [b for m, b in fake.requests if m == "chat.update"]
    assert "Incident: 3 findings" in str(updates[-1]["blocks"])
    cycle(lake, state, 11)  # hours later, jack's key for jackson and its use from the same address
    drain(route)
    assert len(top_level(fake)) == 1  # no second top-level message: the late findings are replies
    assert len(fake.posts(thread=True)) == 5
    updates = [b for m, b in fake.requests if m == "chat.update"]
    assert "Incident: 6 findings" in str(updates[-1]["blocks"])
    assert updates[-1]["metadata"]["event_payload"]["finding_id"] == head["metadata"]["event_payload"]["finding_id"]
    before = len(fake.requests)
    drain(route)
    assert len(fake.requests) == before  # nothing left to say


def bobs_escalation() -> tuple[dict[str, Any], ...]:
    """bob's denied StopLogging at 09:10, then at 10:10 his sign-in without MFA and at 10:12 a key he makes for
    eve: an incident that three ATT&CK tactics raise to critical an hour after it opened."""
    denied = event(
        "StopLogging",
        "cloudtrail.amazonaws.com",
        iam_user("bob"),
        time="2024-03-01T09:10:00Z",
        errorCode="AccessDenied",
        errorMessage="denied",
    )
    login = console_login(iam_user("bob"), time="2024-03-01T10:10:00Z")
    return denied, login, key_created("bob", "eve", time="2024-03-01T10:12:00Z")


def test_a_rise_in_severity_is_announced_once_in_the_new_channel(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """bob's denied StopLogging opens the incident in #alerts; an hour later bob signs in without MFA and makes
    eve a key: three ATT&CK tactics raise the incident to critical, and it is posted once in #page."""
    fake, url = slack
    state, clock = State(tmp_path / "state.db"), Clock()
    denied, login, key = bobs_escalation()
    lake, route = lake_of(tmp_path, [denied, login, key]), sink(state, url, clock)
    cycle(lake, state, 9)
    drain(route)
    assert [p["channel"] for p in top_level(fake)] == ["#alerts"]
    cycle(lake, state, 10)
    drain(route)
    incident = state.list_incidents()[0]
    assert (incident["severity"], len(incident["finding_ids"])) == ("critical", 4)  # with the denial itself
    announced = [p for p in top_level(fake) if p["channel"] == "#page"]
    assert len(announced) == 1
    assert "Incident escalated from medium to critical" in announced[0]["text"]
    drain(route)
    assert len([p for p in top_level(fake) if p["channel"] == "#page"]) == 1  # once
    assert PROD in str(announced[0]["blocks"])


def test_a_reply_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, url = slack
    lake, state, route = demo(tmp_path, url)
    fake.script.extend(["pass", "accept-drop"])  # the incident's message, then its first reply lands unanswered
    cycle(lake, state, 9)
    drain(route)
    drain(route)
    texts = [p["metadata"]["event_payload"]["finding_id"] for p in fake.posts()]
    assert len(texts) == len(set(texts)) == 3  # each finding once, the lost answer found in the thread
    assert len(top_level(fake)) == 1
