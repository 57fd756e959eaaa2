"""Denied API calls (CIS 4.1): every `*UnauthorizedOperation` and `AccessDenied*` error, per principal.

One denial is routine (a missing permission, a console page probing what it may show); many
from one principal in an hour is someone mapping what a credential can do. The rating therefore
counts denials per principal and hour and weighs who the caller is: a person's credential
(root, IAM user, a sign-in through an identity provider) is rated up sooner than a workload's
role, and AWS services acting on a principal's behalf stay informational.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from detectors.console_login_without_mfa import SSO_ISSUER
from detectors.core.base import Context, Detector, Guide, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity

# The CIS 4.1 filter's two patterns: `*UnauthorizedOperation` and `AccessDenied*`.
DENIED = r".*UnauthorizedOperation|AccessDenied.*"
PEOPLE = ("Root", "IAMUser", "SAMLUser", "IdentityCenterUser")


class UnauthorizedApiCalls(Detector):
    id = "unauthorized-api-calls"
    title = "Unauthorized API calls"
    severity = Severity.LOW
    trigger = "denied API calls (AccessDenied, *UnauthorizedOperation), rated per principal and hour"
    rating = (
        "`person` high at `person_threshold` denials in an hour, else low; `workload` medium at "
        "`workload_threshold`, else low; `aws-service` info; one finding per principal and hour"
    )
    highest = Severity.HIGH
    references = ("CIS AWS Foundations 4.1 (3.1 in v1.2)", "AWS Security Hub CloudWatch.2", "MITRE ATT&CK T1580")
    tactics = ("discovery",)
    columns = ("event_source", "error_code", "invoked_by", "source_ip_is_service")
    wants: ClassVar[Mapping[str, Wanted]] = {"error_code": Wanted(pattern=DENIED)}
    options: ClassVar[Mapping[str, Any]] = {"person_threshold": 5, "workload_threshold": 20}
    guide = Guide(
        triage=(
            "How many calls were denied, on which services (event_names)? Many different read calls is enumeration.",
            "Is the credential expected to be used from this IP and user agent?",
        ),
        investigation=(
            "List what the principal did successfully in the same hour: enumeration is followed by use.",
            "For an access key, find where else it was used (access_key_id) and when it was created.",
        ),
        false_positives=(
            "Console pages and tools that probe permissions (a few denials per page), and deployments "
            "missing a permission: suppress the principal or raise the thresholds.",
        ),
        response=("If the caller is not who it should be: deactivate the key or revoke the role's sessions.",),
        kinds={
            "person": "a person's credential (root, IAM user, identity-provider sign-in); high at person_threshold "
            "denials in an hour",
            "workload": "a role session of a workload; medium at workload_threshold denials in an hour",
            "aws-service": "an AWS service acting for a principal (invokedBy, a service address); informational",
        },
    )

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        issuer = events["session_issuer_arn"].fillna("").astype(str)
        service = events["invoked_by"].notna() | events["source_ip_is_service"].eq(True)
        service |= events["user_type"].eq("AWSService")
        person = events["user_type"].isin(PEOPLE) | issuer.str.fullmatch(SSO_ISSUER)
        person |= ctx.settings.matches_external_idp(events["session_issuer_arn"])
        kind = np.select([service, person], ["aws-service", "person"], "workload")
        account = events["recipient_account_id"].fillna("-")
        principal = events["principal"].fillna(events["invoked_by"]).fillna(events["source_ip"]).fillna("-")
        key = account + "|" + principal
        per_hour = key.groupby([key, events["event_time"].dt.floor(self.window)]).transform("size")
        loud = np.select(
            [kind == "person", kind == "workload"],
            [per_hour >= self.option(ctx, "person_threshold"), per_hour >= self.option(ctx, "workload_threshold")],
            False,
        )
        severity = np.select(
            [kind == "aws-service", loud & (kind == "person"), loud],
            [Severity.INFO, Severity.HIGH, Severity.MEDIUM],
            Severity.LOW,
        )
        return events.assign(
            kind=kind,
            severity=severity,
            dedup_key=key,
            summary=principal
            + " was denied "
            + events["event_name"].fillna("-")
            + " ("
            + events["error_code"].fillna("-")
            + ") in "
            + account,
        )
