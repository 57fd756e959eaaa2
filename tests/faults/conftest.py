"""The fault-injection suite: TrailGuard run as real processes against hostile and broken inputs,
messages, state files, sinks and peers. Every test here carries the `faults` marker, so the suite
also runs alone: `pytest -m faults` (and `--fuzz-inputs N` sizes its fuzz campaign)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@dataclass(frozen=True)
class Run:
    """A finished command: its exit status, its output, and the largest resident size any of its processes
    reached (sampled every 20 ms, workers included)."""

    code: int
    out: str
    err: str
    peak_mib: float

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error: ")]


def trailguard(*args: str, env: dict[str, str] | None = None, config: Path | None = None, timeout: float = 300) -> Run:
    """`trailguard [--config FILE] ARGS...` as its own process tree."""
    command = [sys.executable, "-m", "monitor.cli", *(["--config", str(config)] if config else []), *args]
    return run(command, env, timeout)


def run(command: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    proc = subprocess.Popen(
        command, env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.wait(0.02):
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], *(p.memory_info().rss / 2**20 for p in tree))
            except psutil.Error:  # a process came or went between the listing and the reading
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        proc.kill()
        sampler.join()
    return Run(proc.returncode, out, err, peak[0])


def wait_until(condition: object, what: str, timeout: float = 120) -> None:
    """Poll `condition()` until it holds; the deadline is generous, the test's speed is the machine's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def no_traceback(result: Run) -> None:
    assert "Traceback" not in result.err, result.err[-3000:]
    assert result.code != 3, result.err[-3000:]
