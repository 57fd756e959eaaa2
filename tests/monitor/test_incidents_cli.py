"""`trailguard incidents list|show|resolve` on a state file holding the demo's story: one intrusion, one
vendor; resolving the intrusion resolves each of its findings once."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa

from detectors.core.base import Context
from detectors.core.registry import BUILTIN
from monitor.demo.generator import story
from monitor.detect.pipeline import detect
from monitor.lake import Lake
from monitor.store.state import State
from tests.cloudtrail import normalize_batch
from tests.faults.conftest import trailguard
from tests.monitor.detect.test_incidents import DAY


def told(tmp_path: Path) -> Path:
    lake, path = Lake(str(tmp_path / "lake")), tmp_path / "state.db"
    records = [r for beat in story(random.Random(7), DAY) for r in beat.records]
    lake.write(pa.Table.from_batches([normalize_batch(*records)]))
    detect(lake, State(path), BUILTIN, Context(), DAY, DAY.replace(day=2))
    return path


def test_incidents_list_show_and_resolve(tmp_path: Path) -> None:
    state = str(told(tmp_path))
    listed = [json.loads(line) for line in trailguard("incidents", "list", "--state", state).out.splitlines()]
    # newest first: the vendor at 14:05, the intrusion from 09:12, the deploy at 03:30 (no organization configured)
    assert [(i["severity"], len(i["finding_ids"])) for i in listed] == [("high", 1), ("critical", 6), ("high", 1)]
    table = trailguard("incidents", "list", "--state", state, "--format", "table").out.splitlines()
    assert table[0].split()[:3] == ["SEVERITY", "FINDINGS", "ACCOUNTS"]
    intrusion = listed[1]["incident_id"]
    shown = json.loads(trailguard("incidents", "show", intrusion[:8], "--state", state).out)
    assert [t["detector"] for t in shown["timeline"]][:2] == ["console-login-without-mfa", "root-usage"]
    assert shown["addresses"] == ["203.0.113.66"]
    done = trailguard("incidents", "resolve", intrusion[:8], "--state", state, "--note", "keys revoked")
    assert done.code == 0
    assert done.err.startswith(f"incident {intrusion}: 6 findings resolved")
    assert [
        i["status"] for i in map(json.loads, trailguard("incidents", "list", "--state", state).out.splitlines())
    ] == [
        "open",
        "resolved",
        "open",
    ]
    again = trailguard("incidents", "resolve", intrusion, "--state", state, "--note", "again")
    assert again.err.strip() == f"incident {intrusion} was already resolved: nothing changed"
    missing = trailguard("incidents", "show", "ffff", "--state", state)
    assert (missing.code, missing.err.splitlines()[-1]) == (2, "error: no incident 'ffff'")
