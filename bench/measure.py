"""Run a command as a child process and measure wall time and peak memory of its process tree."""

from __future__ import annotations

import argparse
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_process_mib: float  # the largest single process at its peak
    peak_tree_mib: float  # the whole process tree, summed at each sample
    returncode: int


def _high_water(pid: int) -> int:
    """The kernel's record of a process's peak RSS (VmHWM), so short peaks between samples count."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_rss(root: psutil.Process) -> tuple[int, int]:
    """(current RSS of the whole tree, largest peak RSS of any process in it)."""
    total = largest = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        largest = max(largest, _high_water(proc.pid))
    return total, largest


def measure(command: list[str], stdout: Path, interval: float = 0.25) -> Run:
    """Tree RSS is sampled every `interval` s; each process's own peak comes from the kernel (VmHWM)."""
    peak_tree = peak_one = 0
    with stdout.open("wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out)
        proc = psutil.Process(child.pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_tree, peak_one
            while not stop.is_set():
                tree, one = _tree_rss(proc)
                peak_tree, peak_one = max(peak_tree, tree), max(peak_one, one)
                time.sleep(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = child.wait()
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
    mib = 1024 * 1024
    return Run(seconds, peak_one / mib, peak_tree / mib, returncode)


def arguments(doc: str | None) -> argparse.Namespace:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-naive", action="store_true", help="measure TrailGuard only")
    return parser.parse_args()


def ratio(trailguard: Run, naive: Run) -> dict[str, float | str]:
    """TrailGuard against the baseline of the same run: throughput and memory as ratios."""
    return {
        "pipeline": "ratio (trailguard / naive)",
        "events_per_s": round(naive.seconds / trailguard.seconds, 1),
        "peak_process_mib": round(trailguard.peak_process_mib / naive.peak_process_mib, 2),
        "peak_tree_mib": round(trailguard.peak_tree_mib / naive.peak_tree_mib, 2),
    }
