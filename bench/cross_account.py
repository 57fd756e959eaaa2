"""Cross-account detection over a generated month, and what its baseline costs per cycle.

    python -m bench.cross_account [--days 31] [--events 50000] [--accounts 20] [--pairs 40]

Writes the month (`bench.month`) into a lake once (cached under bench/out/), then detects a day
at a time with a fresh outbox and reports the findings per day, the recall of the last day's
injected cases, and the baseline's cost per hourly cycle of the last day: built from the cached
day summaries plus today so far (TrailGuard), the first build with no cache, and a baseline that
re-reads the whole window every cycle, side by side in this run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.month import accounts, day_table, injected, stable_pairs
from detectors.core.base import Context, Settings, summarize
from detectors.cross_account_assume_role import CrossAccountAssumeRole
from monitor.detect import baselines
from monitor.detect.pipeline import detect
from monitor.lake import Lake
from monitor.store.state import State

OUT = Path(__file__).resolve().parent / "out"
FIRST = datetime(2024, 3, 1, tzinfo=UTC)


def build_lake(root: Path, days: int, events: int, orgs: list[str], pairs: int, seed: int) -> Lake:
    lake, done = Lake(str(root / "lake")), root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        chosen = stable_pairs(orgs, pairs, random.Random(seed))
        for d in range(days):
            lake.write(day_table((FIRST + timedelta(days=d)).date(), events, orgs, chosen, d == days - 1, seed))
        done.write_text("ok")
    return lake


def timed(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def naive_baseline(lake: Lake, det: CrossAccountAssumeRole, ctx: Context, until: datetime) -> None:
    """The baseline without day summaries: the whole window re-read and summarized every cycle."""
    assert det.history is not None
    events = lake.read(until - timedelta(days=det.history.days), until, list(det.reads())).to_pandas()
    summarize(det.baseline_rows(events, ctx), det.history.keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--events", type=int, default=50_000, help="events per day")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    orgs = accounts(args.accounts)
    root = OUT / f"month-{args.days}d-{args.events}-{args.accounts}a-{args.pairs}p-seed{args.seed}"
    start = time.perf_counter()
    lake = build_lake(root, args.days, args.events, orgs, args.pairs, args.seed)
    print(f"lake ready in {time.perf_counter() - start:.0f} s: {args.days} days x {args.events:,} events")
    shutil.rmtree(root / "lake" / "baselines", ignore_errors=True)
    ctx = Context(Settings(organization_accounts=frozenset(orgs)))
    det = CrossAccountAssumeRole()
    per_day, kinds, seconds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        state = State(Path(tmp) / "state.db")
        for d in range(args.days):
            day = FIRST + timedelta(days=d)
            began = time.perf_counter()
            result = detect(lake, state, [CrossAccountAssumeRole], ctx, day, day + timedelta(days=1))
            seconds.append(time.perf_counter() - began)
            per_day.append(len(result.findings))
            kinds.append(
                sorted(f"{k}/{s}" for k, s in zip(result.findings["kind"], result.findings["severity"], strict=True))
            )
    last = result.findings
    found = [
        any(last["account_id"].eq(p.source) & last["details"].str.contains(f'"role_arn": "{p.role}"', regex=False))
        for p in injected(orgs)
    ]
    last_day = FIRST + timedelta(days=args.days - 1)
    cycles = [last_day + timedelta(hours=h) - det.lookbehind for h in range(24)]
    warm = [timed(baselines.build, lake, det, ctx, until) for until in cycles]
    shutil.rmtree(root / "lake" / "baselines")
    cold = timed(baselines.build, lake, det, ctx, cycles[-1])
    naive = [timed(naive_baseline, lake, det, ctx, until) for until in cycles[::6]]
    after_week = per_day[7:]
    report = {
        "days": args.days,
        "events_per_day": args.events,
        "accounts": args.accounts,
        "stable_pairs": args.pairs,
        "findings_per_day": per_day,
        "findings_last_day": kinds[-1],
        "after_first_week": {
            "max_on_ordinary_days": max(after_week[:-1], default=0),
            "on_the_injection_day": per_day[-1],
            "mean": round(statistics.mean(after_week or [0]), 2),
        },
        "injected_found": f"{sum(found)}/{len(found)}",
        "detect_seconds_per_day": round(statistics.mean(seconds), 3),
        "baseline_seconds_per_cycle": {
            "trailguard_warm_mean": round(statistics.mean(warm), 3),
            "trailguard_warm_max": round(max(warm), 3),
            "first_build_no_cache": round(cold, 3),
            "reread_window_mean": round(statistics.mean(naive), 3),
            "speedup": round(statistics.mean(naive) / statistics.mean(warm), 1),
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "cross_account.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
