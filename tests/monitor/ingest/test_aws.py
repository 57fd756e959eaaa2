"""boto3 clients as TrailGuard builds them, against moto's STS and S3 over HTTP."""

from __future__ import annotations

import boto3
import pytest
from botocore.credentials import RefreshableCredentials

from monitor.ingest.sources import aws


def test_clients_identify_trailguard_and_retry_explicitly() -> None:
    cfg = aws.config("adaptive", attempts=5)
    assert cfg.user_agent_extra == aws.USER_AGENT_EXTRA
    assert aws.USER_AGENT_EXTRA.startswith("trailguard/")
    assert cfg.retries == {"mode": "adaptive", "max_attempts": 5}


@pytest.mark.usefixtures("aws")
def test_assumed_role_session_acts_in_the_member_account_with_refreshable_credentials() -> None:
    member_role = "arn:aws:iam::210987654321:role/trailguard-read"
    session = aws.session(member_role, "us-east-1")
    assert session.client("sts").get_caller_identity()["Account"] == "210987654321"
    credentials = session.get_credentials()
    assert isinstance(credentials, RefreshableCredentials)
    assert credentials.method == "sts-assume-role"
    session.client("s3").create_bucket(Bucket="member-bucket")
    assert "member-bucket" not in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
