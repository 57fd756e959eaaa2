"""The documentation's generated parts are the code's: the configuration reference (the models, key for key) and
the detector catalog (each detector's metadata and guide)."""

from pathlib import Path

import pytest

from detectors.core.registry import POSTURE, load
from monitor.config import Config, ConfigError, parse
from monitor.reference import BLOCKS, Block, rows

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.page)
def test_the_docs_hold_what_the_code_generates(block: Block) -> None:
    assert block.shown(DOCS) == block.generated(), "run: python -m monitor.reference docs"


def test_the_catalog_has_a_section_per_detector_with_its_guide() -> None:
    page = (DOCS / "detectors.md").read_text()
    for check in [*load(), *POSTURE]:
        section = page.split(f"\n### {check.id}\n", 1)[1].split("\n### ", 1)[0]
        assert f"up to **{check.max_severity()}**" in section
        assert check.guide.response[0] in section


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
