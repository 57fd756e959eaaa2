"""`trailguard demo` (what `make demo` runs): the story's findings through the real pipeline."""

import os
import subprocess
import sys
from pathlib import Path

import orjson

from monitor.config import load
from monitor.demo import run as demo
from tests.slack_server import FakeSlack


def test_demo_shows_the_story_and_writes_the_slack_messages(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo", "--dir", str(root), "--events", "3000"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    for expected in (
        "root-usage",
        "console-login-without-mfa",
        "root-key",
        "other-user",
        "external-account",
        "unauthorized-api-calls",
        "StopLogging (failed: AccessDenied)",
    ):
        assert expected in done.stdout
    assert "first-seen" not in done.stdout  # the nightly deploy pipeline is in last week's baseline
    assert "-> 333333333333 (shared-services)" in done.stdout
    lake, state = (root / "lake").resolve(), (root / "state.db").resolve()
    assert f"Investigate in Jupyter: trailguard notebooks --lake {lake} --state {state}" in done.stdout
    messages = [orjson.loads(line) for line in (root / "slack-messages.jsonl").read_bytes().splitlines()]
    assert len(messages) == 7
    assert all(m["metadata"]["event_type"] == "trailguard_finding" and m["unfurl_links"] is False for m in messages)
    assert list((root / "lake" / "events").glob("date=2024-03-01/*.parquet"))
    again = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo", "--dir", str(root), "--events", "3000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0
    assert again.stdout.count("finding ") == done.stdout.count("finding ")  # recreated, not accumulated


def test_demo_posts_for_real_when_a_channel_and_token_are_set(tmp_path: Path, slack_env: FakeSlack) -> None:
    fake = slack_env
    cfg = load(None, env={"TRAILGUARD__SLACK__CHANNEL": "C0DEMO"})
    done = demo.run(tmp_path / "demo", 3000, cfg)
    written = [orjson.loads(line) for line in done.slack_file.read_bytes().splitlines()]
    assert done.posted is not None
    assert done.posted.errors == []
    assert len(fake.posts()) == len(written) == 7
    assert {p["channel"] for p in fake.posts()} == {m["channel"] for m in written} == {"C0DEMO"}
    assert sorted(p["text"] for p in fake.posts()) == sorted(m["text"] for m in written)
