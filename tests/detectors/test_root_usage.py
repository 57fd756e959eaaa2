from detectors.root_usage import RootUsage
from tests.cloudtrail import DEV, PROD, console_login, event, findings, iam_user, root


def test_root_console_login_is_critical() -> None:
    found = findings(RootUsage, console_login(root()))
    assert list(found["severity"]) == ["critical"]
    assert found["principal"].iloc[0] == f"arn:aws:iam::{PROD}:root"


def test_root_credential_change_is_critical() -> None:
    found = findings(RootUsage, event("DeactivateMFADevice", "iam.amazonaws.com", root()))
    assert list(found["severity"]) == ["critical"]


def test_root_write_is_high() -> None:
    found = findings(RootUsage, event("PutBucketPolicy", "s3.amazonaws.com", root()))
    assert list(found["severity"]) == ["high"]


def test_root_read_only_call_is_medium() -> None:
    found = findings(RootUsage, event("ListBuckets", "s3.amazonaws.com", root(), readOnly=True))
    assert list(found["severity"]) == ["medium"]


def test_failed_root_call_is_medium_even_for_credentials() -> None:
    denied = event("CreateAccessKey", "iam.amazonaws.com", root(), errorCode="AccessDenied", errorMessage="denied")
    assert list(findings(RootUsage, denied)["severity"]) == ["medium"]


def test_burst_from_one_ip_is_one_finding_listing_every_event() -> None:
    burst = [
        event("ListUsers", "iam.amazonaws.com", root(), readOnly=True, time="2024-05-01T10:01:00Z"),
        event("CreateAccessKey", "iam.amazonaws.com", root(), time="2024-05-01T10:05:00Z"),
        event("GetAccountSummary", "iam.amazonaws.com", root(), readOnly=True, time="2024-05-01T10:30:00Z"),
    ]
    found = findings(RootUsage, *burst)
    assert len(found) == 1
    assert found["event_ids"].iloc[0] == [e["eventID"] for e in burst]
    assert found["severity"].iloc[0] == "critical"  # the worst event decides
    assert str(found["event_time"].iloc[0]) == "2024-05-01 10:01:00+00:00"
    assert str(found["last_seen"].iloc[0]) == "2024-05-01 10:30:00+00:00"


def test_different_ips_and_accounts_are_separate_findings() -> None:
    found = findings(
        RootUsage,
        event("ListBuckets", "s3.amazonaws.com", root(), ip="198.51.100.1"),
        event("ListBuckets", "s3.amazonaws.com", root(), ip="198.51.100.2"),
        event("ListBuckets", "s3.amazonaws.com", root(DEV), ip="198.51.100.1"),
    )
    assert len(found) == 3


def test_negative_aws_service_acting_for_root_via_invoked_by() -> None:
    ident = root() | {"invokedBy": "support.amazonaws.com"}
    assert findings(RootUsage, event("DescribeTrustedAdvisorChecks", "support.amazonaws.com", ident)).empty


def test_negative_aws_service_event() -> None:
    assert findings(
        RootUsage, event("CredentialChallenge", "signin.amazonaws.com", root(), eventType="AwsServiceEvent")
    ).empty


def test_negative_iam_user_named_like_root() -> None:
    assert findings(RootUsage, event("ListBuckets", "s3.amazonaws.com", iam_user("SomethingRoot"))).empty
    assert findings(RootUsage, event("ListBuckets", "s3.amazonaws.com", iam_user("root"))).empty
