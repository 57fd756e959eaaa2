"""The monitor's IAM policies: generated from what the configured sources declare (`check` prints
them), checked in for the example configuration, and clean under parliament."""

from __future__ import annotations

import json
from pathlib import Path

import parliament
import pytest

from monitor.config import load
from monitor.ingest.sources.permissions import MONITOR
from monitor.service.check import role_policies

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHECKED_IN = sorted((DEPLOY / "iam").glob("*-policy.json"))
# actions that have no resource-level permissions: the only statements allowed a "*" resource
NO_RESOURCE_LEVEL = {"ListOrganizationAccounts", "LookupEvents", "ReadIamAccountState"}


def test_the_checked_in_policies_are_what_check_prints_for_the_example() -> None:
    generated = role_policies(load(DEPLOY / "trailguard.toml", env={}))
    names = {("monitor-role" if who == MONITOR else who.rsplit("/", 1)[1]): doc for who, doc in generated.items()}
    assert {p.name.removesuffix("-policy.json"): json.loads(p.read_text()) for p in CHECKED_IN} == names


@pytest.mark.parametrize("path", CHECKED_IN, ids=lambda p: p.name)
def test_parliament_finds_nothing(path: Path) -> None:
    assert parliament.analyze_policy_string(path.read_text()).findings == []


@pytest.mark.parametrize("path", CHECKED_IN, ids=lambda p: p.name)
def test_only_reads_and_no_wildcard_where_a_resource_can_be_named(path: Path) -> None:
    statements = json.loads(path.read_text())["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        verbs = {a.split(":")[1] for a in actions}
        assert verbs <= {
            "ListAccounts",
            "ReceiveMessage",
            "DeleteMessage",
            "ChangeMessageVisibility",
            "GetQueueUrl",
            "GetObject",
            "ListBucket",
            "Decrypt",
            "AssumeRole",
            "LookupEvents",
            "GenerateCredentialReport",
            "GetCredentialReport",
            "GetAccountSummary",
            "GetAccountPasswordPolicy",
            "GetAccountAuthorizationDetails",
            "ListAccessKeys",
            "GetAccessKeyLastUsed",
            "ListMFADevices",
        }
        if statement["Resource"] == "*":
            assert statement["Sid"] in NO_RESOURCE_LEVEL


def test_a_lake_on_s3_adds_writes_to_its_own_folders_only(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text('sources = ["s3://org-trail"]\nlake.uri = "s3://security-lake/trailguard"\n')
    own = role_policies(load(path, env={}))[MONITOR]["Statement"]
    lake = next(s for s in own if s["Sid"] == "ReadWriteLake")
    assert lake["Resource"] == [
        "arn:aws:s3:::security-lake/trailguard/events/*",
        "arn:aws:s3:::security-lake/trailguard/baselines/*",
    ]
    assert "s3:DeleteObject" in lake["Action"]
    assert parliament.analyze_policy_string(json.dumps({"Version": "2012-10-17", "Statement": own})).findings == []


def test_a_security_lake_source_reads_only_the_cloudtrail_table(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text('sources = ["securitylake://aws-security-data-lake-us-east-1-abc123"]\n')
    own = role_policies(load(path, env={}))[MONITOR]["Statement"]
    listing = next(s for s in own if s["Action"] == "s3:ListBucket")
    reading = next(s for s in own if s["Action"] == "s3:GetObject")
    table = "aws/CLOUD_TRAIL_MGMT/2.0/"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [table, f"{table}*"]}}
    assert reading["Resource"] == f"arn:aws:s3:::aws-security-data-lake-us-east-1-abc123/{table}*"
    assert parliament.analyze_policy_string(json.dumps({"Version": "2012-10-17", "Statement": own})).findings == []
