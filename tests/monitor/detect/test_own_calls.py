"""TrailGuard's own calls, the `check` probes among them, never raise findings: every role the
configuration makes it use is its own, and `check` says whether the identity in use is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from detectors.core.base import Context
from detectors.core.registry import BUILTIN
from monitor.cli.main import main
from monitor.config import Config, load
from monitor.detect.detection import run_detectors
from monitor.service.inventory import load as load_inventory
from tests.cloudtrail import assumed_role, event, normalize

MONITOR, MEMBER = "111122223333", "444455556666"
CONFIG = f"""
[[sources]]
uri = "s3://org-trail"
role_arn = "arn:aws:iam::{MONITOR}:role/trailguard-s3-read"
[[sources]]
uri = "lookup://us-east-1?role_arn=arn:aws:iam::{MEMBER}:role/trailguard-lookup"
[inventory]
organizations = true
role_arn = "arn:aws:iam::{MONITOR}:role/trailguard-org-read"
[hygiene]
enabled = true
accounts = ["{MEMBER}"]
role_arn = "arn:aws:iam::{{account}}:role/trailguard-iam-read"
[detection]
monitor_role_arns = ["arn:aws:iam::{MONITOR}:role/trailguard"]
"""
DENIED = {"errorCode": "AccessDenied", "errorMessage": "not authorized"}


def probes(role: str, account: str) -> list[dict[str, Any]]:
    """What `check` and the sources call through a role, every call denied (a missing permission)."""
    who = assumed_role(role, "trailguard", account=account)
    assume = {"roleArn": f"arn:aws:iam::{account}:role/{role}", "roleSessionName": "trailguard"}
    monitor = assumed_role("trailguard", "s", account=MONITOR)
    return [
        event("ListObjects", "s3.amazonaws.com", who, **DENIED),
        event("GetQueueUrl", "sqs.amazonaws.com", who, **DENIED),
        event("LookupEvents", "cloudtrail.amazonaws.com", who, errorCode="AccessDeniedException"),
        event("ListAccounts", "organizations.amazonaws.com", who, errorCode="AccessDeniedException"),
        event("GetCredentialReport", "iam.amazonaws.com", who, **DENIED),
        event("StopLogging", "cloudtrail.amazonaws.com", who, **DENIED),  # even a write, were one ever made
        # the monitor's own role assuming the read role, denied: the caller's and the owner's copies
        *(
            event("AssumeRole", "sts.amazonaws.com", monitor, account=copy, requestParameters=assume, **DENIED)
            for copy in (MONITOR, account)
        ),
    ]


def found(cfg: Config, records: list[dict[str, Any]]) -> list[str]:
    ctx = Context(load_inventory(cfg).settings(cfg.detection))
    findings, errors = run_detectors(normalize(*records), BUILTIN, ctx)
    assert errors == []
    return sorted(set(findings["detector"]))


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    path = tmp_path / "tg.toml"
    path.write_text(CONFIG)
    return load(path, env={})


@pytest.mark.parametrize(
    ("role", "account"),
    [
        ("trailguard-s3-read", MONITOR),
        ("trailguard-lookup", MEMBER),
        ("trailguard-org-read", MONITOR),
        ("trailguard-iam-read", MEMBER),
        ("trailguard", MONITOR),
    ],
)
def test_calls_through_every_role_the_configuration_uses_are_its_own(cfg: Config, role: str, account: str) -> None:
    assert found(cfg, probes(role, account)) == []


def test_the_same_calls_by_another_role_are_findings(cfg: Config) -> None:
    assert found(cfg, probes("someone-else", MEMBER)) == ["cloudtrail-changes", "unauthorized-api-calls"]


def test_check_says_whether_the_identity_in_use_is_one_of_its_own(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = boto3.client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/trailguard", RoleSessionName="check"
    )
    for name, key in (
        ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
        ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
        ("AWS_SESSION_TOKEN", "SessionToken"),
    ):
        monkeypatch.setenv(name, creds["Credentials"][key])
    path = tmp_path / "tg.toml"
    path.write_text('[detection]\nmonitor_role_arns = ["arn:aws:iam::123456789012:role/ops/trailguard"]\n')
    main(["--config", str(path), "check"])
    assert "assumed-role/trailguard/check (one of TrailGuard's own roles)" in capsys.readouterr().out
