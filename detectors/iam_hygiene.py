"""IAM hygiene: AWS's best practices for an account's identities, checked on a snapshot of its IAM state.

No events here: the service reads the state on a schedule (`monitor/ingest/sources/iam.py`) and every
problem found is a finding of the same shape as the detectors', with no events and a resource
in its dedup key (the root user, a user, an access key, the password policy). A finding stays
open while later snapshots still show the problem and is resolved by the first one that does
not (`monitor/service/hygiene.py`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, cast

from detectors.core.base import FINDING_COLUMNS, Check, Context, Guide, finding_id
from detectors.core.lazy import pd
from detectors.core.severity import Severity

ROOT = "<root_account>"  # the credential report's row for the root user


@dataclass(frozen=True)
class IamSnapshot:
    """One account's IAM state as read at `taken_at`, in the shapes the checks read.

    `report` is the credential report (`user`, `arn`, booleans `password_enabled`, `mfa_active`,
    `access_key_1_active`, `access_key_2_active`); `users` has `user_name`, `arn`, `mfa_devices`
    and the lists `groups`, `attached_policies`, `inline_policies`; `keys` has `user_name`,
    `access_key_id`, `active`, `created` and `last_used` (NaT if never).
    """

    account_id: str
    taken_at: datetime
    report: pd.DataFrame
    users: pd.DataFrame
    keys: pd.DataFrame
    summary: Mapping[str, int]
    password_policy: Mapping[str, Any] | None


@dataclass(frozen=True)
class Problem:
    kind: str
    severity: Severity
    resource: str  # what is wrong, unique in the account: the finding's identity while it stays open
    principal: str | None
    summary: str
    details: Mapping[str, Any]


class IamHygiene(Check):
    id = "iam-hygiene"
    title = "IAM hygiene"
    severity = Severity.MEDIUM
    trigger = (
        "IAM state read by `trailguard hygiene`: root keys, old or unused keys, users without MFA, weak password policy"
    )
    rating = (
        "critical for root keys, high for root without MFA, medium for console users without MFA, old keys "
        "and a missing password policy, low for the rest"
    )
    highest = Severity.CRITICAL
    references = ("CIS AWS Foundations 1.4-1.16", "AWS IAM security best practices")
    options: ClassVar[Mapping[str, Any]] = {
        "key_max_age_days": 90,
        "key_unused_days": 90,
        "password_min_length": 14,
        "password_reuse_prevention": 24,
    }
    guide = Guide(
        triage=("Who owns the user or key named in the finding, and is the identity still needed?",),
        investigation=(
            "For keys: where and when was the key last used (access_key_id in the lake, the credential report)?",
            "For users: which groups and policies give them their permissions?",
        ),
        false_positives=("Break-glass users kept on purpose: suppress them by principal with a reason and an expiry.",),
        response=(
            "Fix the state (rotate or delete the key, enroll MFA, move policies to a group, set the password "
            "policy); the next snapshot resolves the finding and says so in its thread.",
        ),
        kinds={
            "root-access-keys": "the root user has access keys: delete them (CIS 1.4)",
            "root-without-mfa": "the root user has no MFA device (CIS 1.5)",
            "user-without-mfa": "a user who can sign in to the console has no MFA device (CIS 1.10)",
            "access-key-old": "an active key older than key_max_age_days: rotate it (CIS 1.14)",
            "access-key-unused": "an active key not used for key_unused_days: delete it (CIS 1.12)",
            "user-two-active-keys": "a user with two active keys: keep one (CIS 1.13)",
            "user-attached-policies": "policies attached to a user instead of a group (CIS 1.15)",
            "password-policy-missing": "the account has no password policy (CIS 1.8, 1.9)",
            "password-policy-weak": "the password policy allows short or reused passwords (CIS 1.8, 1.9)",
        },
    )

    def evaluate(self, snap: IamSnapshot, ctx: Context | None = None) -> pd.DataFrame:
        """The snapshot's problems as findings (open), one per kind and resource."""
        ctx = ctx or Context()
        problems = [*self._root(snap), *self._users(snap), *self._keys(snap, ctx), *self._password(snap, ctx)]
        return pd.DataFrame([self._finding(snap, p) for p in problems], columns=[*FINDING_COLUMNS, "status"])

    def _root(self, snap: IamSnapshot) -> list[Problem]:
        root = [r for r in _rows(snap.report) if r["user"] == ROOT]
        arn = f"arn:aws:iam::{snap.account_id}:root"
        if root:  # the report's row, when it has one, is more precise than the account summary
            keys = bool(root[0]["access_key_1_active"] or root[0]["access_key_2_active"])
            mfa = bool(root[0]["mfa_active"])
        else:
            keys, mfa = bool(snap.summary.get("AccountAccessKeysPresent")), bool(snap.summary.get("AccountMFAEnabled"))
        found = []
        if keys:
            found.append(
                Problem("root-access-keys", Severity.CRITICAL, "root", arn, "The root user has access keys", {})
            )
        if not mfa:
            found.append(Problem("root-without-mfa", Severity.HIGH, "root", arn, "The root user has no MFA", {}))
        return found

    def _users(self, snap: IamSnapshot) -> list[Problem]:
        report = {r["user"]: r for r in _rows(snap.report)}
        found = []
        for user in _rows(snap.users):
            name, arn = user["user_name"], user["arn"]
            listed = report.get(name, {})
            if listed.get("password_enabled") and not (user["mfa_devices"] or listed.get("mfa_active")):
                text = f"{name} can sign in to the console without MFA"
                found.append(
                    Problem("user-without-mfa", Severity.MEDIUM, f"user/{name}", arn, text, {"user_name": name})
                )
            direct = sorted([*user["attached_policies"], *user["inline_policies"]])
            if direct:
                text = f"{name} has {len(direct)} policies of its own instead of a group's"
                details = {"user_name": name, "policies": direct, "groups": sorted(user["groups"])}
                found.append(Problem("user-attached-policies", Severity.LOW, f"user/{name}", arn, text, details))
        return found

    def _keys(self, snap: IamSnapshot, ctx: Context) -> list[Problem]:
        arns = {u["user_name"]: u["arn"] for u in _rows(snap.users)}
        max_age = timedelta(days=self.option(ctx, "key_max_age_days"))
        unused_for = timedelta(days=self.option(ctx, "key_unused_days"))
        found, active = [], [k for k in _rows(snap.keys) if k["active"]]
        for key in active:
            name, key_id = key["user_name"], key["access_key_id"]
            details = {"user_name": name, "access_key_id": key_id, "created": str(key["created"])}
            age = snap.taken_at - key["created"]
            if age > max_age:
                text = f"{name}'s access key {key_id} is {age.days} days old"
                found.append(
                    Problem("access-key-old", Severity.MEDIUM, f"access-key/{key_id}", arns.get(name), text, details)
                )
            idle = snap.taken_at - (key["created"] if pd.isna(key["last_used"]) else key["last_used"])
            if idle > unused_for:
                text = f"{name}'s access key {key_id} has not been used for {idle.days} days"
                found.append(
                    Problem("access-key-unused", Severity.LOW, f"access-key/{key_id}", arns.get(name), text, details)
                )
        for name, count in Counter(k["user_name"] for k in active).items():
            if count > 1:
                ids = sorted(k["access_key_id"] for k in active if k["user_name"] == name)
                text = f"{name} has {count} active access keys"
                found.append(
                    Problem("user-two-active-keys", Severity.LOW, f"user/{name}", arns.get(name), text, {"keys": ids})
                )
        return found

    def _password(self, snap: IamSnapshot, ctx: Context) -> list[Problem]:
        policy = snap.password_policy
        if policy is None:
            text = "The account has no password policy"
            return [Problem("password-policy-missing", Severity.MEDIUM, "password-policy", None, text, {})]
        length, reuse = self.option(ctx, "password_min_length"), self.option(ctx, "password_reuse_prevention")
        weak = {}
        if policy.get("MinimumPasswordLength", 0) < length:
            weak["MinimumPasswordLength"] = f"{policy.get('MinimumPasswordLength', 0)} (wanted {length})"
        if policy.get("PasswordReusePrevention", 0) < reuse:
            weak["PasswordReusePrevention"] = f"{policy.get('PasswordReusePrevention', 0)} (wanted {reuse})"
        if not weak:
            return []
        text = "The password policy is weak: " + ", ".join(f"{k} {v}" for k, v in weak.items())
        return [Problem("password-policy-weak", Severity.LOW, "password-policy", None, text, weak)]

    def _finding(self, snap: IamSnapshot, problem: Problem) -> dict[str, Any]:
        dedup_key = f"{snap.account_id}|{problem.resource}"
        return {
            "finding_id": finding_id(self.id, problem.kind, dedup_key, snap.taken_at),
            "detector": self.id,
            "kind": problem.kind,
            "severity": str(problem.severity),
            "title": self.title,
            "summary": f"{problem.summary} in {snap.account_id}",
            "event_ids": [],
            "event_names": [],
            "event_time": pd.Timestamp(snap.taken_at),
            "last_seen": pd.Timestamp(snap.taken_at),
            "account_id": snap.account_id,
            "target_account_id": None,
            "region": None,
            "principal": problem.principal,
            "identity_type": "Root" if problem.resource == "root" else ("IAMUser" if problem.principal else None),
            "source_ip": None,
            "user_agent": None,
            "dedup_key": dedup_key,
            "details": json.dumps(dict(problem.details), sort_keys=True),
            "status": "open",
        }


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))
