"""Every export shape gives the findings the raw records give, with the same finding ids; a shape that cannot
carry a field a detector reads is named as that detector's blind spot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.core.base import Context
from detectors.core.registry import load
from monitor.detect.scan import scan
from monitor.ingest.exports import table_record
from monitor.ingest.run import from_uris
from monitor.lake import Lake
from monitor.outbox.finding import from_frame
from monitor.store.state import State
from tests.cloudtrail import DEV, EXTERNAL, PROD, console_login, event, iam_user, root
from tests.exports import ATHENA_COLUMNS, SHAPES, athena_csv, hive
from tests.faults.conftest import trailguard

ROLE = f"arn:aws:iam::{PROD}:role/audit"


def _incident() -> list[dict[str, Any]]:
    """The records every shape must carry: a root sign-in without MFA, a key made for another user, a role
    assumed from outside the organization, a denied call and StopLogging."""
    return [
        console_login(root(PROD), ip="203.0.113.66", time="2024-05-01T09:12:00Z"),
        event(
            "CreateAccessKey",
            "iam.amazonaws.com",
            iam_user("jack", DEV) | {"accessKeyId": "AKIAJACKEXAMPLE00001"},
            time="2024-05-01T11:40:00Z",
            requestParameters={"userName": "jackson"},
            responseElements={"accessKey": {"accessKeyId": "AKIAJACKSONNEWKEY001", "userName": "jackson"}},
        ),
        event(
            "AssumeRole",
            "sts.amazonaws.com",
            iam_user("vendor", EXTERNAL),
            account=PROD,
            time="2024-05-01T14:05:00Z",
            requestParameters={"roleArn": ROLE, "roleSessionName": "audit-1"},
            responseElements={"credentials": {"accessKeyId": "ASIAEXAMPLE0000001", "expiration": "x"}},
            resources=[{"accountId": PROD, "type": "AWS::IAM::Role", "ARN": ROLE}],
            sharedEventID="5f1c2b8e-0000-4000-8000-000000000001",
        ),
        event(
            "ListSecrets",
            "secretsmanager.amazonaws.com",
            iam_user("jackson", DEV),
            time="2024-05-01T11:52:00Z",
            errorCode="AccessDeniedException",
            errorMessage="jackson is not authorized to perform: secretsmanager:ListSecrets",
        ),
        event("StopLogging", "cloudtrail.amazonaws.com", iam_user("jackson", DEV), time="2024-05-01T11:53:00Z"),
    ]


INCIDENT = _incident()


def found(path: Path) -> list[tuple[str, ...]]:
    result = scan([path], load(), Context())
    assert (result.errors, dict(result.coerced), result.blind_spots) == ([], {}, [])  # a clean export: nothing lost
    return sorted((f.finding_id, f.severity, f.summary, ",".join(f.event_ids)) for f in from_frame(result.findings))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, ...]]:
    path = tmp_path_factory.mktemp("raw") / "trail.json"
    path.write_text(json.dumps({"Records": INCIDENT}))
    return found(path)


def test_the_raw_incident_raises_each_detector_it_should(raw: list[tuple[str, ...]]) -> None:
    assert len(raw) >= 5  # root, MFA, key for another user, outside role, denied call, StopLogging


@pytest.mark.parametrize("shape", SHAPES)
def test_an_export_gives_the_same_findings_with_the_same_ids(
    shape: str, raw: list[tuple[str, ...]], tmp_path: Path
) -> None:
    name, write = SHAPES[shape]
    path = tmp_path / name
    path.write_bytes(write(INCIDENT))
    assert found(path) == raw


def test_the_shape_is_known_from_content_not_the_name(tmp_path: Path, raw: list[tuple[str, ...]]) -> None:
    path = tmp_path / "export.txt"
    path.write_bytes(athena_csv(INCIDENT))
    assert found(path) == raw


def test_an_export_without_a_column_names_the_blind_spot(tmp_path: Path) -> None:
    path = tmp_path / "athena.csv"
    path.write_bytes(athena_csv(INCIDENT, [c for c in ATHENA_COLUMNS if c != "additionaleventdata"]))
    done = trailguard("scan", str(path))
    assert done.code == 0, done.err
    assert "blind spot: 1 inputs have no additionalEventData: a blind spot for console-login-without-mfa" in (
        done.err.splitlines()
    )
    assert "root-usage" in done.out  # what the export carries is still judged
    summary = from_uris([str(path)], Lake(str(tmp_path / "lake")), State(tmp_path / "state.db"))
    assert (summary.events, dict(summary.absent)) == (len(INCIDENT), {"additionalEventData": 1})


def test_a_broken_struct_costs_its_field_not_the_record(tmp_path: Path) -> None:
    path = tmp_path / "athena.csv"
    path.write_bytes(athena_csv(INCIDENT[:1]).replace(b'"{type=Root', b'"{type=Root, arn=[unclosed'))
    result = scan([path], load(), Context())
    assert (result.errors, result.events, dict(result.coerced)) == ([], 1, {"userIdentity": 1})
    other = tmp_path / "costs.csv"
    other.write_text("date,amount\n2024-05-01,3\n")
    assert scan([other], load(), Context()).errors == [f"{other}: not a CloudTrail export (no eventID column)"]


def test_hive_struct_text_with_commas_and_nesting_reads_back() -> None:
    identity = {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{PROD}:assumed-role/admin/alice, the admin",
        "accountId": PROD,
        "sessionContext": {"attributes": {"mfaAuthenticated": "true"}, "sessionIssuer": {"arn": ROLE}},
        "invokedBy": None,
    }
    record = table_record({"useridentity": hive(identity), "eventid": "x", "resources": "[]", "readonly": "null"})
    assert record["userIdentity"] == identity
    assert (record["eventID"], record["resources"], record["readOnly"]) == ("x", [], None)
