"""The normalized event schema, and the one place that knows raw CloudTrail JSON shapes.

Records are decoded by msgspec into typed structs whose free-form objects stay as raw JSON
spans (`msgspec.Raw`), so nothing nested is ever built as Python dicts on the hot path. Each
batch of records becomes one Arrow record batch with a fixed, explicit schema; every CloudTrail
quirk is normalized here once so that detectors never see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

JSON_TEXT = pa.string()

SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("event_source", pa.string()),
        ("event_name", pa.string()),
        ("event_type", pa.string()),
        ("event_version", pa.string()),
        ("aws_region", pa.string()),
        ("recipient_account_id", pa.string()),
        ("source_ip", pa.string()),
        ("user_agent", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("read_only", pa.bool_()),
        ("management_event", pa.bool_()),
        ("shared_event_id", pa.string()),
        ("request_id", pa.string()),
        ("user_type", pa.string()),
        ("user_arn", pa.string()),
        ("user_account_id", pa.string()),
        ("user_principal_id", pa.string()),
        ("user_name", pa.string()),
        ("access_key_id", pa.string()),
        ("invoked_by", pa.string()),
        ("session_issuer_arn", pa.string()),
        ("session_issuer_type", pa.string()),
        ("session_mfa_authenticated", pa.bool_()),
        ("mfa_used", pa.bool_()),
        ("console_login_result", pa.string()),
        ("request_parameters", JSON_TEXT),
        ("response_elements", JSON_TEXT),
        ("additional_event_data", JSON_TEXT),
        ("resources", JSON_TEXT),
        ("service_event_details", JSON_TEXT),
        # helper columns derived here so that no detector has to know a raw shape
        ("succeeded", pa.bool_()),
        ("source_ip_is_service", pa.bool_()),
        ("principal", pa.string()),
        ("role_arn", pa.string()),
        ("target_user_name", pa.string()),
        ("new_access_key_id", pa.string()),  # the key an event issued: CreateAccessKey's, or a session's
        ("saml_provider_arn", pa.string()),
        # provenance
        ("source_uri", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)


class SessionIssuer(msgspec.Struct, gc=False):
    type: str | None = None
    arn: str | None = None


class SessionAttributes(msgspec.Struct, gc=False):
    mfaAuthenticated: str | bool | None = None


class SessionContext(msgspec.Struct, gc=False):
    attributes: SessionAttributes | None = None
    sessionIssuer: SessionIssuer | None = None


class UserIdentity(msgspec.Struct, gc=False):
    type: str | None = None
    principalId: str | None = None
    arn: str | None = None
    accountId: str | None = None
    accessKeyId: str | None = None
    userName: str | None = None
    invokedBy: str | None = None
    sessionContext: SessionContext | None = None


class Record(msgspec.Struct, gc=False):
    """The CloudTrail record envelope; unknown keys are skipped, free-form objects stay raw."""

    eventID: str | None = None
    eventTime: str | None = None
    eventVersion: str | None = None
    eventSource: str | None = None
    eventName: str | None = None
    eventType: str | None = None
    awsRegion: str | None = None
    recipientAccountId: str | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None
    readOnly: bool | None = None
    managementEvent: bool | None = None
    sharedEventID: str | None = None
    requestID: str | None = None
    userIdentity: UserIdentity | None = None
    requestParameters: msgspec.Raw = msgspec.Raw()
    responseElements: msgspec.Raw = msgspec.Raw()
    additionalEventData: msgspec.Raw = msgspec.Raw()
    resources: msgspec.Raw = msgspec.Raw()
    serviceEventDetails: msgspec.Raw = msgspec.Raw()


class Delivery(msgspec.Struct, gc=False):
    """An S3 delivery object: `{"Records": [...]}`."""

    Records: list[Record] | None = None


RECORD_DECODER = msgspec.json.Decoder(Record)
DELIVERY_DECODER = msgspec.json.Decoder(Delivery)


class IdentityGlance(msgspec.Struct, gc=False):
    type: str | None = None


class Glance(msgspec.Struct, gc=False):
    """The few fields of a record a scan looks at before it decides to decode the rest: those that make it an
    event (id, time, name) and those the catalog's selects ask about. Typed as `Record` types them, so that each
    value is the one a full decode gives (a test compares)."""

    eventID: str | None = None
    eventTime: str | None = None
    eventName: str | None = None
    eventSource: str | None = None
    errorCode: str | None = None
    userIdentity: IdentityGlance | None = None


class Glimpses(msgspec.Struct, gc=False):
    Records: list[Glance] | None = None


class Spans(msgspec.Struct, gc=False):
    """An S3 delivery object's records as the raw JSON text of each."""

    Records: list[msgspec.Raw] | None = None


GLANCE_DECODER = msgspec.json.Decoder(Glimpses)
SPANS_DECODER = msgspec.json.Decoder(Spans)
_NO_IDENTITY_GLANCE = IdentityGlance()
# the select columns a glance holds, each built as the full decode builds it
GLANCED = frozenset({"event_name", "event_source", "error_code", "user_type"})


def glance_columns(glances: Sequence[Glance]) -> dict[str, pa.Array]:
    """A glance's columns: GLANCED, and the event's id and time (as text)."""
    fields = {
        "event_id": "eventID",
        "event_time": "eventTime",
        "event_name": "eventName",
        "event_source": "eventSource",
    }
    columns = {c: pa.array(list(map(attrgetter(f), glances)), pa.string()) for c, f in fields.items()}
    idents = [g.userIdentity or _NO_IDENTITY_GLANCE for g in glances]
    return columns | {
        "error_code": _empty_to_null(pa.array(list(map(attrgetter("errorCode"), glances)), pa.string())),
        "user_type": pa.array(list(map(attrgetter("type"), idents)), pa.string()),
    }


_NO_IDENTITY = UserIdentity()
_NO_SESSION = SessionContext()
_NO_ISSUER = SessionIssuer()
_NO_ATTRIBUTES = SessionAttributes()
_ASSUME_ROLE = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"})
_IPV4 = r"^\d{1,3}(\.\d{1,3}){3}$"


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be normalized: where it was and why."""

    location: str
    reason: str


def _json_text(raws: Sequence[msgspec.Raw]) -> pa.Array:
    """Hand Arrow the raw JSON spans as one buffer plus offsets: no per-value str objects. An absent
    object and a JSON `null` are both null; the nulls are found among the 4-byte spans, in the buffer."""
    n = len(raws)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, raws), dtype=np.int64, count=n), out=offsets[1:])
    data = b"".join(raws)
    lengths = np.diff(offsets)
    valid = lengths > 0
    fours = np.flatnonzero(lengths == 4)
    if len(fours):
        spans = np.frombuffer(data, dtype=np.uint8)[offsets[fours, None] + np.arange(4)]
        valid[fours[(spans == np.frombuffer(b"null", dtype=np.uint8)).all(axis=1)]] = False
    text = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(data), pa.py_buffer(np.packbits(valid, bitorder="little"))
    )
    return text.cast(JSON_TEXT)


def _truthy(value: str | bool | None) -> bool | None:
    """`true`/`false` arrive as strings in sessionContext and as `Yes`/`No` in any casing elsewhere."""
    if value is None or isinstance(value, bool):
        return value
    return value.strip().lower() in ("true", "yes")


class _Truths(dict[str | bool | None, bool | None]):
    """`_truthy` as a lookup: the usual values answer from the table, any other is worked out (not kept, so
    that attacker-chosen strings cannot grow it)."""

    def __missing__(self, value: str | bool | None) -> bool | None:
        return _truthy(value)


_TRUTHS = _Truths({v: _truthy(v) for v in (None, True, False, "true", "false", "True", "False")})


def _decode_value(raw: msgspec.Raw) -> Any:
    """A free-form field's value; one written as JSON text (as some exports do) is read for what it holds, so
    that what a record means never hangs on whether its object was coerced."""
    try:
        value = msgspec.json.decode(raw) if len(raw) else None
        if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            value = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return None
    return value


def _decode_object(raw: msgspec.Raw) -> dict[str, Any]:
    value = _decode_value(raw)
    return value if isinstance(value, dict) else {}


def _get_ci(obj: dict[str, Any], key: str) -> Any:
    """Look a key up ignoring its casing (`MFAUsed`, `mfaUsed`, ...)."""
    if key in obj:
        return obj[key]
    lowered = key.lower()
    return next((v for k, v in obj.items() if k.lower() == lowered), None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _role_from_resources(raw: msgspec.Raw) -> str | None:
    resources = _decode_value(raw)
    for res in resources if isinstance(resources, list) else ():
        if isinstance(res, dict) and res.get("type") == "AWS::IAM::Role":
            return _text(res.get("ARN"))
    return None


@dataclass
class _Extracted:
    """Helper values pulled out of the free-form objects of the few events that need them."""

    role_arn: list[str | None]
    target_user_name: list[str | None]
    new_access_key_id: list[str | None]
    console_login_result: list[str | None]
    mfa_used: list[bool | None]
    saml_provider_arn: list[str | None]


def _extract(records: Sequence[Record]) -> _Extracted:
    n = len(records)
    out = _Extracted([None] * n, [None] * n, [None] * n, [None] * n, [None] * n, [None] * n)
    for i, r in enumerate(records):
        name = r.eventName
        if name in _ASSUME_ROLE:
            params = _decode_object(r.requestParameters)
            # the ARN AWS wrote in `resources` first: `roleArn` is the caller's text (a region in it, a space)
            out.role_arn[i] = _role_from_resources(r.resources) or _text(params.get("roleArn"))
            credentials = _decode_object(r.responseElements).get("credentials")
            out.new_access_key_id[i] = _text(credentials.get("accessKeyId")) if isinstance(credentials, dict) else None
        elif name == "CreateAccessKey":
            params = _decode_object(r.requestParameters)
            out.target_user_name[i] = _text(params.get("userName"))
            key = _decode_object(r.responseElements).get("accessKey")
            out.new_access_key_id[i] = _text(key.get("accessKeyId")) if isinstance(key, dict) else None
        elif r.eventSource == "signin.amazonaws.com":
            out.console_login_result[i] = _text(_decode_object(r.responseElements).get(name or ""))
            extra = _decode_object(r.additionalEventData)
            mfa = _get_ci(extra, "MFAUsed")
            out.mfa_used[i] = _truthy(mfa) if isinstance(mfa, str | bool) else None
            out.saml_provider_arn[i] = _text(_get_ci(extra, "SamlProviderArn"))
    return out


# the times CloudTrail, CloudTrail Lake, Athena and SIEM exports write: a `T` or a space, 0 to 9 fractional
# digits, and `Z`, an offset or no zone at all (CloudTrail's times are UTC)
_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)? ?(Z|[+-]\d{2}(:?\d{2})?)?$"
_ZONE = r"(Z|[+-]\d{2}(:?\d{2})?)$"


def event_times(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Parse event times; returns times and a mask of the rows without a usable one. CloudTrail's own form
    casts directly; the other forms are first rewritten to it, all at once."""
    kind = SCHEMA.field("event_time").type
    try:
        times = values.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        times = _lenient(values, kind)
    times = _in_range(times)
    return times, times.is_null().to_numpy(zero_copy_only=False)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST, _LAST = (
    (moment - _EPOCH) // timedelta(microseconds=1)
    for moment in (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
)


def _in_range(times: pa.Array) -> pa.Array:
    """Only times a datetime can hold: an offset carries `9999-12-31T23:59:59-01:00` past year 9999 in UTC,
    where Arrow still counts but Python (the detectors, the lake's days) cannot. Such a time is unusable."""
    micros = times.cast(pa.int64())
    span = pc.min_max(micros).as_py()
    if span["min"] is None or (span["min"] >= _FIRST and span["max"] <= _LAST):
        return times
    usable = pc.and_(pc.greater_equal(micros, _FIRST), pc.less_equal(micros, _LAST))
    return pc.if_else(usable, times, pa.scalar(None, times.type))


def _lenient(values: pa.Array, kind: pa.DataType) -> pa.Array:
    usable = pc.fill_null(pc.match_substring_regex(values, _TIME), False)
    text = pc.if_else(usable, values, pa.scalar(None, pa.string()))
    text = pc.replace_substring_regex(text, r"^(\d{4}-\d{2}-\d{2}) ", r"\1T")
    text = pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1")  # microseconds are the lake's precision
    text = pc.replace_substring_regex(text, r" ([Z+-])", r"\1")
    zoned = pc.fill_null(pc.match_substring_regex(text, _ZONE), True)
    text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, "Z", ""))
    try:
        times: pa.Array = text.cast(kind)
        return times
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a well-formed but impossible time, such as Feb 30
        return pa.array([_one_time(v) for v in text.to_pylist()], kind)


def _one_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _empty_to_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


_RECORD_FIELDS = {
    "event_id": "eventID",
    "event_source": "eventSource",
    "event_name": "eventName",
    "event_type": "eventType",
    "event_version": "eventVersion",
    "aws_region": "awsRegion",
    "recipient_account_id": "recipientAccountId",
    "source_ip": "sourceIPAddress",
    "user_agent": "userAgent",
    "shared_event_id": "sharedEventID",
    "request_id": "requestID",
    "read_only": "readOnly",
    "management_event": "managementEvent",
}
_IDENTITY_FIELDS = {
    "user_type": "type",
    "user_account_id": "accountId",
    "user_principal_id": "principalId",
    "user_name": "userName",
    "access_key_id": "accessKeyId",
    "invoked_by": "invokedBy",
}
_JSON_FIELDS = {
    "request_parameters": "requestParameters",
    "response_elements": "responseElements",
    "additional_event_data": "additionalEventData",
    "resources": "resources",
    "service_event_details": "serviceEventDetails",
}
_EXTRACTED_FIELDS = frozenset(_Extracted.__dataclass_fields__)


_TYPES = {f.name: f.type for f in SCHEMA}


class _Builder:
    """Builds the columns asked for, each at most once, sharing the values they derive from. A column is one
    pass over the records and one conversion into Arrow; a value every row shares is one scalar, repeated."""

    def __init__(self, records: Sequence[Record], source_uri: str | pa.Array, ingested_at: datetime) -> None:
        self.records = records
        self.source_uri = source_uri
        self.ingested_at = ingested_at
        self.cache: dict[str, pa.Array] = {}
        self.bad_time = np.zeros(len(records), dtype=bool)

    @cached_property
    def idents(self) -> list[UserIdentity]:
        return [r.userIdentity or _NO_IDENTITY for r in self.records]

    @cached_property
    def sessions(self) -> list[SessionContext]:
        return [u.sessionContext or _NO_SESSION for u in self.idents]

    @cached_property
    def issuers(self) -> list[SessionIssuer]:
        return [s.sessionIssuer or _NO_ISSUER for s in self.sessions]

    @cached_property
    def extracted(self) -> _Extracted:
        return _extract(self.records)

    def __getitem__(self, name: str) -> pa.Array:
        if name not in self.cache:
            built = self._build(name)
            self.cache[name] = built if built.type == _TYPES[name] else built.cast(_TYPES[name])
        return self.cache[name]

    def _build(self, name: str) -> pa.Array:
        n = len(self.records)
        kind = _TYPES.get(name)
        if name in _RECORD_FIELDS:
            return pa.array(list(map(attrgetter(_RECORD_FIELDS[name]), self.records)), kind)
        if name in _IDENTITY_FIELDS:
            values = pa.array(list(map(attrgetter(_IDENTITY_FIELDS[name]), self.idents)), kind)
            return _empty_to_null(values) if name == "invoked_by" else values  # "" is no service, as exports have it
        if name in _JSON_FIELDS:
            return _json_text(list(map(attrgetter(_JSON_FIELDS[name]), self.records)))
        if name in _EXTRACTED_FIELDS:
            return pa.array(getattr(self.extracted, name), kind)
        if name == "event_time":
            times, self.bad_time = event_times(pa.array(list(map(attrgetter("eventTime"), self.records)), pa.string()))
            return times
        if name in ("error_code", "error_message"):
            field = "errorCode" if name == "error_code" else "errorMessage"
            return _empty_to_null(pa.array(list(map(attrgetter(field), self.records)), kind))
        if name == "user_arn":
            return _empty_to_null(pa.array(list(map(attrgetter("arn"), self.idents)), kind))
        if name in ("session_issuer_arn", "session_issuer_type"):
            return pa.array(
                list(map(attrgetter("arn" if name == "session_issuer_arn" else "type"), self.issuers)), kind
            )
        if name == "session_mfa_authenticated":
            attributes = (s.attributes or _NO_ATTRIBUTES for s in self.sessions)
            return pa.array(list(map(_TRUTHS.__getitem__, map(attrgetter("mfaAuthenticated"), attributes))), kind)
        if name == "succeeded":
            no_error = pc.and_(pc.is_null(self["error_code"]), pc.is_null(self["error_message"]))
            not_login = pc.fill_null(pc.not_equal(self["event_name"], "ConsoleLogin"), True)
            login_ok = pc.fill_null(pc.equal(self["console_login_result"], "Success"), False)
            return pc.and_(no_error, pc.or_(not_login, login_ok))
        if name == "source_ip_is_service":
            ip = self["source_ip"]
            return pc.invert(pc.or_(pc.match_substring_regex(ip, _IPV4), pc.match_substring(ip, ":")))
        if name == "principal":
            return self._principal()
        if name == "source_uri":
            return (
                pa.repeat(pa.scalar(self.source_uri, kind), n) if isinstance(self.source_uri, str) else self.source_uri
            )
        if name == "ingested_at":
            return pa.repeat(pa.scalar(self.ingested_at, kind), n)
        raise KeyError(f"no such normalized column: {name}")

    def _principal(self) -> pa.Array:
        """A displayable principal even where CloudTrail omits the ARN (failed logins, root)."""
        account = self["user_account_id"]
        root_arn = pc.binary_join_element_wise("arn:aws:iam::", account, ":root", "")
        root_arn = pc.if_else(pc.equal(self["user_type"], "Root"), root_arn, pa.scalar(None, pa.string()))
        return pc.coalesce(self["user_arn"], root_arn, self["user_name"], self["user_principal_id"])


@dataclass(frozen=True)
class Normalized:
    """A batch of normalized events, the records behind its rows, and the records left out."""

    batch: pa.RecordBatch
    records: Sequence[Record]
    bad: list[BadRecord]
    kept: np.ndarray | None = None  # which of the records given are rows (None: all of them)


def refused(event_id: pa.Array, event_name: pa.Array, bad_time: np.ndarray) -> tuple[np.ndarray, Callable[[int], str]]:
    """Which records cannot be events (no eventID, no eventName or no usable eventTime), and why one is not."""
    missing_id = pc.fill_null(pc.equal(event_id, ""), True).to_numpy(zero_copy_only=False)
    missing_name = pc.fill_null(pc.equal(event_name, ""), True).to_numpy(zero_copy_only=False)

    def why(i: int) -> str:
        if missing_id[i]:
            return "record without eventID"
        return "record without eventName" if missing_name[i] else "record without a valid eventTime"

    return missing_id | missing_name | bad_time, why


def to_batch(
    records: Sequence[Record],
    source_uri: str | pa.Array,
    locate: Callable[[int], str] = lambda i: f"record {i + 1}",
    columns: Sequence[str] = COLUMNS,
    ingested_at: datetime | None = None,
    max_record: int | None = None,
) -> Normalized:
    """Normalize records into a batch of SCHEMA (or the `columns` of it asked for).

    Records without an eventID, an eventName or a usable eventTime, and (with `max_record`) records whose text
    in the columns built exceeds that many bytes, are left out and returned as bad, with where
    they were; `columns` lets a caller that reads few columns skip building the rest. `source_uri` is every
    record's, or each record's (the records of several inputs, normalized at once).
    """
    build = _Builder(records, source_uri, ingested_at or datetime.now(UTC))
    build["event_time"]  # parsed first: it finds the records whose time is unusable
    schema = schema_of(columns)
    batch = pa.RecordBatch.from_arrays([build[c] for c in schema.names], schema=schema)
    unusable, why_unusable = refused(build["event_id"], build["event_name"], build.bad_time)
    sizes = _row_bytes(batch) if max_record is not None else np.zeros(len(records), dtype=np.int64)
    oversized = sizes > (max_record or 0)
    bad_rows = np.flatnonzero(unusable | oversized)
    if not len(bad_rows):
        return Normalized(batch, records, [])

    def why(i: int) -> str:
        if unusable[i]:
            return why_unusable(i)
        return f"record of {sizes[i]:,} bytes, over the {(max_record or 0) >> 10} KiB limit (limits.max_record_kb)"

    bad = [BadRecord(locate(int(i)), why(int(i))) for i in bad_rows]
    keep = np.ones(len(records), dtype=bool)
    keep[bad_rows] = False
    return Normalized(batch.filter(pa.array(keep)), [r for r, k in zip(records, keep, strict=True) if k], bad, keep)


def _row_bytes(batch: pa.RecordBatch) -> np.ndarray:
    """Bytes of text per row, over the batch's string columns: what a record weighs in the lake."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            total += pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
    return total


def utc(moment: datetime) -> datetime:
    """UTC is the only time zone here: naive datetimes are taken as UTC, aware ones converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def schema_of(columns: Sequence[str]) -> pa.Schema:
    """The part of SCHEMA with these columns, always in SCHEMA's order; unknown names are an error."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise KeyError(f"no such normalized column: {', '.join(sorted(unknown))}")
    return pa.schema([f for f in SCHEMA if f.name in set(columns)])


def empty_batch(columns: Sequence[str] = COLUMNS) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema_of(columns))
