"""The smaller faults: hostile configuration values and arguments, secrets, the demo's directory, figures."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from monitor.investigate import plots
from tests.faults.conftest import no_traceback, trailguard
from tests.faults.test_inputs import delivery, root_login
from tests.lakes import demo_lake, detect_command, service_config
from tests.slack_server import FakeSlack

matplotlib.use("Agg")


@pytest.mark.parametrize(
    ("source", "problems"),
    [
        ("lookup://", ["uri"]),
        ("s3://?role_arn=me", ["uri", "role_arn"]),
        ("sqs://us-east-1/123456789012/q?visibility=-5&colour=red", ["colour"]),
        ("s3://trail/logs?accounts=1,2", ["accounts", "accounts"]),
    ],
)
def test_hostile_source_uris_are_refused_before_anything_is_read(
    tmp_path: Path, source: str, problems: list[str]
) -> None:
    """Every problem of the URI on a line of its own, exit 2, and no lake or state file made."""
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    result = trailguard("ingest", "--source", source, "--lake", str(lake), "--state", str(state))
    no_traceback(result)
    assert result.code == 2
    assert [e.split(": ")[3] for e in result.errors] == problems
    assert all(e.startswith(f"error: --source: {source}: ") for e in result.errors)
    assert (lake.exists(), state.exists()) == (False, False)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("schedule", "interval_seconds", "10000000000000000000"),
        ("schedule", "detect_lookback_hours", "99999999999"),
        ("service", "silent_after_minutes", "9223372036854775807"),
        ("limits", "max_inflated_mb", "1000000000"),
        ("detectors.cross-account-assume-role", "history_days", "99999999999999"),
    ],
)
def test_huge_configuration_values_are_one_line_each(tmp_path: Path, section: str, key: str, value: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    result = trailguard("scan", str(tmp_path), config=config)
    no_traceback(result)
    assert result.code == 2
    [error] = result.errors
    assert error.startswith(f"error: {config}: {section}.{key}: expected a whole number from ")


@pytest.mark.parametrize("option", ["--workers", "--commit-inputs"])
def test_counts_below_one_are_refused_as_usage(tmp_path: Path, option: str) -> None:
    result = trailguard("ingest", "--source", str(tmp_path), "--lake", str(tmp_path / "lake"), option, "-1")
    no_traceback(result)
    assert result.code == 2
    assert f"argument {option}: not a whole number from 1: '-1'" in result.err
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--since", "99999999999d"], "too far back"),
        (["--since", "0001-01-01"], "too far back: '0001-01-01' (before 1970)"),  # its context would be year 0
        (["--since", "2024-03-01", "--until", "9999-12-31T23:59:59"], "too far ahead"),
        (["--since", "2024-03-02", "--until", "2024-03-01"], "must be before --until"),
        (["--since", "1d", "--until", "2d"], "must be before --until"),
    ],
)
def test_impossible_ranges_are_refused(tmp_path: Path, args: list[str], problem: str) -> None:
    result = trailguard("detect", "--lake", str(tmp_path / "lake"), "--state", str(tmp_path / "s.db"), *args)
    no_traceback(result)
    assert result.code == 2
    assert problem in result.err
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("lake", "problem"),
    [
        ("file://fileserver/share/lake", "a file:// lake must be on this machine"),
        ("gs://bucket/lake", "a lake is a local directory, file:///path or s3://bucket[/prefix]"),
        ("s3:///no-bucket", "an s3:// lake needs a bucket"),
    ],
)
def test_lake_uris_that_name_no_lake(tmp_path: Path, lake: str, problem: str) -> None:
    result = trailguard("detect", "--lake", lake, "--state", str(tmp_path / "s.db"), "--since", "1d")
    no_traceback(result)
    assert (result.code, result.errors) == (2, [f"error: {lake}: {problem}" + result.errors[0].split(problem)[1]])


def test_a_file_lake_on_this_machine_works(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    delivery(trail / "a.json", root_login())
    args = ["--source", str(trail), "--lake", f"file://{tmp_path / 'lake'}", "--state", str(tmp_path / "s.db")]
    assert trailguard("ingest", *args).code == 0
    assert list((tmp_path / "lake" / "events").iterdir())


SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-00000-SECRET-bot-token-value",
    "AWS_SECRET_ACCESS_KEY": "SECRETawsSecretAccessKeyValue0000",
    "AWS_SESSION_TOKEN": "SECRETawsSessionTokenValue000000",
}


def test_secrets_never_reach_an_output_stream_or_a_file(slack: tuple[FakeSlack, str], tmp_path: Path) -> None:
    """Distinctive secret values in the environment; commands that fail in the ways that used to print them:
    a webhook URL that cannot be reached or is malformed, a bot whose every post fails, a path that happens to
    contain the token. No stdout, stderr or file written anywhere under the test's directory holds a secret."""
    fake, url = slack
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        hook = f"http://127.0.0.1:{closed.getsockname()[1]}/services/T0/B0/SECRETwebhookPathValue0000"
    env = {**os.environ, **SECRETS, "SLACK_API_URL": url, "SLACK_WEBHOOK_URL": hook}
    demo_lake(tmp_path)
    fake.script.extend(["error:invalid_auth"] * 50)
    trail = tmp_path / "trail"
    (tmp_path / "svc").mkdir()
    config = service_config(tmp_path / "svc", [str(trail)], extra='[slack]\nchannel = "C0ALERTS"\nwebhook = true')
    runs = [
        trailguard(*detect_command(tmp_path, "--alert", "--slack-webhook")[3:], env=env),
        trailguard(*detect_command(tmp_path, "--alert", "--slack-channel", "C0ALERTS", "--post-each")[3:], env=env),
        trailguard("run", "--once", config=config, env=env),
        trailguard("scan", str(tmp_path / SECRETS["SLACK_BOT_TOKEN"]), env=env),
        trailguard(
            *detect_command(tmp_path, "--alert", "--slack-webhook")[3:], env={**env, "SLACK_WEBHOOK_URL": "x" + hook}
        ),
        trailguard("check", "--offline", config=config, env=env),
    ]
    values = [*SECRETS.values(), hook]
    for result in runs:
        no_traceback(result)
        for value in values:
            assert value not in result.out + result.err
    assert "[redacted]" in runs[3].err  # the path with the token in it was named, masked
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [v for v in values if v.encode() in data], path


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    result = trailguard("demo", "--dir", str(precious), "--events", "500")
    no_traceback(result)
    assert result.code == 2
    assert "holds files the demo did not make (chapter1.tex)" in result.err
    assert (precious / "chapter1.tex").read_text() == "years of work"


def test_figures_draw_any_event_text_literally() -> None:
    hostile = ["$", "Get$Secret", "$\\frac{1}{0}$", "a$b$c$", "\x1b[31mred", "\u202eexe.gpj"]
    frame = pd.DataFrame(
        {
            "event_name": hostile,
            "event_id": [f"e{n}" for n in range(len(hostile))],
            "event_time": pd.date_range("2024-05-01", periods=len(hostile), freq="min", tz="UTC"),
        }
    )
    figure = plots.timeline(frame, {"e0"}, title="principal $x$")
    figure.canvas.draw()
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels[1] == r"Get\$Secret"  # drawn as a dollar sign, not math
    assert labels[4] == r"\x1b[31mred"
    assert labels[5] == r"\u202eexe.gpj"
    table = pd.DataFrame({"with MFA": [1, 2]}, index=["$arn$", "$"])
    plots.bars(table, "sign-ins $").canvas.draw()
    plots.heatmap(table, "calls $").canvas.draw()


def test_the_documented_guarantees_name_tests_that_exist() -> None:
    page = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    section = page.split("## Guarantees and limits", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`((?:tests/[\w/]+/)?test_\w+\.py)?(?:::(\w+))?`", section)
    assert len(named) > 20
    module = ""
    for path, test in named:
        module = path or module  # `::name` alone belongs to the module named before it
        file = Path(__file__).parent / module if "/" not in module else Path(__file__).parents[2] / module
        assert file.exists(), module
        assert not test or f"def {test}(" in file.read_text(), f"{module}::{test}"
