from pathlib import Path

import pytest

from monitor.config import ConfigError, load


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
        "detection.typo: unknown key",
        "detection.trusted_accounts: expected a list of strings",
        "detection.monitor_role_arns: 'arn:aws:iam::123456789012:user/me' is not an IAM role ARN",
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
        "slack.token: unknown key",
        "slack.severity_channels.severe: 'severe' is not a severity",
        "slack.summary_over: expected a whole number of at least 1",
    ]
