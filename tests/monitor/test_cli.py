"""The command line's manners: `--config` before or after the command, lake and state from the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monitor import __version__
from tests.lakes import demo_lake


def trailguard(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def test_detect_and_findings_take_lake_and_state_from_the_configuration(tmp_path: Path) -> None:
    demo_lake(tmp_path)
    config = tmp_path / "trailguard.toml"
    config.write_text(
        f"lake.uri = {json.dumps(str(tmp_path / 'lake'))}\nstate.path = {json.dumps(str(tmp_path / 'state.db'))}\n"
    )
    detected = trailguard("detect", "--config", str(config), "--since", "2024-03-01", "--until", "2024-03-02")
    assert detected.returncode == 0, detected.stderr
    assert "findings:" in detected.stderr
    before = trailguard("--config", str(config), "findings", "list")
    after = trailguard("findings", "list", "--config", str(config))
    assert before.returncode == after.returncode == 0
    listed = [json.loads(line) for line in after.stdout.splitlines()]
    assert {f["detector"] for f in listed} >= {"root-usage", "access-key-created"}
    assert before.stdout == after.stdout


def test_a_command_without_its_lake_or_state_names_what_it_needs(tmp_path: Path) -> None:
    missing = trailguard("detect", "--since", "1d")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "error: detect: needs --lake URI or lake.uri in the configuration",
        "error: detect: needs --state FILE or state.path in the configuration",
    ]
    assert trailguard("--version").stdout == f"trailguard {__version__}\n"
