"""Both engines over the same multi-day lake on a LocalCluster of two worker processes: the same
findings with the same ids, bursts across midnight and the cross-account baseline included."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import Client, LocalCluster

from detectors.core.base import Context, Settings
from detectors.core.registry import BUILTIN
from detectors.sigma import load as load_rules
from monitor.detect.dask_engine import DaskEngine
from monitor.detect.pipeline import DetectResult, Plan, detect
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import DEV, EXTERNAL, PROD, assumed_role, console_login, iam_user
from tests.detectors.test_cross_account_assume_role import DENIED, VENDOR_ROLE, assume
from tests.monitor.detect.test_baselines import ci_call, week_of_history, when, write

CTX = Context(Settings(organization_accounts=frozenset({PROD, DEV})))
START, END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 10, tzinfo=UTC)


def across_midnight(day: int) -> list[dict[str, Any]]:
    """Day `day` 23:57 to `day + 1` 00:03: an outsider trying roles, and one address guessing passwords."""
    start = datetime(2024, 5, day, 23, 57, tzinfo=UTC)
    moments = [start + timedelta(seconds=30 * n) for n in range(12)]
    stamp = [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments]
    probes = [assume(iam_user("prober", EXTERNAL), VENDOR_ROLE, time=s, **DENIED) for s in stamp]
    guesses = [
        console_login(
            iam_user("alice"),
            result="Failure",
            mfa=None,
            errorMessage="Failed authentication",
            ip="203.0.113.50",
            time=s,
        )
        for s in stamp
    ]
    return probes + guesses


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    week_of_history(lake)  # May 1-7: the ci pipeline and the vendor every day
    write(lake, *ci_call(8), *ci_call(9), *across_midnight(8))
    write(lake, assume(assumed_role("ops", account=DEV), time=when(9, 12)))  # a pair new on day 9
    # a new pair that succeeds at 02:00 and is denied at 18:00: the denial is a known pair's retry (no finding) at any
    # slicing, the success being known by then
    deploy = assumed_role("deploy", account=DEV)
    write(lake, assume(deploy, time=when(9, 2)), assume(deploy, time=when(9, 18), **DENIED))
    return lake


@pytest.fixture(scope="module")
def dask() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


Stored = dict[str, tuple[str, str, list[str]]]


def run(
    lake: Lake, path: Path, engine: Any = None, hours: int = 24, start: datetime = START
) -> tuple[DetectResult, Stored]:
    """Detection from `start` to the end; the findings stored, as id -> (kind, severity, event ids)."""
    state = State(path)
    slices = timedelta(hours=hours)
    result = (
        detect(lake, state, BUILTIN, CTX, start, END, Plan(engine=engine, slice_length=slices))
        if engine
        else detect(lake, state, BUILTIN, CTX, start, END, Plan(slice_length=slices))
    )
    stored = {f["finding_id"]: (f["kind"], f["severity"], sorted(f["event_ids"])) for f in state.list_findings()}
    return result, stored


def test_the_dask_engine_finds_exactly_what_one_machine_finds(lake: Lake, dask: Client, tmp_path: Path) -> None:
    local, local_found = run(lake, tmp_path / "local.db")
    spread, spread_found = run(lake, tmp_path / "dask.db", DaskEngine(dask))
    assert local.detector_errors == spread.detector_errors == []
    assert spread_found == local_found
    assert spread.events == local.events
    kinds = set(zip(local.findings["detector"], local.findings["kind"], strict=True))
    assert {("cross-account-assume-role", "denied-burst"), ("console-auth-failures", "brute-force")} <= kinds
    assert ("cross-account-assume-role", "first-seen") in kinds  # the ops pair, new against the baseline


def test_a_burst_across_midnight_is_one_finding_in_both_engines(lake: Lake, dask: Client, tmp_path: Path) -> None:
    _, found = run(lake, tmp_path / "dask.db", DaskEngine(dask))
    result, _ = run(lake, tmp_path / "local.db")
    bursts = result.findings[result.findings["kind"].isin(["denied-burst", "brute-force"])]
    midnight = datetime(2024, 5, 9, tzinfo=UTC)
    assert len(bursts) == 2
    assert (bursts["event_time"] < midnight).all()
    assert (bursts["last_seen"] >= midnight).all()
    assert all(len(found[f][2]) == 12 for f in bursts["finding_id"])


def test_known_pairs_stay_quiet_after_the_first_day_in_both_engines(lake: Lake, dask: Client, tmp_path: Path) -> None:
    result, _ = run(lake, tmp_path / "dask.db", DaskEngine(dask))
    first_seen = result.findings[result.findings["kind"].eq("first-seen")]
    assert sorted(first_seen["event_time"].dt.day.unique().tolist()) == [1, 9]  # ci on day 1, ops on day 9


def test_detect_command_on_a_scheduler_matches_the_local_run(lake: Lake, dask: Client, tmp_path: Path) -> None:
    def command(state: str, *engine: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "detect",
                "--lake",
                lake.uri,
                "--state",
                str(tmp_path / state),
                "--since",
                "2024-05-01",
                "--until",
                "2024-05-10",
                *engine,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr.strip().splitlines()[-1]

    address = dask.scheduler.address  # type: ignore[union-attr]
    local = command("local.db")
    assert command("dask.db", "--engine", "dask", "--dask-scheduler", address) == local
    assert local.startswith("52 events, 9 findings: 9 new")


def test_every_baseline_day_is_reduced_once_and_broadcast(lake: Lake, dask: Client) -> None:
    slices = [(datetime(2024, 5, 9, tzinfo=UTC), datetime(2024, 5, 10, tzinfo=UTC))]  # its frame starts May 8 12:00
    summaries = DaskEngine(dask)._summaries(lake, BUILTIN, CTX, slices)
    assert list(summaries) == ["cross-account-assume-role"]  # the one stateful detector
    days = sorted(summaries["cross-account-assume-role"])
    # the window is counted from the slice (30 days before May 9), whatever context precedes it
    assert (days[0], days[-1]) == (datetime(2024, 4, 9, tzinfo=UTC).date(), datetime(2024, 5, 9, tzinfo=UTC).date())
    day8 = summaries["cross-account-assume-role"][datetime(2024, 5, 8, tzinfo=UTC).date()]
    assert day8["source_principal"].tolist() == [f"arn:aws:iam::{DEV}:role/ci"]  # denied probes are not remembered


def test_shorter_slices_find_the_same(lake: Lake, dask: Client, tmp_path: Path) -> None:
    """Six-hour slices hold a quarter of a day's events per task, and cut bursts at 00:00 and 06:00 alike."""
    _, whole_days = run(lake, tmp_path / "local.db")
    _, sliced = run(lake, tmp_path / "sliced.db", DaskEngine(dask), hours=6)
    assert sliced == whole_days
    with pytest.raises(ValueError, match="does not divide a day"):
        detect(lake, State(tmp_path / "x.db"), BUILTIN, CTX, START, END, Plan(slice_length=timedelta(hours=5)))


@pytest.mark.parametrize("hours", [1, 2, 3, 4, 6, 8, 12])
def test_every_slicing_finds_the_same_findings_at_the_same_severities(lake: Lake, tmp_path: Path, hours: int) -> None:
    """The context a detector judges an event with never depends on where the slice starts (days 8 and 9: the
    bursts across midnight, the new pairs, the denial after a success)."""
    start = datetime(2024, 5, 8, tzinfo=UTC)
    _, whole_days = run(lake, tmp_path / "days.db", start=start)
    _, sliced = run(lake, tmp_path / "sliced.db", hours=hours, start=start)
    assert sliced == whole_days
    assert [v[0] for v in whole_days.values() if v[0] == "denied"] == []  # one that forgot the success: denied high


def test_sigma_rules_run_on_the_cluster_as_on_one_machine(lake: Lake, dask: Client, tmp_path: Path) -> None:
    """Rule classes are made at run time: they travel to the workers as their rules' text."""
    failed = {"sel": {"eventName": "ConsoleLogin", "errorMessage|contains": "Failed"}, "condition": "sel"}
    burst = {"sel": {"eventName": "AssumeRole"}, "timeframe": "5m", "condition": "sel | count() by sourceIPAddress > 5"}
    for name, detection in (("failed", failed), ("burst", burst)):
        document = {"title": name, "logsource": {"product": "aws", "service": "cloudtrail"}, "detection": detection}
        (tmp_path / f"{name}.yml").write_text(yaml.safe_dump(document | {"level": "high"}))
    rules = tuple(load_rules([tmp_path]).detectors)
    detectors = (*BUILTIN, *rules)
    local = detect(lake, State(tmp_path / "l.db"), detectors, CTX, START, END, Plan())
    spread = detect(lake, State(tmp_path / "d.db"), detectors, CTX, START, END, Plan(engine=DaskEngine(dask)))
    assert local.detector_errors == spread.detector_errors == []
    assert sorted(spread.findings["finding_id"]) == sorted(local.findings["finding_id"])
    assert {"sigma-failed", "sigma-burst"} <= set(local.findings["detector"])
