"""The monitor's own findings, through the real service cycle with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detectors.core.registry import load
from monitor.config import load as load_config
from monitor.service.run import Service
from monitor.store.state import State
from tests.cloudtrail import DEV, PROD, event, iam_user
from tests.lakes import service_config
from tests.slack_server import FakeSlack


class Clock:
    def __init__(self, start: str) -> None:
        self.now = datetime.fromisoformat(start).replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def write_trail(folder: Path, name: str, *records: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"Records": list(records)}))


def service(tmp_path: Path, extra: str, clock: Clock, sources: str = "") -> Service:
    config = service_config(tmp_path, [sources or str(tmp_path / "trail")], extra=extra)
    return Service(load_config(config, env={}), load(), clock)


def own_findings(path: Path) -> list[dict[str, Any]]:
    return [f for f in State(path).list_findings() if f["detector"] == "trailguard-health"]


def test_an_account_region_that_goes_silent_raises_one_finding(tmp_path: Path) -> None:
    clock = Clock("2024-05-01T10:30:00")
    quiet = "2024-05-01T10:15:00Z"
    write_trail(
        tmp_path / "trail",
        "a",
        event("ListBuckets", "s3.amazonaws.com", iam_user(), time=quiet),
        event("ListBuckets", "s3.amazonaws.com", iam_user(account=DEV), time="2024-05-01T10:20:00Z"),
    )
    watch = f'watch = ["{PROD}/us-east-1", "{DEV}/us-east-1"]'
    svc = service(tmp_path, f"[service]\nsilent_after_minutes = 60\n{watch}", clock)
    assert svc.cycle()
    assert own_findings(tmp_path / "state.db") == []
    clock.now += timedelta(hours=1)  # 11:30: the DEV account still delivers, PROD has been quiet 75 minutes
    write_trail(
        tmp_path / "trail",
        "b",
        event("ListBuckets", "s3.amazonaws.com", iam_user(account=DEV), time="2024-05-01T11:25:00Z"),
    )
    assert svc.cycle()
    found = own_findings(tmp_path / "state.db")
    assert [(f["kind"], f["dedup_key"], f["severity"], f["event_time"]) for f in found] == [
        ("silent-source", f"{PROD}/us-east-1", "high", "2024-05-01T10:15:00.000000Z")
    ]
    assert "stopped or its delivery broken" in found[0]["summary"]
    assert svc.telemetry.health.report() == (200, {"status": "degraded", "reasons": [f"silent: {PROD}/us-east-1"]})
    clock.now += timedelta(hours=2)  # the same silence, longer: still one finding (DEV still delivers)
    write_trail(
        tmp_path / "trail",
        "c",
        event("ListBuckets", "s3.amazonaws.com", iam_user(account=DEV), time="2024-05-01T13:25:00Z"),
    )
    assert svc.cycle()
    assert len(own_findings(tmp_path / "state.db")) == 1
    write_trail(
        tmp_path / "trail", "d", event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-01T13:28:00Z")
    )
    assert svc.cycle()
    assert "silent" not in " ".join(svc.telemetry.health.report()[1]["reasons"])


def test_a_pair_is_watched_once_it_has_delivered_for_the_settling_period(tmp_path: Path) -> None:
    clock = Clock("2024-05-01T10:30:00")
    write_trail(
        tmp_path / "trail", "a", event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-01T10:20:00Z")
    )
    svc = service(tmp_path, "[service]\nsilent_after_minutes = 60\nsettle_hours = 2", clock)
    assert svc.cycle()
    clock.now += timedelta(hours=3)  # quiet since its first delivery: never settled, so never watched
    assert svc.cycle()
    assert own_findings(tmp_path / "state.db") == []
    write_trail(
        tmp_path / "trail", "b", event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-01T13:25:00Z")
    )
    assert svc.cycle()  # delivering for three hours now: settled and watched
    clock.now += timedelta(hours=2)
    assert svc.cycle()
    assert [f["dedup_key"] for f in own_findings(tmp_path / "state.db")] == [f"{PROD}/us-east-1"]


def test_forged_events_cannot_steer_the_silence_watch(tmp_path: Path) -> None:
    """Thirty made-up account/region pairs four hours old raise nothing and add no metric series; a record
    dated a day ahead does not hide a real silence; the pairs remembered are bounded."""
    clock = Clock("2024-05-01T10:30:00")
    forged = [
        event("ListBuckets", "s3.amazonaws.com", iam_user(account=f"{9000 + n:012d}"), time="2024-05-01T06:30:00Z")
        | {"awsRegion": f"xx-fake-{n}"}
        for n in range(30)
    ]
    real = event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-01T10:20:00Z")
    write_trail(tmp_path / "trail", "a", real, *forged)
    extra = f'[service]\nsilent_after_minutes = 60\nwatch = ["{PROD}/us-east-1"]\nmax_tracked_pairs = 20'
    svc = service(tmp_path, extra, clock)
    assert svc.cycle()
    assert len(State(tmp_path / "state.db").activity()) == 20
    assert (
        "activity: 11 account/region pairs over service.max_tracked_pairs"
        in svc.telemetry.health.report()[1]["reasons"]
    )
    ahead = event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-02T10:20:00Z")  # a day ahead
    write_trail(tmp_path / "trail", "b", ahead)
    clock.now += timedelta(hours=2)
    assert svc.cycle()
    found = own_findings(tmp_path / "state.db")
    assert [(f["dedup_key"], f["event_time"]) for f in found] == [(f"{PROD}/us-east-1", "2024-05-01T10:20:00.000000Z")]
    metrics = svc.telemetry.registry.get_sample_value
    assert metrics("trailguard_ingestion_lag_seconds", {"account": PROD, "region": "us-east-1"}) is not None
    assert metrics("trailguard_ingestion_lag_seconds", {"account": f"{9000:012d}", "region": "xx-fake-0"}) is None


def test_a_source_incomplete_for_several_cycles_raises_a_finding(aws: str, tmp_path: Path) -> None:
    clock = Clock("2024-05-01T10:30:00")
    svc = service(tmp_path, "[service]\nincomplete_cycles = 2", clock, sources="s3://no-such-bucket")
    assert not svc.cycle()
    assert own_findings(tmp_path / "state.db") == []
    assert not svc.cycle()
    (found,) = own_findings(tmp_path / "state.db")
    assert (found["kind"], found["dedup_key"]) == ("incomplete-reads", "s3://no-such-bucket")
    assert "NoSuchBucket" in found["details"]["error"]
    assert found["details"]["cycles"] == 2
    reasons = svc.telemetry.health.report()[1]["reasons"]
    assert "incomplete: s3://no-such-bucket" in reasons


def test_alerts_that_cannot_be_delivered_go_to_the_fallback(tmp_path: Path, slack_env: FakeSlack) -> None:
    slack_env.script.extend(["error:channel_not_found"] * 50)
    clock = Clock("2024-05-01T10:30:00")
    write_trail(
        tmp_path / "trail",
        "a",
        event(
            "CreateAccessKey",
            "iam.amazonaws.com",
            iam_user(),
            time="2024-05-01T10:15:00Z",
            requestParameters={"userName": "bob"},
        ),
    )
    extra = '[service]\nsilent_after_minutes = 100000\n[slack]\nchannel = "C0ALERTS"'
    svc = service(tmp_path, extra, clock)
    for _ in range(3):  # each attempt fails; the next is due an hour later on the injected clock
        assert svc.cycle()  # delivery failing never fails the cycle
        assert not svc.deliver()
        clock.now += timedelta(hours=1)
    fallback = [json.loads(line) for line in (tmp_path / "undelivered.jsonl").read_text().splitlines()]
    assert [(f["kind"], f["dedup_key"]) for f in fallback] == [("undelivered-alerts", "slack")]
    key_finding = next(f for f in State(tmp_path / "state.db").list_findings() if f["detector"] == "access-key-created")
    assert fallback[0]["details"]["findings"] == [key_finding["finding_id"]]
    assert fallback[0]["details"]["error"] == "channel_not_found"
    assert "alerts: 1 undelivered" in svc.telemetry.health.report()[1]["reasons"]
    assert len(slack_env.posts()) == 3  # the failing sink is not also sent the news of its failure
