"""A pack of Sigma rules over a day of generated events, beside the native catalog on the same frame.

    python -m bench.sigma [--events 1000000] [--rules ../shared/sigma]

Generates a day (`busy`: changes and denials as in a large estate; cached under bench/out/), ingests it into a
lake, reads the columns the rules and the catalog need, then times in this run: the rules' conditions alone
(every rule's select over the whole day), the rules' full detection (conditions, counts and grouping into
findings), and the native catalog's detection. Reports seconds, events per second and the ratio to the catalog.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from detectors.core.base import Context, Detector
from detectors.core.registry import load as catalog
from detectors.sigma import load as load_rules
from monitor.demo.generator import generate_trail
from monitor.detect.pipeline import frame as events_of
from monitor.ingest.run import Options, from_uris
from monitor.lake import Lake
from monitor.store.state import State

OUT = Path(__file__).resolve().parent / "out"
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def day_lake(events: int) -> Lake:
    root = OUT / f"sigma-day-{events}"
    lake, done = Lake(str(root / "lake")), root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_trail(root / "trail", events, day=DAY, busy=True, per_object=5000)
        from_uris([str(root / "trail")], lake, State(root / "state.db"), options=Options())
        shutil.rmtree(root / "trail")
        done.write_text("ok")
    return lake


def _timed(detector: type[Detector], frame: pd.DataFrame) -> tuple[float, int]:
    """Seconds one detector's whole detection takes, and its findings."""
    started = time.perf_counter()
    found = len(detector().detect(frame, Context()))
    return time.perf_counter() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rules", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "sigma")
    args = parser.parse_args()
    loaded = load_rules([args.rules / "rules", args.rules / "unsupported"])
    rules, native = loaded.detectors, catalog()
    lake = day_lake(args.events)
    columns = sorted({c for d in (*rules, *native) for c in d.reads()})
    frame = events_of(lake, DAY, DAY + timedelta(days=1), columns)  # as `detect` reads it: in time order
    started = time.perf_counter()
    matches = sum(int(d().select(frame).sum()) for d in rules)
    conditions = time.perf_counter() - started
    timed = [(*_timed(rule, frame), rule.title) for rule in rules]
    detection, findings = sum(t for t, _, _ in timed), sum(n for _, n, _ in timed)
    native_seconds, baseline = map(sum, zip(*(_timed(d, frame) for d in native), strict=True))
    report = {
        "events": len(frame),
        "rules": len(rules),
        "rules_refused": len(loaded.refused),
        "conditions_seconds": round(conditions, 2),
        "conditions_events_per_second": round(len(frame) / conditions),
        "rules_detection_seconds": round(detection, 2),
        "rule_matches": matches,
        "rule_findings": findings,
        "native_detectors": len(native),
        "native_detection_seconds": round(native_seconds, 2),
        "native_findings": baseline,
        "rules_to_native_ratio": round(detection / native_seconds, 2),
        "slowest_rules": [
            {"rule": title, "seconds": round(seconds, 2), "findings": found}
            for seconds, found, title in sorted(timed, reverse=True)[:3]
        ],
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "sigma.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
