"""The generated trail carries the demo's story, and the detectors find exactly that story."""

import gzip
from pathlib import Path

import orjson
import pytest

from detectors.core.base import Context, Settings
from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN
from monitor.demo.generator import EXTERNAL_ACCOUNT, ORG_ACCOUNTS, generate_history, generate_trail
from monitor.detect.scan import ScanResult, scan


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    out = tmp_path_factory.mktemp("trail")
    generate_trail(out, 3000, per_object=500)
    return scan([out], BUILTIN, Context(Settings(organization_accounts=frozenset(ORG_ACCOUNTS))))


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate_trail(tmp_path / "a", 600, per_object=300)
    b = generate_trail(tmp_path / "b", 600, per_object=300)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all("/AWSLogs/" in str(p) and "/CloudTrail/" in str(p) for p in a)


def test_story_is_found_and_nothing_else(story: ScanResult) -> None:
    got = sorted(zip(story.findings["detector"], story.findings["kind"], story.findings["severity"], strict=True))
    assert got == [
        ("access-key-created", "other-user", "high"),
        ("access-key-created", "root-key", "critical"),
        ("cloudtrail-changes", "change", "medium"),
        ("console-login-without-mfa", "iam-user-or-root", "high"),
        ("cross-account-assume-role", "external-account", "high"),
        ("cross-account-assume-role", "first-seen", "low"),
        ("root-usage", "root-activity", "critical"),
        ("unauthorized-api-calls", "person", "high"),
    ]
    assert story.errors == []


def test_cross_account_copies(story: ScanResult) -> None:
    # inside the organization the trail holds both copies; from outside, only the role owner's
    internal = story.findings[story.findings["kind"].eq("first-seen")].iloc[0]
    assert len(internal["event_ids"]) == 2
    external = story.findings[story.findings["kind"].eq("external-account")].iloc[0]
    assert (external["account_id"], len(external["event_ids"])) == (EXTERNAL_ACCOUNT, 1)


def test_routine_activity_leaves_cis_changes_and_denials_to_the_story_unless_busy(tmp_path: Path) -> None:
    def names_and_codes(busy: bool) -> tuple[set[str], set[str]]:
        paths = generate_trail(tmp_path / str(busy), 4000, per_object=1000, with_story=False, busy=busy)
        records = [r for p in paths for r in orjson.loads(gzip.decompress(p.read_bytes()))["Records"]]
        return {r["eventName"] for r in records}, {r.get("errorCode") for r in records} - {None}

    watched = {n for cls in BUILTIN if issubclass(cls, ChangeDetector) for n in cls.names()}
    routine_names, routine_codes = names_and_codes(busy=False)
    assert routine_names.isdisjoint(watched)
    assert "AccessDenied" not in routine_codes
    busy_names, busy_codes = names_and_codes(busy=True)
    assert busy_names & watched
    assert "AccessDenied" in busy_codes


def test_history_and_the_day_never_share_an_event_id(tmp_path: Path) -> None:
    """The lake drops repeated ids as duplicates: a shared id would hide one of the demo's events."""
    paths = generate_history(tmp_path / "history", 7) + generate_trail(tmp_path / "day", 3000, per_object=500)
    ids = [r["eventID"] for p in paths for r in orjson.loads(gzip.decompress(p.read_bytes()))["Records"]]
    assert len(ids) == len(set(ids))
