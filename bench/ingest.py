"""Benchmark `trailguard ingest` (local S3-shaped objects -> lake) against the naive pipeline.

    python -m bench.ingest --events 1000000             # side by side, with ratios
    python -m bench.ingest --events 10000000 --skip-naive  # TrailGuard alone: memory must stay flat

Each pipeline runs as its own process tree; the lake and state are recreated for every run. The floor
(`bench.floor`) is measured in the same run, and every row says what fraction of the decode floor it reaches.
"""

from __future__ import annotations

import json
import shutil
import sys

from bench.measure import arguments, measure, ratio
from bench.scan import OUT, dataset, floor_rows, row


def main() -> None:
    args = arguments(__doc__)
    trail = dataset(args.events, args.seed)
    work = OUT / f"ingest-{args.events}"
    shutil.rmtree(work, ignore_errors=True)
    rows, decode = floor_rows(trail, args.events)
    cmd = [
        sys.executable,
        "-m",
        "monitor.cli",
        "ingest",
        "--source",
        str(trail),
        "--lake",
        str(work / "lake"),
        "--state",
        str(work / "state.db"),
        "--no-progress",
    ]
    tg = measure(cmd, work.with_suffix(".log"))
    if tg.returncode != 0:
        raise SystemExit(f"trailguard ingest exited {tg.returncode}")
    rows.append(row("trailguard ingest", tg, args.events, decode))
    if not args.skip_naive:
        naive = measure(
            [sys.executable, "-m", "bench.naive_ingest", str(trail), str(work / "naive")],
            work.with_suffix(".naive.log"),
        )
        rows.append(row("naive json_normalize + to_parquet", naive, args.events, decode))
        rows.append(ratio(tg, naive))
    (OUT / f"ingest-{args.events}.json").write_text(json.dumps({"events": args.events, "rows": rows}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
