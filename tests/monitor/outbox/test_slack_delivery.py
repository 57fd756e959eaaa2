"""Delivery from the outbox through the real slack_sdk WebClient to a local Slack endpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detectors.core.registry import BUILTIN
from monitor.outbox.dispatcher import MAX_ATTEMPTS, Dispatcher, Outcome, Route
from monitor.outbox.finding import Finding
from monitor.outbox.sinks.slack import Channels, SlackSink
from monitor.outbox.sinks.slack_client import client
from monitor.outbox.sinks.slack_webhook import WebhookSink
from monitor.store.state import State
from tests.cloudtrail import stored_finding
from tests.lakes import demo_lake, detect_command
from tests.slack_server import FakeSlack, SlackRoute


def finding(n: int, severity: str = "high", events: int = 1) -> Finding:
    return stored_finding(
        finding_id=f"{n:032d}",
        severity=severity,
        summary=f"Root action {n}",
        event_ids=[f"e{n}-{i}" for i in range(events)],
        last_seen="2024-05-01T10:05:00.000000Z",
        user_agent="<!channel>",
    )


class Clock:
    """Injectable time: sleeping advances it, nothing really waits."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.now = datetime(2024, 5, 1, 12, tzinfo=UTC)
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        self.now += timedelta(seconds=seconds)


def sink(state: State, url: str, clock: Clock) -> SlackRoute:
    transport = SlackSink(
        client("xoxb-test", url, sleep=clock.sleep),
        Channels("#alerts", {"critical": "#page"}),
        guides={d.id: d.guide for d in BUILTIN},
        clock=lambda: clock.t,
        sleep=clock.sleep,
    )
    return SlackRoute(Dispatcher(state, lambda: clock.now), transport)


def drain(slack_sink: SlackRoute) -> Outcome:
    """Passes until nothing is due (a pass posts at most `max_posts`), their reports added up."""
    total = Outcome()
    while True:
        report = slack_sink.deliver()
        total.sent, total.summaries = total.sent + report.sent, total.summaries + report.summaries
        if not report.more:
            return total


def test_each_finding_posted_once_with_its_id_in_metadata(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1), finding(2, "critical")], ["slack"])
    report = sink(state, url, clock).deliver()
    assert report.sent == 2
    posts = fake.posts()
    assert [p["channel"] for p in posts] == ["#page", "#alerts"]  # the most severe first
    assert [p["metadata"]["event_payload"]["finding_id"] for p in posts] == [f"{2:032d}", f"{1:032d}"]
    assert all(p["unfurl_links"] is False and "&lt;!channel&gt;" in str(p["blocks"]) for p in posts)
    assert state.deliveries(f"{1:032d}")[0]["status"] == "sent"
    assert sink(state, url, clock).deliver().sent == 0
    assert len(fake.posts()) == 2


def test_rate_limit_is_retried_after_retry_after_without_duplicates(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, url = slack
    fake.script.extend(["429:7", "429:3"])
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1)], ["slack"])
    assert sink(state, url, clock).deliver().sent == 1
    assert 7.0 in clock.slept
    assert 3.0 in clock.slept
    assert len(fake.history["#alerts"]) == 1


def test_outage_of_many_cycles_loses_nothing(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1)], ["slack"])
    # a server error and a dropped connection may hide a post: never repeated, looked for in the history first
    fake.script.extend(["500", "error:invalid_auth", "drop"])
    for _ in range(3):
        report = sink(state, url, clock).deliver()
        assert report.sent == 0
        clock.now += timedelta(hours=2)  # past the backoff
    [delivery] = state.deliveries(f"{1:032d}")
    # the last failure was a dropped connection: it may have been posted, so history decides next time
    assert (delivery["status"], delivery["attempts"]) == ("posting", 3)
    assert sink(state, url, clock).deliver().sent == 1
    assert len(fake.history["#alerts"]) == 1


def test_backoff_holds_a_failed_delivery_until_due(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1)], ["slack"])
    fake.script.append("error:channel_not_found")
    sink(state, url, clock).deliver()
    assert sink(state, url, clock).deliver().sent == 0  # not due yet
    clock.now += timedelta(minutes=5)
    assert sink(state, url, clock).deliver().sent == 1


def test_crash_between_posted_and_recorded_is_closed_by_history(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1), finding(2)], ["slack"])
    # finding 1 reached Slack but the process died before recording it; finding 2 never reached it
    fake.answer(
        "chat.postMessage",
        {
            "channel": "#alerts",
            "text": "x",
            "metadata": {"event_type": "trailguard_finding", "event_payload": {"finding_id": f"{1:032d}"}},
        },
    )
    for n in (1, 2):
        state.update_delivery(f"{n:032d}", "slack", status="posting", channel="#alerts")
    report = sink(state, url, clock).deliver()
    assert (report.recovered, report.sent) == (1, 1)
    ids = [m["metadata"]["event_payload"]["finding_id"] for m in fake.history["#alerts"]]
    assert sorted(ids) == [f"{1:032d}", f"{2:032d}"]  # each exactly once


def test_repeats_become_thread_replies_and_a_counter(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1, events=1)], ["slack"])
    sink(state, url, clock).deliver()
    state.store_findings([finding(1, events=14)], ["slack"])
    report = sink(state, url, clock).deliver()
    assert (report.sent, report.replies) == (0, 1)
    [reply] = fake.posts(thread=True)
    assert reply["thread_ts"] == fake.history["#alerts"][0]["ts"]
    assert reply["text"].startswith("13 more events")
    [update] = [b for m, b in fake.requests if m == "chat.update"]
    assert "seen 14 times" in str(update["blocks"])
    assert sink(state, url, clock).deliver().replies == 0


def test_posts_are_paced_per_channel(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    _, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(n) for n in range(3)], ["slack"])
    sink(state, url, clock).deliver()
    assert [round(s, 3) for s in clock.slept] == [1.0, 1.0]


def test_sigkill_between_post_and_record_never_posts_twice(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """The process is killed the moment Slack receives its first post; the next run finds that post
    in the channel history by its metadata instead of posting it again."""
    fake, url = slack
    demo_lake(tmp_path)
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": url}
    picked = ["--detector", "root-usage", "--detector", "access-key-created", "--post-each"]
    cmd = detect_command(tmp_path, "--alert", "--slack-channel", "#alerts", *picked)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake.on_post = lambda body: os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert len(fake.history["#alerts"]) == 1
    fake.on_post = None
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 found already delivered" in done.stderr
    ids = [m["metadata"]["event_payload"]["finding_id"] for m in fake.history["#alerts"]]
    assert len(ids) == 3
    assert len(set(ids)) == 3  # every finding exactly once


def test_retry_and_resolve_commands(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1), finding(2)], ["slack"])
    fake.script.extend(["error:channel_not_found"] * 2)
    for fid in (f"{1:032d}", f"{2:032d}"):
        state.update_delivery(fid, "slack", attempts=7)  # one more failure and they give up
    sink(state, url, clock).deliver()
    assert [d["status"] for f in (1, 2) for d in state.deliveries(f"{f:032d}")] == ["failed", "failed"]
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": url}
    base = [sys.executable, "-m", "monitor.cli", "findings"]
    retried = subprocess.run(
        [*base, "retry", f"{1:032d}", "--state", str(tmp_path / "s.db")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 failed deliveries queued again" in retried.stderr
    assert sink(state, url, clock).deliver().sent == 1
    resolved = subprocess.run(
        [*base, "resolve", f"{1:032d}", "--note", "expected <!here> drill", "--state", str(tmp_path / "s.db")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "note posted to the Slack thread" in resolved.stderr
    [reply] = fake.posts(thread=True)
    assert reply["text"] == "Resolved: expected &lt;!here&gt; drill"
    assert (State(tmp_path / "s.db").finding(f"{1:032d}") or {}).get("status") == "resolved"


def test_a_burst_becomes_one_summary_with_the_details_in_its_thread(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(n, "medium") for n in range(12)], ["slack"])
    report = drain(sink(state, url, clock))
    assert (report.summaries, report.sent) == (1, 12)
    top = fake.posts(thread=False)
    assert len(top) == 1
    assert top[0]["text"].startswith("12 new findings at once")
    details = fake.posts(thread=True)
    assert len(details) == 12
    assert {d["thread_ts"] for d in details} == {fake.history["#alerts"][0]["ts"]}
    assert all(d["metadata"]["event_payload"]["finding_id"] for d in details)


def test_a_critical_finding_is_its_own_message_and_the_lows_share_one_summary(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    health = [
        stored_finding(finding_id=f"{90 + n:032d}", detector="trailguard-health", severity="low") for n in range(5)
    ]
    state.store_findings([*health, *(finding(n, "low") for n in range(15)), finding(99, "critical")], ["slack"])
    drain(sink(state, url, clock))
    top = fake.posts(thread=False)
    heads = [p["text"].splitlines()[0] for p in top]
    assert heads[0].startswith("CRITICAL: ")
    assert heads[1:] == ["20 new findings at once."]
    assert top[0]["metadata"]["event_payload"]["finding_id"] == f"{99:032d}"
    lines = top[1]["text"].splitlines()[1:]
    assert lines == ["• 15 × low root-usage", "• 5 × low trailguard-health"]  # detections before the monitor's own
    assert len(fake.posts(thread=True)) == 20


def test_a_backfill_never_folds_a_high_finding_into_its_summary(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(0, "medium"), finding(1, "high")], ["slack"], batch="backfill-1")
    report = drain(sink(state, url, clock))
    assert (report.summaries, report.sent) == (1, 1)
    summary, alert = sorted(fake.posts(thread=False), key=lambda p: "metadata" in p and "finding_id" in str(p))
    assert summary["text"].startswith("1 new findings from a backfill.\n• 1 × medium")
    assert alert["metadata"]["event_payload"]["finding_id"] == f"{1:032d}"


def test_findings_below_the_minimum_are_kept_back_until_they_grow_more_severe(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1, "info"), finding(2, "low")], ["slack"])
    low_floor = sink(state, url, clock)
    assert drain(low_floor).sent == 1
    assert state.deliveries(f"{1:032d}")[0]["status"] == "suppressed"
    assert [p["metadata"]["event_payload"]["finding_id"] for p in fake.posts()] == [f"{2:032d}"]
    state.store_findings([finding(1, "medium", events=3)], ["slack"])  # the same finding, worse now
    assert drain(low_floor).sent == 1
    assert fake.posts()[-1]["metadata"]["event_payload"]["finding_id"] == f"{1:032d}"
    high_floor = sink(state, url, clock)
    high_floor.floor = "high"
    state.store_findings([finding(3, "medium")], ["slack"])
    assert drain(high_floor).sent == 0
    assert state.deliveries(f"{3:032d}")[0]["rule"] == "below the sink's min_severity"


def test_webhook_minimal_mode_posts_and_retries(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    hook = url.replace("/api/", "/services/T000/B000/XXXX")
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1), finding(2)], ["slack-webhook"])
    fake.script.append("500")
    outbox = Dispatcher(state, lambda: clock.now)
    report = outbox.deliver(Route(WebhookSink(hook)))
    assert (report.sent, report.retrying) == (1, 1)
    clock.now += timedelta(hours=1)
    assert outbox.deliver(Route(WebhookSink(hook))).sent == 1
    posts = [b for m, b in fake.requests if m == "webhook"]
    assert len(posts) == 3
    assert all("&lt;!channel&gt;" in str(p["blocks"]) and "metadata" not in p for p in posts)


def test_routing_by_account_then_severity_then_default() -> None:
    routes = Channels("#sec", {"critical": "#page"}, {"444455556666": "#dev-sec"})
    assert routes.channel(finding(1, "critical")) == "#page"
    assert routes.channel(finding(1, "low")) == "#sec"
    assert routes.channel(replace(finding(1, "critical"), account_id="444455556666")) == "#dev-sec"


def test_a_backfill_posts_one_summary_unless_asked(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(n, "medium") for n in range(3)], ["slack"], batch="backfill-1")
    report = sink(state, url, clock).deliver()
    assert (report.summaries, report.sent) == (1, 0)
    [summary] = fake.posts()
    assert summary["text"].startswith("3 new findings from a backfill")
    summary_ts = fake.history["#alerts"][0]["ts"]
    assert {d["thread_ts"] for n in range(3) for d in state.deliveries(f"{n:032d}")} == {summary_ts}
    assert sink(state, url, clock).deliver().sent == 0  # recorded as delivered through the summary


def test_a_backfill_summary_is_posted_once_across_restarts(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """The summary reached Slack but its answer did not; the backfill is restarted and finds more: one summary,
    found by its metadata, with the new findings counted in it."""
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(n, "low") for n in range(3)], ["slack"], batch="backfill-1")
    fake.script.append("accept-drop")
    report = sink(state, url, clock).deliver()
    assert (report.summaries, len(fake.posts())) == (0, 1)
    state.store_findings([finding(n, "low") for n in range(3, 5)], ["slack"], batch="backfill-1")  # the restart's own
    report = sink(state, url, clock).deliver()
    assert (report.recovered, report.summaries, report.sent) == (1, 0, 0)
    assert len(fake.posts()) == 1
    [update] = [b for m, b in fake.requests if m == "chat.update"]
    assert update["text"].startswith("5 new findings from a backfill")
    assert {d["status"] for n in range(5) for d in state.deliveries(f"{n:032d}")} == {"sent"}


def test_crash_inside_a_burst_thread_is_recovered_from_the_thread(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(n, "medium") for n in range(12)], ["slack"])
    drain(sink(state, url, clock))
    thread = fake.history["#alerts"][0]["ts"]
    state.update_delivery(f"{5:032d}", "slack", status="posting")  # as if the record of its reply was lost
    report = sink(state, url, clock).deliver()
    assert (report.recovered, report.sent) == (1, 0)
    assert len(fake.posts(thread=True)) == 12
    assert state.deliveries(f"{5:032d}")[0]["thread_ts"] == thread


def test_a_backfill_summary_does_not_swallow_live_findings(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(0, "medium"), finding(1, "medium")], ["slack"], batch="backfill-1")
    state.store_findings([finding(2)], ["slack"])
    report = sink(state, url, clock).deliver()
    assert (report.summaries, report.sent) == (1, 1)
    assert [p["metadata"]["event_payload"]["finding_id"] for p in fake.posts() if "finding_id" in str(p)] == [
        f"{2:032d}"
    ]


def test_a_post_slack_accepted_whose_answer_was_lost_is_not_sent_again(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    """The connection drops after Slack posted: slack_sdk's connection retry must not repeat the post; the
    next pass finds it in the channel history."""
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1)], ["slack"])
    fake.script.append("accept-drop")
    report = sink(state, url, clock).deliver()
    assert report.sent == 0
    assert len(fake.posts()) == 1
    assert state.deliveries(f"{1:032d}")[0]["status"] == "posting"
    report = sink(state, url, clock).deliver()
    assert (report.recovered, report.sent) == (1, 0)
    assert len(fake.posts()) == 1
    assert len(fake.history["#alerts"]) == 1


def nobody_listening() -> str:
    """A Slack API address where nothing listens: every connection is refused."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}/api/"


def test_a_refused_connection_is_retried_at_once(tmp_path: Path) -> None:
    """Nothing listens: the post never left, so it is safe to repeat (and it fails, definitely, to pending)."""
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1)], ["slack"])
    report = sink(state, nobody_listening(), clock).deliver()
    assert report.sent == 0
    assert len(clock.slept) == 2  # the connection retry handler's two waits


def test_the_most_severe_go_first_and_a_pass_yields_to_new_ones(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """A backlog of low findings is posted a pass at a time; a critical stored meanwhile goes first in the next."""
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    lows = [replace(finding(n, "low"), account_id=f"{n:012d}") for n in range(8)]
    state.store_findings(lows, ["slack"])
    slack_sink = sink(state, url, clock)
    slack_sink.max_posts, slack_sink.burst = 3, 100
    assert slack_sink.deliver().more
    state.store_findings([finding(99, "critical")], ["slack"])
    while slack_sink.deliver().more:
        pass
    order = [p["metadata"]["event_payload"]["finding_id"] for p in fake.posts()]
    assert len(order) == 9
    assert order[3] == f"{99:032d}"


def test_hostile_text_too_long_once_escaped_still_posts(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([replace(finding(1), summary="<" * 5000, principal="&" * 5000)], ["slack"])
    assert sink(state, url, clock).deliver().sent == 1
    assert "&lt;" * 100 in str(fake.posts()[0]["blocks"])


def test_a_finding_that_grows_more_severe_is_escalated_once(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """Denials that cross a threshold in a later cycle: the thread hears of it, and the channel of the new
    severity gets the alert."""
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1, "low")], ["slack"])
    assert sink(state, url, clock).deliver().sent == 1
    state.store_findings([finding(1, "critical", events=5)], ["slack"])  # the same finding, worse now
    report = sink(state, url, clock).deliver()
    assert (report.escalations, report.errors) == (1, [])
    top = fake.posts(thread=False)
    assert [p["channel"] for p in top] == ["#alerts", "#page"]
    assert top[1]["text"].startswith("Escalated from low to critical: CRITICAL")
    assert any(p["text"] == "Escalated from low to critical" for p in fake.posts(thread=True))
    assert sink(state, url, clock).deliver().escalations == 0  # once
    state.store_findings([finding(1, "medium")], ["slack"])  # less severe later: the worst stays, nothing new
    assert sink(state, url, clock).deliver().escalations == 0
    assert len(fake.posts(thread=False)) == 2


def posted_then_unreachable(slack: tuple[FakeSlack, str], tmp_path: Path, answer: str) -> tuple[State, Clock, str]:
    """A finding whose post got `answer` (its outcome unknown: `posting`), and the address of a Slack gone since."""
    fake, url = slack
    state, clock = State(tmp_path / "s.db"), Clock()
    state.store_findings([finding(1)], ["slack"])
    fake.script.append(answer)
    sink(state, url, clock).deliver()
    return state, clock, nobody_listening()


def test_a_post_slack_cannot_be_asked_about_becomes_undelivered_and_is_still_found(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    """Slack takes the post, the answer is lost, then Slack cannot be reached to ask whether it arrived: each
    failed lookup is an attempt, due again later, so that after three the delivery counts as undelivered (the
    watchdog's alert) instead of waiting unseen; when Slack answers again the post is found, not repeated."""
    fake, url = slack
    state, clock, down = posted_then_unreachable(slack, tmp_path, "accept-drop")
    assert sink(state, down, clock).deliver().errors
    assert sink(state, down, clock).deliver().errors == []  # not due again yet: no request at all
    clock.now += timedelta(hours=2)
    sink(state, down, clock).deliver()
    [delivery] = state.deliveries(f"{1:032d}")
    assert (delivery["status"], delivery["attempts"]) == ("posting", 3)
    assert [d["finding_id"] for d in state.undelivered(["slack"], 3)] == [f"{1:032d}"]
    clock.now += timedelta(hours=2)
    report = sink(state, url, clock).deliver()
    assert (report.recovered, report.sent) == (1, 0)
    assert len(fake.posts()) == 1


def test_a_slack_that_stays_unreachable_fails_the_delivery_for_findings_retry(
    slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    state, clock, down = posted_then_unreachable(slack, tmp_path, "drop")
    for _ in range(MAX_ATTEMPTS):
        sink(state, down, clock).deliver()
        clock.now += timedelta(hours=2)
    [delivery] = state.deliveries(f"{1:032d}")
    assert (delivery["status"], delivery["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert delivery["error"].startswith("lookup: ")
