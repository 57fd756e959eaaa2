"""`trailguard check`: configuration, identity, each source's permissions, Slack access, the IAM policy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from monitor.cli.main import main
from monitor.config import load
from monitor.demo.generator import generate_trail
from monitor.ingest.sources.permissions import policies
from monitor.ingest.sources.settings import parse as source
from tests.slack_server import FakeSlack

ROOT = Path(__file__).resolve().parents[3]


def policy_documents(text: str) -> dict[str, dict[str, object]]:
    """The printed policies by the comment line naming each."""
    parts = re.split(r"^// least-privilege policy for (.+)$", text, flags=re.MULTILINE)[1:]
    return {who: json.loads(body) for who, body in zip(parts[::2], parts[1::2], strict=True)}


def test_check_tries_every_source_and_channel(
    aws: str, tmp_path: Path, slack_env: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    slack_env.channels["C0ALERTS"] = "security-alerts"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="trail")
    s3.put_object(Bucket="trail", Key="AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/a.json.gz", Body=b"x")
    boto3.client("sqs").create_queue(QueueName="notes")
    config = tmp_path / "tg.toml"
    config.write_text(
        f"""
sources = ["s3://trail", "sqs://us-east-1/123456789012/notes", "s3://missing-bucket", "{tmp_path / "nowhere"}"]
lake.uri = "{tmp_path / "lake"}"
state.path = "{tmp_path / "state.db"}"
[slack]
channel = "C0ALERTS"
severity_channels = {{ critical = "C0UNKNOWN" }}
"""
    )
    assert main(["--config", str(config), "check"]) == 2
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("ok ", "FAIL "))]
    assert lines == [
        f"ok configuration: 4 sources, lake {tmp_path / 'lake'}, state {tmp_path / 'state.db'}",
        "ok organization: not configured (inventory.organizations), so the accounts that deliver events are taken "
        "as its accounts, none yet: the first cycle learns them",
        "ok AWS identity: arn:aws:sts::123456789012:user/moto (not in detection.monitor_role_arns: its denied "
        "calls would raise findings like anyone's)",
        "ok source s3://trail: listed s3://trail/AWSLogs/ and read "
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/a.json.gz",
        "ok source sqs://us-east-1/123456789012/notes: queue "
        f"{aws}/123456789012/notes found (messages are not received by the check)",
        "FAIL source s3://missing-bucket: NoSuchBucket",
        f"FAIL source {tmp_path / 'nowhere'}: FileNotFoundError: {tmp_path / 'nowhere'}: no such file or directory",
        f"ok lake: {tmp_path / 'lake'} is writable",
        "ok slack token: bot trailguard in Acme",
        "ok slack channel C0ALERTS (#security-alerts)",
        "FAIL slack channel C0UNKNOWN: channel_not_found (use the channel id; invite the bot)",
    ]
    assert "trail/AWSLogs" in out
    assert "xoxb" not in out
    assert [m for m, _ in slack_env.requests] == ["auth.test", "conversations.info", "conversations.info"]


def test_offline_check_of_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "deploy" / "trailguard.toml"), "check", "--offline"]) == 0
    out = capsys.readouterr().out
    documents = policy_documents(out)
    assert list(documents) == ["TrailGuard's own role", "the read role arn:aws:iam::444455556666:role/trailguard-read"]
    read = documents["the read role arn:aws:iam::444455556666:role/trailguard-read"]["Statement"]
    assert isinstance(read, list)
    assert {s["Sid"]: s["Resource"] for s in read}["ReadIamUserCredentials"] == "arn:aws:iam::444455556666:user/*"
    own = documents["TrailGuard's own role"]["Statement"]
    assert isinstance(own, list)
    assert {s["Sid"]: s["Resource"] for s in own} == {
        "ListOrganizationAccounts": "*",  # ListAccounts has no resource-level permissions
        "ConsumeTrailNotifications": "arn:aws:sqs:us-east-1:111122223333:trailguard-cloudtrail",
        "ReadTrailLogs": "arn:aws:s3:::example-org-cloudtrail/AWSLogs/*",
        "DecryptTrailLogs": "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000",
        "AssumeReadRoles": ["arn:aws:iam::444455556666:role/trailguard-read"],
    }


def test_policy_names_every_resource_and_splits_by_role() -> None:
    found = policies(
        [
            source("s3://org-trail/prefix?accounts=111122223333"),
            source("s3://org-trail/prefix?role_arn=arn:aws:iam::444455556666:role/read"),
            source("lookup://us-east-1,eu-west-1", role_arn="arn:aws:iam::444455556666:role/read"),
            source("/var/trail"),
        ]
    )
    own, read = found["monitor"]["Statement"], found["arn:aws:iam::444455556666:role/read"]["Statement"]
    assert own[0] == {
        "Sid": "ListTrailLogs",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::org-trail",
        "Condition": {"StringLike": {"s3:prefix": ["prefix/AWSLogs/", "prefix/AWSLogs/*"]}},
    }
    assert own[-1]["Action"] == "sts:AssumeRole"
    assert own[-1]["Resource"] == ["arn:aws:iam::444455556666:role/read"]
    assert [s["Sid"] for s in read] == ["ListTrailLogs", "ReadTrailLogs", "LookupEvents"]
    wildcards = [
        s
        for doc in found.values()
        for s in doc["Statement"]
        if "*" in json.dumps(s["Resource"]) and not s["Resource"].endswith("/*")
    ]
    assert [s["Sid"] for s in wildcards] == ["LookupEvents"]  # no resource-level permissions exist for it
    assert read[-1]["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}}
    with_inventory = policies([source("s3://org-trail")], organizations=True)["monitor"]["Statement"]
    assert with_inventory[0] == {
        "Sid": "ListOrganizationAccounts",
        "Effect": "Allow",
        "Action": "organizations:ListAccounts",
        "Resource": "*",
    }


def test_example_config_loads_and_the_docs_show_it() -> None:
    example = (ROOT / "deploy" / "trailguard.toml").read_text()
    cfg = load(ROOT / "deploy" / "trailguard.toml", env={})
    assert cfg.schedule.interval_seconds == 300
    assert cfg.lake == "/var/lib/trailguard/lake"
    assert example.strip() in (ROOT / "docs" / "configuration.md").read_text()


def test_check_warns_when_run_would_not_find_or_detect_a_sources_data(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old local files are ingested but not detected by a cycle, and a bucket with nothing for today or
    yesterday gives a cycle nothing: check says so (and still passes: nothing is broken)."""
    generate_trail(tmp_path / "old", 600, per_object=300)  # 2024-03-01
    generate_trail(tmp_path / "new", 600, per_object=300, day=datetime.now(UTC) - timedelta(hours=1))
    boto3.client("s3").create_bucket(Bucket="quiet-trail")
    config = tmp_path / "tg.toml"
    sources = [str(tmp_path / "old"), str(tmp_path / "new"), "s3://quiet-trail"]
    config.write_text(f"sources = {json.dumps(sources)}\nlake.uri = '{tmp_path / 'lake'}'\nstate.path = 'x.db'\n")
    assert main(["--config", str(config), "check"]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("WARN ")]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"WARN source {tmp_path / 'old'}: its newest file is from 2024-03-01 ")
    assert warnings[0].endswith("detect it with trailguard detect --since 2024-03-01")
    assert warnings[1].startswith("WARN source s3://quiet-trail: no objects for ")


def test_a_configuration_of_local_folders_is_checked_without_aws_credentials(tmp_path: Path) -> None:
    """Local sources and a local lake call no AWS API: `check` asks for no identity, so it passes on a laptop
    without credentials (the configuration `demo --live` leaves)."""
    generate_trail(tmp_path / "trail", 200, per_object=100, day=datetime.now(UTC) - timedelta(hours=1))
    config = tmp_path / "tg.toml"
    config.write_text(
        f"sources = [{json.dumps(str(tmp_path / 'trail'))}]\nlake.uri = '{tmp_path / 'lake'}'\n"
        f"state.path = '{tmp_path / 'x.db'}'\n"
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {**keep, "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null"}
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "--config", str(config), "check"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "AWS identity" not in done.stdout
