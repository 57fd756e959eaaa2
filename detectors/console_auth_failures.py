"""Failed console sign-ins (CIS 4.6), with the two attacks they add up to.

CIS alarms on `Failed authentication` only; a sign-in to a user name that does not exist fails
with `No username found in supplied account` and is the first sign of password spraying, so
every failed `ConsoleLogin` counts here. Failures are rated as bursts: many from one address is
brute force, many different user names in one account is spraying (from one address or many;
names that do not exist, which CloudTrail hides, each count as one).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from detectors.core.base import Context, Detector, Guide, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity
from detectors.core.windows import burst_close

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"  # the user name CloudTrail records for a name that does not exist


class ConsoleAuthFailures(Detector):
    id = "console-auth-failures"
    title = "Console sign-in failures"
    severity = Severity.LOW
    trigger = "failed console sign-ins; brute force from one address or spraying user names high"
    rating = (
        "`brute-force` (from one address) and `spraying` (across user names) high, other failures low (one "
        "finding per user and hour)"
    )
    highest = Severity.HIGH
    references = ("CIS AWS Foundations 4.6 (3.6 in v1.2)", "AWS Security Hub CloudWatch.6", "MITRE ATT&CK T1110")
    tactics = ("credential-access",)
    columns = ("event_source", "console_login_result", "error_message", "user_name")
    wants: ClassVar[Mapping[str, Wanted]] = {"event_name": Wanted(frozenset({"ConsoleLogin"}))}
    # a row's burst closes up to one window after it, and that close counts one window back: two windows of
    # context before a slice, one after; so a burst window is at most half the lookbehind
    lookbehind = lookahead = timedelta(hours=1)
    options: ClassVar[Mapping[str, Any]] = {"brute_force_failures": 10, "spraying_users": 5, "burst_minutes": 10}
    guide = Guide(
        triage=(
            "Which user names were tried, and do they exist (`No username found` means they do not)?",
            "Is the source IP known (office, VPN) or a hosting provider?",
        ),
        investigation=(
            "Look for a successful ConsoleLogin from the same IP during or after the burst: that user is compromised.",
            "Check whether the targeted users have MFA (the IAM hygiene findings).",
        ),
        false_positives=("A person who forgot a password: a few failures for one user from a known address.",),
        response=(
            "Block the source address where possible, make sure every console user has MFA, and reset the "
            "password of any user who signed in from it.",
        ),
        kinds={
            "spraying": "spraying_users different user names failed in one account within burst_minutes",
            "brute-force": "brute_force_failures failures from one address within burst_minutes",
            "failed-login": "failed sign-ins of one user in an hour, outside any burst",
        },
    )

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[str]:
        if options.get("burst_minutes", 10) > cls.lookbehind / timedelta(minutes=2):
            return ["burst_minutes may be at most 30"]
        return []

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        failed = events[
            events["event_source"].eq("signin.amazonaws.com")
            & (events["console_login_result"].eq("Failure") | events["error_message"].notna())
        ]
        account = failed["recipient_account_id"].fillna("-")
        ip, user = failed["source_ip"].fillna("-"), failed["user_name"].fillna(failed["principal"]).fillna("-")
        # CloudTrail hides a name that does not exist: each such attempt may be a different name
        hidden = failed["user_name"].eq(HIDDEN)
        failed = failed.assign(by_ip=account + "|" + ip, user=user, tried=user.where(~hidden, failed["event_id"]))
        window = timedelta(minutes=self.option(ctx, "burst_minutes"))
        spraying = burst_close(failed, "recipient_account_id", self.option(ctx, "spraying_users"), window, "tried")
        brute = burst_close(failed, "by_ip", self.option(ctx, "brute_force_failures"), window)
        kind = np.select([spraying.notna(), brute.notna()], ["spraying", "brute-force"], "failed-login")
        reason = failed["error_message"].fillna("Failed authentication")
        return failed.assign(
            kind=kind,
            severity=np.where(kind == "failed-login", Severity.LOW, Severity.HIGH),
            anchor=spraying.fillna(brute).fillna(failed["event_time"]),
            dedup_key=np.select(
                [kind == "spraying", kind == "brute-force"], [account, account + "|" + ip], account + "|" + user
            ),
            summary="Console sign-in as " + user + " from " + ip + " failed (" + reason + ") in " + account,
        )
