"""`trailguard run` as a real process: SQS notifications and S3 objects in moto, alerts in the local Slack."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitor.ingest import from_uris
from monitor.lake import Lake
from monitor.state import State
from tests.cloudtrail import PROD, console_login, event, iam_user, root
from tests.lakes import service_config
from tests.slack_server import FakeSlack

BUCKET, QUEUE, ACCOUNT = "trail", "trail-notes", "123456789012"  # moto's default account
CHANNEL = "C0ALERTS"


@dataclass
class Running:
    """A `trailguard run` process with its JSON log lines collected as they come."""

    proc: subprocess.Popen[bytes]
    logs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                self.logs.append({"msg": "not json", "line": line.decode(errors="replace")})

    def port(self) -> int:
        wait_for(lambda: any(e.get("msg") == "listening" for e in self.logs), what="the listening log line")
        return int(next(e["port"] for e in self.logs if e.get("msg") == "listening"))

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port()}{path}", timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def setup(aws: str, tmp_path: Path, slack: tuple[FakeSlack, str]) -> dict[str, Any]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    config = service_config(
        tmp_path,
        [f"sqs://us-east-1/{ACCOUNT}/{QUEUE}"],
        "interval_seconds = 3\njitter_seconds = 0",
        f'[service]\nmetrics_port = 0\nwatch = ["{PROD}/us-east-1"]\n[slack]\nchannel = "{CHANNEL}"',
    )
    env = os.environ | {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": slack[1]}
    return {"s3": s3, "sqs": sqs, "url": url, "config": config, "env": env, "state": tmp_path / "state.db"}


def start(setup: dict[str, Any]) -> Running:
    command = [sys.executable, "-m", "monitor.cli", "--config", str(setup["config"]), "run"]
    return Running(subprocess.Popen(command, env=setup["env"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL))


def deliver(setup: dict[str, Any], name: str, *records: dict[str, Any]) -> None:
    """A CloudTrail object in the bucket and its S3 notification on the queue, like the real trail."""
    key = f"AWSLogs/{PROD}/CloudTrail/us-east-1/{datetime.now(UTC):%Y/%m/%d}/{PROD}_CloudTrail_{name}.json.gz"
    setup["s3"].put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
    body = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}
    setup["sqs"].send_message(QueueUrl=setup["url"], MessageBody=json.dumps(body))


def now_iso(minutes_ago: int = 1) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def posted_ids(fake: FakeSlack) -> list[str]:
    return [
        m["metadata"]["event_payload"]["finding_id"]
        for m in fake.history.get(CHANNEL, [])
        if m.get("metadata") and not m.get("thread_ts")
    ]


def metric(text: str, name: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(name)]
    assert lines, f"{name} not in /metrics"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_run_alerts_serves_health_and_metrics_and_stops_cleanly_on_sigterm(
    setup: dict[str, Any], slack: tuple[FakeSlack, str]
) -> None:
    fake = slack[0]
    running = start(setup)
    try:
        status, body = running.get("/healthz")
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
        wait_for(lambda: running.get("/healthz")[0] == 200, "healthy")
        status, body = running.get("/healthz")
        assert json.loads(body) == {"status": "ok", "reasons": []}
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
    first = from_uris([str(trail)], lake, state, workers=1, commit_inputs=1, progress=lambda _: stop.set(), stop=stop)
    # the groups in flight (at most two per worker) were committed, the others never started
    assert 1 <= first.inputs <= 2
    assert first.events == first.inputs == len(state.objects())
    rest = from_uris([str(trail)], lake, state, workers=1)
    assert (rest.inputs, rest.events) == (4 - first.inputs, 4 - first.inputs)
    assert lake.read(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC)).num_rows == 4
