"""The command line's manners, as a user meets them: through a pipe, as tables, with short ids, and politely
refusing what it cannot do. Every command here is a real process whose output is piped."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from detectors.core.registry import POSTURE, load
from monitor.cli.main import build_parser
from monitor.store.state import State
from tests.cloudtrail import console_login, root
from tests.lakes import demo_lake, detect_command


def trailguard(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state file holding the demo day's findings."""
    root = tmp_path_factory.mktemp("findings")
    demo_lake(root)
    subprocess.run(detect_command(root), check=True, capture_output=True, timeout=300)
    return root / "state.db"


def test_piped_output_is_never_wrapped() -> None:
    lines = trailguard("detectors").stdout.splitlines()
    ids = [d.id for d in (*load(), *POSTURE)]
    assert [line.split()[0] for line in lines] == ["DETECTOR", *ids]
    assert max(len(line) for line in lines) > 120  # one line each, however long


def test_one_error_line_per_bad_input_however_long_its_name(tmp_path: Path) -> None:
    bad = tmp_path / ("a-very-long-name-" * 12 + ".json")
    bad.write_text('{"Records": [')
    errors = [line for line in trailguard("scan", str(tmp_path)).stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert str(bad) in errors[0]


def test_findings_list_as_a_table_and_filtered(findings: Path) -> None:
    every = trailguard("findings", "list", "--state", str(findings)).stdout.splitlines()
    table = trailguard("findings", "list", "--state", str(findings), "--format", "table").stdout.splitlines()
    assert table[0].split()[:6] == ["SEVERITY", "DETECTOR", "ACCOUNT", "LAST", "SEEN", "(UTC)"]
    assert len(table) == len(every) + 1 >= 6
    high = trailguard("findings", "list", "--state", str(findings), "--format", "table", "--severity", "high")
    assert {line.split()[0] for line in high.stdout.splitlines()[1:]} == {"high", "critical"}
    root = trailguard("findings", "list", "--state", str(findings), "--detector", "root-usage", "--account", "1" * 12)
    assert len(root.stdout.splitlines()) == 1


def test_a_unique_start_of_a_finding_id_is_enough(findings: Path) -> None:
    ids = sorted(State(findings, create=False).list_findings(), key=lambda f: f["finding_id"])
    fid = ids[0]["finding_id"]
    unique = next(n for n in range(1, 33) if sum(f["finding_id"].startswith(fid[:n]) for f in ids) == 1)
    shown = trailguard("findings", "show", fid[:unique], "--state", str(findings))
    assert (shown.returncode, f'"finding_id": "{fid}"' in shown.stdout) == (0, True)
    assert trailguard("findings", "show", "", "--state", str(findings)).stderr.startswith("error: no finding")
    wrong = trailguard("findings", "show", "zz", "--state", str(findings))
    assert (wrong.returncode, wrong.stderr) == (2, "error: no finding 'zz'\n")
    if unique > 1:  # a shorter start is shared with another finding
        several = trailguard("findings", "show", fid[: unique - 1], "--state", str(findings))
        assert several.returncode == 2
        assert "is the start of several finding ids" in several.stderr


def test_a_missing_state_file_is_an_error_and_is_not_made(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    for command in (["findings", "list"], ["findings", "show", "ab"], ["findings", "retry"], ["state", "check"]):
        done = trailguard(*command, "--state", str(typo))
        assert done.returncode == 2, command
        assert f"{typo}: no such state file" in done.stderr + done.stdout
    assert not typo.exists()


def test_resolving_twice_changes_nothing_the_second_time(findings: Path) -> None:
    fid = State(findings, create=False).list_findings("open")[0]["finding_id"]
    first = trailguard("findings", "resolve", fid, "--note", "expected", "--state", str(findings))
    assert first.returncode == 0
    again = trailguard("findings", "resolve", fid, "--note", "something else", "--state", str(findings))
    assert again.returncode == 0
    assert "already resolved (expected): nothing changed" in again.stderr
    assert State(findings, create=False).finding(fid)["note"] == "expected"  # type: ignore[index]


def _parsers(parser: argparse.ArgumentParser, name: str = "trailguard") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found += _parsers(child, f"{name} {sub}")
    return found


def test_every_command_and_option_explains_itself() -> None:
    undocumented = []
    for name, parser in _parsers(build_parser()):
        if not parser.description and name != "trailguard":
            undocumented.append(name)
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction) and not action.help:
                undocumented.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert undocumented == []


def _heavy_loaded(argv: list[str]) -> str:
    """Which of the heavy libraries a command line loads, run in a fresh interpreter."""
    code = (
        "import sys\nfrom monitor.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = ('pandas', 'pyarrow', 'numpy', 'boto3', 'pydantic', 'slack_sdk')\n"
        "print('loaded:', sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False, timeout=60)
    assert done.stdout, done.stderr
    return done.stdout.splitlines()[-1]


@pytest.mark.parametrize("argv", [["--help"], ["scan", "--help"], ["detect", "--since", "not a time"], ["nope"]])
def test_help_and_argument_errors_answer_before_any_data_library_loads(argv: list[str]) -> None:
    """The parser alone is light: help and usage errors need no pandas, pyarrow, numpy, boto3 or pydantic (a
    command loads them once it runs)."""
    assert _heavy_loaded(argv) == "loaded: []"


@pytest.mark.parametrize("command", [["detectors"], ["findings", "list"], ["incidents", "list"], ["rules", "report"]])
def test_the_catalog_and_the_state_are_read_without_the_data_libraries(command: list[str], tmp_path: Path) -> None:
    """Listing the catalog or what a state file holds reads the configuration (pydantic), the detectors' metadata
    and SQLite, never a DataFrame: no pandas, pyarrow, numpy, AWS SDK or Slack client, a second less to wait."""
    with State(tmp_path / "state.db"):
        pass
    state = [] if command == ["detectors"] else ["--state", str(tmp_path / "state.db")]
    assert _heavy_loaded([*command, *state]) == "loaded: ['pydantic']"


def _to_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """A command whose reader has gone before it writes a byte (`| head` that has read enough): every write to
    its stdout fails, whenever the command gets to it."""
    read, write = os.pipe()
    os.close(read)
    try:
        command = [sys.executable, "-m", "monitor.cli", *args]
        return subprocess.run(command, stdout=write, stderr=subprocess.PIPE, text=True, check=False, timeout=300)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "command",
    [["detectors"], ["findings", "list"], ["findings", "list", "--format", "table"], ["incidents", "list"]],
    ids=["catalog", "findings", "findings-table", "incidents"],
)
def test_a_reader_that_went_away_is_not_an_error(command: list[str], findings: Path) -> None:
    """`trailguard ... | head -1`: the tables (written by rich) and the plain lines alike end quietly with 0, as
    the reader asked for no more; not 1 with nothing said, nor a traceback."""
    state = [] if command == ["detectors"] else ["--state", str(findings)]
    done = _to_a_closed_pipe(*command, *state)
    assert (done.returncode, done.stderr) == (0, "")


def test_a_scan_whose_reader_went_away_ends_quietly(tmp_path: Path) -> None:
    trail = tmp_path / "trail.json"
    trail.write_text(json.dumps({"Records": [console_login(root())]}))
    done = _to_a_closed_pipe("scan", str(trail))
    assert (done.returncode, done.stderr) == (0, "")


def test_the_demos_closing_commands_paste_as_printed_whatever_its_folder_is_called(tmp_path: Path) -> None:
    """A folder with a space and a quote in its name: the commands the demo ends with run as printed, and its
    DuckDB view reads the lake."""
    folder = tmp_path / "bob's demo"
    shown = trailguard("demo", "--dir", str(folder))
    assert shown.returncode == 0, shown.stderr
    hint = re.search(r"\((trailguard findings list --state .+)\)$", shown.stdout, re.MULTILINE)
    assert hint is not None
    listed = trailguard(*shlex.split(hint[1])[1:])
    assert (listed.returncode, len(listed.stdout.splitlines())) == (0, 7)
    db = duckdb.connect()
    db.execute((folder / "views.sql").read_text())
    assert db.execute("SELECT count(*) > 0 FROM trailguard_events").fetchone() == (True,)
