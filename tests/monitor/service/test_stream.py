"""Stream mode: notifications read as they arrive, each finding in Slack within seconds, exactly once."""

from __future__ import annotations

import json
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from tests.cloudtrail import console_login, iam_user
from tests.service import deliver, now_iso, posted_ids, service_setup, start, wait_for
from tests.slack_server import FakeSlack

OBJECTS = 10  # never more than a delivery pass posts one by one (slack.summary_over): each finding has its post


def test_stream_mode_posts_each_finding_within_seconds_of_its_notification_and_once(
    aws: str, tmp_path: Path, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    posted: dict[str, float] = {}  # user -> when its finding reached Slack

    def seen(body: dict[str, Any]) -> None:
        text = json.dumps(body)
        for user in (f"streamer-{n:02d}" for n in range(OBJECTS)):
            if user in text:
                posted.setdefault(user, time.monotonic())

    fake.on_post = seen
    setup = service_setup(tmp_path, url, 'mode = "stream"')  # every other setting at its default
    running = start(setup)
    sent: dict[str, float] = {}
    try:
        wait_for(lambda: any(e.get("msg") == "started" for e in running.logs), "the service to start")
        for n in range(OBJECTS):  # one console sign-in without MFA per object, each its own person and address
            user = f"streamer-{n:02d}"
            login = console_login(iam_user(user), time=now_iso(), sourceIPAddress=f"198.51.100.{n + 10}")
            sent[user] = time.monotonic()
            deliver(setup, user, login)
            time.sleep(1)
        wait_for(lambda: len(posted) == OBJECTS, "every sign-in's finding in Slack", timeout=120)
        latencies = sorted(posted[user] - sent[user] for user in sent)
        p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
        print(f"notification to Slack post, s: {[round(x, 2) for x in latencies]}; p95 {p95:.2f}")
        assert p95 < 30
        assert len(posted_ids(fake)) == len(set(posted_ids(fake))) == OBJECTS
        assert any(e.get("msg") == "started" and e.get("mode") == "stream" for e in running.logs)
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=60) == 0
    finally:
        running.proc.kill()
