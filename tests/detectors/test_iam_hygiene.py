"""The hygiene checks over snapshots: a recorded credential report (with the root row moto lacks), users, keys."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.core.base import Context, Settings
from detectors.iam_hygiene import IamHygiene, IamSnapshot
from monitor.ingest.sources.iam import parse_credential_report

ACCOUNT = "111122223333"
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
REPORT = parse_credential_report((Path(__file__).parents[1] / "fixtures" / "credential_report.csv").read_text())
STRONG = {"MinimumPasswordLength": 14, "PasswordReusePrevention": 24, "RequireSymbols": True}


def user(name: str, mfa: int = 0, groups: tuple[str, ...] = ("staff",), **lists: list[str]) -> dict[str, Any]:
    return {
        "user_name": name,
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "mfa_devices": mfa,
        "groups": list(groups),
        "attached_policies": lists.get("attached", []),
        "inline_policies": lists.get("inline", []),
    }


def key(name: str, key_id: str, created: str, last_used: str | None = None, active: bool = True) -> dict[str, Any]:
    used = pd.Timestamp(last_used, tz="UTC") if last_used else pd.NaT
    return {
        "user_name": name,
        "access_key_id": key_id,
        "active": active,
        "created": pd.Timestamp(created, tz="UTC"),
        "last_used": used,
    }


def snapshot(
    users: list[dict[str, Any]] | None = None, keys: list[dict[str, Any]] | None = None, **values: Any
) -> IamSnapshot:
    snap = IamSnapshot(
        ACCOUNT,
        NOW,
        REPORT,
        pd.DataFrame(users if users is not None else [user("alice", mfa=1), user("bob"), user("ci-bot")]),
        pd.DataFrame(keys or [], columns=["user_name", "access_key_id", "active", "created", "last_used"]),
        {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0},
        STRONG,
    )
    return replace(snap, **values)


def kinds(snap: IamSnapshot, settings: Settings | None = None) -> list[tuple[str, str]]:
    found = IamHygiene().evaluate(snap, Context(settings or Settings()))
    return sorted(zip(found["kind"], found["dedup_key"], strict=True))


def test_the_recorded_report_parses_root_and_users() -> None:
    assert list(REPORT["user"]) == ["<root_account>", "alice", "bob", "ci-bot"]
    assert REPORT["access_key_1_active"].tolist() == [True, False, True, True]
    assert pd.isna(REPORT["password_last_used"].iloc[2])  # no_information


def test_root_keys_and_missing_root_mfa_come_from_the_report_row() -> None:
    found = IamHygiene().evaluate(snapshot(), Context())
    root = found[found["dedup_key"].eq(f"{ACCOUNT}|root")].sort_values("kind")
    assert list(zip(root["kind"], root["severity"], strict=True)) == [
        ("root-access-keys", "critical"),
        ("root-without-mfa", "high"),
    ]
    assert root["principal"].tolist() == [f"arn:aws:iam::{ACCOUNT}:root"] * 2
    assert root["event_ids"].tolist() == [[], []]
    assert set(found["status"]) == {"open"}


def test_without_a_root_row_the_account_summary_decides() -> None:
    report = REPORT[REPORT["user"].ne("<root_account>")]
    clean = snapshot(report=report)
    assert [k for k, _ in kinds(clean) if k.startswith("root")] == []
    bad = snapshot(report=report, summary={"AccountMFAEnabled": 0, "AccountAccessKeysPresent": 1})
    assert [k for k, _ in kinds(bad) if k.startswith("root")] == ["root-access-keys", "root-without-mfa"]


def test_console_users_without_mfa() -> None:
    """bob signs in with a password and has no MFA; alice has MFA; ci-bot has no password."""
    assert ("user-without-mfa", f"{ACCOUNT}|user/bob") in kinds(snapshot())
    assert [k for k in kinds(snapshot()) if k[0] == "user-without-mfa"] == [("user-without-mfa", f"{ACCOUNT}|user/bob")]
    enrolled = snapshot(users=[user("alice", mfa=1), user("bob", mfa=1), user("ci-bot")])
    assert "user-without-mfa" not in dict(kinds(enrolled))


def test_policies_attached_to_users_rather_than_groups() -> None:
    users = [user("alice", mfa=1, attached=["arn:aws:iam::aws:policy/AdministratorAccess"]), user("bob", inline=["s3"])]
    found = IamHygiene().evaluate(snapshot(users=users), Context())
    direct = found[found["kind"].eq("user-attached-policies")].sort_values("dedup_key")
    assert direct["dedup_key"].tolist() == [f"{ACCOUNT}|user/alice", f"{ACCOUNT}|user/bob"]
    assert '"policies": ["arn:aws:iam::aws:policy/AdministratorAccess"]' in direct["details"].iloc[0]


def test_old_unused_and_doubled_keys() -> None:
    keys = [
        key("bob", "AKIABOBOLD", "2022-06-20", last_used="2024-04-29"),  # old, in use
        key("ci-bot", "AKIACIUNUSED", "2023-02-01", last_used="2023-09-30"),  # old and unused
        key("ci-bot", "AKIACINEW", "2024-04-20"),  # new, never used yet
        key("alice", "AKIAALICEOFF", "2020-01-01", active=False),  # inactive: nothing to say
    ]
    got = kinds(snapshot(keys=keys))
    assert [k for k in got if k[0].startswith(("access-key", "user-two"))] == [
        ("access-key-old", f"{ACCOUNT}|access-key/AKIABOBOLD"),
        ("access-key-old", f"{ACCOUNT}|access-key/AKIACIUNUSED"),
        ("access-key-unused", f"{ACCOUNT}|access-key/AKIACIUNUSED"),
        ("user-two-active-keys", f"{ACCOUNT}|user/ci-bot"),
    ]


def test_key_ages_are_options() -> None:
    keys = [key("ci-bot", "AKIACINEW", "2024-04-20")]
    settings = Settings(options={"iam-hygiene": {"key_max_age_days": 7, "key_unused_days": 5}})
    assert [k for k, _ in kinds(snapshot(keys=keys), settings) if k.startswith("access")] == [
        "access-key-old",
        "access-key-unused",
    ]


def test_missing_and_weak_password_policies() -> None:
    assert "password-policy-missing" in dict(kinds(snapshot(password_policy=None)))
    weak = IamHygiene().evaluate(snapshot(password_policy={"MinimumPasswordLength": 8}), Context())
    row = weak[weak["kind"].eq("password-policy-weak")].iloc[0]
    assert "MinimumPasswordLength 8 (wanted 14)" in row["summary"]
    assert "PasswordReusePrevention 0 (wanted 24)" in row["summary"]
    assert "password-policy" not in " ".join(k for k, _ in kinds(snapshot()))


def test_a_finding_id_is_the_problem_and_when_it_was_first_seen() -> None:
    first = IamHygiene().evaluate(snapshot(), Context())
    again = IamHygiene().evaluate(snapshot(), Context())
    later = IamHygiene().evaluate(snapshot(taken_at=datetime(2024, 5, 2, tzinfo=UTC)), Context())
    assert first["finding_id"].tolist() == again["finding_id"].tolist()
    assert set(first["finding_id"]).isdisjoint(later["finding_id"])  # monitor/service/hygiene.py keeps an open one's id


def test_every_kind_found_is_explained_in_the_guide() -> None:
    users = [user("alice", attached=["arn:aws:iam::aws:policy/ReadOnlyAccess"]), user("bob")]
    keys = [key("bob", "AKIA1", "2020-01-01"), key("bob", "AKIA2", "2020-01-01")]
    worst = snapshot(users=users, keys=keys, password_policy=None)
    weak = snapshot(password_policy={"MinimumPasswordLength": 6})
    found = {k for snap in (worst, weak) for k, _ in kinds(snap)}
    assert found == set(IamHygiene.guide.kinds)
