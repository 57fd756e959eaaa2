"""With the defaults, every event a published CIS filter matches is in some finding's event_ids.

A pool of raw records crosses every name the filters and detectors list with services, callers
and outcomes (including the codes and sign-in messages that the filters and peers get wrong);
the pinned filters pick their matches out of it, and the whole catalog must report each one, in
the control's own detector (Organizations' same-named policy events in organizations-changes).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from detectors.core.base import Context
from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN
from monitor.detect.detection import run_detectors
from tests.cis import controls
from tests.cloudtrail import assumed_role, console_login, event, iam_user, normalize, root

CHANGES = [cls for cls in BUILTIN if issubclass(cls, ChangeDetector)]
OUTCOMES: list[dict[str, Any]] = [
    {},
    {"errorCode": "AccessDenied", "errorMessage": "Access Denied"},
    {"errorCode": "AccessDeniedException", "errorMessage": "not authorized"},
    {"errorCode": "Client.UnauthorizedOperation", "errorMessage": "not authorized"},
    {"errorCode": "ThrottlingException", "errorMessage": "Rate exceeded"},
]
CALLERS = [iam_user(), assumed_role("deploy"), root(), root() | {"invokedBy": "support.amazonaws.com"}]
SIGN_IN_FAILURES = ("Failed authentication", "No username found in supplied account")


def _pool() -> list[dict[str, Any]]:
    names = sorted({n for cls in CHANGES for n in cls.names()} | {"ListBuckets", "HeadBucket", "AssumeRole"})
    sources = sorted({cls.service for cls in CHANGES} | {"iot.amazonaws.com", "apigateway.amazonaws.com"})
    records = [
        event(name, source, caller, **outcome)
        for name, source, caller, outcome in itertools.product(names, sources, CALLERS, OUTCOMES)
        if source in ("iot.amazonaws.com", "organizations.amazonaws.com")
        or any(name in cls.names() and cls.service == source for cls in CHANGES)
        or name in ("ListBuckets", "HeadBucket")
    ]
    records.append(event("HeadBucket", "s3.amazonaws.com", iam_user(), ip="delivery.logs.amazonaws.com", **OUTCOMES[1]))
    records.append(event("DescribeAccountAttributes", "ec2.amazonaws.com", root(), eventType="AwsServiceEvent"))
    for who, mfa in itertools.product([iam_user(), root(), assumed_role("admin")], ["Yes", "No", None]):
        records.append(console_login(who, mfa=mfa))
        records += [console_login(who, result="Failure", mfa=mfa, errorMessage=message) for message in SIGN_IN_FAILURES]
    return records


POOL = _pool()


@pytest.fixture(scope="module")
def reported() -> dict[str, set[str]]:
    found, errors = run_detectors(normalize(*POOL), BUILTIN, Context())
    assert errors == []
    by_detector: dict[str, set[str]] = {}
    for detector, ids in zip(found["detector"], found["event_ids"], strict=True):
        by_detector.setdefault(detector, set()).update(ids)
    return by_detector


@pytest.mark.parametrize("control", controls().values(), ids=lambda c: c.item)
def test_every_filter_match_is_reported_by_its_detector(control: Any, reported: dict[str, set[str]]) -> None:
    matched = {r["eventID"] for r in POOL if control.matches(r)}
    assert matched, "the pool must exercise the filter"
    ours = reported.get(control.detector, set())
    if control.item == "4.4":  # Organizations' CreatePolicy / DeletePolicy are organization changes
        ours |= reported.get("organizations-changes", set())
    assert matched - ours == set()


def test_the_pool_holds_what_the_filters_miss_and_trailguard_reports(reported: dict[str, set[str]]) -> None:
    """Unknown user names failing to sign in, and the additions, are in findings though no filter matches them."""
    filters = controls().values()
    unmatched = {r["eventID"] for r in POOL if not any(c.matches(r) for c in filters)}
    extra = unmatched & set().union(*reported.values())
    unknown_users = {
        r["eventID"]
        for r in POOL
        if r.get("errorMessage") == SIGN_IN_FAILURES[1] and r["userIdentity"]["type"] != "Root"  # root: 4.3
    }
    assert unknown_users <= extra
    assert len(extra) > len(unknown_users)
