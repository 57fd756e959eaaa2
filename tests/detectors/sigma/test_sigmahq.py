"""The SigmaHQ AWS CloudTrail rules at the pinned commit: each loads as a detector or is reported with its reason,
and a rule and the native detector for the same thing are compared on the same records."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from detectors.access_key_created import AccessKeyCreated
from detectors.cloudtrail_changes import CloudtrailChanges
from detectors.console_login_without_mfa import ConsoleLoginWithoutMfa
from detectors.core.base import Context
from detectors.root_usage import RootUsage
from detectors.sigma.rules import load
from monitor.demo.generator import story
from tests.cloudtrail import PROD, assumed_role, console_login, event, iam_user, normalize, root
from tests.sigmahq import sigmahq


def test_every_cloudtrail_rule_loads_or_is_reported_with_its_reason() -> None:
    loaded = load([sigmahq() / "rules"])
    assert (len(loaded.detectors), len(loaded.refused)) == (56, 1)
    [(path, why)] = loaded.refused
    assert path.endswith("aws_delete_saml_provider.yml")
    assert why == "unknown field 'status'"  # CloudTrail has no `status` field: the rule can never match
    assert len({d.id for d in loaded.detectors}) == 56


def test_the_aggregation_rules_run_as_counts_or_are_reported() -> None:
    loaded = load([sigmahq() / "unsupported"])
    counts = [d for d in loaded.detectors if hasattr(d, "aggregation")]
    assert (len(loaded.detectors), len(counts)) == (7, 6)  # the seventh has no aggregation at all
    [(path, why)] = loaded.refused
    assert path.endswith("aws_lambda_function_created_or_invoked.yml")
    assert why.startswith("aggregation 'selection1 | near selection2'")


def key_created(by: str, owner: str, **fields: Any) -> dict[str, Any]:
    key = {"userName": owner, "accessKeyId": "AKIAEXAMPLENEWKEY001", "status": "Active"}
    return event(
        "CreateAccessKey",
        "iam.amazonaws.com",
        iam_user(by),
        requestParameters={"userName": owner},
        responseElements={"accessKey": key},
        **fields,
    )


FAILED = {"errorCode": "AccessDenied", "errorMessage": "not authorized"}
PAIRS = {  # SigmaHQ rule id: (the native detector, named records, the names the rule selects, the native's)
    "77caf516-34e5-4df9-b4db-20744fea0a60": (
        ConsoleLoginWithoutMfa,
        {
            "root without MFA": console_login(root(PROD)),
            "user without MFA": console_login(iam_user("bob")),
            "user with MFA": console_login(iam_user("carol"), mfa="Yes"),
            "user, MFA field absent": console_login(iam_user("dave"), mfa=None),
            "failed": console_login(iam_user("eve"), result="Failure", errorMessage="Failed authentication"),
            "IAM Identity Center": console_login(
                assumed_role("AWSReservedSSO_Admin_1a2b", "alice@example.com", path="aws-reserved/sso.amazonaws.com/")
            ),
            "role, no MFA evidence": console_login(assumed_role("ops", "frank")),
        },
        {"root without MFA", "user without MFA", "IAM Identity Center", "role, no MFA evidence"},
        {"root without MFA", "user without MFA", "user, MFA field absent", "role, no MFA evidence"},
    ),
    "8ad1600d-e9dc-4251-b0ee-a65268f29add": (
        RootUsage,
        {
            "root call": event("ListBuckets", "s3.amazonaws.com", root(PROD)),
            "root failed sign-in": console_login(root(PROD), result="Failure", errorMessage="Failed authentication"),
            "a service acting as root": event(
                "CreateServiceLinkedRole", "iam.amazonaws.com", root(PROD) | {"invokedBy": "support.amazonaws.com"}
            ),
            "a service event": event(
                "CredentialChallenge", "signin.amazonaws.com", root(PROD), eventType="AwsServiceEvent"
            ),
            "a user": event("ListBuckets", "s3.amazonaws.com", iam_user("bob")),
        },
        {"root call", "root failed sign-in", "a service acting as root"},
        {"root call", "root failed sign-in"},
    ),
    "4db60cc0-36fb-42b7-9b58-a5b53019fb74": (
        CloudtrailChanges,
        {
            "StopLogging": event("StopLogging", "cloudtrail.amazonaws.com", iam_user("mallory")),
            "UpdateTrail denied": event("UpdateTrail", "cloudtrail.amazonaws.com", iam_user("mallory"), **FAILED),
            "StartLogging": event("StartLogging", "cloudtrail.amazonaws.com", iam_user("ops")),
            "PutEventSelectors": event("PutEventSelectors", "cloudtrail.amazonaws.com", iam_user("mallory")),
            "LookupEvents": event("LookupEvents", "cloudtrail.amazonaws.com", iam_user("ops"), readOnly=True),
        },
        {"StopLogging", "UpdateTrail denied"},
        {"StopLogging", "UpdateTrail denied", "StartLogging", "PutEventSelectors"},
    ),
    "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2": (
        AccessKeyCreated,
        {
            "for another user": key_created("mallory", "bob"),
            "own key": key_created("bob", "bob"),
            "denied": key_created("mallory", "carol", **FAILED) | {"responseElements": None},
            "another call": event("ListAccessKeys", "iam.amazonaws.com", iam_user("bob"), readOnly=True),
        },
        {"for another user", "own key", "denied"},
        {"for another user", "own key"},
    ),
}


@pytest.mark.parametrize("rule_id", list(PAIRS))
def test_a_sigmahq_rule_beside_the_native_detector_for_the_same_thing(rule_id: str) -> None:
    """What each selects on the same named records. The differences, by design of each side:
    - console login without MFA: the rule matches `MFAUsed: No` exactly; the native detector also judges sign-ins
      whose MFA field is absent, and leaves out sign-ins through IAM Identity Center (MFA is the IdP's).
    - root: the rule leaves out only service events; the native detector also leaves out calls an AWS service
      made for root (`invokedBy`), which root did not make.
    - CloudTrail changes: the rule names StopLogging, UpdateTrail and DeleteTrail; the native detector follows CIS
      (also CreateTrail and StartLogging) and adds selector and event data store changes, which narrow a trail.
    - access keys: the rule's filter (`userIdentity.arn|contains: responseElements.accessKey.userName`) compares
      with that text, not that field, so it never filters; it also fires on denied attempts, which created nothing.
      The native detector keeps created keys only and rates another user's key above one's own.
    """
    detector, records, by_rule, by_native = PAIRS[rule_id]
    [rule] = [d for d in load([sigmahq() / "rules"]).detectors if d.id == f"sigma-{rule_id}"]
    names, frame = list(records), normalize(*records.values())
    assert {names[i] for i in frame.index[rule().select(frame)]} == by_rule
    native = detector().detect(frame, Context())
    assert {names[i] for ids in native["event_ids"] for i in frame.index[frame["event_id"].isin(ids)]} == by_native


def test_on_the_demo_story_the_rules_and_native_detectors_differ_only_on_the_identity_center_sign_in() -> None:
    rng, day = random.Random(7), datetime(2024, 3, 1, tzinfo=UTC)
    frame = normalize(*(r for beat in story(rng, day) for r in beat.records))
    rules = {d.id: d for d in load([sigmahq() / "rules"]).detectors}
    differences = {}
    for rule_id, (detector, *_) in PAIRS.items():
        by_rule = set(frame.loc[rules[f"sigma-{rule_id}"]().select(frame), "event_id"])
        by_native = {i for ids in detector().detect(frame, Context())["event_ids"] for i in ids}
        assert by_native, detector.id  # the story has each of these
        differences[detector.id] = sorted(frame.loc[frame["event_id"].isin(by_rule ^ by_native), "principal"])
    assert differences == {
        "console-login-without-mfa": [
            "arn:aws:sts::222222222222:assumed-role/AWSReservedSSO_AdministratorAccess_5f2e1c7a9b3d/alice@example.com"
        ],
        "root-usage": [],
        "cloudtrail-changes": [],
        "access-key-created": [],
    }
