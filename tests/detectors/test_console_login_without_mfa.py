from detectors.console_login_without_mfa import ConsoleLoginWithoutMfa
from detectors.core.base import Settings
from tests.cloudtrail import PROD, assumed_role, console_login, event, findings, iam_user, root


def _one(record: dict, settings: Settings | None = None) -> tuple[str, str]:
    found = findings(ConsoleLoginWithoutMfa, record, settings=settings)
    assert len(found) == 1, found
    return found["kind"].iloc[0], found["severity"].iloc[0]


def test_iam_user_without_mfa_is_high() -> None:
    assert _one(console_login(iam_user())) == ("iam-user-or-root", "high")


def test_root_without_mfa_is_high() -> None:
    assert _one(console_login(root())) == ("iam-user-or-root", "high")


def test_mfa_used_value_in_any_casing() -> None:
    for value in ("Yes", "YES", "yes"):
        assert findings(ConsoleLoginWithoutMfa, console_login(iam_user(), mfa=value)).empty, value
    for value in ("No", "NO", "no"):
        assert len(findings(ConsoleLoginWithoutMfa, console_login(iam_user(), mfa=value))) == 1, value


def test_missing_mfa_field_counts_as_no_mfa() -> None:
    assert _one(console_login(iam_user(), mfa=None))[1] == "high"


def test_role_session_without_mfa_evidence_is_medium() -> None:
    assert _one(console_login(assumed_role("admin"))) == ("role-session", "medium")


def test_federated_user_without_mfa_is_medium() -> None:
    ident = {
        "type": "FederatedUser",
        "principalId": f"{PROD}:bob",
        "arn": f"arn:aws:sts::{PROD}:federated-user/bob",
        "accountId": PROD,
    }
    assert _one(console_login(ident))[1] == "medium"


def test_negative_mfa_authenticated_session() -> None:
    assert findings(ConsoleLoginWithoutMfa, console_login(assumed_role("admin", mfa="true"))).empty
    assert findings(ConsoleLoginWithoutMfa, console_login(assumed_role("admin", mfa="TRUE"))).empty


def test_negative_sso_login() -> None:
    sso = assumed_role(
        "AWSReservedSSO_AdministratorAccess_0123abcd", "alice@example.com", path="aws-reserved/sso.amazonaws.com/"
    )
    assert findings(ConsoleLoginWithoutMfa, console_login(sso)).empty


def test_a_role_made_to_look_like_identity_center_is_still_a_finding() -> None:
    """Anyone who can create a role picks its name and its path; only AWS uses `aws-reserved/sso.amazonaws.com/`."""
    for lookalike in (assumed_role("AWSReservedSSO_evil"), assumed_role("evil", path="AWSReservedSSO_x/")):
        assert len(findings(ConsoleLoginWithoutMfa, console_login(lookalike))) == 1


def test_negative_saml_login() -> None:
    rec = console_login(assumed_role("okta-admin"))
    rec["additionalEventData"]["SamlProviderArn"] = f"arn:aws:iam::{PROD}:saml-provider/Okta"
    assert findings(ConsoleLoginWithoutMfa, rec).empty


def test_negative_configured_external_idp_role_full_match_only() -> None:
    settings = Settings(external_idp_roles=(f"arn:aws:iam::{PROD}:role/idp-*",))
    assert findings(ConsoleLoginWithoutMfa, console_login(assumed_role("idp-admin")), settings=settings).empty
    # the glob must match the whole ARN: a role merely containing the text is still a finding
    assert len(findings(ConsoleLoginWithoutMfa, console_login(assumed_role("x-idp-admin")), settings=settings)) == 1
    # and its `*` stops at a `/`: a path its creator picked is not the IdP's role
    pathed = console_login(assumed_role("evil", path="idp-x/"))
    assert len(findings(ConsoleLoginWithoutMfa, pathed, settings=settings)) == 1


def test_negative_failed_login_with_error_message_only() -> None:
    rec = console_login(iam_user(), result="Success", errorMessage="Failed authentication")
    assert findings(ConsoleLoginWithoutMfa, rec).empty


def test_negative_failed_login_response_without_error() -> None:
    assert findings(ConsoleLoginWithoutMfa, console_login(iam_user(), result="Failure")).empty


def test_negative_check_mfa_event() -> None:
    rec = event("CheckMfa", "signin.amazonaws.com", iam_user(), responseElements={"CheckMfa": "Success"})
    assert findings(ConsoleLoginWithoutMfa, rec).empty


def test_repeat_logins_of_one_user_in_a_window_group() -> None:
    found = findings(
        ConsoleLoginWithoutMfa,
        console_login(iam_user(), time="2024-05-01T10:05:00Z"),
        console_login(iam_user(), time="2024-05-01T10:45:00Z"),
        console_login(iam_user(), time="2024-05-01T11:05:00Z"),  # next UTC-aligned hour
    )
    assert [len(ids) for ids in found["event_ids"]] == [2, 1]
