from detectors.security_group_changes import SecurityGroupChanges
from tests.cloudtrail import assumed_role, event, findings


def test_modify_security_group_rules_is_caught() -> None:
    found = findings(SecurityGroupChanges, event("ModifySecurityGroupRules", "ec2.amazonaws.com", assumed_role()))
    assert list(found["severity"]) == ["medium"]


def test_a_group_created_by_an_aws_service_is_low() -> None:
    made = event("CreateSecurityGroup", "ec2.amazonaws.com", {"type": "AWSService", "invokedBy": "eks.amazonaws.com"})
    found = findings(SecurityGroupChanges, made)
    assert list(found["severity"]) == ["low"]
    assert found["principal"].iloc[0] is None


def test_negative_describing_groups() -> None:
    assert findings(SecurityGroupChanges, event("DescribeSecurityGroups", "ec2.amazonaws.com", assumed_role())).empty
