"""Baselines from multi-day lakes: built a day at a time and cached, and the same findings however a day is cut."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from bench.month import OUTSIDER, accounts, day_table, injected, stable_pairs
from detectors.core.base import Context, Settings
from detectors.cross_account_assume_role import CrossAccountAssumeRole
from monitor.detect.baselines import build
from monitor.detect.pipeline import detect
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import DEV, EXTERNAL, PROD, assumed_role, iam_user, normalize_batch
from tests.detectors.test_cross_account_assume_role import DENIED, ROLE, VENDOR_ROLE, assume, both_copies

DAY = datetime(2024, 5, 8, tzinfo=UTC)  # "today"; the history is the week before
CTX = Context(Settings(organization_accounts=frozenset({PROD, DEV})))


def when(day: int, hour: int, minute: int = 0, second: int = 0) -> str:
    return f"2024-05-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"


def write(lake: Lake, *records: dict[str, Any]) -> None:
    lake.write(pa.Table.from_batches([normalize_batch(*records)]))


def ci_call(day: int, hour: int = 9) -> list[dict[str, Any]]:
    """The organization's pipeline: dev's ci role deploys into prod, a new session every time."""
    return both_copies(
        assumed_role("ci", session=f"build-{day}", account=DEV),
        shared=f"00000000-0000-4000-8000-0000005{day:02d}{hour:02d}0",
        time=when(day, hour),
    )


def week_of_history(lake: Lake) -> None:
    for day in range(1, 8):
        write(lake, *ci_call(day), assume(iam_user("vendor", EXTERNAL), VENDOR_ROLE, time=when(day, 8)))


def test_baseline_is_built_a_day_at_a_time_and_a_changed_day_is_rebuilt(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    week_of_history(lake)
    write(lake, *ci_call(8, hour=9))
    baseline = build(lake, CrossAccountAssumeRole(), CTX, DAY + timedelta(hours=10))
    ci = baseline[baseline["source_principal"].eq(f"arn:aws:iam::{DEV}:role/ci")].iloc[0]
    assert (ci["count"], ci["first_seen"], ci["last_seen"]) == (
        8,
        DAY - timedelta(days=7, hours=-9),
        DAY + timedelta(hours=9),
    )
    assert len(baseline) == 2  # the vendor's pair: owner copy only, keyed by its principal id
    cached = sorted((tmp_path / "lake" / "baselines" / "cross-account-assume-role").glob("date=*/*.parquet"))
    assert [p.parent.name for p in cached] == [f"date=2024-05-0{d}" for d in range(1, 8)]  # today is never cached
    write(lake, assume(assumed_role("ops", account=DEV), time=when(2, 12)))  # a late file for day 2
    again = build(lake, CrossAccountAssumeRole(), CTX, DAY + timedelta(hours=10))
    assert len(again) == 3
    assert (
        len(list((tmp_path / "lake" / "baselines" / "cross-account-assume-role" / "date=2024-05-02").glob("*.parquet")))
        == 1
    )


def test_history_days_bounds_the_window(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write(lake, *ci_call(1))
    short = Context(Settings(options={CrossAccountAssumeRole.id: {"history_days": 3}}))
    assert len(build(lake, CrossAccountAssumeRole(), CTX, DAY)) == 1
    assert build(lake, CrossAccountAssumeRole(), short, DAY).empty


def today_story() -> list[dict[str, Any]]:
    """Day 8: the known pairs again, a new external account twice, a denied burst across 11:00, a late chain."""
    newcomer = iam_user("intruder", "121212121212")
    start = DAY + timedelta(hours=10, minutes=58)
    tries = [
        assume(
            iam_user("x", EXTERNAL),
            f"arn:aws:iam::{PROD}:role/guess-{n}",
            time=f"{start + timedelta(seconds=30 * n):%Y-%m-%dT%H:%M:%SZ}",
            **DENIED,
        )
        for n in range(10)  # 10:58:00 to 11:02:30
    ]
    first_hop = assume(iam_user("vendor", EXTERNAL), VENDOR_ROLE, key="ASIAVENDORSESSION1", time=when(8, 8))
    chained = assume(
        assumed_role("vendor-access", account=DEV) | {"accessKeyId": "ASIAVENDORSESSION1"}, ROLE, time=when(8, 15, 30)
    )
    return [
        *ci_call(8, hour=9),
        *ci_call(8, hour=16),
        first_hop,
        assume(newcomer, VENDOR_ROLE, time=when(8, 10, 5)),
        assume(newcomer, VENDOR_ROLE, time=when(8, 11, 30)),
        *tries,
        chained,
    ]


def findings_by_id(results: list[Any]) -> dict[str, tuple[str, str, frozenset[str]]]:
    merged: dict[str, set[str]] = defaultdict(set)
    kinds = {}
    for result in results:
        for _, f in result.findings.iterrows():
            merged[f["finding_id"]] |= set(f["event_ids"])
            kinds[f["finding_id"]] = (f["kind"], f["severity"])
    return {fid: (*kinds[fid], frozenset(ids)) for fid, ids in merged.items()}


def test_hourly_cycles_find_what_one_pass_finds(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    week_of_history(lake)
    write(lake, *today_story())
    det = [CrossAccountAssumeRole]
    one = findings_by_id([detect(lake, State(tmp_path / "a.db"), det, CTX, DAY, DAY + timedelta(days=1))])
    hourly = State(tmp_path / "b.db")
    cut = [detect(lake, hourly, det, CTX, DAY + timedelta(hours=h), DAY + timedelta(hours=h + 1)) for h in range(24)]
    assert findings_by_id(cut) == one
    assert sorted((k, s) for k, s, _ in one.values()) == [
        ("denied-burst", "high"),  # once, though it spans 11:00
        ("external-account", "high"),  # the newcomer, once, though it came back at 11:30
        ("role-chain", "high"),  # seven hours after the vendor's session was issued
    ]
    burst_ids = set().union(*(ids for k, _, ids in one.values() if k == "denied-burst"))
    assert len(burst_ids) == 10


def test_scan_with_a_lake_quiets_known_pairs_and_their_denied_retries(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    week_of_history(lake)
    today = tmp_path / "today.json"
    denied = assume(assumed_role("ci", account=DEV), time=when(8, 12), **DENIED)
    today.write_bytes(orjson.dumps({"Records": [*ci_call(8), denied]}))
    cfg = tmp_path / "tg.toml"
    cfg.write_text(f'[[accounts]]\nid = "{DEV}"\nname = "dev"\n')

    def scan(*extra: str) -> list[tuple[str, str]]:
        cmd = [sys.executable, "-m", "monitor.cli", "--config", str(cfg), "scan", str(today), *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return sorted((f["kind"], f["severity"]) for f in map(orjson.loads, out.splitlines()))

    denial = ("workload", "low")  # unauthorized-api-calls: one denied call of a workload's role
    # without a lake the pair is new, and its denial a known pair's retry only because it succeeded earlier in the
    # input (else: denied high); dev delivers its own copy of the call, so it is taken as the organization's (low),
    # as the service takes it
    assert scan() == [("first-seen", "low"), denial]
    assert scan("--lake", str(tmp_path / "lake")) == [denial]


def test_a_generated_week_is_quiet_after_the_first_day_and_finds_the_injected_cases(tmp_path: Path) -> None:
    orgs = accounts(13)
    pairs = stable_pairs(orgs, 8, random.Random(3))
    lake, days = Lake(str(tmp_path / "lake")), 7
    for d in range(days):
        lake.write(day_table((DAY + timedelta(days=d)).date(), 600, orgs, pairs, last=d == days - 1))
    ctx, state = Context(Settings(organization_accounts=frozenset(orgs))), State(tmp_path / "state.db")
    found = [
        detect(
            lake, state, [CrossAccountAssumeRole], ctx, DAY + timedelta(days=d), DAY + timedelta(days=d + 1)
        ).findings
        for d in range(days)
    ]
    assert len(found[0]) == len(pairs)  # everything is new on the first day (its denied retry is a known pair's)
    assert [len(f) for f in found[1:-1]] == [0] * (days - 2)  # the daily denied retry of a known pair is no finding
    last = sorted(found[-1][["kind", "severity", "account_id"]].itertuples(index=False, name=None))
    new_pairs = [("first-seen", "low", p.source) for p in injected(orgs)[:3]]
    assert last == sorted([("external-account", "high", OUTSIDER), *new_pairs])
