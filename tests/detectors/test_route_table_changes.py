from detectors.route_table_changes import RouteTableChanges
from tests.cloudtrail import assumed_role, event, findings


def test_negative_api_gateway_routes_share_the_name() -> None:
    """API Gateway's CreateRoute is an HTTP route, not a VPC one: the filter pins ec2 and so do we."""
    assert findings(RouteTableChanges, event("CreateRoute", "apigateway.amazonaws.com", assumed_role())).empty


def test_associating_a_route_table_is_caught() -> None:
    found = findings(RouteTableChanges, event("AssociateRouteTable", "ec2.amazonaws.com", assumed_role()))
    assert list(found["kind"]) == ["change"]
