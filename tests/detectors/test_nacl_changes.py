from detectors.nacl_changes import NaclChanges
from tests.cloudtrail import assumed_role, event, findings


def test_an_unauthorized_entry_replacement_is_low_and_names_the_code() -> None:
    tried = event(
        "ReplaceNetworkAclEntry", "ec2.amazonaws.com", assumed_role(), errorCode="Client.UnauthorizedOperation"
    )
    found = findings(NaclChanges, tried)
    assert list(found["severity"]) == ["low"]
    assert "(failed: Client.UnauthorizedOperation)" in found["summary"].iloc[0]


def test_negative_describing_acls() -> None:
    assert findings(NaclChanges, event("DescribeNetworkAcls", "ec2.amazonaws.com", assumed_role())).empty
