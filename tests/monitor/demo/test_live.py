"""`trailguard demo --live`: the real service's cycle over a folder that receives the story beat by beat."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from monitor.config import load
from monitor.demo import live
from monitor.store.state import State

STORY = {
    ("root-usage", "root-activity"),
    ("access-key-created", "root-key"),
    ("console-login-without-mfa", "iam-user-or-root"),
    ("access-key-created", "other-user"),
    ("unauthorized-api-calls", "person"),
    ("cloudtrail-changes", "change"),
    ("cross-account-assume-role", "external-account"),
}


def test_the_live_demo_tells_the_story_as_it_lands_and_nothing_else(tmp_path: Path) -> None:
    shown = io.StringIO()
    assert live.live(tmp_path / "live", 0, 10, Console(file=shown, width=200)) == 0
    state = State(tmp_path / "live" / "state.db", create=False)
    try:
        found = state.list_findings()
    finally:
        state.close()
    assert {(f["detector"], f["kind"]) for f in found} == STORY  # the benign look-alikes (beat 5) stay quiet
    text = shown.getvalue()
    # each finding is shown right after the step that planted its beat, not at the end
    assert text.index("root-usage") < text.index("step 3:") < text.index("other-user") < text.index("step 5:")
    assert text.index("step 8:") < text.index("external-account") < text.index("step 9:")
    assert "Stopped after 10 steps" in text
    cfg = load(tmp_path / "live" / "trailguard.toml")  # the service's own configuration, left for `run` and `check`
    assert cfg.lake == str((tmp_path / "live" / "lake").resolve())
    assert cfg.schedule.interval_seconds == 1


def test_live_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo", "--live", "--dir", str(tmp_path), "--steps", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "mine.txt" in done.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"
