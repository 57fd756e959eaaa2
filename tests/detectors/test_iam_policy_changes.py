from detectors.iam_policy_changes import IamPolicyChanges
from detectors.organizations_changes import OrganizationsChanges
from tests.cloudtrail import assumed_role, event, findings, iam_user


def test_organizations_policies_are_organization_changes_not_iam() -> None:
    scp = event("CreatePolicy", "organizations.amazonaws.com", iam_user())
    assert findings(IamPolicyChanges, scp).empty
    assert list(findings(OrganizationsChanges, scp)["kind"]) == ["change"]


def test_iam_create_policy_is_not_an_organization_change() -> None:
    policy = event("CreatePolicy", "iam.amazonaws.com", assumed_role("deploy"))
    assert list(findings(IamPolicyChanges, policy)["kind"]) == ["change"]
    assert findings(OrganizationsChanges, policy).empty


def test_trust_policy_and_default_version_changes_are_caught() -> None:
    found = findings(
        IamPolicyChanges,
        event("UpdateAssumeRolePolicy", "iam.amazonaws.com", iam_user()),
        event("SetDefaultPolicyVersion", "iam.amazonaws.com", iam_user()),
    )
    assert found["event_names"].iloc[0] == ["UpdateAssumeRolePolicy", "SetDefaultPolicyVersion"]
    assert list(found["severity"]) == ["medium"]


def test_negative_reading_policies() -> None:
    assert findings(IamPolicyChanges, event("GetPolicyVersion", "iam.amazonaws.com", iam_user())).empty
