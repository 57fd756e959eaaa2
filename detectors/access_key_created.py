"""New IAM access keys: long-lived credentials are what attackers mint to stay in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from detectors.core.base import Context, Detector, Guide, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity


class AccessKeyCreated(Detector):
    id = "access-key-created"
    title = "IAM access key created"
    severity = Severity.MEDIUM
    trigger = "CreateAccessKey; for another user high, for root critical"
    rating = (
        "critical when root creates a key for itself, high for a key for another user (exact names: `jack` → "
        "`jackson` is another user), medium for self-service"
    )
    highest = Severity.CRITICAL
    references = ("CIS AWS Foundations 1.4 / 1.14", "MITRE ATT&CK T1098.001")
    tactics = ("persistence",)
    columns = ("event_source", "succeeded", "user_name", "target_user_name", "new_access_key_id")
    wants: ClassVar[Mapping[str, Wanted]] = {"event_name": Wanted(frozenset({"CreateAccessKey"}))}
    guide = Guide(
        triage=(
            "Ask the creator (principal) and the key's owner (user_name in details) whether the key is expected.",
            "A key created by root, or by one user for another, is rarely routine.",
        ),
        investigation=(
            "Search for later events with the new access key id (access_key_id) and where they came from.",
            "Check what else the creator did in the same session.",
        ),
        false_positives=("Scheduled key rotation by an automation user creating keys for service users.",),
        response=("If unexpected: deactivate then delete the new key, and review the creator's credentials.",),
    )

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        created = events[events["event_source"].eq("iam.amazonaws.com") & events["succeeded"].eq(True)]
        root = created["user_type"].eq("Root")
        target = created["target_user_name"]
        # Exact names: `jack` creating a key for `jackson` is another user, and so is the reverse.
        other = target.notna() & (root | created["user_type"].ne("IAMUser") | target.ne(created["user_name"]))
        kind = np.select([root & target.isna(), other], ["root-key", "other-user"], "self")
        severity = np.select([kind == "root-key", other], [Severity.CRITICAL, Severity.HIGH], Severity.MEDIUM)
        key = created["new_access_key_id"].fillna("-")
        owner = target.fillna(created["user_name"]).fillna("root")
        return created.assign(
            kind=kind,
            severity=severity,
            dedup_key=created["recipient_account_id"].fillna("-") + "|" + key.where(key.ne("-"), created["event_id"]),
            summary=created["principal"].fillna("-") + " created access key " + key + " for " + owner,
            details=pd.Series(
                [{"access_key_id": k, "user_name": o} for k, o in zip(key, owner, strict=True)], index=created.index
            ),
        )
