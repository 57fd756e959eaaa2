"""Every CIS change control, event by event, against its pinned filter (tests/fixtures/cis_filters.txt).

For each name in a filter: the successful call is a finding, a failed one is a finding rated
lower, and the same name from another service follows the filter (dropped where the filter pins
the service, kept as `other-service` where it does not). Names added beyond the filter match
too, and the filter indeed misses them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.core.base import Settings
from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN
from detectors.core.severity import Severity
from tests.cis import Control, controls
from tests.cloudtrail import PROD, assumed_role, event, findings, iam_user

CHANGES = {cls.id: cls for cls in BUILTIN if issubclass(cls, ChangeDetector)}
CONTROLS = {c.detector: c for c in controls().values() if c.detector in CHANGES}
OTHER_SERVICE = "iot.amazonaws.com"  # shares CreatePolicy, DeletePolicy, AttachPolicy... with IAM and Organizations
DENIED = {"errorCode": "AccessDenied", "errorMessage": "User is not authorized to perform this operation"}


def _cases(names: str) -> list[tuple[type[ChangeDetector], Control, str]]:
    return [
        (CHANGES[ident], control, name)
        for ident, control in CONTROLS.items()
        for name in sorted(control.names() if names == "cis" else CHANGES[ident].added)
    ]


def _one(cls: type[ChangeDetector], record: dict[str, object]) -> tuple[str, Severity]:
    found = findings(cls, record)
    assert len(found) == 1
    assert found["event_ids"].iloc[0] == [record["eventID"]]
    return str(found["kind"].iloc[0]), Severity.parse(found["severity"].iloc[0])


def test_every_control_has_a_detector_whose_table_is_the_filter() -> None:
    assert set(CONTROLS) == set(CHANGES)
    for ident, control in CONTROLS.items():
        assert set(control.names()) == CHANGES[ident].cis_names, ident
        assert control.source() in (None, CHANGES[ident].service), ident
        assert CHANGES[ident].any_source == (control.source() is None), ident


@pytest.mark.parametrize(("cls", "control", "name"), _cases("cis"), ids=lambda v: getattr(v, "id", v))
def test_each_filter_event_succeeded_and_failed(cls: type[ChangeDetector], control: Control, name: str) -> None:
    done = event(name, cls.service, iam_user())
    tried = event(name, cls.service, iam_user(), **DENIED)
    assert control.matches(done)
    assert control.matches(tried)
    kind, succeeded = _one(cls, done)
    assert kind == "change"
    assert succeeded == (Severity.HIGH if name in cls.critical else Severity.MEDIUM)
    assert _one(cls, tried) == ("change", succeeded - 1)  # a failed attempt rates one step lower


@pytest.mark.parametrize(("cls", "control", "name"), _cases("cis"), ids=lambda v: getattr(v, "id", v))
def test_each_filter_event_from_another_service(cls: type[ChangeDetector], control: Control, name: str) -> None:
    other = event(name, OTHER_SERVICE, iam_user())
    if control.source() is not None:
        assert not control.matches(other)
        assert findings(cls, other).empty
    else:
        assert control.matches(other)
        assert _one(cls, other) == ("other-service", Severity.LOW)


@pytest.mark.parametrize(("cls", "control", "name"), _cases("added"), ids=lambda v: getattr(v, "id", v))
def test_events_the_filter_misses(cls: type[ChangeDetector], control: Control, name: str) -> None:
    record = event(name, cls.service, iam_user())
    assert not control.matches(record)
    assert _one(cls, record)[0] == "change"


@pytest.mark.parametrize("cls", CHANGES.values(), ids=lambda c: c.id)
def test_one_finding_per_principal_account_and_hour(cls: type[ChangeDetector]) -> None:
    first, second = sorted(cls.cis_names)[:2] if len(cls.cis_names) > 1 else 2 * sorted(cls.cis_names)
    records = [
        event(first, cls.service, iam_user(), time="2024-05-01T10:05:00Z"),
        event(second, cls.service, iam_user(), time="2024-05-01T10:55:00Z", **DENIED),
        event(first, cls.service, iam_user("bob"), time="2024-05-01T10:10:00Z"),
        event(first, cls.service, iam_user(), time="2024-05-01T11:05:00Z"),
    ]
    found = findings(cls, *records).sort_values("event_time")
    assert [len(ids) for ids in found["event_ids"]] == [2, 1, 1]
    assert found["event_ids"].iloc[0] == [records[0]["eventID"], records[1]["eventID"]]
    assert found["severity"].iloc[0] == str(Severity.HIGH if first in cls.critical else Severity.MEDIUM)


def test_a_change_made_by_an_aws_service_for_a_principal_is_low() -> None:
    cls = CHANGES["security-group-changes"]
    record = event("CreateSecurityGroup", cls.service, iam_user() | {"invokedBy": "cloudformation.amazonaws.com"})
    assert _one(cls, record) == ("change", Severity.LOW)


def test_changes_through_trailguards_own_role_are_not_findings() -> None:
    own = assumed_role("TrailGuardRead", "trailguard")
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{PROD}:role/TrailGuardRead"}))
    record = event("StopLogging", "cloudtrail.amazonaws.com", own)
    assert findings(CHANGES["cloudtrail-changes"], record, settings=settings).empty
    assert len(findings(CHANGES["cloudtrail-changes"], record)) == 1


def test_the_docs_list_every_event_added_beyond_a_filter() -> None:
    readme = (Path(__file__).parents[3] / "docs" / "detectors.md").read_text()
    assert [n for cls in CHANGES.values() for n in sorted(cls.added) if f"`{n}`" not in readme] == []
