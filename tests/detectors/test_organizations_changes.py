from detectors.organizations_changes import OrganizationsChanges
from tests.cloudtrail import event, findings, iam_user, root


def test_leaving_the_organization_is_high() -> None:
    found = findings(OrganizationsChanges, event("LeaveOrganization", "organizations.amazonaws.com", root()))
    assert list(found["severity"]) == ["high"]


def test_detaching_a_policy_is_medium() -> None:
    found = findings(OrganizationsChanges, event("DetachPolicy", "organizations.amazonaws.com", iam_user()))
    assert list(found["severity"]) == ["medium"]


def test_negative_iot_attach_policy() -> None:
    assert findings(OrganizationsChanges, event("AttachPolicy", "iot.amazonaws.com", iam_user())).empty
