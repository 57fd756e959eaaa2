"""Successful console sign-ins without MFA, split by identity type as Elastic does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from detectors.core.base import Context, Detector, Guide, Settings, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity

# IAM Identity Center's roles live under a path only AWS can use; a role's name, and any other path, is the text
# whoever created the role chose
SSO_ISSUER = r"arn:[^:]+:iam::\d{12}:role/aws-reserved/sso\.amazonaws\.com/(?:[a-z0-9-]+/)?AWSReservedSSO_[^/]+"
SSO_SESSION = "/AWSReservedSSO_"


def through_idp(events: pd.DataFrame, settings: Settings) -> pd.Series:
    """Sign-ins through an identity provider, whose MFA CloudTrail cannot see: SAML, IAM Identity Center (its
    session issuer under the reserved path; by the session's name only where a record names no issuer), and the
    configured IdP roles (`detection.external_idp_roles`)."""
    issuer = events["session_issuer_arn"]
    sso = issuer.fillna("").str.fullmatch(SSO_ISSUER) | (
        issuer.isna() & events["user_arn"].fillna("").str.contains(SSO_SESSION, regex=False)
    )
    return events["saml_provider_arn"].notna() | sso | settings.matches_external_idp(issuer)


class ConsoleLoginWithoutMfa(Detector):
    id = "console-login-without-mfa"
    title = "Console sign-in without MFA"
    severity = Severity.HIGH
    trigger = "a successful console sign-in without MFA (IdP/SSO sign-ins excepted)"
    rating = (
        "high for IAM users and root, medium for role sessions with no MFA evidence; SAML, IAM Identity "
        "Center (its `AWSReservedSSO_` roles under the reserved path `aws-reserved/sso.amazonaws.com/`) and "
        "configured IdP roles are not findings (CloudTrail cannot see MFA done at the IdP), nor are failed "
        "sign-ins and `CheckMfa`"
    )
    references = ("CIS AWS Foundations 4.2", "MITRE ATT&CK T1078")
    tactics = ("initial-access",)
    columns = ("event_source", "succeeded", "mfa_used", "session_mfa_authenticated", "saml_provider_arn")
    wants: ClassVar[Mapping[str, Wanted]] = {"event_name": Wanted(frozenset({"ConsoleLogin"}))}
    guide = Guide(
        triage=(
            "Ask the user whether they signed in at this time from this IP.",
            "Check whether the user has an MFA device at all (IAM console or credential report).",
        ),
        investigation=(
            "Review what the session did after sign-in: same principal, next hours.",
            "Compare the source IP and user agent with the principal's previous sign-ins.",
        ),
        false_positives=(
            "Role sessions federated through an IdP that enforces MFA outside AWS: list those roles as "
            "external_idp_roles in the configuration.",
        ),
        response=(
            "Require MFA for the user (IAM policy condition aws:MultiFactorAuthPresent) and enroll a device.",
            "If the sign-in was not the user: reset the password, revoke sessions, rotate keys.",
        ),
    )

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        with_mfa = events["mfa_used"].eq(True) | events["session_mfa_authenticated"].eq(True)
        person = events["user_type"].isin(["IAMUser", "Root"])
        session = events["user_type"].isin(["AssumedRole", "FederatedUser"])
        idp = through_idp(events, ctx.settings)
        hit = events["event_source"].eq("signin.amazonaws.com") & events["succeeded"].eq(True) & ~with_mfa
        logins = events[hit & (person | (session & ~idp))]
        is_person = logins["user_type"].isin(["IAMUser", "Root"])
        principal, ip = logins["principal"].fillna("-"), logins["source_ip"].fillna("-")
        return logins.assign(
            kind=np.where(is_person, "iam-user-or-root", "role-session"),
            severity=np.where(is_person, Severity.HIGH, Severity.MEDIUM),
            dedup_key=logins["recipient_account_id"].fillna("-") + "|" + principal,
            summary=principal + " signed in to the console without MFA from " + ip,
        )
