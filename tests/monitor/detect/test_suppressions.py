"""Suppression rules: full matches only, every rule with reason, owner and expiry, expired rules stop."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from monitor.config import ConfigError
from monitor.detect.suppressions import load
from monitor.store.state import State
from tests.cloudtrail import stored_finding
from tests.lakes import demo_lake, detect_command

TODAY = date(2024, 6, 1)


def rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suppressions.toml"
    path.write_text(text)
    return path


def test_fields_and_full_matches(tmp_path: Path) -> None:
    path = rules(
        tmp_path,
        """
[[suppress]]
principal = "arn:aws:sts::*:assumed-role/ci-logs/*"
detector = "cross-account-assume-role"
reason = "log shipping"
owner = "platform"
expires = 2024-12-31

[[suppress]]
source_cidr = "10.0.0.0/8"
user_agent = "Terraform/*"
reason = "infra pipeline"
owner = "sre"
expires = 2024-12-31
""",
    )
    match = load(path).matcher(TODAY)
    ci = stored_finding(detector="cross-account-assume-role", principal="arn:aws:sts::1:assumed-role/ci-logs/run-7")
    assert match(ci) == "rule 1 (log shipping, platform, until 2024-12-31)"
    assert match(replace(ci, principal="arn:aws:sts::1:assumed-role/ci-logs-replica/run-7")) is None
    assert match(replace(ci, detector="root-usage")) is None  # every named field must match
    infra = stored_finding(source_ip="10.1.2.3", user_agent="Terraform/1.7.5 (+https://www.terraform.io)")
    assert match(infra) is not None
    assert match(replace(infra, source_ip="11.1.2.3")) is None
    assert match(replace(infra, source_ip="AWS Internal")) is None
    assert match(replace(infra, user_agent="evil Terraform/1.7")) is None


def test_event_name_rule_needs_every_event_of_the_finding(tmp_path: Path) -> None:
    path = rules(tmp_path, '[[suppress]]\nevent_name = "ListUsers"\nreason = "r"\nowner = "o"\nexpires = 2999-01-01\n')
    match = load(path).matcher(TODAY)
    assert match(stored_finding(event_names=["ListUsers"])) is not None
    assert match(stored_finding(event_names=["ListUsers", "CreateAccessKey"])) is None


def test_expired_rules_stop_applying(tmp_path: Path) -> None:
    path = rules(tmp_path, '[[suppress]]\naccount = "111122223333"\nreason = "r"\nowner = "o"\nexpires = 2024-05-31\n')
    loaded = load(path)
    assert loaded.matcher(TODAY)(stored_finding(account_id="111122223333")) is None
    assert [r.number for r in loaded.expired(TODAY)] == [1]
    assert loaded.matcher(date(2024, 5, 1))(stored_finding(account_id="111122223333")) is not None


def test_every_problem_is_named(tmp_path: Path) -> None:
    path = rules(
        tmp_path,
        """
[[suppress]]
principal = "x"
[[suppress]]
reason = "r"
owner = ""
expires = 2024-01-01T00:00:00
source_cidr = "10.0.0.0/99"
colour = "red"
""",
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        "suppress[1].reason: required",
        "suppress[1].owner: required",
        "suppress[1].expires: required",
        "suppress[2].colour: unknown key",
        "suppress[2].source_cidr: '10.0.0.0/99' is not a CIDR",
        "suppress[2].expires: expected a date (YYYY-MM-DD)",
        "suppress[2].owner: expected a non-empty string",
    ]


def test_suppressed_findings_are_stored_and_counted_never_shown(tmp_path: Path) -> None:
    demo_lake(tmp_path)
    path = rules(
        tmp_path, '[[suppress]]\ndetector = "root-usage"\nreason = "drill"\nowner = "sec"\nexpires = 2999-01-01\n'
    )
    cmd = detect_command(tmp_path, "--alert", "--suppressions", str(path))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "(1 suppressed)" in done.stderr
    assert "root-usage" not in done.stdout
    [root] = [f for f in State(tmp_path / "state.db").list_findings() if f["detector"] == "root-usage"]
    [delivery] = State(tmp_path / "state.db").deliveries(root["finding_id"])
    assert (delivery["status"], delivery["rule"]) == ("suppressed", "rule 1 (drill, sec, until 2999-01-01)")
