from typing import Any

from detectors.base import Settings
from detectors.cross_account_assume_role import CrossAccountAssumeRole
from tests.cloudtrail import DEV, EXTERNAL, PROD, assumed_role, event, findings, iam_user

ROLE = f"arn:aws:iam::{PROD}:role/deploy"


def assume(identity: dict[str, Any], role_arn: str = ROLE, *, in_params: bool = True, **kw: Any) -> dict[str, Any]:
    target = role_arn.split(":")[4]
    params = {"roleArn": role_arn, "roleSessionName": "s"} if in_params else {"roleSessionName": "s"}
    return event(
        "AssumeRole",
        "sts.amazonaws.com",
        identity,
        requestParameters=params,
        resources=[{"accountId": target, "type": "AWS::IAM::Role", "ARN": role_arn}],
        **kw,
    )


def both_copies(caller: dict[str, Any], shared: str = "5c6b3c3f-0000-4000-8000-00000000beef") -> list[dict[str, Any]]:
    """CloudTrail writes one copy to the caller's account and one to the role owner's."""
    mine = assume(caller, sharedEventID=shared, account=caller["accountId"])
    owner_view = {"type": "AWSAccount", "principalId": caller["principalId"], "accountId": caller["accountId"]}
    theirs = assume(owner_view, sharedEventID=shared, account=PROD)
    return [mine, theirs]


def test_untrusted_account_is_medium() -> None:
    found = findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL)))
    assert list(found["kind"]) == ["untrusted-account"]
    assert list(found["severity"]) == ["medium"]
    assert (found["account_id"].iloc[0], found["target_account_id"].iloc[0]) == (EXTERNAL, PROD)


def test_trusted_account_is_low() -> None:
    settings = Settings(trusted_accounts=frozenset({DEV}))
    found = findings(CrossAccountAssumeRole, assume(assumed_role("ci", account=DEV)), settings=settings)
    assert list(found["severity"]) == ["low"]


def test_denied_attempt_is_high() -> None:
    rec = assume(iam_user("x", EXTERNAL), errorCode="AccessDenied", errorMessage="not authorized")
    found = findings(CrossAccountAssumeRole, rec)
    assert (found["kind"].iloc[0], found["severity"].iloc[0]) == ("denied", "high")


def test_both_copies_merge_into_one_finding_with_both_event_ids() -> None:
    copies = both_copies(iam_user("ci", EXTERNAL))
    found = findings(CrossAccountAssumeRole, *copies)
    assert len(found) == 1
    assert sorted(found["event_ids"].iloc[0]) == sorted(c["eventID"] for c in copies)
    assert found["principal"].iloc[0] == f"arn:aws:iam::{EXTERNAL}:user/ci"  # the caller's copy represents it


def test_owner_copy_alone_is_found() -> None:
    found = findings(CrossAccountAssumeRole, both_copies(iam_user("ci", EXTERNAL))[1])
    assert list(found["account_id"]) == [EXTERNAL]


def test_role_from_resources_when_request_parameters_lack_it() -> None:
    found = findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL), in_params=False))
    assert found["target_account_id"].iloc[0] == PROD


def test_negative_same_account_role_chaining() -> None:
    assert findings(CrossAccountAssumeRole, assume(assumed_role("app", account=PROD))).empty


def test_negative_aws_service_assuming() -> None:
    service = {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}
    assert findings(CrossAccountAssumeRole, assume(service, account=PROD)).empty
    invoked = iam_user("ci", EXTERNAL) | {"invokedBy": "cloudformation.amazonaws.com"}
    assert findings(CrossAccountAssumeRole, assume(invoked)).empty


def test_negative_monitor_own_role_and_its_owner_copy() -> None:
    own = assumed_role("TrailGuard", account=DEV)
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{DEV}:role/TrailGuard"}))
    assert findings(CrossAccountAssumeRole, *both_copies(own), settings=settings).empty


def test_negative_monitor_assuming_its_read_role_seen_only_in_the_owner_copy() -> None:
    read_role = f"arn:aws:iam::{PROD}:role/trailguard-read"
    owner_copy = both_copies(assumed_role("TrailGuard", account=DEV))[1]
    owner_copy["requestParameters"]["roleArn"] = read_role
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{DEV}:role/TrailGuard", read_role}))
    assert findings(CrossAccountAssumeRole, owner_copy, settings=settings).empty
    assert len(findings(CrossAccountAssumeRole, owner_copy)) == 1  # without the setting it is a finding


def test_negative_other_sts_calls() -> None:
    rec = event("GetCallerIdentity", "sts.amazonaws.com", iam_user("ci", EXTERNAL))
    assert findings(CrossAccountAssumeRole, rec).empty
