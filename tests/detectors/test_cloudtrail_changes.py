from detectors.cloudtrail_changes import CloudtrailChanges
from tests.cloudtrail import assumed_role, event, findings

ROLE = assumed_role("ops")


def test_stopping_or_deleting_the_trail_is_high() -> None:
    for name in ("StopLogging", "DeleteTrail"):
        assert list(findings(CloudtrailChanges, event(name, "cloudtrail.amazonaws.com", ROLE))["severity"]) == ["high"]


def test_a_denied_stop_logging_is_medium_and_says_so() -> None:
    tried = event("StopLogging", "cloudtrail.amazonaws.com", ROLE, errorCode="AccessDenied", errorMessage="no")
    found = findings(CloudtrailChanges, tried)
    assert list(found["severity"]) == ["medium"]
    assert "StopLogging (failed: AccessDenied)" in found["summary"].iloc[0]


def test_narrowing_the_event_selectors_is_a_change() -> None:
    selectors = event("PutEventSelectors", "cloudtrail.amazonaws.com", ROLE)
    assert list(findings(CloudtrailChanges, selectors)["severity"]) == ["medium"]


def test_negative_describing_trails() -> None:
    assert findings(CloudtrailChanges, event("DescribeTrails", "cloudtrail.amazonaws.com", ROLE)).empty
