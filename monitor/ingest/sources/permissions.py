"""The least-privilege IAM policy the configured sources need, and probes that try each one.

Each source declares exactly what it calls: the trail bucket's listing (limited to its AWSLogs
prefix) and objects, the trail key, the notification queue, LookupEvents in its regions. Sources
read through a role get their statements in that role's policy; the monitor's own policy then
only holds `sts:AssumeRole` into those roles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.ingest.sources import securitylake
from monitor.ingest.sources.iam import ACCOUNT_ACTIONS, USER_ACTIONS
from monitor.ingest.sources.settings import SourceSettings

POLICY_VERSION = "2012-10-17"
MONITOR = "monitor"


def _s3_statements(bucket: str, prefix: str, logs: str | None = None) -> list[dict[str, Any]]:
    logs = logs or (f"{prefix}/AWSLogs/" if prefix else "AWSLogs/")
    return [
        {
            "Sid": "ListTrailLogs",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [logs, f"{logs}*"]}},
        },
        {
            "Sid": "ReadTrailLogs",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/{logs}*",
        },
    ]


def statements(source: SourceSettings) -> list[dict[str, Any]]:
    """What one source calls, with its resources named."""
    found: list[dict[str, Any]] = []
    if source.scheme == "s3":
        bucket, prefix = source.place
        found += _s3_statements(bucket, prefix)
    elif source.scheme == "securitylake":
        bucket, prefix = source.place
        found += _s3_statements(bucket, prefix, securitylake.root(prefix))
    elif source.scheme == "sqs":
        region, account, queue = source.place
        actions = ["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
        arn = f"arn:aws:sqs:{region}:{account}:{queue}"
        found.append({"Sid": "ConsumeTrailNotifications", "Effect": "Allow", "Action": actions, "Resource": arn})
        if source.bucket:
            found += _s3_statements(source.bucket, "")[1:]
    elif source.scheme == "lookup":
        regions = source.place
        found.append(
            {
                "Sid": "LookupEvents",
                "Effect": "Allow",
                "Action": "cloudtrail:LookupEvents",
                "Resource": "*",  # LookupEvents has no resource-level permissions
                "Condition": {"StringEquals": {"aws:RequestedRegion": regions}},
            }
        )
    if source.kms_key_arn:  # only as S3 reads the trail's objects, not for direct use of the key
        region = source.kms_key_arn.split(":")[3]
        found.append(
            {
                "Sid": "DecryptTrailLogs",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": source.kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            }
        )
    return found


def _merge(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy document; statements with the same Sid are numbered so that every Sid is unique."""
    seen: dict[str, int] = {}
    unique: list[dict[str, Any]] = []
    for item in items:
        if item in unique:
            continue
        sid = item["Sid"]
        seen[sid] = seen.get(sid, 0) + 1
        unique.append(item | {"Sid": sid if seen[sid] == 1 else f"{sid}{seen[sid]}"})
    return {"Version": POLICY_VERSION, "Statement": unique}


def _iam_statements(role_arn: str | None) -> list[dict[str, Any]]:
    """The hygiene checks' IAM reads, limited to the users of the role's account when it is known."""
    account = role_arn.split(":")[4] if role_arn else "*"
    return [
        {"Sid": "ReadIamAccountState", "Effect": "Allow", "Action": list(ACCOUNT_ACTIONS), "Resource": "*"},
        {
            "Sid": "ReadIamUserCredentials",
            "Effect": "Allow",
            "Action": list(USER_ACTIONS),
            "Resource": f"arn:aws:iam::{account}:user/*",
        },
    ]


def _lake_statements(uri: str) -> list[dict[str, Any]]:
    """A lake on S3: list, read, write and delete (compaction, stale baselines) under its two folders only."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    folders = [f"{base}events", f"{base}baselines"]
    return [
        {
            "Sid": "ListLake",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [p for f in folders for p in (f, f"{f}/*")]}},
        },
        {
            "Sid": "ReadWriteLake",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{f}/*" for f in folders],
        },
    ]


def policies(
    sources: Iterable[SourceSettings],
    organizations: bool = False,
    organizations_role: str | None = None,
    hygiene_roles: Iterable[str | None] = (),
    lake: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Policies by who needs them: `monitor` (TrailGuard's own role) and each role a source is read through.

    With `organizations`, the account inventory's `ListAccounts` (no resource-level permissions exist
    for it) goes to `organizations_role`, or to the monitor's own role. `hygiene_roles` are the roles
    the IAM hygiene checks read through (None: the monitor's own account); a `lake` on S3 gets the
    monitor's read and write statements for its folders.
    """
    by_role: dict[str, list[dict[str, Any]]] = {
        MONITOR: _lake_statements(lake) if lake and lake.startswith("s3://") else []
    }
    for role in hygiene_roles:
        by_role.setdefault(role or MONITOR, []).extend(_iam_statements(role))
    if organizations:
        statement = {"Sid": "ListOrganizationAccounts", "Effect": "Allow", "Action": "organizations:ListAccounts"}
        by_role.setdefault(organizations_role or MONITOR, []).append(statement | {"Resource": "*"})
    for source in sources:
        found = statements(source)
        if found:
            by_role.setdefault(source.role_arn or MONITOR, []).extend(found)
    roles = sorted(r for r in by_role if r != MONITOR)
    if roles:
        by_role[MONITOR].append(
            {"Sid": "AssumeReadRoles", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}
        )
    return {who: _merge(items) for who, items in by_role.items() if items}
