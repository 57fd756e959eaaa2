"""Detection over a 1M-event lake day, as `detect` runs it, beside reading the whole day first.

    python -m bench.detection [--events 1000000] [--runs 3]

On the busy generated day of bench.sigma (cached), times one slice of detection from the lake (reading,
detecting, no state) for the whole catalog and for the four identity detectors: TrailGuard's way (the
selecting columns of every event, the rest only for the events some detector selects) and, as the baseline
of the same run, the whole day read with every column the detectors need, then detected. Best of --runs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial

from bench.sigma import DAY, OUT, day_lake
from detectors.core.base import Context, Detector
from detectors.core.registry import load
from monitor.detect.detection import needed_columns, run_detectors
from monitor.detect.pipeline import detect_slice, frame
from monitor.lake import Lake

IDENTITY = ("root-usage", "console-login-without-mfa", "access-key-created", "cross-account-assume-role")


def best(runs: int, work: Callable[[], int]) -> tuple[float, int]:
    """The fastest of `runs` runs, in seconds, and what the last one found."""
    times, found = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        found = work()
        times.append(time.perf_counter() - started)
    return min(times), found


def selected(lake: Lake, detectors: Sequence[type[Detector]]) -> int:
    return len(detect_slice(lake, detectors, Context(), DAY, DAY + timedelta(days=1)).findings)


def whole_day(lake: Lake, detectors: Sequence[type[Detector]]) -> int:
    behind = max(d.lookbehind for d in detectors)
    ahead = max(d.lookahead for d in detectors)
    end = DAY + timedelta(days=1)
    events = frame(lake, DAY - behind, end + ahead, needed_columns(detectors))
    return len(run_detectors(events, detectors, Context(), DAY, end)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lake = day_lake(args.events)
    catalog = load()
    rows = []
    for name, detectors in (("catalog", catalog), ("identity", [d for d in catalog if d.id in IDENTITY])):
        ours, found = best(args.runs, partial(selected, lake, detectors))
        theirs, same = best(args.runs, partial(whole_day, lake, detectors))
        if found != same:
            raise SystemExit(f"{name}: {found} findings reading the selected events, {same} reading the whole day")
        rows.append(
            {
                "detectors": name,
                "count": len(detectors),
                "findings": found,
                "seconds": round(ours, 2),
                "whole_day_seconds": round(theirs, 2),
                "speedup": round(theirs / ours, 1),
            }
        )
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    (OUT / "detection.json").write_text(json.dumps({"events": args.events, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
