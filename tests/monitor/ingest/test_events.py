"""One test per CloudTrail quirk that monitor/ingest/events.py normalizes."""

from typing import Any

import msgspec
import pyarrow as pa
import pytest

from monitor.ingest.events import COLUMNS, RECORD_DECODER, SCHEMA, to_batch
from tests.cloudtrail import PROD, assumed_role, console_login, event, iam_user, normalize_batch, root


def one(rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = normalize_batch(rec).to_pylist()[0]
    return row


def test_batch_has_exactly_the_schema() -> None:
    rec = RECORD_DECODER.decode(msgspec.json.encode(event("ListBuckets", "s3.amazonaws.com", iam_user())))
    assert to_batch([rec], "x").batch.schema == SCHEMA
    assert SCHEMA.field("event_time").type == pa.timestamp("us", tz="UTC")


def test_projection_keeps_schema_order_and_types() -> None:
    rec = RECORD_DECODER.decode(msgspec.json.encode(event("ListBuckets", "s3.amazonaws.com", iam_user())))
    batch = to_batch([rec], "x", columns=["user_type", "event_id", "succeeded"]).batch
    assert batch.schema.names == [c for c in COLUMNS if c in {"user_type", "event_id", "succeeded"}]
    with pytest.raises(KeyError, match="no_such"):
        to_batch([rec], "x", columns=["no_such"])


@pytest.mark.parametrize(
    ("value", "expected"), [("Yes", True), ("YES", True), ("yes", True), ("No", False), ("nO", False)]
)
def test_mfa_used_in_any_casing(value: str, expected: bool) -> None:
    assert one(console_login(iam_user(), mfa=value))["mfa_used"] is expected


def test_mfa_used_key_in_other_casing() -> None:
    rec = console_login(iam_user(), mfa=None)
    rec["additionalEventData"]["mfaUsed"] = "Yes"
    assert one(rec)["mfa_used"] is True


def test_mfa_used_absent_is_null() -> None:
    assert one(console_login(iam_user(), mfa=None))["mfa_used"] is None


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("TRUE", True), (True, True)])
def test_mfa_authenticated_as_string(value: str | bool, expected: bool) -> None:
    assert (
        one(event("ListBuckets", "s3.amazonaws.com", assumed_role(mfa=value)))["session_mfa_authenticated"] is expected
    )


def test_sign_in_failure_with_error_message_but_no_error_code() -> None:
    # the response alone would say Success: only the errorMessage tells this sign-in failed
    row = one(console_login(iam_user(), result="Success", errorMessage="Failed authentication"))
    assert row["error_code"] is None
    assert row["error_message"] == "Failed authentication"
    assert row["succeeded"] is False


def test_console_login_succeeds_only_on_success_response() -> None:
    assert one(console_login(iam_user(), result="Success"))["succeeded"] is True
    assert one(console_login(iam_user(), result="Failure"))["succeeded"] is False
    assert one(console_login(iam_user(), responseElements=None))["succeeded"] is False


def test_error_code_makes_any_call_failed_and_empty_strings_are_null() -> None:
    assert one(event("PutObject", "s3.amazonaws.com", iam_user(), errorCode="AccessDenied"))["succeeded"] is False
    row = one(event("PutObject", "s3.amazonaws.com", iam_user(), errorCode="", errorMessage=""))
    assert (row["error_code"], row["succeeded"]) == (None, True)


def test_request_parameters_null_and_objects_kept_as_json_text() -> None:
    row = one(event("ListBuckets", "s3.amazonaws.com", iam_user(), requestParameters=None))
    assert row["request_parameters"] is None
    row = one(event("GetObject", "s3.amazonaws.com", iam_user(), requestParameters={"bucketName": "b", "n": [1, 2]}))
    assert msgspec.json.decode(row["request_parameters"]) == {"bucketName": "b", "n": [1, 2]}
    assert one(event("GetObject", "s3.amazonaws.com", iam_user()))["resources"] is None


def test_only_json_null_is_null_among_values_of_its_length() -> None:
    values = [None, [11], "ab", True, None, 1234, "null", {}]
    recs = [
        RECORD_DECODER.decode(
            msgspec.json.encode(event("GetObject", "s3.amazonaws.com", iam_user(), requestParameters=v))
        )
        for v in values
    ]
    column = to_batch(recs, "x").batch.column("request_parameters").to_pylist()
    assert column == [None, "[11]", '"ab"', "true", None, "1234", '"null"', "{}"]


def test_failed_login_without_arn_still_has_a_principal() -> None:
    ident = {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": PROD, "userName": "mallory"}
    row = one(console_login(ident, result="Failure", errorMessage="Failed authentication"))
    assert row["user_arn"] is None
    assert row["principal"] == "mallory"
    no_name = {"type": "IAMUser", "accountId": PROD, "principalId": "AIDAONLYID"}
    assert one(console_login(no_name, result="Failure"))["principal"] == "AIDAONLYID"


def test_root_without_arn_gets_the_root_arn() -> None:
    ident = {"type": "Root", "principalId": PROD, "accountId": PROD}
    assert one(console_login(ident))["principal"] == f"arn:aws:iam::{PROD}:root"


@pytest.mark.parametrize(
    ("ip", "service"),
    [("198.51.100.7", False), ("2001:db8::1", False), ("ec2.amazonaws.com", True), ("AWS Internal", True)],
)
def test_source_ip_that_is_a_service_hostname_or_aws_internal(ip: str, service: bool) -> None:
    row = one(event("Decrypt", "kms.amazonaws.com", iam_user(), ip=ip))
    assert row["source_ip"] == ip  # kept as CloudTrail wrote it
    assert row["source_ip_is_service"] is service


@pytest.mark.parametrize(
    ("text", "micros"),
    [("2024-05-01T10:15:00Z", 0), ("2024-05-01T10:15:00.123Z", 123_000), ("2024-05-01T10:15:00.5Z", 500_000)],
)
def test_event_time_with_and_without_fractional_seconds(text: str, micros: int) -> None:
    t = one(event("ListBuckets", "s3.amazonaws.com", iam_user(), time=text))["event_time"]
    assert (t.tzinfo is not None, t.hour, t.minute, t.microsecond) == (True, 10, 15, micros)


def test_root_only_by_user_type() -> None:
    assert one(event("ListBuckets", "s3.amazonaws.com", iam_user("SomethingRoot")))["user_type"] == "IAMUser"
    assert one(event("ListBuckets", "s3.amazonaws.com", root()))["user_type"] == "Root"


def test_assume_role_target_from_parameters_or_resources() -> None:
    arn = f"arn:aws:iam::{PROD}:role/r"
    rec = event("AssumeRole", "sts.amazonaws.com", iam_user(), requestParameters={"roleArn": arn})
    assert one(rec)["role_arn"] == arn
    rec = event("AssumeRole", "sts.amazonaws.com", iam_user(), resources=[{"type": "AWS::IAM::Role", "ARN": arn}])
    assert one(rec)["role_arn"] == arn


def test_create_access_key_helpers() -> None:
    rec = event(
        "CreateAccessKey",
        "iam.amazonaws.com",
        iam_user(),
        requestParameters={"userName": "bob"},
        responseElements={"accessKey": {"accessKeyId": "AKIANEW", "userName": "bob"}},
    )
    row = one(rec)
    assert (row["target_user_name"], row["new_access_key_id"]) == ("bob", "AKIANEW")


def test_records_without_id_name_or_usable_time_are_reported_not_kept() -> None:
    good = event("ListBuckets", "s3.amazonaws.com", iam_user())
    no_id = event("ListBuckets", "s3.amazonaws.com", iam_user())
    del no_id["eventID"]
    bad_time = event("ListBuckets", "s3.amazonaws.com", iam_user(), time="yesterday")
    no_name = event("ListBuckets", "s3.amazonaws.com", iam_user())
    del no_name["eventName"]
    impossible = event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-02-30T10:15:00Z")
    recs = [RECORD_DECODER.decode(msgspec.json.encode(r)) for r in (good, no_id, bad_time, no_name, impossible)]
    result = to_batch(recs, "x")
    assert result.batch.column("event_id").to_pylist() == [good["eventID"]]
    assert [(b.location, b.reason) for b in result.bad] == [
        ("record 2", "record without eventID"),
        ("record 3", "record without a valid eventTime"),
        ("record 4", "record without eventName"),
        ("record 5", "record without a valid eventTime"),
    ]
    assert len(result.records) == 1
