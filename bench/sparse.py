"""`detect` over ten years holding 30 days of events, beside the same 30 days held back to back.

    python -m bench.sparse [--events 20000]

Writes the same generated days twice (cached under bench/out/): 30 consecutive days, and 30 days spread over
ten years (one every four months). Detects each lake's whole span in this run with the shipped catalog and
reports seconds, and the ratio sparse / dense: the time should follow the events, not the span.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detectors.core.base import Context
from detectors.core.registry import BUILTIN
from monitor.demo.generator import generate_trail
from monitor.detect.pipeline import detect
from monitor.ingest.run import Options, from_uris
from monitor.lake import Lake
from monitor.store.state import State

OUT = Path(__file__).resolve().parent / "out"
FIRST = datetime(2015, 1, 1, tzinfo=UTC)
DAYS = 30


def lake_of(name: str, days: list[datetime], events: int) -> Lake:
    root = OUT / f"sparse-{name}-{events}"
    lake, done = Lake(str(root / "lake")), root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        for n, day in enumerate(days):
            generate_trail(root / "trail" / str(n), events, day=day, seed=n, busy=True)
        from_uris([str(root / "trail")], lake, State(root / "state.db"), options=Options())
        shutil.rmtree(root / "trail")
        done.write_text("ok")
    return lake


def timed(lake: Lake, since: datetime, until: datetime, state: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = detect(lake, State(state), BUILTIN, Context(), since, until)
    return time.perf_counter() - started, len(done.findings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    dense = [FIRST + timedelta(days=n) for n in range(DAYS)]
    sparse = [FIRST + timedelta(days=122 * n) for n in range(DAYS)]  # one every four months: ten years
    runs = OUT / "sparse-run"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    dense_s, dense_n = timed(
        lake_of("dense", dense, args.events), dense[0], dense[-1] + timedelta(days=1), runs / "d.db"
    )
    end = sparse[-1] + timedelta(days=1)
    sparse_s, sparse_n = timed(lake_of("sparse", sparse, args.events), sparse[0], end, runs / "s.db")
    report = {
        "events_per_day": args.events,
        "days_with_events": DAYS,
        "sparse_span_days": (end - sparse[0]).days,
        "dense_seconds": round(dense_s, 2),
        "sparse_seconds": round(sparse_s, 2),
        "sparse_to_dense_ratio": round(sparse_s / dense_s, 2),
        "findings_dense": dense_n,
        "findings_sparse": sparse_n,
    }
    (OUT / "sparse.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
