"""CloudTrail records written as Amazon Security Lake keeps them: OCSF 1.x rows in Parquet (source version 2.0),
mapped the way AWS documents its CloudTrail mapping: API Activity (6003), Authentication (3002) for console
sign-ins and Account Change (3001) for IAM user and key changes; what OCSF has no field for goes to the
`unmapped` map under its CloudTrail path."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_ACCOUNT_CHANGES = {"CreateAccessKey", "DeleteAccessKey", "CreateUser", "DeleteUser", "UpdateAccessKey"}


def row(record: dict[str, Any]) -> dict[str, Any]:
    name, identity = record["eventName"], record.get("userIdentity") or {}
    kind = 3002 if name == "ConsoleLogin" else 3001 if name in _ACCOUNT_CHANGES else 6003
    when = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
    source = record.get("sourceIPAddress") or ""
    session = identity.get("sessionContext") or {}
    extra = dict(record.get("additionalEventData") or {})
    response = record.get("responseElements")
    out: dict[str, Any] = {
        "class_uid": kind,
        "metadata": {"uid": record["eventID"], "version": "1.1.0", "product": {"version": record.get("eventVersion")}},
        "time": int(when.timestamp() * 1000),
        "time_dt": when,
        "api": {
            "operation": name,
            "service": {"name": record.get("eventSource")},
            "request": {"uid": record.get("requestID"), "data": _json(record.get("requestParameters"))},
            "response": {
                "error": record.get("errorCode"),
                "message": record.get("errorMessage"),
                "data": None if kind == 3002 else _json(response),
            },
        },
        "cloud": {
            "provider": "AWS",
            "region": record.get("awsRegion"),
            "account": {"uid": record.get("recipientAccountId")},
        },
        "src_endpoint": {
            "ip": source if source[:1].isdigit() or ":" in source else None,
            "domain": None if source[:1].isdigit() else source,
        },
        "http_request": {"user_agent": record.get("userAgent")},
        "actor": {
            "user": {
                "type": identity.get("type"),
                "uid": identity.get("arn"),
                "uid_alt": identity.get("principalId"),
                "name": identity.get("userName"),
                "account": {"uid": identity.get("accountId")},
                "credential_uid": identity.get("accessKeyId"),
            },
            "invoked_by": identity.get("invokedBy"),
            "session": {
                "issuer": (session.get("sessionIssuer") or {}).get("arn"),
                "is_mfa": None if not session else (session.get("attributes") or {}).get("mfaAuthenticated") == "true",
            },
        },
        "resources": [
            {"uid": r.get("ARN"), "type": r.get("type"), "owner": {"account": {"uid": r.get("accountId")}}}
            for r in record.get("resources") or ()
        ],
    }
    if kind == 3002:
        out["is_mfa"] = str(extra.pop("MFAUsed", "No")).lower() == "yes"
        out["status"] = (response or {}).get("ConsoleLogin")
        out["status_detail"] = record.get("errorMessage")
    unmapped = {
        "eventType": record.get("eventType"),
        "readOnly": None if record.get("readOnly") is None else str(record["readOnly"]).lower(),
        "managementEvent": None if record.get("managementEvent") is None else str(record["managementEvent"]).lower(),
        "sharedEventID": record.get("sharedEventID"),
        **{f"additionalEventData.{k}": str(v) for k, v in extra.items()},
    }
    out["unmapped"] = [(k, v) for k, v in unmapped.items() if v is not None]
    return out


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def parquet(records: list[dict[str, Any]]) -> bytes:
    rows = [row(r) for r in records]
    unmapped = pa.array([r.pop("unmapped") for r in rows], pa.map_(pa.string(), pa.string()))
    table = pa.Table.from_pylist(rows).append_column("unmapped", unmapped)
    out = io.BytesIO()
    pq.write_table(table, out, compression="gzip")
    return out.getvalue()


def repeated(rows: int, data: str, arrow_schema: bool = False) -> bytes:
    """`rows` ListBuckets calls whose request data is the one string `data`, dictionary-encoded: a file of a few KB
    whose row groups' metadata counts `data` once, and that decodes to `rows` times its length. With its Arrow
    schema the column reads back as a dictionary inside a struct, which pyarrow cannot read whole past its first
    row group (of 1,000 rows)."""
    text = pa.string()
    api = pa.struct(
        [
            ("operation", text),
            ("service", pa.struct([("name", text)])),
            ("request", pa.struct([("data", pa.dictionary(pa.int32(), text))])),
        ]
    )
    schema = pa.schema(
        [("class_uid", pa.int32()), ("time", pa.int64()), ("metadata", pa.struct([("uid", text)])), ("api", api)]
    )
    when = int(datetime.fromisoformat("2024-05-01T10:15:00+00:00").timestamp() * 1000)
    table = pa.Table.from_pylist(
        [
            {
                "class_uid": 6003,
                "time": when,
                "metadata": {"uid": f"repeated-{n}"},
                "api": {"operation": "ListBuckets", "service": {"name": "s3.amazonaws.com"}, "request": {"data": data}},
            }
            for n in range(rows)
        ],
        schema,
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=1_000, compression="zstd", store_schema=arrow_schema)
    return out.getvalue()
