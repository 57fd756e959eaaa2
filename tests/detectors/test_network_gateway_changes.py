from detectors.network_gateway_changes import NetworkGatewayChanges
from tests.cloudtrail import assumed_role, event, findings


def test_nat_and_transit_gateways_the_filter_misses_are_caught() -> None:
    found = findings(
        NetworkGatewayChanges,
        event("CreateNatGateway", "ec2.amazonaws.com", assumed_role()),
        event("CreateTransitGatewayVpcAttachment", "ec2.amazonaws.com", assumed_role()),
    )
    assert found["event_names"].iloc[0] == ["CreateNatGateway", "CreateTransitGatewayVpcAttachment"]


def test_negative_describing_gateways() -> None:
    assert findings(NetworkGatewayChanges, event("DescribeInternetGateways", "ec2.amazonaws.com", assumed_role())).empty
