"""Read one account's IAM state for the hygiene checks: the credential report, the account summary,
users with their groups, policies, MFA devices and access keys, and the password policy.

Read-only calls only (the IAM actions `check` lists); the credential report is generated when
AWS has none fresher than four hours and polled until it is ready.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from botocore.exceptions import ClientError

from detectors.iam_hygiene import IamSnapshot
from monitor.ingest.sources import aws

if TYPE_CHECKING:
    import boto3

# IAM's account-wide reads have no resource-level permissions; the per-user ones are limited to users
ACCOUNT_ACTIONS = (
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "iam:GetAccountSummary",
    "iam:GetAccountPasswordPolicy",
    "iam:GetAccountAuthorizationDetails",
)
USER_ACTIONS = ("iam:ListAccessKeys", "iam:GetAccessKeyLastUsed", "iam:ListMFADevices")
_BOOLEANS = ("password_enabled", "mfa_active", "access_key_1_active", "access_key_2_active")
_TIMES = ("user_creation_time", "password_last_used", "access_key_1_last_used_date", "access_key_2_last_used_date")


def parse_credential_report(text: str) -> pd.DataFrame:
    """The report's CSV as a frame: `true`/`false` as booleans; `N/A`, `no_information` and
    `not_supported` in time columns as NaT. Raises ValueError naming what is missing."""
    rows = list(csv.DictReader(io.StringIO(text)))
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["user", *_BOOLEANS])
    missing = [c for c in ("user", "arn", *_BOOLEANS) if c not in frame]
    if missing:
        raise ValueError(f"credential report: missing columns {', '.join(missing)}")
    for name in _BOOLEANS:
        frame[name] = frame[name].eq("true")
    for name in _TIMES:
        if name in frame:
            frame[name] = pd.to_datetime(frame[name], errors="coerce", utc=True, format="ISO8601")
    return frame


def credential_report(iam: Any, sleep: Callable[[float], None] = time.sleep, attempts: int = 30) -> str:
    for _ in range(attempts):
        if iam.generate_credential_report()["State"] == "COMPLETE":
            break
        sleep(2)
    content: bytes = iam.get_credential_report()["Content"]
    return content.decode("utf-8")


def snapshot(account_id: str, now: datetime, session: boto3.Session | None = None) -> IamSnapshot:
    """The account's IAM state now, read with `session` (the default credentials, or a role in the account)."""
    iam = (session or aws.session()).client("iam", config=aws.config())
    report = parse_credential_report(credential_report(iam))
    summary = iam.get_account_summary()["SummaryMap"]
    try:
        policy: dict[str, Any] | None = iam.get_account_password_policy()["PasswordPolicy"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise
        policy = None
    users, keys = [], []
    for page in iam.get_paginator("get_account_authorization_details").paginate(Filter=["User"]):
        for user in page["UserDetailList"]:
            name = user["UserName"]
            devices = [
                d for p in iam.get_paginator("list_mfa_devices").paginate(UserName=name) for d in p["MFADevices"]
            ]
            users.append(
                {
                    "user_name": name,
                    "arn": user["Arn"],
                    "mfa_devices": len(devices),
                    "groups": list(user.get("GroupList", [])),
                    "attached_policies": [p["PolicyArn"] for p in user.get("AttachedManagedPolicies", [])],
                    "inline_policies": [p["PolicyName"] for p in user.get("UserPolicyList", [])],
                }
            )
            for page_keys in iam.get_paginator("list_access_keys").paginate(UserName=name):
                for key in page_keys["AccessKeyMetadata"]:
                    used = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]
                    keys.append(
                        {
                            "user_name": name,
                            "access_key_id": key["AccessKeyId"],
                            "active": key["Status"] == "Active",
                            "created": pd.Timestamp(key["CreateDate"]).tz_convert("UTC"),
                            "last_used": pd.Timestamp(used["LastUsedDate"]).tz_convert("UTC")
                            if "LastUsedDate" in used
                            else pd.NaT,
                        }
                    )
    columns = ("user_name", "arn", "mfa_devices", "groups", "attached_policies", "inline_policies")
    key_columns = ("user_name", "access_key_id", "active", "created", "last_used")
    return IamSnapshot(
        account_id,
        now,
        report,
        pd.DataFrame(users, columns=list(columns)),
        _typed_keys(pd.DataFrame(keys, columns=list(key_columns))),
        summary,
        policy,
    )


def _typed_keys(keys: pd.DataFrame) -> pd.DataFrame:
    return keys.astype({"active": bool}).assign(
        created=pd.to_datetime(keys["created"], utc=True), last_used=pd.to_datetime(keys["last_used"], utc=True)
    )
