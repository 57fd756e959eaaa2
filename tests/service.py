"""`trailguard run` as a real process for the tests: SQS notifications and S3 objects in moto, alerts in the
local Slack, JSON log lines collected as they come."""

from __future__ import annotations

import gzip
import json
import os
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

from tests.cloudtrail import PROD
from tests.lakes import service_config
from tests.slack_server import FakeSlack

BUCKET, QUEUE, ACCOUNT = "trail", "trail-notes", "123456789012"  # moto's default account
CHANNEL = "C0ALERTS"


def service_setup(
    root: Path, slack_url: str, schedule: str = "interval_seconds = 3\njitter_seconds = 0"
) -> dict[str, Any]:
    """A bucket, its notification queue, and a configuration that reads them (every 3 s unless `schedule` says
    otherwise) and alerts in Slack."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    config = service_config(
        root,
        [f"sqs://us-east-1/{ACCOUNT}/{QUEUE}"],
        schedule,
        f'[service]\nmetrics_port = 0\nwatch = ["{PROD}/us-east-1"]\n[slack]\nchannel = "{CHANNEL}"',
    )
    env = os.environ | {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": slack_url}
    return {"s3": s3, "sqs": sqs, "url": url, "config": config, "env": env, "state": root / "state.db"}


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
    """Every finding posted to the channel: as its own message, or as a reply in its incident's thread."""
    return [
        m["metadata"]["event_payload"]["finding_id"]
        for m in fake.history.get(CHANNEL, [])
        if (m.get("metadata") or {}).get("event_type") == "trailguard_finding"
    ]


def metric(text: str, name: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(name)]
    assert lines, f"{name} not in /metrics"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)
