"""New-log-file notifications from SQS, in every shape users wire them.

Shapes: S3 event notifications (keys URL-encoded), the same wrapped in SNS, EventBridge
"Object Created" events, and CloudTrail's own SNS notification (`s3Bucket` + `s3ObjectKey`).
`s3:TestEvent` messages are dropped. A message is deleted only once every object it names is
committed to the lake (or was already in the ledger); a message that names nothing readable
is left for the queue's redrive policy to move to its dead-letter queue, and recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from monitor.sources import aws
from monitor.sources.inputs import Work
from monitor.state import ObjectRecord, State

_NOT_EVENTS = ("CloudTrail-Digest", "CloudTrail-Insight")
VISIBILITY_SECONDS = 600  # longer than a cycle takes: a message is not redelivered while it is processed


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str | None = None
    size: int = 0


class PoisonMessage(ValueError):
    """A message that names no object and is not a test event."""


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from exc


def parse_message(body: str) -> list[ObjectRef]:
    """The log files a notification names; [] for test events and anything else that needs no work.

    PoisonMessage for a body that is not a notification at all.
    """
    try:
        refs = _refs(_json(body))
    except (AttributeError, TypeError, KeyError) as exc:  # JSON of the wrong shape
        raise PoisonMessage(f"malformed notification ({type(exc).__name__}: {exc})") from exc
    # Digest and Insight files share the bucket (and its notifications) but hold no events to ingest.
    return [r for r in refs if not any(f"/{folder}/" in f"/{r.key}" for folder in _NOT_EVENTS)]


def _refs(doc: Any) -> list[ObjectRef]:
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        doc = _json(doc["Message"])  # SNS envelope
    if not isinstance(doc, dict):
        raise PoisonMessage("not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return []
    if isinstance(doc.get("Records"), list) and doc["Records"]:  # S3 event notification
        refs = []
        for rec in doc["Records"]:
            if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
                continue  # deletions and the like: nothing to ingest
            obj, bucket = rec["s3"]["object"], rec["s3"]["bucket"]["name"]
            refs.append(ObjectRef(str(bucket), unquote_plus(str(obj["key"])), obj.get("eTag"), int(obj.get("size", 0))))
        return refs
    if doc.get("detail-type") == "Object Created" and isinstance(doc.get("detail"), dict):  # EventBridge
        obj, bucket = doc["detail"]["object"], doc["detail"]["bucket"]["name"]
        return [ObjectRef(str(bucket), str(obj["key"]), obj.get("etag"), int(obj.get("size", 0)))]
    if isinstance(doc.get("s3Bucket"), str) and isinstance(doc.get("s3ObjectKey"), list):  # CloudTrail via SNS
        return [ObjectRef(doc["s3Bucket"], k) for k in doc["s3ObjectKey"] if isinstance(k, str)]
    raise PoisonMessage("names no S3 object (not an S3, EventBridge or CloudTrail notification)")


@dataclass
class _Pending:
    receipt: str
    outstanding: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class SqsSource:
    """`sqs://<region>/<account-id>/<queue-name>`; acknowledges through `acknowledge()` after commits."""

    region: str
    account: str
    queue: str
    state: State
    role_arn: str | None = None
    max_messages: int = 10_000
    wait_seconds: int = 1
    visibility_seconds: int = VISIBILITY_SECONDS
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)
    _pending: dict[str, _Pending] = field(default_factory=dict)

    @classmethod
    def from_uri(cls, uri: str, state: State, **options: Any) -> SqsSource:
        """`sqs://<region>/<account-id>/<queue>[?visibility=SECONDS][&role_arn=ARN]`."""
        base, query = aws.split_uri(uri, frozenset({"role_arn", "visibility"}))
        parts = base.removeprefix("sqs://").strip("/").split("/")
        if len(parts) != 3:
            raise ValueError(f"{uri}: expected sqs://<region>/<account-id>/<queue>")
        region, account, queue = parts
        if "visibility" in query:
            options["visibility_seconds"] = int(query.pop("visibility"))
        return cls(region, account, queue, state, **(options | query))

    def __post_init__(self) -> None:
        session = aws.session(self.role_arn, self.region)
        self.sqs = session.client("sqs", config=aws.config())
        self.s3 = session.client("s3", config=aws.config())
        self.url = self.sqs.get_queue_url(QueueName=self.queue, QueueOwnerAWSAccountId=self.account)["QueueUrl"]

    def works(self) -> Iterator[Work]:
        """Receive until the queue is empty (or max_messages), yielding the objects not yet ingested."""
        received = 0
        while received < self.max_messages:
            batch = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_seconds,
                VisibilityTimeout=self.visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not batch:
                return
            received += len(batch)
            for message in batch:
                yield from self._message(message)

    def _message(self, message: dict[str, Any]) -> Iterator[Work]:
        mid, receipt = message["MessageId"], message["ReceiptHandle"]
        try:
            refs = parse_message(message["Body"])
        except PoisonMessage as exc:
            self.poisoned += 1
            count = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
            self.state.record([ObjectRecord("sqs", self.url, mid, count, "quarantined", 0, 0, str(exc))])
            return  # not deleted: the redrive policy moves it to the dead-letter queue
        try:
            works = [self._work(ref, mid) for ref in refs]
        except ClientError as exc:  # gone or not yet readable: leave the message for a later receive
            self.errors.append(f"{self.queue}: message {mid}: {exc}")
            return
        pending = _Pending(receipt, {(w.bucket, w.key) for w in works})
        self._pending[mid] = pending
        for work in works:
            if self.state.seen("s3", work.bucket, [(work.key, work.etag)]):
                self.acknowledge([work])  # committed by an earlier run: only the message is left
            else:
                yield work
        if not works:
            self._delete(mid)  # a test event, a deletion, a digest file: nothing to wait for

    def _work(self, ref: ObjectRef, message_id: str) -> Work:
        etag, size = ref.etag, ref.size
        if etag is None:  # CloudTrail's notification carries no ETag: the ledger needs one
            head = self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
            etag, size = head["ETag"], head["ContentLength"]
        return Work("s3", ref.bucket, ref.key, etag.strip('"'), size, self.role_arn, ack=message_id)

    def acknowledge(self, works: Sequence[Work]) -> None:
        """Called after commits: delete each message whose objects are all durable."""
        for work in works:
            pending = self._pending.get(work.ack)
            if pending is None:
                continue
            pending.outstanding.discard((work.bucket, work.key))
            if not pending.outstanding:
                self._delete(work.ack)

    def _delete(self, message_id: str) -> None:
        pending = self._pending.pop(message_id, None)
        if pending is not None:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=pending.receipt)
