from pathlib import Path

import pytest

from detectors.core.registry import BUILTIN, POSTURE
from monitor.cli.main import main
from monitor.config import ConfigError, load
from monitor.ingest.sources.settings import SourceSettings


def test_no_file_means_embedded_defaults() -> None:
    cfg = load(None)
    assert cfg.detection.trusted_accounts == frozenset()
    assert cfg.disabled_detectors == frozenset()


def test_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        """
[detection]
trusted_accounts = ["123456789012"]
external_idp_roles = ["arn:aws:iam::*:role/okta-*"]
monitor_role_arns = ["arn:aws:iam::123456789012:role/TrailGuard"]

[detectors.root-usage]
enabled = false
"""
    )
    cfg = load(path)
    assert cfg.detection.trusted_accounts == {"123456789012"}
    assert cfg.detection.external_idp_roles == ("arn:aws:iam::*:role/okta-*",)
    assert cfg.disabled_detectors == {"root-usage"}


def test_one_error_per_problem_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        """
colour = "blue"
[detection]
trusted_accounts = ["12345", 7]
monitor_role_arns = ["arn:aws:iam::123456789012:user/me"]
typo = 1
[detectors.root-usage]
enabled = "no"
"""
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        "colour: unknown section",
        "detection.trusted_accounts[0]: '12345' is not a 12-digit account id",
        "detection.trusted_accounts[1]: expected a non-empty string",
        "detection.monitor_role_arns[0]: 'arn:aws:iam::123456789012:user/me' is not an IAM role ARN",
        "detection.typo: unknown key",
        "detectors.root-usage.enabled: expected true or false",
    ]


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text("[detection\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")


def test_slack_routing_section(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        '[slack]\nchannel = "#sec"\nsummary_over = 5\n'
        '[slack.severity_channels]\ncritical = "#page"\n[slack.account_channels]\n"111122223333" = "#prod-sec"\n'
    )
    slack = load(path).slack
    assert (slack.channel, slack.summary_over) == ("#sec", 5)
    assert (dict(slack.severity_channels), dict(slack.account_channels)) == (
        {"critical": "#page"},
        {"111122223333": "#prod-sec"},
    )
    path.write_text('[slack]\ntoken = "xoxb-secret"\nsummary_over = 0\n[slack.severity_channels]\nsevere = "#x"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        "slack.severity_channels.severe: 'severe' is not a severity (info, low, medium, high, critical)",
        "slack.summary_over: expected a whole number from 1 to 10,000",
        "slack.token: unknown key",
    ]


def test_runbook_url_placeholders_other_than_detector_are_refused_at_load(tmp_path: Path) -> None:
    """str.format's rules: {detector} is filled, a literal brace is doubled, any other placeholder (or a lone
    brace) would fail every alert's message, so it is refused at load with one line naming it."""
    path = tmp_path / "tg.toml"
    path.write_text('[slack]\nrunbook_url = "https://wiki.example.com/{{team}}/{detector}"\n')
    assert load(path).slack.runbook_url == "https://wiki.example.com/{{team}}/{detector}"
    refused = {
        "https://wiki.example.com/runbooks/{detector}#{account}": "unknown placeholder {account}",
        "https://wiki.example.com/runbooks/{detector.__class__}": "unknown placeholder {detector.__class__}",
        "https://wiki.example.com/runbooks/{}": "unknown placeholder {}",
        "https://wiki.example.com/runbooks/{detector": "expected '}' before end of string",
    }
    for url, why in refused.items():
        path.write_text(f'[slack]\nrunbook_url = "{url}"\n')
        with pytest.raises(ConfigError) as info:
            load(path)
        [problem] = info.value.problems
        assert problem.startswith(f"slack.runbook_url: {url!r}: {why}")
        assert problem.endswith("(write a literal brace as {{ or }})")


def test_service_sections_and_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        """
[[sources]]
uri = "s3://org-trail/prefix"
accounts = ["111122223333"]
regions = ["eu-west-1"]
role_arn = "arn:aws:iam::444455556666:role/read"
[lake]
uri = "s3://lake-bucket/events"
[state]
path = "/var/lib/trailguard/state.db"
[schedule]
interval_seconds = 120
"""
    )
    env = {
        "TRAILGUARD__SCHEDULE__INTERVAL_SECONDS": "60",
        "TRAILGUARD__SLACK__CHANNEL": "C0ALERTS",
        "TRAILGUARD__DETECTION__TRUSTED_ACCOUNTS": '["777788889999"]',
        "TRAILGUARD__SERVICE__METRICS_PORT": "0",
        "UNRELATED": "x",
    }
    cfg = load(path, env=env)
    assert (cfg.schedule.interval_seconds, cfg.schedule.jitter_seconds) == (60, 6)
    assert cfg.slack.channel == "C0ALERTS"
    assert cfg.service.metrics_port == 0
    assert cfg.detection.trusted_accounts == {"777788889999"}
    assert cfg.sources[0] == SourceSettings(
        "s3://org-trail/prefix", "arn:aws:iam::444455556666:role/read", ("111122223333",), ("eu-west-1",)
    )
    assert cfg.missing_for_run() == []
    assert cfg.fallback_path() == Path("/var/lib/trailguard/undelivered.jsonl")


def test_stream_mode_reads_the_queues_as_they_fill_and_the_rest_on_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    queue, folder = "sqs://us-east-1/123456789012/trail-notes", str(tmp_path / "exports")
    path.write_text(f'sources = ["{queue}", "{folder}"]\n[schedule]\nmode = "stream"\nstream_wait_seconds = 20\n')
    cfg = load(path, env={})
    streamed, interval = cfg.streamed()
    assert [(s.uri, s.wait) for s in streamed] == [(queue, 20)]
    assert [(s.uri, s.wait) for s in interval] == [(folder, None)]
    path.write_text(f'sources = ["{folder}"]\nlake.uri = "lake"\nstate.path = "s.db"\n[schedule]\nmode = "stream"\n')
    assert load(path, env={}).missing_for_run() == [
        "schedule.mode: stream reads sqs:// sources as notifications arrive, and none is configured"
    ]
    path.write_text('[schedule]\nmode = "continuous"\nstream_wait_seconds = 30\n')
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert info.value.problems == [
        "schedule.mode: 'continuous' is not interval or stream",
        "schedule.stream_wait_seconds: expected a whole number from 1 to 20",
    ]


def test_service_problems_each_named_and_env_blamed(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        """
sources = ["ftp://x", { uri = "sqs://us-east-1/123456789012/q", regions = ["us-east-1"] }, { role_arn = "x" }]
[schedule]
interval_seconds = 0
jitter_seconds = -1
[service]
metrics_port = 70000
[alerts]
pager = "x"
"""
    )
    with pytest.raises(ConfigError) as info:
        load(path, env={"TRAILGUARD__SERVICE__SILENT_AFTER_MINUTES": "soon"})
    assert info.value.problems == [
        "sources[0].uri: 'ftp://x': expected s3://, sqs://, lookup://, securitylake:// or a local path",
        "sources[1].regions: only s3://, securitylake:// sources take regions",
        "sources[2].uri: missing: every source needs a uri",
        "schedule.interval_seconds: expected a whole number from 1 to 86,400",
        "schedule.jitter_seconds: expected a whole number from 0 to 86,400",
        "service.metrics_port: expected a whole number from 0 to 65,535",
        "service.silent_after_minutes: expected a whole number from 5 to 527,040"
        " (from TRAILGUARD__SERVICE__SILENT_AFTER_MINUTES)",
        "alerts.pager: unknown key",
    ]


def test_run_with_an_invalid_or_incomplete_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tg.toml"
    path.write_text("[schedule]\ninterval_seconds = 'often'\n[lake]\nuri = 3\n")
    assert main(["--config", str(path), "run"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: schedule.interval_seconds: expected a whole number from 1 to 86,400",
        f"error: {path}: lake.uri: expected a non-empty string",
    ]
    path.write_text("[schedule]\ninterval_seconds = 60\n")
    assert main(["--config", str(path), "run"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: configuration: sources: at least one source is needed to run",
        "error: configuration: lake.uri: missing: where the Parquet lake lives",
        "error: configuration: state.path: missing: the SQLite state file",
    ]


def test_detector_options_are_typed_by_their_defaults_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        """
[detectors.cross-account-assume-role]
denied_threshold = 20
history_days = 45
organization = "quiet"
expected = [{ source = "123456789012", role = "arn:aws:iam::*:role/audit" }]
"""
    )
    options = load(path).detection.options["cross-account-assume-role"]
    assert (options["denied_threshold"], options["history_days"], options["organization"]) == (20, 45, "quiet")
    path.write_text(
        """
[detectors.cross-account-assume-role]
denied_threshold = "ten"
denied_window_minutes = 120
organization = "silent"
expected = [{ source = "123456789012" }]
threshold = 3
[detectors.root-usage]
history_days = 3
[detectors.no-such-thing]
enabled = false
"""
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        "detectors.cross-account-assume-role.denied_threshold: expected a whole number from 1 to 100,000, "
        "like the default 10",
        "detectors.cross-account-assume-role.threshold: unknown key",
        "detectors.cross-account-assume-role: expected entry {'source': '123456789012'} "
        "needs exactly `source` and `role`",
        "detectors.cross-account-assume-role: denied_window_minutes may be at most 60",
        'detectors.cross-account-assume-role: organization must be "low" or "quiet"',
        "detectors.root-usage.history_days: unknown key",  # root-usage keeps no history
        f"detectors.no-such-thing: unknown detector (known: {', '.join(sorted(c.id for c in (*BUILTIN, *POSTURE)))})",
    ]
