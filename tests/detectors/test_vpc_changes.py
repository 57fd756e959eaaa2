from detectors.vpc_changes import VpcChanges
from tests.cloudtrail import assumed_role, event, findings


def test_peering_steps_by_one_role_are_one_finding() -> None:
    found = findings(
        VpcChanges,
        event("CreateVpcPeeringConnection", "ec2.amazonaws.com", assumed_role(), time="2024-05-01T10:01:00Z"),
        event("ModifyVpcPeeringConnectionOptions", "ec2.amazonaws.com", assumed_role(), time="2024-05-01T10:02:00Z"),
    )
    assert list(found["event_names"]) == [["CreateVpcPeeringConnection", "ModifyVpcPeeringConnectionOptions"]]


def test_negative_describing_vpcs() -> None:
    assert findings(VpcChanges, event("DescribeVpcs", "ec2.amazonaws.com", assumed_role())).empty
