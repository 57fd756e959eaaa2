"""The SigmaHQ AWS CloudTrail rules at the pinned commit: each loads as a detector or is reported with its reason,
and a rule and the native detector for the same thing are compared on the same records."""

from __future__ import annotations

from detectors.console_login_without_mfa import ConsoleLoginWithoutMfa
from detectors.core.base import Context
from detectors.sigma.rules import load
from tests.cloudtrail import PROD, assumed_role, console_login, iam_user, normalize, root
from tests.sigmahq import sigmahq


def test_every_cloudtrail_rule_loads_or_is_reported_with_its_reason() -> None:
    loaded = load([sigmahq() / "rules"])
    assert (len(loaded.detectors), len(loaded.refused)) == (56, 1)
    [(path, why)] = loaded.refused
    assert path.endswith("aws_delete_saml_provider.yml")
    assert why == "unknown field 'status'"  # CloudTrail has no `status` field: the rule can never match
    assert len({d.id for d in loaded.detectors}) == 56


def test_the_aggregation_rules_run_as_counts_or_are_reported() -> None:
    loaded = load([sigmahq() / "unsupported"])
    counts = [d for d in loaded.detectors if hasattr(d, "aggregation")]
    assert (len(loaded.detectors), len(counts)) == (7, 6)  # the seventh has no aggregation at all
    [(path, why)] = loaded.refused
    assert path.endswith("aws_lambda_function_created_or_invoked.yml")
    assert why.startswith("aggregation 'selection1 | near selection2'")


SIGN_INS = {
    "root without MFA": console_login(root(PROD)),
    "user without MFA": console_login(iam_user("bob")),
    "user with MFA": console_login(iam_user("carol"), mfa="Yes"),
    "user, MFA field absent": console_login(iam_user("dave"), mfa=None),
    "failed": console_login(iam_user("eve"), result="Failure", errorMessage="Failed authentication"),
    "IAM Identity Center": console_login(assumed_role("AWSReservedSSO_Admin_1a2b", "alice@example.com")),
    "role, no MFA evidence": console_login(assumed_role("ops", "frank")),
}


def test_sigmahq_console_login_without_mfa_beside_the_native_detector() -> None:
    """SigmaHQ's rule matches `MFAUsed: NO` exactly (any case) on a successful sign-in; the native detector also
    judges sign-ins whose MFA field is absent, and leaves out sign-ins through an identity provider."""
    [rule] = [d for d in load([sigmahq() / "rules"]).detectors if d.id == "sigma-77caf516-34e5-4df9-b4db-20744fea0a60"]
    names = list(SIGN_INS)
    frame = normalize(*SIGN_INS.values())
    by_rule = {names[i] for i in frame.index[rule().select(frame)]}
    native = ConsoleLoginWithoutMfa().detect(frame, Context())
    by_native = {names[i] for ids in native["event_ids"] for i in frame.index[frame["event_id"].isin(ids)]}
    assert by_rule == {"root without MFA", "user without MFA", "IAM Identity Center", "role, no MFA evidence"}
    assert by_native == {"root without MFA", "user without MFA", "user, MFA field absent", "role, no MFA evidence"}
