"""The notebooks' questions on raw CloudTrail records: cases the demo lake does not hold."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from detectors.core.base import Settings
from monitor.investigate import queries as investigate
from tests.cloudtrail import DEV, EXTERNAL, PROD, assumed_role, console_login, event, iam_user, normalize, root
from tests.lakes import demo_lake

ROLE = f"arn:aws:iam::{PROD}:role/audit"


def assume(caller: dict[str, object], key: str, time: str, **fields: object) -> dict[str, object]:
    return event(
        "AssumeRole",
        "sts.amazonaws.com",
        caller,
        account=PROD,
        time=time,
        requestParameters={"roleArn": ROLE, "roleSessionName": "x"},
        responseElements={"credentials": {"accessKeyId": key, "sessionToken": "t", "expiration": "2024-05-01T11:00Z"}},
        **fields,
    )


def test_a_session_key_leads_to_its_role_and_the_identity_that_assumed_it() -> None:
    session = assumed_role("audit", "x", account=PROD) | {"accessKeyId": "ASIASESSION1"}
    frame = normalize(
        assume(iam_user("vendor", EXTERNAL), "ASIASESSION1", "2024-05-01T10:00:00Z", ip="198.51.100.9"),
        event("ListBuckets", "s3.amazonaws.com", session, time="2024-05-01T10:05:00Z"),
    )
    chain = investigate.identities(frame, "ASIASESSION1")
    assert chain[["step", "identity", "role", "account"]].to_dict("records") == [
        {"step": "used by", "identity": f"arn:aws:sts::{PROD}:assumed-role/audit/x", "role": ROLE, "account": PROD},
        {
            "step": "issued by AssumeRole",
            "identity": f"arn:aws:iam::{EXTERNAL}:user/vendor",
            "role": ROLE,
            "account": EXTERNAL,
        },
    ]


def test_a_key_lifecycle_from_creation_to_deletion() -> None:
    user = iam_user("ci") | {"accessKeyId": "AKIANEWKEY0000000001"}
    frame = normalize(
        event(
            "CreateAccessKey",
            "iam.amazonaws.com",
            iam_user("admin"),
            time="2024-05-01T09:00:00Z",
            requestParameters={"userName": "ci"},
            responseElements={"accessKey": {"accessKeyId": "AKIANEWKEY0000000001", "userName": "ci"}},
        ),
        event("ListBuckets", "s3.amazonaws.com", user, time="2024-05-01T09:30:00Z"),
        event("GetObject", "s3.amazonaws.com", user, time="2024-05-01T10:30:00Z"),
        event(
            "DeleteAccessKey",
            "iam.amazonaws.com",
            iam_user("admin"),
            time="2024-05-01T11:00:00Z",
            requestParameters={"userName": "ci", "accessKeyId": "AKIANEWKEY0000000001"},
        ),
    )
    keys = investigate.key_lifecycle(frame).set_index("access_key_id")
    new = keys.loc["AKIANEWKEY0000000001"]
    assert new["created_by"] == f"arn:aws:iam::{PROD}:user/admin"
    assert (str(new["first_used"]), str(new["last_used"]), str(new["deleted"])) == (
        "2024-05-01 09:30:00+00:00",
        "2024-05-01 10:30:00+00:00",
        "2024-05-01 11:00:00+00:00",
    )
    assert new["calls"] == 2


def test_edges_are_new_only_against_history_and_denials_are_counted() -> None:
    history = normalize(assume(iam_user("vendor", EXTERNAL), "ASIAOLD", "2024-04-20T10:00:00Z"))
    window = normalize(
        assume(iam_user("vendor", EXTERNAL), "ASIAAGAIN", "2024-05-01T10:00:00Z"),
        assume(iam_user("intruder", DEV), "ASIAX", "2024-05-01T10:01:00Z", errorCode="AccessDenied"),
    )
    edges = investigate.access_edges(window, history).set_index("source_account")
    assert (edges.loc[EXTERNAL, "new"], edges.loc[EXTERNAL, "calls"]) == (False, 1)
    assert (edges.loc[DEV, "new"], edges.loc[DEV, "calls"], edges.loc[DEV, "denied"]) == (True, 0, 1)


def test_first_seen_networks_and_unusual_names() -> None:
    past = normalize(
        event("ListBuckets", "s3.amazonaws.com", iam_user(), ip="198.51.100.7", time="2024-04-01T10:00:00Z")
    )
    now = normalize(
        event("ListBuckets", "s3.amazonaws.com", iam_user(), ip="198.51.100.7"),
        event("GetSecretValue", "secretsmanager.amazonaws.com", iam_user(), ip="10.1.2.3"),
        event("Decrypt", "kms.amazonaws.com", iam_user(), ip="secretsmanager.amazonaws.com"),
    )
    seen = investigate.first_seen(now, past, ("source_ip",)).set_index("value")["new"].to_dict()
    assert seen == {"198.51.100.7": False, "10.1.2.3": True, "secretsmanager.amazonaws.com": True}
    kinds = investigate.networks(now).set_index("source_ip")["kind"].to_dict()
    assert kinds == {"198.51.100.7": "reserved", "10.1.2.3": "private", "secretsmanager.amazonaws.com": "aws service"}
    assert list(investigate.unusual_names(now, past, rare=1)["event_name"]) == ["GetSecretValue", "Decrypt"]
    assert "ListBuckets" in set(investigate.unusual_names(now, past)["event_name"])  # seen once: rare


def test_console_logins_by_outcome_and_root_activity() -> None:
    frame = normalize(
        console_login(iam_user("alice"), mfa="Yes"),
        console_login(iam_user("bob"), mfa="No"),
        console_login(iam_user("bob"), result="Failure", errorMessage="Failed authentication"),
        console_login(root(), mfa="No"),
        event("ListUsers", "iam.amazonaws.com", root() | {"invokedBy": "support.amazonaws.com"}),
    )
    logins = investigate.console_logins(frame)
    assert list(logins.columns) == ["with MFA", "MFA at the IdP", "without MFA", "failed"]
    assert logins.loc[f"arn:aws:iam::{PROD}:user/bob"].tolist() == [0, 0, 1, 1]
    assert logins.loc[f"arn:aws:iam::{PROD}:user/alice"].tolist() == [1, 0, 0, 0]
    assert list(investigate.root_activity(frame).columns) == ["ConsoleLogin"]  # support acting for root is not root


def test_calls_by_service_picks_a_bucket_for_the_span() -> None:
    burst = normalize(
        *(event("ListUsers", "iam.amazonaws.com", iam_user(), time=f"2024-05-01T10:0{m}:00Z") for m in range(6))
    )
    table = investigate.calls_by_service(burst)
    assert list(table.index) == ["iam"]
    assert [pd.Timestamp(c).minute for c in table.columns] == [0, 5]


def test_a_key_only_deleted_in_the_window_is_named_by_the_deletion() -> None:
    frame = normalize(
        event(
            "DeleteAccessKey",
            "iam.amazonaws.com",
            iam_user("admin"),
            requestParameters={"userName": "old-ci", "accessKeyId": "AKIAOLDKEY0000000001"},
        )
    )
    key = investigate.key_lifecycle(frame).set_index("access_key_id").loc["AKIAOLDKEY0000000001"]
    assert (key["user"], key["calls"], str(key["deleted"])) == ("old-ci", 0, "2024-05-01 10:15:00+00:00")


def test_events_take_times_days_or_iso_text(tmp_path: Path) -> None:
    _, lake, _ = demo_lake(tmp_path, 1000)
    moments = [
        (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)),
        (date(2024, 3, 1), date(2024, 3, 2)),
        ("2024-03-01", "2024-03-02"),
        ("2024-03-01T00:00:00Z", "2024-03-01T19:00:00-05:00"),
    ]
    counts = {len(investigate.events(lake, start, end)) for start, end in moments}
    assert len(counts) == 1
    assert counts.pop() > 900


def test_sign_ins_through_an_identity_provider_are_not_shown_as_without_mfa() -> None:
    """As the detector judges them: IAM Identity Center and the site's IdP roles do MFA where CloudTrail cannot see."""
    sso = assumed_role(
        "AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com", path="aws-reserved/sso.amazonaws.com/"
    )
    okta = assumed_role("okta-admins", "bob@example.com")
    frame = normalize(console_login(sso), console_login(okta), console_login(iam_user("carol")))
    plain = investigate.console_logins(frame)
    assert plain["MFA at the IdP"].sum() == 1
    assert plain["without MFA"].sum() == 2
    site = Settings(external_idp_roles=("arn:aws:iam::*:role/okta-*",))
    assert investigate.console_logins(frame, site)["MFA at the IdP"].sum() == 2


def test_an_address_pivot_links_every_principal_that_used_it_and_a_network_takes_its_members() -> None:
    frame = normalize(
        console_login(root(PROD), time="2024-05-01T09:00:00Z", ip="203.0.113.66"),
        event(
            "ListUsers",
            "iam.amazonaws.com",
            iam_user("jackson", DEV),
            account=DEV,
            time="2024-05-01T11:00:00Z",
            ip="203.0.113.66",
            errorCode="AccessDenied",
        ),
        event(
            "ListBuckets",
            "s3.amazonaws.com",
            iam_user("ops", DEV),
            account=DEV,
            time="2024-05-01T10:00:00Z",
            ip="203.0.113.7",
        ),
        event("Decrypt", "kms.amazonaws.com", iam_user("ops", DEV), account=DEV, ip="kms.amazonaws.com"),
    )
    users = investigate.address_users(investigate.of_address(frame, "203.0.113.66"))
    assert users[["principal", "account", "events", "denied"]].to_dict("records") == [
        {"principal": f"arn:aws:iam::{PROD}:root", "account": PROD, "events": 1, "denied": 0},
        {"principal": f"arn:aws:iam::{DEV}:user/jackson", "account": DEV, "events": 1, "denied": 1},
    ]
    network = investigate.of_address(frame, "203.0.113.0/24")
    assert sorted(network["event_name"]) == ["ConsoleLogin", "ListBuckets", "ListUsers"]  # never the service name
    assert investigate.address_users(investigate.of_address(frame, "198.51.100.1")).empty
