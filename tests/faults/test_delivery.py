"""Exactly once to Slack, and never at ingestion's expense: each fault through the real commands and service."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from monitor.outbox.sinks.slack import SUMMARY_EVENT
from monitor.outbox.sinks.slack_message import METADATA_EVENT
from monitor.store.state import State
from tests.cloudtrail import assumed_role, console_login, event, root
from tests.faults.conftest import no_traceback, run, wait_until
from tests.lakes import demo_lake, detect_command
from tests.service import CHANNEL, Running, deliver, now_iso, start
from tests.slack_server import FakeSlack

PICKED = ["--detector", "root-usage", "--detector", "access-key-created"]


def env(url: str) -> dict[str, str]:
    return {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": url}


def finding_posts(fake: FakeSlack, channel: str = CHANNEL) -> Counter[str]:
    """How many times each finding was posted to the channel, top level or in a thread."""
    return Counter(
        m["metadata"]["event_payload"]["finding_id"]
        for m in fake.history.get(channel, [])
        if (m.get("metadata") or {}).get("event_type") == METADATA_EVENT
    )


def test_a_post_slack_took_whose_answer_was_lost_is_found_not_repeated(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    """The connection drops after Slack posted the first alert, and the channel gets busy: the next run pages
    through 450 newer messages to find it, and posts nothing twice."""
    fake, url = slack
    demo_lake(tmp_path)
    command = detect_command(tmp_path, "--alert", "--slack-channel", CHANNEL, "--post-each", *PICKED)
    fake.script.append("accept-drop")
    first = run(command, env(url))
    no_traceback(first)
    assert first.code == 2
    assert any("outcome unknown" in line for line in first.errors)
    for n in range(450):
        fake.answer("chat.postMessage", {"channel": CHANNEL, "text": f"chatter {n}"})
    second = run(command, env(url))
    assert second.code == 0, second.err
    assert "1 found already delivered" in second.err
    posts = finding_posts(fake)
    assert len(posts) == 3
    assert set(posts.values()) == {1}
    assert len([b for m, b in fake.requests if m == "conversations.history"]) >= 3  # page after page


def test_two_deliverers_never_post_the_same_finding(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    demo_lake(tmp_path)
    command = detect_command(tmp_path, "--alert", "--slack-channel", CHANNEL, "--post-each", *PICKED)
    release, blocked = threading.Event(), threading.Event()

    def hold(body: dict[str, Any]) -> None:  # the first deliverer waits inside its first post
        blocked.set()
        release.wait(20)

    fake.on_post = hold
    first = subprocess.Popen(command, env=env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(blocked.is_set, "the first deliverer's first post")
        fake.on_post = None
        second = run(command, env(url))
        no_traceback(second)
        assert second.code == 2
        assert second.errors == [
            f"error: {tmp_path / 'state.db'}: TrailGuard process {first.pid} (" + second.errors[0].split(" (", 1)[1]
        ]
        assert "delivers from this state file" in second.errors[0]
    finally:
        release.set()
        first.wait(120)
    assert first.returncode == 0
    posts = finding_posts(fake)
    assert len(posts) == 3
    assert set(posts.values()) == {1}


def test_a_backfill_summary_is_posted_once_across_a_sigkill(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """The demo day is long past: a backfill, summarized, with its high and critical findings each posted on
    its own. Killed the moment Slack gets its summary, then run again: still one summary, every finding
    below high delivered through it, and each of the others posted once."""
    fake, url = slack
    demo_lake(tmp_path)
    command = detect_command(tmp_path, "--alert", "--slack-channel", CHANNEL)
    proc = subprocess.Popen(command, env=env(url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_at_the_summary(body: dict[str, Any]) -> None:
        if SUMMARY_EVENT in str(body.get("metadata")):
            os.kill(proc.pid, signal.SIGKILL)

    fake.on_post = kill_at_the_summary
    proc.wait(120)
    fake.on_post = None
    assert proc.returncode == -signal.SIGKILL
    again = run(command, env(url))
    assert again.code == 0, again.err
    summaries = [m for m in fake.history[CHANNEL] if (m.get("metadata") or {}).get("event_type") == SUMMARY_EVENT]
    assert len(summaries) == 1
    state = State(tmp_path / "state.db")
    slack_deliveries = {
        f["finding_id"]: (f["severity"], d["status"], d["thread_ts"])
        for f in state.list_findings()
        for d in state.deliveries(f["finding_id"])
        if d["sink"] == "slack"
    }
    alone = {fid for fid, (severity, _, _) in slack_deliveries.items() if severity in ("high", "critical")}
    assert alone
    assert len(alone) < len(slack_deliveries)
    assert {slack_deliveries[fid][1:] for fid in alone} == {("sent", None)}
    assert {v[1:] for fid, v in slack_deliveries.items() if fid not in alone} == {("sent", summaries[0]["ts"])}
    assert finding_posts(fake) == dict.fromkeys(alone, 1)  # top level, once each; the others only counted


def denied(role: str) -> dict[str, Any]:
    return event(
        "DescribeInstances",
        "ec2.amazonaws.com",
        assumed_role(role),
        time=now_iso(2),
        errorCode="Client.UnauthorizedOperation",
        errorMessage="You are not authorized to perform this operation.",
    )


def test_delivery_never_holds_up_ingestion_and_the_most_severe_goes_first(
    setup: dict[str, Any], slack: tuple[FakeSlack, str]
) -> None:
    """Slack hangs on the first of twenty low alerts; meanwhile a root sign-in is ingested and detected all the
    same, and once Slack answers again its critical alert goes ahead of the lows still waiting."""
    fake = slack[0]
    release, blocked = threading.Event(), threading.Event()

    def hang_once(body: dict[str, Any]) -> None:
        if not blocked.is_set():
            blocked.set()
            release.wait(25)

    fake.on_post = hang_once
    running: Running = start(setup)
    try:
        deliver(setup, "lows", *[denied(f"worker-{n}") for n in range(20)])
        wait_until(blocked.is_set, "delivery of the lows to start")
        deliver(setup, "root", console_login_now())
        state = setup["state"]

        def root_detected() -> bool:
            return any(f["detector"] == "root-usage" for f in State(state, create=False).list_findings())

        wait_until(root_detected, "the root sign-in to be ingested and detected while Slack hangs", timeout=20)
        assert not release.is_set()
        release.set()
        wait_until(lambda: len(finding_posts(fake)) == 22, "every alert")
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=60) == 0
    finally:
        release.set()
        running.proc.kill()
    order = [
        m["metadata"]["event_payload"]["finding_id"]
        for m in fake.history[CHANNEL]
        if (m.get("metadata") or {}).get("event_type") == METADATA_EVENT
    ]
    severity = {f["finding_id"]: f["severity"] for f in State(setup["state"]).list_findings()}
    lows = [n for n, fid in enumerate(order) if severity[fid] == "low"]
    critical = order.index(next(fid for fid in order if severity[fid] == "critical"))
    assert critical < lows[-1]  # it did not wait behind the whole backlog
    assert len(order) == len(set(order)) == 22


def console_login_now() -> dict[str, Any]:
    return console_login(root(), time=now_iso(1))
