"""The catalog rules every detector, shipped or plugged in, is held to."""

import sys
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from detectors.core.base import BASE_COLUMNS, Check, Context, Detector, Guide
from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN, POSTURE, CatalogError, choose, load, problems
from detectors.core.severity import Severity
from detectors.root_usage import RootUsage
from monitor.demo.generator import generate_trail
from monitor.detect.scan import scan
from monitor.ingest.events import COLUMNS
from tests.cloudtrail import event, iam_user, normalize, root

TESTS = Path(__file__).parent


@pytest.mark.parametrize("cls", BUILTIN, ids=lambda c: c.id)
def test_builtin_detectors_pass_the_catalog(cls: type[Detector]) -> None:
    assert problems(cls) == []
    assert isinstance(cls.severity, Severity)
    assert set(cls.reads()) <= set(COLUMNS), "a detector may only read normalized columns"
    module = cls.__module__.rsplit(".", 1)[-1]
    assert (TESTS / f"test_{module}.py").is_file(), f"{cls.id} has no tests"


@pytest.mark.parametrize("cls", BUILTIN, ids=lambda c: c.id)
def test_select_reads_only_its_select_columns(cls: type[Detector]) -> None:
    """Engines select on a frame of just these columns before building the others."""
    frame = normalize(
        event("ListBuckets", "s3.amazonaws.com", root()), event("ConsoleLogin", "signin.amazonaws.com", iam_user())
    )
    narrow = frame[list(cls.select_columns)]
    assert cls().select(narrow).tolist() == cls().select(frame).tolist()


def test_ids_are_unique() -> None:
    ids = [cls.id for cls in load(plugins=False)]
    assert len(ids) == len(set(ids))


def test_a_bad_detector_is_rejected_with_every_problem() -> None:
    class Sloppy(Detector):
        id = "Sloppy_One"
        title = ""
        severity = 3  # type: ignore[assignment]
        references = ()
        columns = ()
        tactics = ("hacking",)
        guide = Guide((), (), (), ())

    found = "; ".join(problems(Sloppy))
    for text in ("not kebab-case", "severity", "no title", "no references", "no columns", "guide", "select()"):
        assert text in found
    for text in ("tactics ('hacking',) are not", "initial-access"):
        assert text in found


def test_select_is_written_or_declared_never_both() -> None:
    """`wants` is what a scan's pre-filter asks of raw records: a written select beside it could disagree."""

    class Both(RootUsage):
        def select(self, events: pd.DataFrame) -> pd.Series:
            return events["user_type"].eq("Root")

    assert any("select() written and wants declared" in p for p in problems(Both))
    assert RootUsage.select_columns == ("user_type",)  # from its wants

    class Shared(ChangeDetector):  # a base for controls, with no table of its own yet
        pass

    assert not Shared.wants


def test_choose_rejects_unknown_ids() -> None:
    with pytest.raises(CatalogError, match="unknown detector nope"):
        choose(BUILTIN, ["nope"])
    assert [d.id for d in choose(BUILTIN, ["root-usage", "root-usage"])] == ["root-usage"]


PLUGIN = """
from detectors.core.base import Detector, Guide
from detectors.core.severity import Severity
from detectors.root_usage import RootUsage


class SiteRule(Detector):
    id = "site-rule"
    title = "Site rule"
    severity = Severity.LOW
    references = ("internal runbook 7",)
    tactics = ("impact",)
    columns = ("event_name",)
    guide = Guide(("t",), ("i",), ("f",), ("r",))

    def select(self, events):
        return events["event_name"].eq("DeleteBucket")

    def hits(self, events, ctx):
        return events.assign(kind="x", severity=Severity.LOW, dedup_key=events["event_id"], summary="deleted")
"""


def test_site_detectors_plug_in_through_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site_rule.py").write_text(PLUGIN)
    dist = tmp_path / "site_rules-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: site-rules\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[trailguard.detectors]\nsite-rule = site_rule:SiteRule\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "site-rule" in [d.id for d in load()]
        (tmp_path / "site_rule.py").write_text(PLUGIN.replace('"site-rule"', '"root-usage"'))
        sys.modules.pop("site_rule", None)
        with pytest.raises(CatalogError, match="does not match its module"):
            load()
    finally:
        sys.modules.pop("site_rule", None)


class _Windowed(Detector):
    id = "windowed"
    title = "t"
    severity = Severity.LOW
    references = ("r",)
    tactics = ("impact",)
    columns = ("event_name",)
    window: ClassVar[timedelta] = timedelta(hours=1)
    guide = Guide(("t",), ("i",), ("f",), ("r",))

    def select(self, events: pd.DataFrame) -> pd.Series:
        return events["event_name"].eq("X")

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        return events.assign(kind="k", severity=Severity.LOW, dedup_key="same", summary="s")


def _frame(minutes: list[int]) -> pd.DataFrame:
    times = pd.to_datetime([pd.Timestamp("2024-05-01T10:00:00Z") + pd.Timedelta(minutes=m) for m in minutes], utc=True)
    n = len(minutes)
    return pd.DataFrame(
        {c: [None] * n for c in BASE_COLUMNS}
        | {"event_id": [f"e{m}" for m in minutes], "event_time": times, "event_name": ["X"] * n}
    )


def test_windows_are_fixed_and_utc_aligned() -> None:
    found = _Windowed().detect(_frame([5, 59, 61, 119, 121]))
    assert [list(ids) for ids in found["event_ids"]] == [["e5", "e59"], ["e61", "e119"], ["e121"]]


def test_any_slicing_of_the_same_events_gives_the_same_finding_ids() -> None:
    events = _frame([1, 20, 40, 70, 100])
    whole = _Windowed().detect(events)
    parts = pd.concat([_Windowed().detect(events.iloc[:2]), _Windowed().detect(events.iloc[2:])])
    assert set(parts["finding_id"]) == set(whole["finding_id"])
    assert sorted(e for ids in parts["event_ids"] for e in ids) == sorted(e for ids in whole["event_ids"] for e in ids)
    late = _Windowed().detect(events.iloc[[2]])  # a late event joins its existing finding
    assert late["finding_id"].iloc[0] == whole["finding_id"].iloc[0]


@pytest.mark.parametrize("cls", [*BUILTIN, *POSTURE], ids=lambda c: c.id)
def test_every_detector_says_what_it_fires_on(cls: type[Check]) -> None:
    assert cls.fires_on() != cls.title
    assert cls.max_severity() >= cls.severity


def test_no_finding_is_more_severe_than_its_detector_says(tmp_path: Path) -> None:
    """The catalog's maximum severities hold on a busy generated day with its attack story."""
    generate_trail(tmp_path / "day", 20_000, busy=True)
    found = scan([tmp_path / "day"], BUILTIN, Context(), workers=1).findings
    declared = {cls.id: cls.max_severity() for cls in BUILTIN}
    worst = found.groupby("detector")["severity"].agg(lambda s: max(Severity.parse(v) for v in s))
    assert len(worst) >= 5
    assert {d: str(s) for d, s in worst.items() if s > declared[d]} == {}
