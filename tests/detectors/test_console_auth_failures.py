from __future__ import annotations

from typing import Any

from detectors.console_auth_failures import ConsoleAuthFailures
from detectors.core.base import Settings
from tests.cloudtrail import DEV, console_login, findings, iam_user

UNKNOWN = "No username found in supplied account"


def failure(
    user: str = "alice", minute: int = 0, ip: str = "203.0.113.9", message: str = "Failed authentication", **fields: Any
) -> dict[str, Any]:
    who = iam_user(user) | ({"userName": "HIDDEN_DUE_TO_SECURITY_REASONS"} if message == UNKNOWN else {})
    time = f"2024-05-01T10:{minute:02d}:00Z"
    return console_login(who, result="Failure", mfa=None, errorMessage=message, ip=ip, time=time, **fields)


def test_a_failed_sign_in_is_a_low_finding() -> None:
    found = findings(ConsoleAuthFailures, failure())
    assert list(found["kind"]) == ["failed-login"]
    assert list(found["severity"]) == ["low"]
    assert "Failed authentication" in found["summary"].iloc[0]


def test_an_unknown_user_name_counts_too() -> None:
    found = findings(ConsoleAuthFailures, failure(message=UNKNOWN))
    assert list(found["kind"]) == ["failed-login"]
    assert UNKNOWN in found["summary"].iloc[0]


def test_negative_successful_sign_in() -> None:
    assert findings(ConsoleAuthFailures, console_login(iam_user())).empty


def test_brute_force_from_one_address_is_one_high_finding_across_the_hour() -> None:
    burst = [failure(minute=m) for m in range(52, 60)] + [
        console_login(
            iam_user(),
            result="Failure",
            mfa=None,
            errorMessage="Failed authentication",
            ip="203.0.113.9",
            time=f"2024-05-01T11:0{m}:00Z",
        )
        for m in range(2)
    ]
    found = findings(ConsoleAuthFailures, *burst)
    assert list(found["kind"]) == ["brute-force"]
    assert list(found["severity"]) == ["high"]
    assert len(found["event_ids"].iloc[0]) == 10


def test_failures_spread_out_are_not_a_burst() -> None:
    found = findings(ConsoleAuthFailures, *[failure(minute=m * 6) for m in range(10)])
    assert set(found["kind"]) == {"failed-login"}


def test_spraying_across_users_from_many_addresses() -> None:
    spray = [failure(f"user{n}", minute=n, ip=f"198.51.100.{n}") for n in range(5)]
    found = findings(ConsoleAuthFailures, *spray)
    assert list(found["kind"]) == ["spraying"]
    assert len(found["event_ids"].iloc[0]) == 5
    assert set(findings(ConsoleAuthFailures, *spray[:4])["kind"]) == {"failed-login"}


def test_one_user_failing_often_is_not_spraying() -> None:
    found = findings(ConsoleAuthFailures, *[failure(minute=m, ip=f"198.51.100.{m}") for m in range(8)])
    assert list(found["kind"]) == ["failed-login"]


def test_accounts_are_counted_apart() -> None:
    spray = [failure(f"user{n}", minute=n, account=DEV if n % 2 else None) for n in range(6)]
    assert set(findings(ConsoleAuthFailures, *spray)["kind"]) == {"failed-login"}


def test_thresholds_are_options() -> None:
    settings = Settings(options={"console-auth-failures": {"brute_force_failures": 3, "burst_minutes": 2}})
    assert list(findings(ConsoleAuthFailures, *[failure(minute=0) for _ in range(3)], settings=settings)["kind"]) == [
        "brute-force"
    ]
    spaced = [failure(minute=m * 2) for m in range(3)]
    assert set(findings(ConsoleAuthFailures, *spaced, settings=settings)["kind"]) == {"failed-login"}


def test_burst_minutes_is_bounded_by_the_context_the_engines_give() -> None:
    assert ConsoleAuthFailures.option_problems({"burst_minutes": 31}) == ["burst_minutes may be at most 30"]
    assert ConsoleAuthFailures.option_problems({"burst_minutes": 30}) == []


def test_spraying_with_names_that_do_not_exist() -> None:
    """CloudTrail hides every unknown name behind one placeholder: each attempt still counts as a name."""
    spray = [failure(f"nobody{n}", minute=n, ip=f"198.51.100.{n}", message=UNKNOWN) for n in range(5)]
    assert list(findings(ConsoleAuthFailures, *spray)["kind"]) == ["spraying"]
