"""A rule added to a running service starts on burn-in: its findings are stored and counted per day, never sent;
promoted (or at the end of its burn-in) it alerts like any detector, from its next finding on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from monitor import app
from monitor.config import load as load_config
from monitor.detect import catalog
from monitor.service.run import Service
from monitor.store.state import State
from tests.cloudtrail import event, iam_user
from tests.faults.conftest import trailguard
from tests.lakes import service_config

STOP_RULE = "sigma-bbbbbbbb-0000-4000-8000-000000000001"
DELETE_RULE = "sigma-bbbbbbbb-0000-4000-8000-000000000002"


class Clock:
    def __init__(self, start: str) -> None:
        self.now = datetime.fromisoformat(start).replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def write_rule(folder: Path, ident: str, name: str) -> None:
    folder.mkdir(exist_ok=True)
    document = {
        "title": f"{name} seen",
        "id": ident.removeprefix("sigma-"),
        "logsource": {"product": "aws", "service": "cloudtrail"},
        "detection": {"sel": {"eventName": name}, "condition": "sel"},
        "level": "high",
    }
    (folder / f"{name}.yml").write_text(yaml.safe_dump(document))


def land(root: Path, name: str, *records: dict[str, Any]) -> None:
    (root / "trail").mkdir(exist_ok=True)
    (root / "trail" / f"{name}.json").write_text(json.dumps({"Records": list(records)}))


def service(root: Path, clock: Clock, rules: Path | None = None) -> Service:
    sigma = f'[sigma]\npaths = ["{rules}"]\n' if rules else ""
    extra = f'[alerts]\njsonl = "{root / "sent.jsonl"}"\n{sigma}'
    cfg = load_config(service_config(root, [str(root / "trail")], extra=extra), env={})
    return Service(cfg, catalog.detectors_of(cfg), clock)


def cycle(svc: Service) -> None:
    assert svc.cycle()
    assert svc.deliver()


def sent(root: Path) -> list[str]:
    path = root / "sent.jsonl"
    return [json.loads(line)["detector"] for line in path.read_text().splitlines()] if path.exists() else []


def stored(root: Path, detector: str) -> int:
    with State(root / "state.db") as state:
        return sum(f["detector"] == detector for f in state.list_findings())


def test_a_rule_added_to_a_running_service_is_stored_not_sent_until_promoted(tmp_path: Path) -> None:
    clock, rules = Clock("2024-05-01T10:30:00"), tmp_path / "rules"
    land(tmp_path, "a", event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-01T10:10:00Z"))
    cycle(service(tmp_path, clock))  # the service starts: its catalog is its starting set, alerting at once
    write_rule(rules, STOP_RULE, "StopLogging")
    svc = service(tmp_path, clock, rules)  # restarted with a rule pack
    land(tmp_path, "b", event("StopLogging", "cloudtrail.amazonaws.com", iam_user(), time="2024-05-01T10:15:00Z"))
    cycle(svc)
    assert stored(tmp_path, STOP_RULE) == 1
    assert STOP_RULE not in sent(tmp_path)
    assert "cloudtrail-changes" in sent(tmp_path)  # the catalog's own detector on the same event alerts as ever
    cfg = svc.cfg
    [staged] = app.burn_in(cfg, now=clock.now)
    assert (staged.detector, staged.per_day, staged.until) == (
        STOP_RULE,
        {"2024-05-01": 1},
        clock.now + timedelta(days=7),
    )
    assert "StopLogging" in (staged.sample or "")
    assert app.promote(cfg, STOP_RULE).startswith(f"{STOP_RULE}: promoted")
    clock.now += timedelta(hours=2)
    land(tmp_path, "c", event("StopLogging", "cloudtrail.amazonaws.com", iam_user(), time="2024-05-01T12:20:00Z"))
    cycle(svc)
    assert sent(tmp_path).count(STOP_RULE) == 1  # the new finding; the one stored during burn-in stays unsent
    assert app.burn_in(cfg, now=clock.now) == []


def test_a_burn_in_ends_by_itself(tmp_path: Path) -> None:
    clock, rules = Clock("2024-05-01T10:30:00"), tmp_path / "rules"
    land(tmp_path, "a", event("ListBuckets", "s3.amazonaws.com", iam_user(), time="2024-05-01T10:10:00Z"))
    cycle(service(tmp_path, clock))
    write_rule(rules, DELETE_RULE, "DeleteTrail")
    svc = service(tmp_path, clock, rules)
    land(tmp_path, "b", event("DeleteTrail", "cloudtrail.amazonaws.com", iam_user(), time="2024-05-01T10:15:00Z"))
    cycle(svc)
    assert DELETE_RULE not in sent(tmp_path)
    clock.now += timedelta(days=8)
    land(
        tmp_path,
        "c",
        event("DeleteTrail", "cloudtrail.amazonaws.com", iam_user(), time=f"{clock.now:%Y-%m-%d}T10:00:00Z"),
    )
    cycle(svc)
    assert sent(tmp_path).count(DELETE_RULE) == 1


def test_rules_report_and_promote_from_the_command_line(tmp_path: Path) -> None:
    """The commands read the real clock: the service here runs on it too."""
    clock, rules = Clock(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}"), tmp_path / "rules"
    before = f"{clock.now - timedelta(minutes=15):%Y-%m-%dT%H:%M:%SZ}"
    land(tmp_path, "a", event("ListBuckets", "s3.amazonaws.com", iam_user(), time=before))
    cycle(service(tmp_path, clock))
    write_rule(rules, STOP_RULE, "StopLogging")
    svc = service(tmp_path, clock, rules)
    land(tmp_path, "b", event("StopLogging", "cloudtrail.amazonaws.com", iam_user(), time=before))
    cycle(svc)
    state = str(tmp_path / "state.db")
    report = trailguard("rules", "report", "--state", state, config=tmp_path / "trailguard.toml")
    assert report.code == 0
    [row] = report.out.splitlines()[1:]
    until = clock.now + timedelta(days=7)
    assert row.split()[:3] == [STOP_RULE, f"{until:%Y-%m-%d}", f"{before[:10]}:1"]
    assert trailguard("rules", "promote", "sigma-nope", "--state", state).code == 2
    assert trailguard("rules", "promote", STOP_RULE, "--state", state).code == 0
    assert trailguard("rules", "report", "--state", state).out.splitlines()[1:] == []
