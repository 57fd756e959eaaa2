"""`trailguard run` as a real process: SQS notifications and S3 objects in moto, alerts in the local Slack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.ingest.run import Options, from_uris
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import PROD, console_login, event, iam_user, root
from tests.lakes import service_config
from tests.service import deliver, metric, now_iso, posted_ids, start, wait_for
from tests.slack_server import FakeSlack


def healthy(answer: tuple[int, bytes]) -> bool:
    """200 and "ok"; or "degraded" only because this machine was too loaded for a 3-second schedule (a skipped
    cycle), which the test does not control and does not test."""
    status, body = answer
    health = json.loads(body)
    loaded = health["status"] == "degraded" and all("a scheduled cycle was skipped" in r for r in health["reasons"])
    return status == 200 and (health == {"status": "ok", "reasons": []} or loaded)


def test_run_alerts_serves_health_and_metrics_and_stops_cleanly_on_sigterm(
    setup: dict[str, Any], slack: tuple[FakeSlack, str]
) -> None:
    fake = slack[0]
    running = start(setup)
    try:
        status, _ = running.get("/healthz")
        assert status in (200, 503)  # before the first cycle completes it may still be starting
        deliver(setup, "root", console_login(root(), time=now_iso()))
        wait_for(lambda: len(posted_ids(fake)) == 2, "the root login alerts (root usage, no MFA)")
        deliver(
            setup,
            "key",
            event(
                "CreateAccessKey",
                "iam.amazonaws.com",
                iam_user("alice"),
                time=now_iso(),
                requestParameters={"userName": "bob"},
            ),
        )
        wait_for(lambda: len(posted_ids(fake)) == 3, "the access key alert")
        answers: list[tuple[int, bytes]] = []

        def answered_healthy() -> bool:
            answers.append(running.get("/healthz"))
            return healthy(answers[-1])

        try:
            wait_for(answered_healthy, "healthy, in one answer")
        except AssertionError as exc:  # say what the service answered last, not only that it never was healthy
            raise AssertionError(f"{exc}; the last answer: {answers[-1:]}") from None
        status, metrics = running.get("/metrics")
        text = metrics.decode()
        assert status == 200
        assert metric(text, "trailguard_events_ingested_total") == 2
        assert metric(text, "trailguard_objects_processed_total") == 2
        assert metric(text, 'trailguard_alerts{sink="slack",status="sent"}') == 3
        assert metric(text, 'trailguard_findings{detector="root-usage"') >= 1
        assert metric(text, f'trailguard_ingestion_lag_seconds{{account="{PROD}",region="us-east-1"}}') > 0
        assert metric(text, "trailguard_cycle_duration_seconds_count") >= 1
        assert status == 200
        assert running.get("/nope")[0] == 404
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=60) == 0
    finally:
        running.proc.kill()
    messages = [e.get("msg") for e in running.logs]
    assert "stopping" in messages
    assert messages[-1] == "stopped"
    assert not [e for e in running.logs if e.get("level") == "error"]
    assert "xoxb-test-token" not in json.dumps(running.logs)
    assert len(posted_ids(fake)) == len(set(posted_ids(fake))) == 3


def test_sigkill_while_slack_receives_a_post_then_restart_alerts_exactly_once(
    setup: dict[str, Any], slack: tuple[FakeSlack, str]
) -> None:
    fake = slack[0]
    first = start(setup)
    try:
        fake.on_post = lambda body: os.kill(first.proc.pid, signal.SIGKILL)
        deliver(
            setup,
            "story",
            console_login(root(), time=now_iso(3)),
            event(
                "CreateAccessKey",
                "iam.amazonaws.com",
                iam_user("alice"),
                time=now_iso(2),
                requestParameters={"userName": "bob"},
            ),
        )
        assert first.proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        first.proc.kill()
    assert len(posted_ids(fake)) == 1  # Slack has the message; the process died before it heard back
    fake.on_post = None
    second = start(setup)
    try:
        wait_for(lambda: len(posted_ids(fake)) >= 3, "the other alerts after the restart")
        time.sleep(3)  # a few more cycles: nothing is posted again
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=60) == 0
    state = State(setup["state"])
    stored = {f["finding_id"] for f in state.list_findings()}
    assert sorted(posted_ids(fake)) == sorted(stored)
    assert len(posted_ids(fake)) == 3
    assert all(d["status"] == "sent" for fid in stored for d in state.deliveries(fid) if d["sink"] == "slack")


def test_a_stop_lets_the_group_in_flight_commit_and_starts_nothing_new(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    for n in range(4):
        records = [event("ListBuckets", "s3.amazonaws.com", iam_user(), time=now_iso(n + 1))]
        (trail / f"{n}.json").write_text(json.dumps({"Records": records}))
    lake, state, stop = Lake(str(tmp_path / "lake")), State(tmp_path / "state.db"), threading.Event()
    first = from_uris(
        [str(trail)], lake, state, options=Options(1, commit_inputs=1, progress=lambda _: stop.set(), stop=stop)
    )
    # the groups in flight (at most two per worker) were committed, the others never started
    assert 1 <= first.inputs <= 2
    assert first.events == first.inputs == len(state.objects())
    rest = from_uris([str(trail)], lake, state, options=Options(workers=1))
    assert (rest.inputs, rest.events) == (4 - first.inputs, 4 - first.inputs)
    assert lake.read(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC)).num_rows == 4


@pytest.mark.parametrize("token", [None, "   \n"], ids=["unset", "blank"])
def test_run_without_the_sinks_secrets_exits_2_before_scheduling_anything(tmp_path: Path, token: str | None) -> None:
    """A token of only blanks (a variable set from an empty secret) is no token either."""
    config = service_config(tmp_path, [str(tmp_path / "trail")], "", '[slack]\nchannel = "C0ALERTS"\nwebhook = true')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")} | {"SLACK_WEBHOOK_URL": "ftp://x"}
    env |= {"SLACK_BOT_TOKEN": token} if token else {}
    command = [sys.executable, "-m", "monitor.cli", "--config", str(config), "run"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: configuration: slack: no bot token: set SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_FILE",
        "error: configuration: slack: SLACK_WEBHOOK_URL is not an http(s) URL",
    ]
    assert not (tmp_path / "lake").exists()
    assert not (tmp_path / "state.db").exists()
