"""Root user activity: the account's unrestricted identity should almost never act."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from detectors.core.base import Context, Detector, Guide, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity

# Sign-in and credential changes (password, MFA, access keys, certificates) give root away for good.
CREDENTIAL_EVENTS = frozenset(
    {
        "ConsoleLogin",
        "PasswordRecoveryRequested",
        "PasswordRecoveryCompleted",
        "ChangePassword",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "DeleteLoginProfile",
        "CreateAccessKey",
        "UpdateAccessKey",
        "DeleteAccessKey",
        "CreateVirtualMFADevice",
        "EnableMFADevice",
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",
        "ResyncMFADevice",
        "UploadSigningCertificate",
        "UpdateSigningCertificate",
        "UploadSSHPublicKey",
    }
)


class RootUsage(Detector):
    id = "root-usage"
    title = "Root user activity"
    severity = Severity.HIGH
    trigger = "any call by the root user; credential changes and key creation critical"
    rating = (
        "critical for sign-in and credential changes (password, MFA, access keys), high for other writes, "
        "medium for read-only or failed calls; one finding per burst (account, source address, hour)"
    )
    highest = Severity.CRITICAL
    references = ("CIS AWS Foundations 1.7 / 4.3", "MITRE ATT&CK T1078.004")
    tactics = ("initial-access", "privilege-escalation")
    columns = ("invoked_by", "event_type", "read_only", "succeeded")
    wants: ClassVar[Mapping[str, Wanted]] = {"user_type": Wanted(frozenset({"Root"}))}
    guide = Guide(
        triage=(
            "Confirm with the account owner whether anyone holds the root credentials and used them now.",
            "Check the source IP and user agent against known admin locations and devices.",
        ),
        investigation=(
            "List every root event in the burst (event_ids) and the hour around it.",
            "Look for credential changes: new access keys, MFA devices removed, password changes.",
        ),
        false_positives=(
            "Tasks that only root can do (closing the account, changing support plans) done by a known admin.",
        ),
        response=(
            "If not expected: reset the root password, remove root access keys, re-register MFA.",
            "Review IAM for users, keys and roles created during the burst.",
        ),
    )

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        acting_for_root = events["invoked_by"].notna() | events["event_type"].eq("AwsServiceEvent")
        root = events[~acting_for_root]
        failed = ~root["succeeded"].fillna(False).astype(bool)
        credential = root["event_name"].isin(CREDENTIAL_EVENTS)
        read_only = root["read_only"].fillna(False).astype(bool)
        severity = np.select(
            [failed | (read_only & ~credential), credential], [Severity.MEDIUM, Severity.CRITICAL], Severity.HIGH
        )
        account, ip = root["recipient_account_id"].fillna("-"), root["source_ip"].fillna("-")
        return root.assign(
            kind="root-activity",
            severity=severity,
            dedup_key=account + "|" + ip,
            summary="Root " + root["event_name"].fillna("-") + " in " + account + " from " + ip,
        )
