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
