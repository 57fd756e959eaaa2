"""The README's configuration reference is the models', key for key."""

from pathlib import Path

import pytest

from monitor.config import Config, ConfigError, parse
from monitor.config_reference import END, START, reference, rows

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_holds_the_generated_reference() -> None:
    text = README.read_text()
    assert text[text.index(START) : text.index(END) + len(END)] == reference()


def test_the_defaults_shown_are_the_ones_a_blank_configuration_gets() -> None:
    assert parse({}) == Config()
    shown = {r.key: r.default for r in rows()}
    blank = Config()
    assert shown["schedule.interval_seconds"] == str(blank.schedule.interval_seconds)
    assert shown["slack.min_severity"] == f'"{blank.slack.min_severity}"'
    assert shown["limits.max_records"] == f"{blank.limits.max_records:,}"


@pytest.mark.parametrize("key", [r.key for r in rows() if r.key.count(".") == 1 and "[" not in r.key])
def test_every_key_shown_is_read_and_checked(key: str) -> None:
    """A wrong value under the key is a problem naming that key (an unread key would be `unknown`)."""
    section, name = key.split(".")
    with pytest.raises(ConfigError) as info:
        parse({section: {name: {"not": ["what", "it", "takes"]}}})
    assert any(p.startswith(key) and "unknown" not in p for p in info.value.problems), info.value.problems
