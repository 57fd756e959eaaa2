"""A lake built from the generated demo day, the `trailguard detect` command line over it, and service configs."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.demo.generator import generate_trail
from monitor.ingest.files import works
from monitor.ingest.run import Options, ingest, new_only
from monitor.lake import Lake
from monitor.store.state import State


def demo_lake(root: Path, events: int = 2000) -> tuple[Path, Lake, State]:
    """The generated trail under root/trail, ingested into root/lake with state in root/state.db."""
    trail = root / "trail"
    generate_trail(trail, events, per_object=500)
    lake, state = Lake(str(root / "lake")), State(root / "state.db")
    ingest(new_only(state, works([trail])[0]), lake, state, options=Options(workers=1))
    return trail, lake, state


def detect_command(root: Path, *extra: str) -> list[str]:
    """`trailguard detect` over the demo day of the lake under root."""
    return [
        sys.executable,
        "-m",
        "monitor.cli",
        "detect",
        "--lake",
        str(root / "lake"),
        "--state",
        str(root / "state.db"),
        "--since",
        "2024-03-01",
        "--until",
        "2024-03-02",
        *extra,
    ]


def service_config(root: Path, sources: Sequence[str], schedule: str = "", extra: str = "") -> Path:
    """A configuration file for `trailguard run` with its lake and state under root; `schedule` adds to [schedule]."""
    path = root / "trailguard.toml"
    path.write_text(
        f"sources = {json.dumps(list(sources))}\n"
        f"lake.uri = {json.dumps(str(root / 'lake'))}\n"
        f"state.path = {json.dumps(str(root / 'state.db'))}\n"
        f"[schedule]\nworkers = 1\n{schedule}\n{extra}\n"
    )
    return path
