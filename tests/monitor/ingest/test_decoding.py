"""Decoding that keeps records: every time form exports write, fields of the wrong JSON type coerced and counted
(never the record lost), and refusal only for what is not a record (no id, time or name as text, not an object)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from detectors.core.base import Context
from detectors.core.registry import load
from monitor.config import load as load_config
from monitor.detect.scan import scan
from monitor.ingest.events import event_times
from monitor.ingest.files import decode, read_file
from monitor.ingest.run import from_uris
from monitor.lake import Lake
from monitor.outbox.delivery import guides
from monitor.outbox.finding import from_frame
from monitor.outbox.sinks.slack_message import render
from monitor.service.run import Service
from monitor.store.state import State
from tests.cloudtrail import DEV, PROD, console_login, event, iam_user, root
from tests.faults.conftest import trailguard
from tests.lakes import service_config


def lines(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2024-05-01T10:15:00Z", datetime(2024, 5, 1, 10, 15, tzinfo=UTC)),  # CloudTrail's own
        ("2022-09-27 17:09:18", datetime(2022, 9, 27, 17, 9, 18, tzinfo=UTC)),  # CloudTrail Lake, Athena
        ("2024-06-02 20:16:32.000000000", datetime(2024, 6, 2, 20, 16, 32, tzinfo=UTC)),  # nanoseconds
        ("2021-01-24 04:55:45.000", datetime(2021, 1, 24, 4, 55, 45, tzinfo=UTC)),  # milliseconds, no zone
        ("2024-05-01T10:15:00", datetime(2024, 5, 1, 10, 15, tzinfo=UTC)),  # no zone: UTC
        ("2024-05-01T12:15:00+02:00", datetime(2024, 5, 1, 10, 15, tzinfo=UTC)),  # an offset
        ("2024-05-01 05:15:00.5-0500", datetime(2024, 5, 1, 10, 15, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T10:15:00.123456789Z", datetime(2024, 5, 1, 10, 15, 0, 123456, tzinfo=UTC)),  # cut to µs
        ("2024-05-01 10:15:00 Z", datetime(2024, 5, 1, 10, 15, tzinfo=UTC)),
    ],
)
def test_every_time_form_is_read_as_utc(tmp_path: Path, written: str, meant: datetime) -> None:
    standard = event("ListBuckets", "s3.amazonaws.com", iam_user())  # a file may mix forms
    result = read_file(
        lines(tmp_path / "x.jsonl", standard, event("ListUsers", "iam.amazonaws.com", iam_user(), time=written))
    )
    assert result.error is None
    assert result.batch.column("event_time").to_pylist()[1] == meant


@pytest.mark.parametrize("written", ["...", "2024-13-01T00:00:00Z", "2024-02-30 10:00:00", "1714557300", "yesterday"])
def test_a_time_that_is_no_time_refuses_its_record_alone(tmp_path: Path, written: str) -> None:
    path = lines(
        tmp_path / "x.jsonl",
        event("ListBuckets", "s3.amazonaws.com", iam_user(), time=written),
        event("ListUsers", "iam.amazonaws.com", iam_user()),
    )
    result = read_file(path)
    assert result.batch.column("event_name").to_pylist() == ["ListUsers"]
    assert result.error == f"{path}: line 1: record without a valid eventTime"


def key_for(user: str) -> dict[str, Any]:
    return {"requestParameters": {"userName": user}, "responseElements": {"accessKey": {"accessKeyId": "AKIANEW"}}}


IDENTITY = iam_user("alice")
COERCIONS = [
    # (field set on the record, its value, the normalized column, what it holds, the field counted)
    ("userAgent", ["aws-cli/2.15", "Python/3.11"], "user_agent", '["aws-cli/2.15","Python/3.11"]', "userAgent"),
    ("userAgent", 42, "user_agent", "42", "userAgent"),
    ("errorCode", {"code": "AccessDenied"}, "error_code", '{"code":"AccessDenied"}', "errorCode"),
    ("readOnly", "true", "read_only", True, "readOnly"),
    ("readOnly", "FALSE", "read_only", False, "readOnly"),
    ("managementEvent", "maybe", "management_event", None, "managementEvent"),
    ("recipientAccountId", 111122223333, "recipient_account_id", "111122223333", "recipientAccountId"),
    ("userIdentity", json.dumps(IDENTITY), "user_name", "alice", "userIdentity"),
    ("userIdentity", "not an identity", "user_type", None, "userIdentity"),
    ("userIdentity", IDENTITY | {"sessionContext": []}, "user_name", "alice", "userIdentity.sessionContext"),
    ("userIdentity", IDENTITY | {"accountId": int(PROD)}, "user_account_id", PROD, "userIdentity.accountId"),
]


@pytest.mark.parametrize(("name", "value", "column", "held", "counted"), COERCIONS, ids=lambda v: str(v)[:24])
def test_a_wrong_typed_field_is_coerced_counted_and_the_record_kept(
    name: str, value: Any, column: str, held: Any, counted: str
) -> None:
    good = event("ListBuckets", "s3.amazonaws.com", IDENTITY)
    odd = event("ListUsers", "iam.amazonaws.com", IDENTITY, **{name: value})
    decoded = decode(json.dumps({"Records": [good, odd]}).encode(), "x.json")
    normalized = decoded.normalize()
    assert (decoded.bad, normalized.bad, normalized.batch.num_rows) == ([], [], 2)
    assert normalized.batch.column(column).to_pylist()[1] == held
    assert dict(decoded.coerced) == {counted: 1}


def test_request_parameters_as_json_text_still_name_the_key_s_user() -> None:
    created = event("CreateAccessKey", "iam.amazonaws.com", IDENTITY, **key_for("bob"))
    created["requestParameters"] = json.dumps(created["requestParameters"])
    decoded = decode(json.dumps(created).encode(), "x.json")
    row = decoded.normalize().batch.to_pylist()[0]
    assert (row["target_user_name"], row["new_access_key_id"]) == ("bob", "AKIANEW")
    assert dict(decoded.coerced) == {"requestParameters": 1}


def test_a_clean_delivery_takes_the_fast_path_with_nothing_coerced() -> None:
    decoded = decode(json.dumps({"Records": [event("ListBuckets", "s3.amazonaws.com", IDENTITY)]}).encode(), "x")
    assert (len(decoded.records), dict(decoded.coerced)) == (1, {})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"eventID": None}, "record without eventID"),
        ({"eventID": 7}, "record without eventID"),
        ({"eventName": ["ListUsers"]}, "record without eventName"),
        ({"eventTime": 1714557300}, "record without a valid eventTime"),
    ],
)
def test_only_a_record_without_an_id_time_or_name_as_text_is_refused(change: dict[str, Any], reason: str) -> None:
    odd = event("ListUsers", "iam.amazonaws.com", IDENTITY) | change
    decoded = decode(json.dumps({"Records": [odd, event("ListBuckets", "s3.amazonaws.com", IDENTITY)]}).encode(), "x")
    normalized = decoded.normalize()
    assert normalized.batch.column("event_name").to_pylist() == ["ListBuckets"]
    assert [(b.location, b.reason) for b in normalized.bad] == [("record 1", reason)]


@pytest.mark.parametrize(("item", "kind"), [("ListUsers", "a string"), ([1, 2], "an array"), (3, "a number")])
def test_what_is_not_a_json_object_is_refused_and_named(item: Any, kind: str) -> None:
    decoded = decode(json.dumps({"Records": [event("ListBuckets", "s3.amazonaws.com", IDENTITY), item]}).encode(), "x")
    assert len(decoded.records) == 1
    assert [(b.location, b.reason) for b in decoded.bad] == [("record 2", f"not a JSON object but {kind}")]


HOSTILE = ["<!channel> <https://evil.example|sign in again>", "Mozilla/5.0"]


def test_coerced_text_is_escaped_like_any_other_before_slack(tmp_path: Path) -> None:
    login = console_login(root(PROD), ip="203.0.113.66") | {"userAgent": HOSTILE}
    result = scan([lines(tmp_path / "x.jsonl", login)], load(), Context())
    assert result.coerced == {"userAgent": 1}
    findings = from_frame(result.findings)
    assert {f.detector for f in findings} >= {"root-usage", "console-login-without-mfa"}
    for finding in findings:
        posted = json.dumps(render(finding, guides(load()).get(finding.detector)).post("C0123ABCD"))
        assert "<!channel>" not in posted
        assert "<https://evil" not in posted


def test_the_counts_reach_the_scan_summary_ingest_and_the_metrics(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    lines(
        trail / "a.jsonl",
        event("ListUsers", "iam.amazonaws.com", IDENTITY, userAgent=["a", "b"], time="2024-05-01 10:15:00"),
        event("ListRoles", "iam.amazonaws.com", IDENTITY, userAgent={"x": 1}, readOnly="true"),
        event("ListBuckets", "s3.amazonaws.com", iam_user(account=DEV)),
    )
    done = trailguard("scan", str(trail))
    assert done.code == 0, done.err
    assert "3 fields coerced (userAgent 2, readOnly 1)" in done.err.splitlines()[-1]
    summary = from_uris([str(trail)], Lake(str(tmp_path / "lake")), State(tmp_path / "state.db"))
    assert (summary.events, summary.bad_records, dict(summary.coerced)) == (3, 0, {"userAgent": 2, "readOnly": 1})
    (tmp_path / "svc").mkdir()
    service = Service(load_config(service_config(tmp_path / "svc", [str(trail)]), env={}), load())
    service.cycle()
    metric = service.telemetry.registry.get_sample_value
    assert metric("trailguard_fields_coerced_total", {"field": "userAgent"}) == 2


@pytest.mark.parametrize(
    "written",
    [
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00Z",
        "2024-05-01T10Z",
        "2024-05-01 10:00:00",
        "2024-05-01T10:00:00+0200",
        "2024-05-01T10:00:00.123456789Z",
        "2024-05-01 10:00 +01",
        "2024-02-30T10:00:00Z",
        "yesterday",
    ],
)
def test_a_time_is_read_the_same_whatever_its_neighbours(written: str) -> None:
    """A batch of well-formed times casts at once, any other batch is read leniently: each value must come out
    the same either way, or a record's fate would hang on the records beside it."""
    alone = event_times(pa.array([written]))[0][0].as_py()
    for neighbour in ("2024-05-01T11:00:00Z", "garbage", "2024-02-30T10:00:00Z"):
        assert event_times(pa.array([written, neighbour]))[0][0].as_py() == alone
