"""Benchmark `trailguard scan` against the naive pipeline, side by side in one run.

    python -m bench.scan --events 1000000

Generates (once, cached under bench/out/) N realistic events as gzipped S3 delivery objects of
1,000 records, then runs each pipeline as its own process and reports events/s, the peak RSS of
the largest process and of the whole process tree, and TrailGuard's ratios to the baseline.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.measure import Run, arguments, measure, ratio
from monitor.demo.generator import generate_trail

OUT = Path(__file__).resolve().parent / "out"


def dataset(events: int, seed: int) -> Path:
    root = OUT / f"trail-{events}-seed{seed}-busy"
    done = root / ".complete"
    if not done.exists():
        start = time.perf_counter()
        generate_trail(root, events, seed=seed, busy=True)
        done.write_text("ok")
        print(f"generated {events:,} events in {time.perf_counter() - start:.0f} s under {root}", file=sys.stderr)
    return root


def row(name: str, run: Run, events: int) -> dict[str, float | str]:
    return {
        "pipeline": name,
        "seconds": round(run.seconds, 2),
        "events_per_s": round(events / run.seconds),
        "peak_process_mib": round(run.peak_process_mib),
        "peak_tree_mib": round(run.peak_tree_mib),
    }


def main() -> None:
    args = arguments(__doc__)
    trail = dataset(args.events, args.seed)
    OUT.mkdir(exist_ok=True)
    tg = measure(
        [sys.executable, "-m", "monitor.cli", "scan", str(trail), "--no-progress"], OUT / "scan-findings.jsonl"
    )
    if tg.returncode != 0:
        raise SystemExit(f"trailguard scan exited {tg.returncode}")
    rows = [row("trailguard scan", tg, args.events)]
    if not args.skip_naive:
        naive = measure([sys.executable, "-m", "bench.naive_scan", str(trail)], OUT / "naive.json")
        rows.append(row("naive json_normalize", naive, args.events))
        rows.append(ratio(tg, naive))
    findings = sum(1 for _ in (OUT / "scan-findings.jsonl").open())
    report = {"events": args.events, "findings": findings, "rows": rows}
    (OUT / "scan.json").write_text(json.dumps(report, indent=2))
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
