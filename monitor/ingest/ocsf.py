"""Amazon Security Lake's CloudTrail management events (OCSF 1.x, source version 2.0) back into CloudTrail records.

Security Lake keeps an organization's CloudTrail as Parquet in OCSF: API Activity (class 6003), Authentication
(3002, the console sign-ins) and Account Change (3001). Each row becomes the record CloudTrail wrote, through
`MAPPING` (OCSF path -> CloudTrail path, the first present wins) and the row's `unmapped` map, which holds the
CloudTrail fields OCSF has no place for under their CloudTrail paths (`eventType`, `readOnly`,
`additionalEventData.LoginTo`...); so every detector reads OCSF through the same code as the trail. What
OCSF does not carry is listed in `NOT_CARRIED` and in the guide.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from monitor.ingest.exports import table_record
from monitor.ingest.limits import InputError, Limits, too_large

AUTHENTICATION = 3002
# (OCSF path, CloudTrail path, the OCSF class it applies to, or 0 for all)
MAPPING: tuple[tuple[str, str, int], ...] = (
    ("metadata.uid", "eventID", 0),
    ("time_dt", "eventTime", 0),
    ("time", "eventTime", 0),  # epoch milliseconds, when time_dt is absent
    ("api.operation", "eventName", 0),
    ("api.service.name", "eventSource", 0),
    ("api.request.uid", "requestID", 0),
    ("api.request.data", "requestParameters", 0),
    ("api.response.data", "responseElements", 0),
    ("api.response.error", "errorCode", 0),
    ("api.response.message", "errorMessage", 0),
    ("cloud.region", "awsRegion", 0),
    ("cloud.account.uid", "recipientAccountId", 0),
    ("src_endpoint.ip", "sourceIPAddress", 0),
    ("src_endpoint.domain", "sourceIPAddress", 0),  # an AWS service calling: its name, not an address
    ("http_request.user_agent", "userAgent", 0),
    ("actor.user.type", "userIdentity.type", 0),
    ("actor.user.uid", "userIdentity.arn", 0),
    ("actor.user.uid_alt", "userIdentity.principalId", 0),
    ("actor.user.name", "userIdentity.userName", 0),
    ("actor.user.account.uid", "userIdentity.accountId", 0),
    ("actor.user.credential_uid", "userIdentity.accessKeyId", 0),
    ("actor.invoked_by", "userIdentity.invokedBy", 0),
    ("actor.session.issuer", "userIdentity.sessionContext.sessionIssuer.arn", 0),
    ("actor.session.is_mfa", "userIdentity.sessionContext.attributes.mfaAuthenticated", 0),
    ("metadata.product.version", "eventVersion", 0),
    ("is_mfa", "additionalEventData.MFAUsed", AUTHENTICATION),
    ("status", "responseElements.ConsoleLogin", AUTHENTICATION),
    ("status_detail", "errorMessage", AUTHENTICATION),
)
# CloudTrail fields detectors read that OCSF has no field for: present only when `unmapped` keeps them
NOT_CARRIED = ("eventType", "readOnly", "sharedEventID", "additionalEventData.SamlProviderArn")
BATCH_ROWS = 100  # rows decoded at a time: the most read past the limit (and no slower than bigger batches)


def records(data: bytes, limits: Limits) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, CloudTrail record) for each row of an OCSF Parquet file. Its metadata is checked against the
    limits before anything is read, but it counts encoded bytes: one string dictionary-encoded in every row weighs
    nothing there, so the rows are decoded a batch at a time and the input refused once they pass the limit (batches
    also read a dictionary column inside a struct over several row groups, which a whole-table read refuses)."""
    import pyarrow.parquet as pq  # noqa: PLC0415  (only Parquet inputs pay for it, not every worker's start)

    parquet = pq.ParquetFile(io.BytesIO(data))
    names = set(parquet.schema_arrow.names)
    if "class_uid" not in names:  # every OCSF event has its class: this is some other table (a lake's, pointed at)
        lake = "a file of a TrailGuard lake: run detect --lake on the lake" if "event_id" in names else "another table"
        raise InputError(f"not Security Lake's OCSF (no class_uid column): {lake}")
    meta = parquet.metadata
    if meta.num_rows > limits.max_records:
        raise InputError(f"holds {meta.num_rows:,} records, over the limit (limits.max_records)")
    encoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if encoded > limits.max_inflated:  # a page is inflated whole before any of its rows is decoded
        raise InputError(too_large(encoded, limits.max_inflated, inflated=True))
    plain = pa.schema([column.with_type(_plain(column.type)) for column in parquet.schema_arrow])
    rows = _rows(parquet.iter_batches(BATCH_ROWS), plain, limits.max_inflated)
    for n, row in enumerate(rows, 1):
        yield f"row {n}", record(row)


def _rows(batches: Iterator[pa.RecordBatch], plain: pa.Schema, limit: int) -> Iterator[dict[str, Any]]:
    """Each batch's rows, its values decoded (a dictionary column's too) and counted first: past `limit` bytes,
    the input is refused before another batch is decoded."""
    decoded = 0
    for batch in batches:
        values = batch.cast(plain)
        decoded += values.nbytes
        if decoded > limit:
            raise InputError(too_large(decoded, limit, inflated=True))
        yield from values.to_pylist()


def _plain(kind: pa.DataType) -> pa.DataType:
    """`kind` with its dictionaries, at any depth, replaced by their values' type: an Arrow-written file's stored
    schema may keep a column dictionary-encoded, whose size counts each value once however many rows hold it."""
    if pa.types.is_dictionary(kind):
        return _plain(kind.value_type)
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_plain(field.type)) for field in kind])
    if pa.types.is_map(kind):
        key, item = kind.key_field, kind.item_field
        return pa.map_(key.with_type(_plain(key.type)), item.with_type(_plain(item.type)), kind.keys_sorted)
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        item = kind.value_field
        return pa.list_(item.with_type(_plain(item.type)), getattr(kind, "list_size", -1))
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_plain(kind.value_field.type)))
    return kind


def record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudTrail record of one OCSF row."""
    kind = row.get("class_uid") or 0
    flat: dict[str, Any] = {}
    for source, target, only in MAPPING:
        value = _at(row, source)
        if value is not None and target not in flat and only in (0, kind):
            flat[target] = _text(source, value)
    for key, value in _pairs(row.get("unmapped")):
        flat.setdefault(key, value)
    resources = [r for r in row.get("resources") or () if isinstance(r, Mapping)]
    if resources and "resources" not in flat:
        flat["resources"] = [
            {"ARN": r.get("uid"), "type": r.get("type"), "accountId": _at(r, "owner.account.uid")} for r in resources
        ]
    return table_record(_nest(flat))


def _text(source: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if source == "time" and isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if source == "is_mfa" and isinstance(value, bool):
        return "Yes" if value else "No"
    return value


def _at(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _pairs(unmapped: Any) -> Iterator[tuple[str, Any]]:
    """A map column as pyarrow gives it (key-value pairs) or as a dict."""
    if isinstance(unmapped, Mapping):
        yield from unmapped.items()
    elif isinstance(unmapped, list):
        yield from (tuple(p) for p in unmapped if isinstance(p, tuple | list) and len(p) == 2)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"a.b": 1, "c": 2} -> {"a": {"b": 1}, "c": 2}; a value already set whole wins over its parts."""
    out: dict[str, Any] = {}
    for path, value in sorted(flat.items(), key=lambda item: item[0].count(".")):
        *parents, leaf = path.split(".")
        place = out
        for part in parents:
            nested = place.setdefault(part, {})
            if not isinstance(nested, dict):
                break
            place = nested
        else:
            place.setdefault(leaf, value)
    return out
