"""`trailguard scan` end to end: the real console script on real files."""

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.core.base import FINDING_COLUMNS, Context
from detectors.core.registry import BUILTIN
from monitor.demo.generator import generate_trail
from monitor.detect.scan import scan
from tests.cloudtrail import EXTERNAL, PROD, console_login, event, iam_user, root

TRAILGUARD = [sys.executable, "-m", "monitor.cli"]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*TRAILGUARD, *map(str, args)], capture_output=True, text=True, env=env, check=False)


def delivery(folder: Path, name: str, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return path


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """A bucket copy with findings, a duplicate delivery, a corrupt gzip and a non-CloudTrail file."""
    day = tmp_path / "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01"
    login = console_login(root())
    key = event(
        "CreateAccessKey",
        "iam.amazonaws.com",
        iam_user("jack"),
        requestParameters={"userName": "jackson"},
        responseElements={"accessKey": {"accessKeyId": "AKIAJACKSON", "userName": "jackson"}},
    )
    noise = [event("ListBuckets", "s3.amazonaws.com", iam_user()) for _ in range(5)]
    delivery(day, "a.json.gz", [login, *noise[:2]])
    delivery(day, "b.json.gz", [key, *noise[2:]])
    delivery(day, "b-redelivered.json.gz", [key, *noise[2:]])  # the same events delivered twice
    (day / "c.json.gz").write_bytes(gzip.compress(json.dumps({"Records": noise}).encode())[:30])
    (day / "inventory.json").write_text(json.dumps({"bucket": "x", "objects": 3}))
    return tmp_path


def test_scan_prints_each_finding_once_names_bad_files_and_exits_2(trail: Path) -> None:
    done = run("scan", trail)
    assert done.returncode == 2, done.stderr
    findings = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert sorted((f["detector"], f["severity"]) for f in findings) == [
        ("access-key-created", "high"),
        ("console-login-without-mfa", "high"),
        ("root-usage", "critical"),
    ]
    assert all(list(f) == list(FINDING_COLUMNS) for f in findings)
    assert all(len(f["event_ids"]) == 1 for f in findings)  # the redelivered event counted once
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "c.json.gz: corrupt or truncated gzip" in errors[0]
    assert "inventory.json: not CloudTrail data" in errors[1]
    assert "7 events (4 duplicates)" in done.stderr


def test_unreadable_input_wins_over_fail_on(trail: Path) -> None:
    assert run("scan", trail, "--fail-on", "low").returncode == 2


def test_fail_on_threshold(tmp_path: Path) -> None:
    delivery(tmp_path, "k.json.gz", [event("CreateAccessKey", "iam.amazonaws.com", iam_user("a"))])  # self: medium
    assert run("scan", tmp_path).returncode == 0
    assert run("scan", tmp_path, "--fail-on", "medium").returncode == 1
    assert run("scan", tmp_path, "--fail-on", "high").returncode == 0
    bad = run("scan", tmp_path, "--fail-on", "severe")
    assert bad.returncode == 2
    assert "invalid choice: 'severe'" in bad.stderr


def test_detector_filter_and_table_format(trail: Path) -> None:
    done = run("scan", trail, "--detector", "root-usage")
    assert [orjson.loads(x)["detector"] for x in done.stdout.splitlines()] == ["root-usage"]
    table = run("scan", trail, "--format", "table").stdout.splitlines()
    assert table[0].split()[:2] == ["SEVERITY", "DETECTOR"]
    assert [line.split()[:2] for line in table[1:]].count(["critical", "root-usage"]) == 1
    assert len(table) == 4  # a header and a line per finding, whatever the width of a pipe
    unknown = run("scan", trail, "--detector", "nope")
    assert unknown.returncode == 2
    assert "unknown detector nope" in unknown.stderr


def test_config_applies_and_invalid_config_is_exit_2(tmp_path: Path) -> None:
    caller = iam_user("ci", EXTERNAL)
    params = {"roleArn": f"arn:aws:iam::{PROD}:role/r"}
    assumed = event("AssumeRole", "sts.amazonaws.com", caller, requestParameters=params, account=PROD)  # PROD's copy
    delivery(tmp_path / "in", "x.json.gz", [assumed])
    plain = [orjson.loads(x) for x in run("scan", tmp_path / "in").stdout.splitlines()]
    assert [f["severity"] for f in plain] == ["high"]
    cfg = tmp_path / "tg.toml"
    cfg.write_text(f'[detection]\ntrusted_accounts = ["{EXTERNAL}"]\n')
    trusted = [orjson.loads(x) for x in run("--config", cfg, "scan", tmp_path / "in").stdout.splitlines()]
    assert [f["severity"] for f in trusted] == ["medium"]  # a new pair from a trusted account
    assert trusted[0]["finding_id"] != plain[0]["finding_id"]  # another kind, another finding
    cfg.write_text('[detection]\ntrusted_accounts = ["abc"]\nextra = 1\n')
    bad = run("--config", cfg, "scan", tmp_path / "in")
    assert bad.returncode == 2
    assert bad.stderr.count("error:") == 2


def test_pool_and_inline_scans_agree(tmp_path: Path) -> None:
    recs = [console_login(iam_user(f"u{i}"), time=f"2024-05-01T{10 + i % 3}:0{i % 10}:00Z") for i in range(30)]
    for i in range(6):
        delivery(tmp_path, f"{i}.json.gz", recs[i * 5 : i * 5 + 5])
    ctx = Context()
    inline = scan([tmp_path], BUILTIN, ctx, workers=1)
    pooled = scan([tmp_path], BUILTIN, ctx, workers=2)
    assert inline.findings["finding_id"].tolist() == pooled.findings["finding_id"].tolist()
    assert len(inline.findings) == 30
    assert (pooled.files, pooled.events, pooled.duplicates) == (6, 30, 0)


def test_empty_directory_scans_clean(tmp_path: Path) -> None:
    result = scan([tmp_path], BUILTIN, Context())
    assert (len(result.findings), result.files, result.events, result.errors) == (0, 0, 0, [])


def test_help_explains_the_exit_codes() -> None:
    done = run("scan", "--help")
    assert done.returncode == 0
    assert "Exit status: 2" in " ".join(done.stdout.split())


def test_hostile_event_text_cannot_reach_the_terminal(tmp_path: Path) -> None:
    hostile = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 [bold red]x[/] \x1b[2J"
    delivery(tmp_path, "x.json.gz", [console_login(iam_user(hostile))])
    table = run("scan", tmp_path, "--format", "table").stdout
    assert "\x1b]" not in table
    assert "\x07" not in table
    assert "\\x1b]8;;https://evil.example\\x07click" in table
    assert "[bold red]x[/]" in table  # shown as text, not rendered as markup


# The scan of a generated day, pinned: a change of finding ids (or of what a finding prints) is a change
# of the contract that every stored finding, Slack thread and notebook relies on, never a side effect.
GENERATED_DAY = {
    "findings": 8,
    "ids": "e7b5fae719cdcfcbe58417cb5ee91004f09278fa170b73b19eef172411725491",
    "output": "c10dfb6e50ced3b01e16d9ebcb7ea3516e74fc67a317913aa1d939a510fdc18c",
}


def test_the_finding_ids_of_a_generated_day_are_pinned(tmp_path: Path) -> None:
    generate_trail(tmp_path / "day", 20_000, seed=7)
    done = run("scan", tmp_path / "day", "--no-progress")
    assert done.returncode == 0, done.stderr
    ids = sorted(json.loads(line)["finding_id"] for line in done.stdout.splitlines())
    assert len(ids) == GENERATED_DAY["findings"]
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == GENERATED_DAY["ids"]
    assert hashlib.sha256(done.stdout.encode()).hexdigest() == GENERATED_DAY["output"]
