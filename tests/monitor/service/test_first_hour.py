"""The first hour, as a new user spends it: generated data drives the real service, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from monitor.demo.generator import EXTERNAL_ACCOUNT, ORG_ACCOUNTS
from tests.lakes import service_config


def trailguard(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def test_generated_activity_of_today_is_ingested_and_detected_by_one_cycle(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    assert trailguard("generate", str(trail), "--events", "3000", "--days", "2").returncode == 0
    config = service_config(tmp_path, [str(trail)])
    ran = trailguard("run", "--once", "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    listed = trailguard("findings", "list", "--config", str(config))
    found = [orjson.loads(line) for line in listed.stdout.splitlines()]
    detectors = {f["detector"] for f in found}
    assert {"root-usage", "console-login-without-mfa", "access-key-created", "cross-account-assume-role"} <= detectors
    assert "silent-source" not in detectors
    # without Organizations configured, the accounts delivering to the trail are the organization's: the nightly
    # deployment between two of them is a new pair inside it (low), never "outside the organization" (high)
    inside = [f for f in found if f["detector"] == "cross-account-assume-role" and f["account_id"] in ORG_ACCOUNTS]
    assert [f["severity"] for f in inside] == ["low"]
    outside = [f for f in found if f["detector"] == "cross-account-assume-role" and f["account_id"] == EXTERNAL_ACCOUNT]
    assert [f["severity"] for f in outside] == ["high"]
    checked = trailguard("check", "--offline", "--config", str(config)).stdout
    assert f"so far 3: {', '.join(sorted(ORG_ACCOUNTS))}" in checked


def test_a_first_cycle_over_old_data_raises_no_silent_source_and_says_what_it_did_not_detect(tmp_path: Path) -> None:
    """Accounts that were never live while watched are not silent: nothing to alert on. Events older than
    the cycle's lookback are in the lake, and the log says how to detect them."""
    trail = tmp_path / "trail"
    assert trailguard("generate", str(trail), "--events", "1500", "--date", "2024-03-01").returncode == 0
    config = service_config(tmp_path, [str(trail)])
    ran = trailguard("run", "--once", "--config", str(config))
    assert ran.returncode == 0
    [warning] = [orjson.loads(line) for line in ran.stderr.splitlines() if "older events not detected" in line]
    assert warning["hint"].startswith("trailguard detect --since 2024-03-01")
    listed = trailguard("findings", "list", "--config", str(config), "--detector", "silent-source")
    assert listed.stdout == ""
