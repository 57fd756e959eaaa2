from __future__ import annotations

from typing import Any

import pytest

from detectors.core.base import Settings
from detectors.unauthorized_api_calls import UnauthorizedApiCalls
from tests.cloudtrail import PROD, assumed_role, event, findings, iam_user, root


def denied(code: str = "AccessDenied", who: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("eventName", "ListUsers")
    name = fields.pop("eventName")
    return event(name, "iam.amazonaws.com", who or iam_user(), errorCode=code, errorMessage="denied", **fields)


@pytest.mark.parametrize(
    "code",
    [
        "AccessDenied",
        "AccessDeniedException",
        "Client.UnauthorizedOperation",
        "UnauthorizedOperation",
        "Server.UnauthorizedOperation",
        "AccessDeniedForDependency",
    ],
)
def test_every_denied_code_the_cis_patterns_cover(code: str) -> None:
    found = findings(UnauthorizedApiCalls, denied(code))
    assert list(found["kind"]) == ["person"]
    assert list(found["severity"]) == ["low"]


@pytest.mark.parametrize("code", ["ThrottlingException", "NoSuchEntity", "accessdenied", "InvalidClientTokenId"])
def test_negative_other_errors(code: str) -> None:
    assert findings(UnauthorizedApiCalls, denied(code)).empty


def test_negative_successful_call() -> None:
    assert findings(UnauthorizedApiCalls, event("ListUsers", "iam.amazonaws.com", iam_user())).empty


def test_one_finding_per_principal_and_hour_listing_every_denial() -> None:
    calls = [denied(time=f"2024-05-01T10:{m:02d}:00Z", eventName=n) for m, n in [(1, "ListUsers"), (9, "GetUser")]]
    calls.append(denied(who=iam_user("bob")))
    found = findings(UnauthorizedApiCalls, *calls).sort_values("principal")
    assert [len(ids) for ids in found["event_ids"]] == [2, 1]
    assert found["event_names"].iloc[0] == ["ListUsers", "GetUser"]


def test_a_person_with_many_denials_in_an_hour_is_high() -> None:
    calls = [denied(time=f"2024-05-01T10:{m:02d}:00Z") for m in range(5)]
    assert list(findings(UnauthorizedApiCalls, *calls)["severity"]) == ["high"]
    assert list(findings(UnauthorizedApiCalls, *calls[:4])["severity"]) == ["low"]


def test_root_and_identity_center_sessions_are_people() -> None:
    sso = assumed_role("AWSReservedSSO_Admin_0123456789abcdef", path="aws-reserved/sso.amazonaws.com/")
    found = findings(UnauthorizedApiCalls, denied(who=root()), denied(who=sso))
    assert sorted(found["kind"]) == ["person", "person"]


def test_a_workload_role_needs_more_denials_and_tops_at_medium() -> None:
    calls = [denied(who=assumed_role("app"), time=f"2024-05-01T10:{m:02d}:00Z") for m in range(20)]
    found = findings(UnauthorizedApiCalls, *calls[:19])
    assert list(found["kind"]) == ["workload"]
    assert list(found["severity"]) == ["low"]
    assert list(findings(UnauthorizedApiCalls, *calls)["severity"]) == ["medium"]


def test_thresholds_are_options() -> None:
    settings = Settings(options={"unauthorized-api-calls": {"workload_threshold": 2}})
    calls = [denied(who=assumed_role("app"), time=f"2024-05-01T10:0{m}:00Z") for m in range(2)]
    assert list(findings(UnauthorizedApiCalls, *calls, settings=settings)["severity"]) == ["medium"]


def test_aws_services_acting_for_a_principal_are_informational() -> None:
    found = findings(
        UnauthorizedApiCalls,
        denied(who=iam_user() | {"invokedBy": "cloudformation.amazonaws.com"}),
        denied(who=iam_user("bob"), eventName="HeadBucket", ip="delivery.logs.amazonaws.com"),
    )
    assert list(found["kind"]) == ["aws-service", "aws-service"]
    assert set(found["severity"]) == {"info"}


def test_negative_trailguards_own_role() -> None:
    own = assumed_role("TrailGuardRead", "trailguard")
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{PROD}:role/TrailGuardRead"}))
    assert findings(UnauthorizedApiCalls, denied(who=own), settings=settings).empty
