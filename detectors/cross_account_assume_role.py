"""AssumeRole across account boundaries: who from outside reaches into which role."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.base import Context, Detector, Guide, Severity


class CrossAccountAssumeRole(Detector):
    id = "cross-account-assume-role"
    title = "Cross-account role assumption"
    severity = Severity.MEDIUM
    references = ("MITRE ATT&CK T1550.001", "MITRE ATT&CK T1078.004")
    columns = ("event_source", "succeeded", "invoked_by", "user_account_id", "role_arn")
    guide = Guide(
        triage=(
            "Is the source account one of ours or a known vendor? Check account_id against the inventory.",
            "Was the role meant to be assumable from that account (its trust policy)?",
        ),
        investigation=(
            "Follow the session into the target account: events by the role session after this time.",
            "For denied attempts, look for many roles tried from the same principal (enumeration).",
        ),
        false_positives=(
            "CI/CD and security tooling assuming roles in member accounts: add their accounts as trusted.",
        ),
        response=("If unexpected: tighten the role's trust policy, revoke active sessions, review what it did.",),
    )

    def select(self, events: pd.DataFrame) -> pd.Series:
        return events["event_name"].eq("AssumeRole")

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        service = events["invoked_by"].notna() | events["user_type"].eq("AWSService")
        calls = events[events["event_source"].eq("sts.amazonaws.com") & ~service]
        role_account = calls["role_arn"].str.split(":").str[4]
        caller_account = calls["user_account_id"]
        cross = (caller_account.notna() & role_account.notna() & caller_account.ne(role_account)).fillna(False)
        calls = (
            calls[cross.astype(bool)]
            .assign(
                target_account_id=role_account[cross.astype(bool)],
                # the caller's copy (full ARN) represents the finding; the role owner's copy only joins it
                owner_copy=lambda e: e["user_type"].eq("AWSAccount"),
            )
            .sort_values(["event_time", "owner_copy"], kind="stable")
        )
        denied = ~calls["succeeded"].fillna(False).astype(bool)
        known = ctx.settings.trusted_accounts | ctx.settings.organization_accounts
        trusted = calls["user_account_id"].isin(known)
        kind = np.select([denied, trusted], ["denied", "trusted-account"], "untrusted-account")
        verb = np.where(denied, " was denied assuming ", " assumed ")
        return calls.assign(
            kind=kind,
            severity=np.select([denied, trusted], [Severity.HIGH, Severity.LOW], Severity.MEDIUM),
            account_id=calls["user_account_id"],
            dedup_key=calls["user_account_id"] + "|" + calls["role_arn"],
            summary=calls["principal"].fillna("-") + " (" + calls["user_account_id"] + ")" + verb + calls["role_arn"],
            details=pd.Series([{"role_arn": r} for r in calls["role_arn"]], index=calls.index, dtype=object),
        )
