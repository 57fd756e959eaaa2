"""Every shape of CloudTrail data users keep, and every way a file can be bad."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.ingest.files import discover, read_file
from tests.cloudtrail import event, iam_user


def records(n: int = 3) -> list[dict[str, Any]]:
    return [event("ListBuckets", "s3.amazonaws.com", iam_user()) for _ in range(n)]


def ids(path: Path) -> list[str]:
    result = read_file(path)
    assert result.error is None, result.error
    return list(result.batch.column("event_id").to_pylist())


def test_s3_delivery_json_and_gz(tmp_path: Path) -> None:
    recs = records()
    (tmp_path / "a.json").write_text(json.dumps({"Records": recs}))
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(json.dumps({"Records": recs}).encode()))
    assert ids(tmp_path / "a.json") == ids(tmp_path / "a.json.gz") == [r["eventID"] for r in recs]


def test_json_lines_plain_and_gz(tmp_path: Path) -> None:
    recs = records()
    text = "\n".join(json.dumps(r) for r in recs) + "\n\n"
    (tmp_path / "a.jsonl").write_text(text)
    (tmp_path / "a.ndjson.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "lines.json").write_text(text)  # JSON Lines under a .json name
    assert ids(tmp_path / "a.jsonl") == ids(tmp_path / "a.ndjson.gz") == ids(tmp_path / "lines.json")
    assert len(ids(tmp_path / "a.jsonl")) == 3


def test_json_array_and_single_record(tmp_path: Path) -> None:
    recs = records()
    (tmp_path / "array.json").write_text(json.dumps(recs, indent=2))
    (tmp_path / "one.json").write_text(json.dumps(recs[0], indent=2))
    assert ids(tmp_path / "array.json") == [r["eventID"] for r in recs]
    assert ids(tmp_path / "one.json") == [recs[0]["eventID"]]


def test_lookup_events_output(tmp_path: Path) -> None:
    recs = records()
    out = {
        "Events": [
            {"EventId": r["eventID"], "EventName": "ListBuckets", "CloudTrailEvent": json.dumps(r)} for r in recs
        ]
    }
    (tmp_path / "lookup.json").write_text(json.dumps(out))
    assert ids(tmp_path / "lookup.json") == [r["eventID"] for r in recs]


def test_eventbridge_envelopes_single_array_and_lines(tmp_path: Path) -> None:
    recs = records(2)
    envelopes = [
        {"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": r} for r in recs
    ]
    (tmp_path / "one.json").write_text(json.dumps(envelopes[0]))
    (tmp_path / "many.json").write_text(json.dumps(envelopes))
    (tmp_path / "many.jsonl").write_text("\n".join(json.dumps(e) for e in envelopes))
    assert ids(tmp_path / "one.json") == [recs[0]["eventID"]]
    assert ids(tmp_path / "many.json") == ids(tmp_path / "many.jsonl") == [r["eventID"] for r in recs]


def test_directories_recursive_skipping_digests(tmp_path: Path) -> None:
    trail = tmp_path / "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01"
    digest = tmp_path / "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/01"
    trail.mkdir(parents=True)
    digest.mkdir(parents=True)
    (trail / "x.json.gz").write_bytes(gzip.compress(json.dumps({"Records": records()}).encode()))
    (digest / "111122223333_CloudTrail-Digest_us-east-1_x.json.gz").write_bytes(gzip.compress(b"{}"))
    (trail / "notes.txt").write_text("not data")
    files, errors = discover([tmp_path, tmp_path / "missing"])
    assert [f.path for f in files] == [trail / "x.json.gz"]
    assert errors == [f"{tmp_path / 'missing'}: no such file or directory"]


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": records()}).encode())[:40])
    result = read_file(path)
    assert result.error is not None
    assert result.error.startswith(f"{path}: corrupt or truncated gzip")
    assert result.batch.num_rows == 0


def test_invalid_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"Records": [{"eventID": "a",')
    error = read_file(path).error
    assert error is not None
    assert error.startswith(f"{path}: invalid JSON")


def test_json_that_is_not_cloudtrail(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"name": "settings", "debug": True}))
    assert read_file(path).error == f"{path}: not CloudTrail data (no Records, Events, detail, hits, _raw or eventID)"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("  \n")
    assert read_file(path).error == f"{path}: empty file"


def test_records_without_id_are_counted_and_the_rest_kept(tmp_path: Path) -> None:
    recs = records(4)
    del recs[1]["eventID"]
    del recs[2]["eventTime"]
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"Records": recs}))
    result = read_file(path)
    assert result.batch.num_rows == 2
    assert (result.records, result.bad_records) == (4, 2)
    assert result.error == f"{path}: record 2: record without eventID (and 1 more bad records)"


def test_bad_json_line_names_the_line_and_keeps_the_others(tmp_path: Path) -> None:
    recs = records(3)
    lines = [json.dumps(recs[0]), "{not json", json.dumps(recs[2])]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(lines))
    result = read_file(path)
    assert result.batch.column("event_id").to_pylist() == [recs[0]["eventID"], recs[2]["eventID"]]
    assert result.error is not None
    assert result.error.startswith(f"{path}: line 2: invalid JSON")


def test_a_record_whose_name_is_not_text_is_refused_alone(tmp_path: Path) -> None:
    recs = records(3)
    recs[1]["eventName"] = 42
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"Records": recs}))
    result = read_file(path)
    assert result.batch.num_rows == 2
    assert result.error == f"{path}: record 2: record without eventName"


@pytest.mark.parametrize("name", ["x.json", "x.json.gz"])
def test_unreadable_path_is_an_error_not_an_exception(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.mkdir()
    assert read_file(path).error is not None
