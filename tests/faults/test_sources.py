"""Sources: a poison message never takes its batch with it, and a garbage LookupEvents page costs only its
garbage."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.cloudtrail import event, iam_user
from tests.faults.conftest import no_traceback, trailguard, wait_until
from tests.faults.test_fuzz import lake_ids
from tests.lookup_server import LookupService, serve

BUCKET, QUEUE, ACCOUNT = "trail", "trail-notes", "123456789012"


def created(key: str, **obj: Any) -> str:
    note = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, **obj}}}
    return json.dumps({"Records": [note]})


POISON = [
    "[" * 3000 + "]" * 3000,  # nested deeper than any notification
    created("AWSLogs/x.json.gz", size="abc"),  # a size that is not a number
    created("AWSLogs/y.json.gz").replace(f'"name": "{BUCKET}"', '"name": "../../etc"'),  # a bucket that is a path
    "not a notification",
]


def test_a_poison_message_never_takes_its_batch_to_the_dead_letter_queue(aws: str, tmp_path: Path) -> None:
    """Good notifications arrive in the same receive as poison ones: the good are ingested and deleted at once,
    and only the poison goes to the dead-letter queue when the queue redelivers it."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "1"})
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    expected: set[str] = set()
    good = []
    for n in range(3):
        records = [event("ListBuckets", "s3.amazonaws.com", iam_user()) for _ in range(4)]
        key = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{n}.json.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
        expected |= {r["eventID"] for r in records}
        good.append(created(key))
    bodies = [b for pair in zip([*good, ""], POISON, strict=True) for b in pair if b]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    command = ["ingest", "--source", f"sqs://us-east-1/{ACCOUNT}/{QUEUE}?visibility=1", "--lake", str(lake)]
    command += ["--state", str(state), "--no-progress"]
    first = trailguard(*command)
    no_traceback(first)
    assert first.code == 2
    assert len([e for e in first.errors if "left for the dead-letter queue" in e]) == len(POISON)
    assert set(lake_ids(lake)) == expected

    def dead_letters() -> list[str]:
        trailguard(*command)  # a receive after the visibility timeout hands the poison to the redrive policy
        found = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return [m["Body"] for m in found]

    wait_until(lambda: len(dead_letters()) == len(POISON), "the poison in the dead-letter queue")
    assert sorted(dead_letters()) == sorted(POISON)  # and nothing good followed it
    assert max(lake_ids(lake).values()) == 1


@pytest.fixture
def lookup(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LookupService]:
    service = LookupService(page_size=5)
    server, url = serve(service)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", url)
    yield service
    server.shutdown()


def test_garbage_in_a_lookup_events_page_costs_only_itself(lookup: LookupService, tmp_path: Path) -> None:
    lookup.events = [event("ListBuckets", "s3.amazonaws.com", iam_user(), time=_minutes_ago(n)) for n in range(8)]
    lookup.garbage = [
        {"EventId": "g1", "CloudTrailEvent": "not json"},
        {"EventId": "g2"},
        {"EventId": "g3", "CloudTrailEvent": "[" * 5000 + "]" * 5000},
        {"EventId": "g4", "CloudTrailEvent": json.dumps({"eventID": "no-time"})},
    ]
    lake = tmp_path / "lake"
    result = trailguard(
        "ingest", "--source", "lookup://us-east-1", "--lake", str(lake), "--state", str(tmp_path / "s.db")
    )
    no_traceback(result)
    assert result.code == 2, result.err  # bad input is named and counted, as in a file
    bad = int(re.search(r"(\d+) bad records", result.err)[1])  # type: ignore[index]
    assert bad > 0
    assert bad % 4 == 0  # the four garbage items of every page read (a page per six-hour slice at least)
    assert all(line.startswith("error: lookup://123456789012/us-east-1") for line in result.errors)
    assert set(lake_ids(lake)) == {e["eventID"] for e in lookup.events}


def _minutes_ago(n: int) -> str:
    return f"{datetime.now(UTC) - timedelta(minutes=n + 1):%Y-%m-%dT%H:%M:%SZ}"


def _queue(name: str = QUEUE) -> tuple[Any, Any, str]:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    return s3, sqs, sqs.create_queue(QueueName=name)["QueueUrl"]


def _log_file(s3: Any, name: str) -> tuple[str, set[str], dict[str, Any]]:
    """A log file in the trail: its key, its events and what S3 says of it."""
    records = [event("ListBuckets", "s3.amazonaws.com", iam_user()) for _ in range(3)]
    key = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/01/{name}.json.gz"
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
    return key, {r["eventID"] for r in records}, put


def test_notifications_that_lie_or_name_other_things_cost_only_themselves(aws: str, tmp_path: Path) -> None:
    """CloudTrail's own notification naming a file that is gone beside one that is there: the one there is
    ingested, the message kept for the other. A notification claiming a size over the limit for a real file: S3
    is asked, and the file ingested (a size alone refuses a file for good). EventBridge's other S3 events, and
    AWS Config's files beside CloudTrail's: nothing to do, not poison. A queue whose visibility is 0 hands back
    the same messages at once: each is handled once per run."""
    s3, sqs, url = _queue()
    there, expected, _ = _log_file(s3, "there")
    lied, more, put = _log_file(s3, "lied-about")
    expected |= more
    gone = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/01/gone.json.gz"
    config = f"AWSLogs/{ACCOUNT}/Config/us-east-1/2024/5/1/ConfigHistory/x.json.gz"
    s3.put_object(Bucket=BUCKET, Key=config, Body=b"{}")
    bodies = [
        json.dumps({"Type": "Notification", "Message": json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [gone, there]})}),
        created(lied, eTag=put["ETag"].strip('"'), size=10**12),
        json.dumps({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {"object": {"key": there}}}),
        created(config),
    ]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    command = ["ingest", "--source", f"sqs://us-east-1/{ACCOUNT}/{QUEUE}?visibility=0", "--lake", str(lake)]
    done = trailguard(*command, "--state", str(state), "--no-progress")
    no_traceback(done)
    assert set(lake_ids(lake)) == expected
    assert max(lake_ids(lake).values()) == 1
    assert done.code == 2  # the file that is gone
    [error] = done.errors  # once, though the queue handed its message back again and again
    assert "gone.json.gz" in error
    assert "0 quarantined" in done.err
