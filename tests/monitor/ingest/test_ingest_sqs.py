"""Ingest from SQS notifications in every shape, against moto over HTTP."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitor.ingest.run import Options, from_source
from monitor.ingest.sources.source import Window
from monitor.ingest.sources.sqs import PoisonMessage, SqsSource, parse_message
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import PROD, event, iam_user

BUCKET = "trail"
ACCOUNT = "123456789012"  # moto's default account


def test_message_shapes() -> None:
    s3_event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "bkt"},
                    "object": {"key": "AWSLogs/1/CloudTrail/a+b%3D.json.gz", "eTag": "e1", "size": 5},
                },
            }
        ]
    }
    assert parse_message(json.dumps(s3_event)).refs[0].key == "AWSLogs/1/CloudTrail/a b=.json.gz"
    sns = {"Type": "Notification", "Message": json.dumps(s3_event)}
    assert parse_message(json.dumps(sns)) == parse_message(json.dumps(s3_event))
    bridge = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "bkt"}, "object": {"key": "k.json.gz", "etag": "e2", "size": 1}},
    }
    assert [(r.bucket, r.key, r.etag) for r in parse_message(json.dumps(bridge)).refs] == [("bkt", "k.json.gz", "e2")]
    trail = {"s3Bucket": "bkt", "s3ObjectKey": ["k1.json.gz", "k2.json.gz"]}
    assert [r.key for r in parse_message(json.dumps({"Type": "Notification", "Message": json.dumps(trail)})).refs] == [
        "k1.json.gz",
        "k2.json.gz",
    ]
    assert parse_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})).refs == []
    digest = {
        "s3Bucket": "bkt",
        "s3ObjectKey": ["AWSLogs/1/CloudTrail-Digest/us-east-1/x.json.gz", "AWSLogs/1/CloudTrail/k"],
    }
    assert [r.key for r in parse_message(json.dumps(digest)).refs] == ["AWSLogs/1/CloudTrail/k"]
    removed = {
        "Records": [{"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "bkt"}, "object": {"key": "k"}}}]
    }
    assert parse_message(json.dumps(removed)).refs == []
    for poison in ("not json", "[1]", json.dumps({"hello": "world"}), "[" * 100 + "]" * 100):
        with pytest.raises(PoisonMessage):
            parse_message(poison)


def created(bucket: object, key: object, size: object = 1) -> dict[str, object]:
    return {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}}


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"eventName": "ObjectCreated:Put", "s3": "x"}, "not a bucket name: None"),
        (created("../../etc", "k"), "not a bucket name: '../../etc'"),
        (created("bkt", {"k": 1}), "not an object key: {'k': 1}"),
        (created("bkt", "k", "abc"), "not an object size: 'abc'"),
        (created("bkt", "k", [1]), "not an object size: [1]"),
        (created("bkt", "k", -5), "not an object size: -5"),
    ],
)
def test_each_entry_is_checked_and_the_good_ones_kept(entry: dict[str, object], why: str) -> None:
    parsed = parse_message(json.dumps({"Records": [entry, created("bkt", "good.json.gz")]}))
    assert [r.key for r in parsed.refs] == ["good.json.gz"]
    assert parsed.invalid == [f"record 1: {why}"]
    bridge = parse_message(json.dumps({"detail-type": "Object Created", "detail": {}}))
    assert (bridge.refs, bridge.invalid) == ([], ["detail: not a bucket name: None"])


@pytest.fixture
def wired(aws: str) -> dict[str, Any]:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    dlq = sqs.create_queue(QueueName="trail-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    url = sqs.create_queue(QueueName="trail-new", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return {"s3": s3, "sqs": sqs, "url": url, "dlq": dlq}


def put(s3: Any, key: str, n: int = 3) -> set[str]:
    recs = [event("ListBuckets", "s3.amazonaws.com", iam_user("a", PROD)) for _ in range(n)]
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": recs}).encode()))
    return {r["eventID"] for r in recs}


def run(tmp_path: Path, **options: Any) -> tuple[Any, SqsSource, Lake]:
    state, lake = State(tmp_path / "state.db"), Lake(str(tmp_path / "lake"))
    source = SqsSource("us-east-1", ACCOUNT, "trail-new", wait_seconds=0, **options)
    return from_source(source, Window(), lake, state, Options(workers=1)), source, lake


def ids(lake: Lake) -> set[str]:
    return set(
        lake.read(datetime(2024, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC), ["event_id"])[
            "event_id"
        ].to_pylist()
    )


def queued(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_every_shape_ingested_and_messages_deleted(wired: dict[str, Any], tmp_path: Path) -> None:
    s3, sqs, url = wired["s3"], wired["sqs"], wired["url"]
    expected = put(s3, "AWSLogs/1/CloudTrail/us-east-1/2024/05/01/a.json.gz")  # real S3 notification
    expected |= put(s3, "AWSLogs/1/CloudTrail/us-east-1/2024/05/01/b.json.gz")
    for body in (
        {
            "Type": "Notification",
            "Message": json.dumps(
                {"s3Bucket": BUCKET, "s3ObjectKey": ["AWSLogs/1/CloudTrail/us-east-1/2024/05/01/b.json.gz"]}
            ),
        },
        {
            "detail-type": "Object Created",
            "detail": {
                "bucket": {"name": BUCKET},
                "object": {"key": "AWSLogs/1/CloudTrail/us-east-1/2024/05/01/a.json.gz"},
            },
        },
        {"Service": "Amazon S3", "Event": "s3:TestEvent"},
    ):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    summary, source, lake = run(tmp_path)
    assert ids(lake) == expected
    assert summary.errors == []
    assert queued(sqs, url) == 0
    assert source.read.rejected == []


def test_already_ingested_object_only_deletes_its_message(wired: dict[str, Any], tmp_path: Path) -> None:
    put(wired["s3"], "k.json.gz")
    run(tmp_path)
    body = {"s3Bucket": BUCKET, "s3ObjectKey": ["k.json.gz"]}
    wired["sqs"].send_message(QueueUrl=wired["url"], MessageBody=json.dumps(body))
    summary, _, _ = run(tmp_path)
    assert (summary.inputs, queued(wired["sqs"], wired["url"])) == (0, 0)


def test_poison_message_is_recorded_left_for_the_dead_letter_queue(wired: dict[str, Any], tmp_path: Path) -> None:
    sqs, url = wired["sqs"], wired["url"]
    sqs.send_message(QueueUrl=url, MessageBody="garbage")
    _, source, _ = run(tmp_path, visibility_seconds=1)
    assert len(source.read.rejected) == 1
    assert [o.source for o in State(tmp_path / "state.db").objects("quarantined")] == ["sqs"]
    time.sleep(1.2)
    run(tmp_path, visibility_seconds=1)  # the next receive hands it to the redrive policy
    assert queued(sqs, wired["dlq"]) == 1
    assert queued(sqs, url) == 0


def test_missing_object_is_retried_not_deleted(wired: dict[str, Any], tmp_path: Path) -> None:
    body = {"s3Bucket": BUCKET, "s3ObjectKey": ["gone.json.gz"]}
    wired["sqs"].send_message(QueueUrl=wired["url"], MessageBody=json.dumps(body))
    put(wired["s3"], "there.json.gz")
    summary, source, _ = run(tmp_path)
    assert summary.inputs == 1  # the other notification still goes through
    assert len(source.read.errors) == 1
    assert "404" in source.read.errors[0]
    assert queued(wired["sqs"], wired["url"]) == 1  # kept for a later receive, then the dead-letter queue
