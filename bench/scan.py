"""Benchmark `trailguard scan` against the naive pipeline, side by side in one run.

    python -m bench.scan --events 1000000

Generates (once, cached under bench/out/) N realistic events as gzipped S3 delivery objects of
1,000 records, then runs each pipeline as its own process and reports events/s, the peak RSS of
the largest process and of the whole process tree, TrailGuard's ratios to the baseline, and
every pipeline's throughput as a fraction of the decode floor (`bench.floor`) of the same run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.floor import floor, fraction
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


def row(name: str, run: Run, events: int, decode_floor: Run | None = None) -> dict[str, float | str]:
    """One pipeline's figures; with `decode_floor`, its throughput as a fraction of that floor's too."""
    share = {} if decode_floor is None else {"of_decode_floor": fraction(run, decode_floor)}
    return {
        "pipeline": name,
        "seconds": round(run.seconds, 2),
        "events_per_s": round(events / run.seconds),
        **share,
        "peak_process_mib": round(run.peak_process_mib),
        "peak_tree_mib": round(run.peak_tree_mib),
    }


def floor_rows(trail: Path, events: int) -> tuple[list[dict[str, float | str]], Run]:
    """The floor's two stages as rows, and the decode floor the other rows are a fraction of."""
    runs = floor(trail, OUT)
    decode = runs["decode"]
    return [
        row("floor: read + gunzip", runs["gunzip"], events, decode),
        row("floor: + typed decode", decode, events, decode),
    ], decode


def main() -> None:
    args = arguments(__doc__)
    trail = dataset(args.events, args.seed)
    OUT.mkdir(exist_ok=True)
    rows, decode = floor_rows(trail, args.events)
    tg = measure(
        [sys.executable, "-m", "monitor.cli", "scan", str(trail), "--no-progress"], OUT / "scan-findings.jsonl"
    )
    if tg.returncode != 0:
        raise SystemExit(f"trailguard scan exited {tg.returncode}")
    rows.append(row("trailguard scan", tg, args.events, decode))
    if not args.skip_naive:
        naive = measure([sys.executable, "-m", "bench.naive_scan", str(trail)], OUT / "naive.json")
        rows.append(row("naive json_normalize", naive, args.events, decode))
        rows.append(ratio(tg, naive))
    findings = sum(1 for _ in (OUT / "scan-findings.jsonl").open())
    report = {"events": args.events, "findings": findings, "rows": rows}
    (OUT / "scan.json").write_text(json.dumps(report, indent=2))
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
