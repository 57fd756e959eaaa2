"""New-log-file notifications from SQS, in every shape users wire them.

Shapes: S3 event notifications (keys URL-encoded), the same wrapped in SNS, EventBridge
"Object Created" events, and CloudTrail's own SNS notification (`s3Bucket` + `s3ObjectKey`).
`s3:TestEvent` messages are dropped. A message is deleted only once every object it names is
committed to the lake (or was already in the ledger); a message that names nothing readable
is left for the queue's redrive policy to move to its dead-letter queue, and recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from monitor.ingest.limits import Limits, Nesting
from monitor.ingest.sources import aws
from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.source import Read, Window
from monitor.text import printable

_OTHER_LOGS, _TRAIL_LOGS = re.compile(r"(?:^|/)AWSLogs/"), re.compile(r"(?:^|/)AWSLogs/(?:[^/]+/)*CloudTrail/")
VISIBILITY_SECONDS = 600  # longer than a cycle takes: a message is not redelivered while it is processed


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str | None = None
    size: int = 0


class PoisonMessage(ValueError):
    """A message that is not a notification at all, or names an object in a way no S3 event would."""


# bucket names, legacy ones included (capitals, underscores, up to 255 characters), and never a path
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_MAX_KEY = 1024
_MAX_BODY = 256 * 1024  # SQS's own limit: anything larger did not come from SQS
_MAX_DEPTH = 32


@dataclass(frozen=True)
class Parsed:
    """What one message names: the objects to ingest, and why each other entry cannot be."""

    refs: list[ObjectRef]
    invalid: list[str]


def _json(text: str) -> Any:
    try:
        return Nesting(_MAX_DEPTH).decode(json.loads, text)  # type: ignore[arg-type]
    except RecursionError:
        raise PoisonMessage(f"nested deeper than {_MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from exc


def parse_message(body: str) -> Parsed:
    """The log files a notification names, and its entries that name nothing usable; no refs and no invalid
    entries for test events and anything else that needs no work.

    PoisonMessage for a body that is not a notification at all. Every value is checked before it
    is used: a bucket that is not a bucket name, a key that is not a string, a size that is not a
    number make their entry invalid, never an exception elsewhere.
    """
    if len(body) > _MAX_BODY:
        raise PoisonMessage(f"{len(body):,} characters, larger than any SQS message")
    refs, invalid = _refs(_json(body))
    # Digest and Insight files, AWS Config's history and the other services' folders beside CloudTrail's (in a
    # shared bucket, with its notifications) hold no events to ingest
    return Parsed([r for r in refs if not _OTHER_LOGS.search(r.key) or _TRAIL_LOGS.search(r.key)], invalid)


def _ref(bucket: Any, key: Any, etag: Any = None, size: Any = 0) -> ObjectRef:
    """An object reference from untrusted values, or ValueError naming the one that is wrong."""
    if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"not a bucket name: {printable(repr(bucket)[:80])}")
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise ValueError(f"not an object key: {printable(repr(key)[:80])}")
    if etag is not None and (not isinstance(etag, str) or len(etag) > 200):
        raise ValueError(f"not an ETag: {printable(repr(etag)[:80])}")
    if isinstance(size, bool) or not isinstance(size, int | str):
        raise ValueError(f"not an object size: {printable(repr(size)[:80])}")
    try:
        number = int(size)
    except ValueError:
        raise ValueError(f"not an object size: {printable(repr(size)[:80])}") from None
    if number < 0:
        raise ValueError(f"not an object size: {number}")
    return ObjectRef(bucket, key, etag, number)


def _field(doc: Any, *path: str) -> Any:
    """doc[path[0]][path[1]]..., or None where a level is missing or not an object."""
    for name in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(name)
    return doc


def _refs(doc: Any) -> tuple[list[ObjectRef], list[str]]:
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        doc = _json(doc["Message"])  # SNS envelope
    if not isinstance(doc, dict):
        raise PoisonMessage("not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return [], []
    refs: list[ObjectRef] = []
    invalid: list[str] = []

    def add(where: str, *values: Any) -> None:
        try:
            refs.append(_ref(*values))
        except ValueError as exc:
            invalid.append(f"{where}: {exc}")

    if isinstance(doc.get("Records"), list) and doc["Records"]:  # S3 event notification
        for n, rec in enumerate(doc["Records"], 1):
            name = _field(rec, "eventName")
            if isinstance(name, str) and not name.startswith("ObjectCreated"):
                continue  # deletions and the like: nothing to ingest
            key = _field(rec, "s3", "object", "key")
            key = unquote_plus(key) if isinstance(key, str) else key
            obj = _field(rec, "s3", "object")
            size = obj.get("size", 0) if isinstance(obj, dict) else None
            add(f"record {n}", _field(rec, "s3", "bucket", "name"), key, _field(rec, "s3", "object", "eTag"), size)
        return refs, invalid
    if doc.get("detail-type") == "Object Created" and isinstance(doc.get("detail"), dict):  # EventBridge
        obj = _field(doc, "detail", "object")
        size = obj.get("size", 0) if isinstance(obj, dict) else None
        add("detail", _field(doc, "detail", "bucket", "name"), _field(obj, "key"), _field(obj, "etag"), size)
        return refs, invalid
    if doc.get("source") == "aws.s3" and isinstance(doc.get("detail-type"), str):
        return [], []  # EventBridge's other S3 events (deleted, tagged, moved to a storage class): nothing to ingest
    if isinstance(doc.get("s3Bucket"), str) and isinstance(doc.get("s3ObjectKey"), list):  # CloudTrail via SNS
        for n, key in enumerate(doc["s3ObjectKey"], 1):
            add(f"s3ObjectKey {n}", doc["s3Bucket"], key)
        return refs, invalid
    raise PoisonMessage("names no S3 object (not an S3, EventBridge or CloudTrail notification)")


@dataclass
class _Pending:
    receipt: str
    outstanding: set[tuple[str, str]] = field(default_factory=set)
    keep: bool = False  # some entry was invalid: the message goes to the dead-letter queue once its objects are in


@dataclass
class SqsSource:
    """`sqs://<region>/<account-id>/<queue-name>`; acknowledges through `acknowledge()` after commits."""

    region: str
    account: str
    queue: str
    role_arn: str | None = None
    bucket: str | None = None  # the trail bucket: a notification naming another one is not followed
    max_messages: int = 10_000
    wait_seconds: int = 1
    stream: bool = False  # wait for the first notification, and stop at the first empty receive after it
    visibility_seconds: int = VISIBILITY_SECONDS
    max_bytes: int = Limits().max_inflated  # a larger object is refused from its size
    read: Read = field(default_factory=Read)
    _pending: dict[str, _Pending] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: SourceSettings, limits: Limits = Limits()) -> SqsSource:
        region, account, queue = settings.place
        visibility = VISIBILITY_SECONDS if settings.visibility is None else settings.visibility
        source = cls(
            region,
            account,
            queue,
            settings.role_arn,
            settings.bucket,
            visibility_seconds=visibility,
            max_bytes=limits.max_inflated,
        )
        if settings.wait is not None:
            source.wait_seconds, source.stream = settings.wait, True
        return source

    def __post_init__(self) -> None:
        session = aws.session(self.role_arn, self.region)
        self.sqs = session.client("sqs", config=aws.config())
        self.s3 = session.client("s3", config=aws.config())
        self.url = self.sqs.get_queue_url(QueueName=self.queue, QueueOwnerAWSAccountId=self.account)["QueueUrl"]

    def inputs(self, window: Window) -> Iterator[Work]:
        """Receive until the queue is empty (or max_messages), yielding the objects its messages name (a
        notification has no window: the queue holds what is new).

        While messages keep coming, receives do not wait; once one comes back empty, a long poll of
        `wait_seconds` makes sure the queue is really empty (a short poll samples only some servers).
        Streaming, the first receive is the long poll (it returns as soon as a notification arrives) and
        the first empty one after it ends the run: what a short poll missed is the next run's first.
        Each message is handled on its own: whatever one holds never stops the others of its batch.
        A receive that fails ends this run's receiving (what was received is still ingested)."""
        received, wait, seen = 0, self.wait_seconds if self.stream else 0, set[str]()
        while received < self.max_messages:
            try:
                batch = self.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=self.visibility_seconds,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                ).get("Messages", [])
            except Exception as exc:
                self.read.errors.append(f"{self.queue}: receive failed ({type(exc).__name__}: {exc})")
                return
            if not batch:
                if wait == self.wait_seconds or self.stream:
                    return
                wait = self.wait_seconds
                continue
            fresh = [m for m in batch if m.get("MessageId") not in seen]
            for again in (m for m in batch if m.get("MessageId") in self._pending):
                self._pending[again["MessageId"]].receipt = again.get("ReceiptHandle", "")  # the handle that deletes
            if not fresh:  # its visibility ran out while this run holds it: what comes back is what it has
                return
            wait = 0
            received += len(batch)
            seen.update(str(m.get("MessageId")) for m in fresh)
            for message in fresh:
                yield from self._message(message)

    def _poisoned(self, message: dict[str, Any], reason: str) -> None:
        """Named for the ledger (once per receive) and left alone: the redrive policy moves it to the dead-letter
        queue."""
        mid = str(message.get("MessageId", ""))
        count = str(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        self.read.rejected.append((Work("sqs", self.url, mid, count), reason))
        self.read.errors.append(f"{self.queue}: message {mid}: {reason}; left for the dead-letter queue")

    def _message(self, message: dict[str, Any]) -> Iterator[Work]:
        mid, receipt, body = message.get("MessageId"), message.get("ReceiptHandle"), message.get("Body")
        if not isinstance(mid, str) or not isinstance(receipt, str) or not isinstance(body, str):
            self.read.errors.append(f"{self.queue}: a message without an id, receipt or body was skipped")
            return
        try:
            parsed = parse_message(body)
        except PoisonMessage as exc:
            self._poisoned(message, str(exc))
            return
        invalid = parsed.invalid + [
            f"names bucket {r.bucket!r}, not the trail bucket {self.bucket!r}"
            for r in parsed.refs
            if self.bucket and r.bucket != self.bucket
        ]
        if invalid:  # its good entries are still ingested; the message itself goes to the dead-letter queue
            self._poisoned(message, "; ".join(invalid))
        works, unread = [], set()
        for ref in (r for r in parsed.refs if not self.bucket or r.bucket == self.bucket):
            try:
                works.append(self._work(ref, mid))
            except Exception as exc:  # gone or not yet readable: it waits (the message kept) for a later receive
                unread.add((ref.bucket, ref.key))
                self.read.errors.append(f"{self.queue}: message {mid}: {ref.key}: {type(exc).__name__}: {exc}")
        outstanding = {(w.bucket, w.key) for w in works} | unread  # an object not read keeps the message
        self._pending[mid] = _Pending(receipt, outstanding, keep=bool(invalid))
        yield from works
        if not outstanding:
            self._delete(mid)  # a test event, a deletion, a digest file: nothing to wait for

    def _work(self, ref: ObjectRef, message_id: str) -> Work:
        """The object as an input. S3 is asked for its ETag and size when the notification has no ETag
        (CloudTrail's own) and when it claims a size over the limit: a size refuses an object for good, and a
        notification's size is only what its sender wrote."""
        etag, size = ref.etag, ref.size
        if etag is None or size > self.max_bytes:
            head = self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
            etag, size = head["ETag"], head["ContentLength"]
        return Work("s3", ref.bucket, ref.key, etag.strip('"'), size, self.role_arn, ack=message_id)

    def acknowledge(self, works: Sequence[Work]) -> None:
        """Called after commits: delete each message whose objects are all durable."""
        done = []
        for work in works:
            pending = self._pending.get(work.ack)
            if pending is None:
                continue
            pending.outstanding.discard((work.bucket, work.key))
            if not pending.outstanding:
                done.append(work.ack)
        self._delete(*done)

    def _delete(self, *message_ids: str) -> None:
        """A message is deleted once nothing in it is left to do, ten to a call; one that failed a check is kept
        for the dead-letter queue. A failed delete only means the message comes back, and the ledger skips it."""
        finished = [(mid, self._pending.pop(mid)) for mid in dict.fromkeys(message_ids) if mid in self._pending]
        receipts = [(mid, p.receipt) for mid, p in finished if not p.keep]
        for start in range(0, len(receipts), 10):
            batch = receipts[start : start + 10]
            entries = [{"Id": str(n), "ReceiptHandle": receipt} for n, (_, receipt) in enumerate(batch)]
            try:
                failed = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries).get("Failed", [])
            except Exception as exc:
                failed = [{"Id": e["Id"], "Message": f"{type(exc).__name__}: {exc}"} for e in entries]
            for failure in failed:
                mid = batch[int(failure["Id"])][0]
                self.read.errors.append(f"{self.queue}: message {mid}: delete failed ({failure.get('Message', '')})")
