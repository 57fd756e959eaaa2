"""Detection over a lake bigger than one day in memory: the pandas engine (a day at a time, so its
peak memory must not grow with the range) and the Dask engine on a local 2-worker cluster, side by
side over the same lake, with the per-core rates that size a cluster for 1 billion events a day.

    python -m bench.scale --events 10000000 --days 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.measure import Run, measure
from bench.month import accounts, day_table, stable_pairs
from bench.scan import row as scan_row
from monitor.lake import Lake

OUT = Path(__file__).resolve().parent / "out"
FIRST = datetime(2024, 3, 1, tzinfo=UTC)


def build(events: int, days: int, seed: int) -> Lake:
    root = OUT / f"scale-{events}-{days}d-seed{seed}"
    lake, done = Lake(str(root / "lake")), root / ".complete"
    if not done.exists():
        start = time.perf_counter()
        orgs = accounts(20)
        pairs = stable_pairs(orgs, 40, random.Random(seed))
        for d in range(days):
            lake.write(day_table((FIRST + timedelta(days=d)).date(), events // days, orgs, pairs, d == days - 1, seed))
        done.write_text("ok")
        print(f"generated {events:,} events in {time.perf_counter() - start:.0f} s under {root}", file=sys.stderr)
    return lake


def detect(lake: Lake, days: int, *engine: str) -> Run:
    with tempfile.TemporaryDirectory() as scratch:
        until = (FIRST + timedelta(days=days)).date().isoformat()
        command = [
            sys.executable,
            "-m",
            "monitor.cli",
            "detect",
            "--lake",
            lake.uri,
            "--state",
            f"{scratch}/state.db",
            "--since",
            FIRST.date().isoformat(),
            "--until",
            until,
            *engine,
        ]
        run = measure(command, Path(scratch) / "out.txt")
    if run.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode})")
    return run


def row(name: str, run: Run, events: int) -> dict[str, float | str]:
    return {"events": events} | scan_row(name, run, events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    lake = build(args.events, args.days, args.seed)
    cores = os.cpu_count() or 1
    # two days, not one: a day's read includes the context before it, which the lake's first day lacks
    two_days = detect(lake, 2)
    pandas_all = detect(lake, args.days)
    dask_all = detect(lake, args.days, "--engine", "dask")
    per_day = args.events // args.days
    rows = [
        row("pandas engine, 2 days", two_days, 2 * per_day),
        row(f"pandas engine, {args.days} days", pandas_all, args.events),
        row(f"dask engine ({cores} local workers), {args.days} days", dask_all, args.events),
    ]
    pandas_rate = args.events / pandas_all.seconds  # one core works at a time in the pandas engine
    dask_rate_per_core = args.events / dask_all.seconds / cores
    summary = {
        "memory_growth_2_to_all_days": round(pandas_all.peak_process_mib / two_days.peak_process_mib, 2),
        "dask_over_pandas_seconds": round(dask_all.seconds / pandas_all.seconds, 2),
        "pandas_events_per_core_s": round(pandas_rate),
        "dask_events_per_core_s": round(dask_rate_per_core),
        # a day of 1e9 events detected within an hour, and a 90-day backfill within a day, at the Dask per-core rate
        "cores_for_1e9_a_day_in_1h": round(1e9 / dask_rate_per_core / 3600, 1),
        "cores_for_90_days_of_1e9_in_24h": round(90e9 / dask_rate_per_core / 86400, 1),
    }
    for item in rows:
        print("  ".join(f"{k}={v}" for k, v in item.items()))
    print("  ".join(f"{k}={v}" for k, v in summary.items()))
    OUT.mkdir(exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
