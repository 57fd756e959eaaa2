"""Follow-ups in a posted finding's thread (more events, an escalation and its page, a resolution) are delivered
like findings: each message once whatever Slack answers or however the process dies, a refused one backed off
and given up like a refused finding; and a finding Slack cannot be shown fails alone, never its sink's pass."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from monitor.lake import Lake
from monitor.outbox.dispatcher import MAX_ATTEMPTS
from monitor.outbox.sinks.slack import SlackSink
from monitor.store.state import State
from tests.cloudtrail import normalize_batch
from tests.faults.conftest import no_traceback, run
from tests.monitor.outbox.test_slack_delivery import Clock, finding, sink
from tests.monitor.outbox.test_slack_incidents import bobs_escalation
from tests.slack_server import FakeSlack, SlackRoute

FID = f"{1:032d}"
ESCALATED = "Escalated from low to critical"
ALERT = ["--alert", "--slack-channel", "#alerts", "--post-each"]


def escalated(state: State, url: str) -> SlackRoute:
    """A low finding posted in #alerts, then stored again as critical: its escalation (a reply in its thread,
    the alert in #page) is due."""
    route = sink(state, url, Clock())
    state.store_findings([finding(1, "low")], ["slack"])
    assert route.deliver().sent == 1
    state.store_findings([finding(1, "critical")], ["slack"])
    return route


def replies(fake: FakeSlack, text: str) -> list[dict[str, Any]]:
    return [p for p in fake.posts(thread=True) if p["text"].startswith(text)]


def pages(fake: FakeSlack) -> list[dict[str, Any]]:
    return [p for p in fake.posts() if p["channel"] == "#page"]


def follow_ups(state: State) -> list[dict[str, Any]]:
    """The finding's deliveries besides its own: the parts of follow-ups not told yet."""
    return [d for d in state.deliveries(FID) if d["sink"] != "slack"]


def unsent(state: State) -> dict[str, Any]:
    [part] = [d for d in follow_ups(state) if d["status"] != "sent"]
    return part


def test_a_refused_page_never_repeats_the_thread_reply_and_backs_off(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    """#page refuses the escalated alert (the bot is not in it): the thread reply is not posted again, and the
    page waits out a growing delay like a refused finding instead of being tried every pass."""
    fake, url = slack
    state = State(tmp_path / "s.db")
    route = escalated(state, url)
    fake.script.extend(["pass", "error:not_in_channel"])
    first = route.deliver()
    assert (first.escalations, first.retrying) == (0, 1)
    assert any("not_in_channel" in e for e in first.errors)
    for _ in range(3):
        assert route.deliver().errors == []  # not due again yet: nothing is tried
    assert len(replies(fake, ESCALATED)) == 1
    assert len(pages(fake)) == 1  # the one refused
    page = unsent(state)
    assert (page["status"], page["attempts"], page["channel"], page["error"]) == (
        "pending",
        1,
        "#page",
        "not_in_channel",
    )
    state.update_delivery(FID, page["sink"], next_attempt_at=None)  # its delay over
    done = route.deliver()
    assert (done.escalations, done.errors) == (1, [])
    assert route.deliver().escalations == 0
    assert len(replies(fake, ESCALATED)) == 1
    assert [p["text"].startswith(ESCALATED) for p in pages(fake)] == [True, True]  # refused, then posted
    assert follow_ups(state) == []  # told: nothing of it is left to send


def test_a_page_refused_past_the_attempts_fails_until_retried(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state = State(tmp_path / "s.db")
    route = escalated(state, url)
    fake.script.extend(["pass", "error:not_in_channel"])
    route.deliver()
    page = unsent(state)
    state.update_delivery(FID, page["sink"], attempts=MAX_ATTEMPTS - 1, next_attempt_at=None)
    fake.script.append("error:not_in_channel")
    assert route.deliver().failed == 1
    assert unsent(state)["status"] == "failed"
    assert [(u["finding_id"], u["status"]) for u in state.undelivered(["slack"], 3)] == [(FID, "failed")]  # alerted
    before = len(fake.posts())
    assert route.deliver().errors == []
    assert len(fake.posts()) == before  # given up: not tried again
    assert state.retry_failed() == 1  # `findings retry` queues it again
    assert route.deliver().escalations == 1
    assert len(replies(fake, ESCALATED)) == 1
    assert len(pages(fake)) == 3  # refused twice, then posted


def test_a_page_whose_answer_was_lost_is_found_not_posted_again(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """Slack posts the escalated alert in #page but the answer never arrives: the next pass finds it in the
    channel's history by its metadata, and posts neither it nor the thread reply again."""
    fake, url = slack
    state = State(tmp_path / "s.db")
    route = escalated(state, url)
    fake.script.extend(["pass", "accept-drop"])
    assert route.deliver().escalations == 0
    again = route.deliver()
    assert (again.escalations, again.recovered, again.errors) == (1, 1, [])
    for _ in range(2):
        assert route.deliver().escalations == 0
    assert len(replies(fake, ESCALATED)) == 1
    assert len(fake.history["#page"]) == 1
    assert follow_ups(state) == []


def test_a_lost_resolution_reply_is_found_in_the_thread(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state = State(tmp_path / "s.db")
    route = sink(state, url, Clock())
    state.store_findings([finding(1)], ["slack"])
    route.deliver()
    state.resolve(FID, "a drill")
    fake.script.append("accept-drop")
    assert route.deliver().resolutions == 0
    assert (route.deliver().resolutions, route.deliver().resolutions) == (1, 0)
    assert len(replies(fake, "Resolved: a drill")) == 1


def lake_of(root: Path, *records: dict[str, Any]) -> None:
    Lake(str(root / "lake")).write(pa.Table.from_batches([normalize_batch(*records)]))


def test_sigkill_as_slack_gets_an_incident_escalation_never_posts_it_twice(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    """bob's denied StopLogging opens an incident; an hour later his sign-in without MFA and a key for eve raise
    it to critical. The process is killed the moment Slack receives "Incident escalated" in the incident's
    thread: the next run finds that reply by its metadata instead of posting it again."""
    fake, url = slack
    lake_of(tmp_path, *bobs_escalation())
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": url}

    def detect(since: str, until: str) -> list[str]:
        where = ["--lake", str(tmp_path / "lake"), "--state", str(tmp_path / "state.db")]
        return [sys.executable, "-m", "monitor.cli", "detect", *where, "--since", since, "--until", until, *ALERT]

    first = run(detect("2024-03-01T09:00:00Z", "2024-03-01T10:00:00Z"), env)
    assert first.code == 0, first.err
    later = detect("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z")
    proc = subprocess.Popen(later, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_at_the_escalation(body: dict[str, Any]) -> None:
        if str(body.get("text")).startswith("Incident escalated"):
            os.kill(proc.pid, signal.SIGKILL)

    fake.on_post = kill_at_the_escalation
    assert proc.wait(120) == -signal.SIGKILL
    fake.on_post = None
    again = run(later, env)
    no_traceback(again)
    assert again.code == 0, again.err
    assert len(replies(fake, "Incident escalated from medium to critical")) == 1
    assert "found already delivered" in again.err
    assert run(later, env).code == 0
    assert len(replies(fake, "Incident escalated")) == 1


def test_a_finding_that_cannot_be_rendered_fails_alone(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """A runbook template the configuration would refuse ({account}) fails the one finding it is filled for, as
    unsendable and reported; the other finding of the pass is posted."""
    fake, url = slack
    state = State(tmp_path / "s.db")
    route = sink(state, url, Clock())
    route.transport = SlackSink(
        route.transport.web,
        route.transport.channels,
        runbook="https://wiki.example.com/runbooks/{detector}#{account}",
        clock=route.transport.clock,
        sleep=route.transport.sleep,
    )
    state.store_findings([finding(1), replace(finding(2), detector="site/custom")], ["slack"])
    report = route.deliver()
    assert (report.sent, report.failed) == (1, 1)
    assert report.errors == [
        f"slack: finding {FID}: render: ValueError: runbook_url "
        "'https://wiki.example.com/runbooks/{detector}#{account}' cannot be filled: KeyError: 'account'"
    ]
    [delivery] = state.deliveries(FID)
    assert delivery["status"] == "failed"
    assert [p["metadata"]["event_payload"]["finding_id"] for p in fake.posts()] == [f"{2:032d}"]
