"""A hostile or broken Sigma rule pack costs only its bad files, and hostile event text costs the rules nothing:
each bad rule is refused by name with why, the good ones run, and no event can stall a rule."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cloudtrail import event, iam_user
from tests.faults.conftest import no_traceback, trailguard
from tests.monitor.test_sigma_rules import write_rule

GOOD = "cccccccc-0000-4000-8000-000000000001"
PATTERN = "cccccccc-0000-4000-8000-000000000002"
NESTED = "cccccccc-0000-4000-8000-000000000003"


def hostile_pack(folder: Path) -> dict[str, str]:
    """Good rules beside bad files; the reason each bad one must be refused with."""
    folder.mkdir()
    write_rule(folder, "good", {"sel": {"eventName": "StopLogging"}, "condition": "sel"}, [], GOOD)
    regex = {"sel": {"userAgent|re": "(a|aa)+$", "eventSource": "cloudtrail.amazonaws.com"}, "condition": "sel"}
    write_rule(folder, "pattern", regex, [], PATTERN)
    nested = {"sel": {"requestParameters.name|contains": "trail"}, "condition": "sel"}
    write_rule(folder, "nested", nested, [], NESTED)
    (folder / "garbage.yml").write_bytes(b"\xff\xfe\x00 not yaml \x80\x81")
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (folder / "laughs.yml").write_text(
        "title: laughs\nlogsource: {product: aws, service: cloudtrail}\n"
        + "\n".join(laughs)
        + "\ndetection: {sel: {eventName: *a8}, condition: sel}\n"
    )
    huge = {"sel": {"userAgent|re": "(" + "|".join(f"x{n}y{{1,1000}}" for n in range(200)) + ")"}, "condition": "sel"}
    write_rule(folder, "huge", huge, [], "cccccccc-0000-4000-8000-000000000004")
    write_rule(folder, "twin", {"sel": {"eventName": "DeleteTrail"}, "condition": "sel"}, [], GOOD)
    (folder / "folder.yml").mkdir()
    return {
        "garbage.yml": "not a Sigma rule this engine reads (UnicodeDecodeError",
        "laughs.yml": "billion laughs",
        "huge.yml": "a regular expression with 200000 counted repetitions (at most 2000)",
        "folder.yml": "not a Sigma rule this engine reads (IsADirectoryError",
        "good.yml": f"duplicate rule id sigma-{GOOD}",
        "twin.yml": f"duplicate rule id sigma-{GOOD}",
    }


def test_a_hostile_rule_pack_and_hostile_event_text_cost_only_themselves(tmp_path: Path) -> None:
    refused = hostile_pack(tmp_path / "rules")
    trail = tmp_path / "trail"
    trail.mkdir()
    stalling = "a" * 200_000 + "!"  # exponential for a backtracking engine on (a|aa)+$
    deep: object = "trail"
    for _ in range(60):  # close to the decoder's nesting limit
        deep = {"name": deep}
    records = [
        event("StopLogging", "cloudtrail.amazonaws.com", iam_user("mallory"), userAgent=stalling),
        event("UpdateTrail", "cloudtrail.amazonaws.com", iam_user("mallory"), requestParameters=deep),
        event("CreateTrail", "cloudtrail.amazonaws.com", iam_user("ops"), requestParameters={"name": "org-trail"}),
    ]
    (trail / "hostile.json").write_text(json.dumps({"Records": records}))
    done = trailguard("scan", str(trail), "--rules", str(tmp_path / "rules"), "--no-progress", timeout=120)
    no_traceback(done)
    notes = [line for line in done.err.splitlines() if line.startswith("rule not loaded: ")]
    for name, reason in refused.items():
        assert any(
            line.startswith(f"rule not loaded: {tmp_path / 'rules' / name}: ") and reason in line for line in notes
        ), (
            name,
            notes,
        )
    assert len(notes) == len(refused)
    fired = [json.loads(line) for line in done.out.splitlines()]
    by_rules = sorted((f["detector"], *f["event_names"]) for f in fired if f["detector"].startswith("sigma-"))
    # a path's object is matched as its JSON text; the twins are refused; nothing stalled the pattern
    assert by_rules == [(f"sigma-{NESTED}", "CreateTrail"), (f"sigma-{NESTED}", "UpdateTrail")]
    assert done.code == 0
