"""Raw CloudTrail records for tests, shaped like the ones AWS documents and delivers.

Each builder returns a plain dict exactly as it would appear inside a trail's `Records` list,
so that tests exercise the real decoding and normalization path.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa

from detectors.core.base import Context, Detector, Settings, summarize
from monitor.ingest.events import RECORD_DECODER, to_batch
from monitor.outbox.finding import Finding

_ids = itertools.count(1)
PROD, DEV, EXTERNAL = "111122223333", "444455556666", "777788889999"


def event_id() -> str:
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


def iam_user(name: str = "alice", account: str = PROD) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE" + name.upper(),
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "userName": name,
    }


def root(account: str = PROD) -> dict[str, Any]:
    return {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account}


def assumed_role(
    role: str = "app", session: str = "s1", account: str = PROD, mfa: str | bool = "false", path: str = ""
) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE{role.upper()}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROAEXAMPLE{role.upper()}",
                "arn": f"arn:aws:iam::{account}:role/{path}{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-05-01T10:00:00Z", "mfaAuthenticated": mfa},
        },
    }


def event(
    name: str,
    source: str,
    identity: dict[str, Any],
    *,
    account: str | None = None,
    time: str = "2024-05-01T10:15:00Z",
    ip: str = "198.51.100.7",
    **fields: Any,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": None,
        "responseElements": None,
        "requestID": event_id(),
        "eventID": event_id(),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account or identity.get("accountId") or PROD,
        "eventCategory": "Management",
    }
    rec.update(fields)
    return rec


def console_login(
    identity: dict[str, Any], *, result: str = "Success", mfa: str | None = "No", **fields: Any
) -> dict[str, Any]:
    extra: dict[str, Any] = {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No"}
    if mfa is not None:
        extra["MFAUsed"] = mfa
    fields.setdefault("responseElements", {"ConsoleLogin": result})
    return event(
        "ConsoleLogin",
        "signin.amazonaws.com",
        identity,
        eventType="AwsConsoleSignIn",
        additionalEventData=extra,
        **fields,
    )


def normalize_batch(*records: dict[str, Any]) -> pa.RecordBatch:
    decoded = [RECORD_DECODER.decode(msgspec.json.encode(r)) for r in records]
    return to_batch(decoded, "test://records").batch


def normalize(*records: dict[str, Any]) -> pd.DataFrame:
    return normalize_batch(*records).to_pandas()


def findings(
    detector: type[Detector],
    *records: dict[str, Any],
    settings: Settings | None = None,
    history: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Run one detector over raw records, the way every engine does; `history` builds its baseline."""
    ctx = Context(settings or Settings())
    if history is not None:
        det = detector()
        assert det.history is not None
        ctx = Context(ctx.settings, baseline=summarize(det.baseline_rows(normalize(*history), ctx), det.history.keys))
    return detector().detect(normalize(*records), ctx)


def stored_finding(**values: Any) -> Finding:
    """A finding as the outbox stores it (the findings contract, ISO times), for sink tests."""
    return Finding.from_record(
        {
            "finding_id": "0123456789abcdef0123456789abcdef",
            "detector": "root-usage",
            "kind": "root-activity",
            "severity": "critical",
            "title": "Root user activity",
            "summary": "Root ConsoleLogin",
            "event_ids": ["7c3f1a52-0d2e-4c4b-9a57-1b2c3d4e5f60"],
            "event_names": ["ConsoleLogin"],
            "event_time": "2024-05-01T10:15:00.000000Z",
            "last_seen": "2024-05-01T10:15:00.000000Z",
            "account_id": PROD,
            "target_account_id": None,
            "region": "us-east-1",
            "principal": f"arn:aws:iam::{PROD}:root",
            "identity_type": "Root",
            "source_ip": "198.51.100.7",
            "user_agent": "aws-cli/2",
            "dedup_key": "k",
            "details": {},
        }
        | values
    )
