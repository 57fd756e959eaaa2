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


def records(data: bytes, limits: Limits) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, CloudTrail record) for each row of an OCSF Parquet file. The file's metadata is checked against
    the limits before anything is read: Parquet compresses well enough to hide a bomb."""
    import pyarrow.parquet as pq  # noqa: PLC0415  (only Parquet inputs pay for it, not every worker's start)

    parquet = pq.ParquetFile(io.BytesIO(data))
    meta = parquet.metadata
    if meta.num_rows > limits.max_records:
        raise InputError(f"holds {meta.num_rows:,} records, over the limit (limits.max_records)")
    inflated = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if inflated > limits.max_inflated:
        raise InputError(too_large(inflated, limits.max_inflated, inflated=True))
    for n, row in enumerate(parquet.read().to_pylist(), 1):
        yield f"row {n}", record(row)


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
