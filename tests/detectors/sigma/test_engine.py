"""The Sigma engine on raw CloudTrail records: every modifier and condition form the SigmaHQ CloudTrail rules use
(and the others Sigma defines), each with records that must and must not match; what it cannot evaluate is
reported with the reason, never run half."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.core.base import Context
from detectors.core.severity import Severity
from detectors.sigma.compile import Pattern, Unsupported
from detectors.sigma.rules import load, rule
from monitor.outbox.finding import from_frame
from monitor.outbox.sinks.slack_message import render
from tests.cloudtrail import DEV, PROD, assumed_role, console_login, event, iam_user, normalize, root


def sigma(detection: str, level: str = "high", logsource: dict[str, str] | None = None) -> str:
    """A rule's YAML around a detection written as YAML."""
    rule_document = {
        "title": "Test rule",
        "id": "5f6a1c2e-0000-4000-8000-00000000abcd",
        "description": "A rule written for the tests.",
        "references": ["https://example.com/rule"],
        "tags": ["attack.persistence", "attack.t1098.001"],
        "logsource": logsource or {"product": "aws", "service": "cloudtrail"},
        "detection": yaml.safe_load(detection),
        "falsepositives": ["A test"],
        "level": level,
    }
    return yaml.safe_dump(rule_document, sort_keys=False)


def matched(detection: str, *records: dict[str, Any]) -> list[str]:
    """The event names of the records the rule's condition selects."""
    frame = normalize(*records)
    detector = rule(sigma(detection), "test.yml")
    return list(frame.loc[detector().select(frame), "event_name"])


STOP = event("StopLogging", "cloudtrail.amazonaws.com", iam_user("mallory"), userAgent="aws-cli/2.15 Python/3.11")
DELETE = event("DeleteTrail", "cloudtrail.amazonaws.com", iam_user("mallory"), userAgent="Boto3/1.34")
LIST = event("ListBuckets", "s3.amazonaws.com", iam_user("alice"), userAgent="console.amazonaws.com", ip="10.1.2.3")
HOSTILE = event("ListRoles", "iam.amazonaws.com", iam_user("eve"), userAgent="a" * 40 + "!")  # exponential for re
DENIED = event("GetSecretValue", "secretsmanager.amazonaws.com", iam_user("bob"), errorCode="AccessDenied")
TASK = event(
    "RegisterTaskDefinition",
    "ecs.amazonaws.com",
    iam_user("x"),
    requestParameters={
        "family": "web",
        "containerDefinitions": [
            {"command": ["sh", "-c", "curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}
        ],
        "cpu": "512",
    },
)
SSO = event("ListUsers", "iam.amazonaws.com", assumed_role("AWSReservedSSO_Admin_1", "alice", account=DEV))


@pytest.mark.parametrize(
    ("detection", "wanted"),
    [
        ("sel:\n  eventName: stoplogging\ncondition: sel", ["StopLogging"]),  # plain values ignore case
        ("sel:\n  eventName|cased: stoplogging\ncondition: sel", []),
        ("sel:\n  eventName|cased: StopLogging\ncondition: sel", ["StopLogging"]),
        ("sel:\n  eventName: [StopLogging, DeleteTrail]\ncondition: sel", ["StopLogging", "DeleteTrail"]),
        ("sel:\n  eventName|contains: trail\ncondition: sel", ["DeleteTrail"]),
        ("sel:\n  eventName|startswith: Stop\ncondition: sel", ["StopLogging"]),
        ("sel:\n  eventName|endswith: 'Logging'\ncondition: sel", ["StopLogging"]),
        ("sel:\n  eventName: 'Delete*'\ncondition: sel", ["DeleteTrail"]),
        ("sel:\n  eventName: 'L?stBuckets'\ncondition: sel", ["ListBuckets"]),
        ("sel:\n  userAgent|contains|all: [aws-cli, Python]\ncondition: sel", ["StopLogging"]),
        ("sel:\n  userAgent|windash|contains: '-3.11'\ncondition: sel", ["StopLogging"]),  # also /3.11
        ("sel:\n  userAgent|base64: Boto3/1.34\ncondition: sel", []),  # matches the encoded text only
        ("sel:\n  userAgent|re: '^Boto3/'\ncondition: sel", ["DeleteTrail"]),
        ("sel:\n  userAgent|re: '^boto3/'\ncondition: sel", []),  # re is case-sensitive...
        ("sel:\n  userAgent|re|i: '^boto3/'\ncondition: sel", ["DeleteTrail"]),  # ...unless i
        ("sel:\n  userAgent|re: '(a|aa)+$'\ncondition: sel", []),  # no backtracking on a hostile user agent
        ("sel:\n  sourceIPAddress|cidr: 10.0.0.0/8\ncondition: sel", ["ListBuckets"]),
        ("sel:\n  errorCode|exists: true\ncondition: sel", ["GetSecretValue"]),
        ("sel:\n  eventSource: s3.amazonaws.com\n  errorCode|exists: false\ncondition: sel", ["ListBuckets"]),
        ("sel:\n  eventSource: secretsmanager.amazonaws.com\n  errorCode: null\ncondition: sel", []),
        ("sel:\n  eventSource: s3.amazonaws.com\n  errorCode: null\ncondition: sel", ["ListBuckets"]),
        (
            "sel:\n  userIdentity.userName|fieldref: userIdentity.userName\n  eventName: StopLogging\ncondition: sel",
            ["StopLogging"],
        ),
        ("sel:\n  userIdentity.userName|fieldref: eventName\ncondition: sel", []),
        (
            "sel:\n  requestParameters.containerDefinitions.command|contains:"
            " '$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'\ncondition: sel",
            ["RegisterTaskDefinition"],
        ),
        ("sel:\n  requestParameters.family: web\ncondition: sel", ["RegisterTaskDefinition"]),
        ("sel:\n  requestParameters.cpu|gte: 512\ncondition: sel", ["RegisterTaskDefinition"]),
        ("sel:\n  requestParameters.cpu|lt: 512\ncondition: sel", []),
        ("sel:\n  requestParameters|contains: containerDefinitions\ncondition: sel", ["RegisterTaskDefinition"]),
        (
            "sel:\n  userIdentity.sessionContext.sessionIssuer.arn|contains: AWSReservedSSO\ncondition: sel",
            ["ListUsers"],
        ),
        ("sel:\n  userIdentity.type: AssumedRole\ncondition: sel", ["ListUsers"]),
        (
            "a:\n  eventSource: cloudtrail.amazonaws.com\nb:\n  eventName: DeleteTrail\ncondition: a and not b",
            ["StopLogging"],
        ),
        (
            "a:\n  eventName: StopLogging\nb:\n  eventName: ListBuckets\ncondition: a or b",
            ["StopLogging", "ListBuckets"],
        ),
        (
            "sel_a:\n  eventName: StopLogging\nsel_b:\n  eventName: DeleteTrail\ncondition: 1 of sel_*",
            ["StopLogging", "DeleteTrail"],
        ),
        (
            "sel_a:\n  eventSource: cloudtrail.amazonaws.com\nsel_b:\n  eventName: DeleteTrail\n"
            "condition: all of sel_*",
            ["DeleteTrail"],
        ),
        (
            "a:\n  eventSource: cloudtrail.amazonaws.com\nb:\n  eventName: StopLogging\n"
            "c:\n  userAgent|contains: Boto3\ncondition: a and (b or c)",
            ["StopLogging", "DeleteTrail"],
        ),
        (
            "sel:\n  - eventName: StopLogging\n  - eventName: ListBuckets\ncondition: sel",
            ["StopLogging", "ListBuckets"],
        ),
        (
            "a:\n  eventSource: cloudtrail.amazonaws.com\nfilter:\n  requestParameters.name: x\n"
            "condition: a and not filter",
            ["StopLogging", "DeleteTrail"],
        ),
    ],
)
def test_every_modifier_and_condition_form(detection: str, wanted: list[str]) -> None:
    assert matched(detection, STOP, DELETE, LIST, DENIED, TASK, SSO, HOSTILE) == wanted


@pytest.mark.parametrize(
    ("detection", "logsource", "reason"),
    [
        ("sel:\n  status: success\ncondition: sel", None, "unknown field 'status'"),
        ("sel:\n  userAgent|re: 'a{1,1000}b{2000}'\ncondition: sel", None, "3000 counted repetitions"),
        ("sel:\n  eventName|expand: '%admins%'\ncondition: sel", None, "a placeholder"),
        ("keywords:\n  - evil\ncondition: keywords", None, "a keyword without a field"),
        (
            "sel:\n  eventName: x\ncondition: sel",
            {"product": "windows", "service": "security"},
            "logsource is not AWS CloudTrail",
        ),
    ],
)
def test_what_cannot_be_evaluated_is_refused_with_the_reason(
    detection: str, logsource: dict[str, str] | None, reason: str
) -> None:
    text = sigma(detection, logsource=logsource)
    with pytest.raises(Unsupported, match=reason):
        rule(text, "test.yml")


def test_a_rule_is_a_detector_with_its_level_guide_and_stable_finding_ids() -> None:
    detector = rule(sigma("sel:\n  eventName: ConsoleLogin\ncondition: sel", level="critical"), "rules/x.yml")
    assert (detector.id, detector.severity, detector.title) == (
        "sigma-5f6a1c2e-0000-4000-8000-00000000abcd",
        Severity.CRITICAL,
        "Test rule",
    )
    assert "MITRE ATT&CK T1098.001" in detector.references
    assert detector.guide.false_positives == ("A test",)
    records = [
        console_login(root(PROD), time="2024-05-01T10:00:00Z"),
        console_login(root(PROD), time="2024-05-01T10:20:00Z"),
    ]
    found = detector().detect(normalize(*records), Context())
    again = detector().detect(normalize(*records[::-1]), Context())
    assert len(found) == 1  # one finding per principal, account and hour
    assert list(found["finding_id"]) == list(again["finding_id"])
    posted = json.dumps(render(next(from_frame(found)), detector.guide).post("C0123ABCD"))
    for shown in ("A rule written for the tests.", "False positives the rule lists: A test", "attack.t1098.001"):
        assert shown in posted  # the rule's own words reach the alert


def counted(condition: str, timeframe: str | None, *records: dict[str, Any]) -> list[tuple[str, str]]:
    text = sigma(f"sel:\n  eventName|startswith: List\ncondition: '{condition}'")
    if timeframe:
        text = text.replace("  condition:", f"  timeframe: {timeframe}\n  condition:")
    found = rule(text, "count.yml")().detect(normalize(*records), Context())
    return list(zip(found["kind"], found["dedup_key"], strict=True))


def listing(name: str, minute: int, ip: str = "203.0.113.9") -> dict[str, Any]:
    return event(name, "iam.amazonaws.com", iam_user("mallory"), ip=ip, time=f"2024-05-01T10:{minute:02d}:00Z")


def test_an_aggregation_counts_over_a_sliding_timeframe_per_group() -> None:
    burst = [listing("ListUsers", m) for m in (1, 3, 5, 7)]
    assert counted("sel | count() by sourceIPAddress > 3", "10m", *burst) == [("count", "203.0.113.9")]
    assert counted("sel | count() by sourceIPAddress > 4", "10m", *burst) == []
    spread = [listing("ListUsers", m) for m in (1, 15, 30, 45)]
    assert counted("sel | count() by sourceIPAddress > 3", "10m", *spread) == []
    two_addresses = [listing("ListUsers", m, ip=f"203.0.113.{m % 2}") for m in (1, 2, 3, 4)]
    assert counted("sel | count() by sourceIPAddress > 3", "10m", *two_addresses) == []
    assert counted("sel | count() > 3", "10m", *two_addresses) == [("count", "*")]
    same = [listing("ListUsers", m) for m in (1, 2, 3, 4)]
    varied = [listing(n, m) for n, m in (("ListUsers", 1), ("ListRoles", 2), ("ListGroups", 3), ("ListUsers", 4))]
    assert counted("sel | count(eventName) > 2", "10m", *same) == []  # a distinct count
    assert counted("sel | count(eventName) > 2", "10m", *varied) == [("count", "*")]
    edges = [listing("ListUsers", m) for m in (1, 11)]  # the timeframe's two ends are in it, for events and values
    assert counted("sel | count() > 1", "10m", *edges) == [("count", "*")]
    assert counted("sel | count() > 1", "9m", *edges) == []
    assert counted("sel | count(eventName) > 1", "10m", edges[0], listing("ListRoles", 11)) == [("count", "*")]


@pytest.mark.parametrize(
    ("condition", "timeframe", "reason"),
    [
        ("sel | count() > 3", None, "without a timeframe"),
        ("sel | count() by requestParameters.x > 3", "10m", "not a column"),
        ("sel | max(eventName) > 3", "10m", "only"),
        ("sel | count() > 3", "ten minutes", "timeframe"),
    ],
)
def test_an_aggregation_that_cannot_be_evaluated_is_refused(condition: str, timeframe: str | None, reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        counted(condition, timeframe)


def correlation_pack(folder: Path, kind: str = "value_count", generate: bool = False, rules: str = "listing") -> Path:
    folder.mkdir(exist_ok=True)
    listing = yaml.safe_load(sigma("sel:\n  eventName|startswith: List\ncondition: sel"))
    (folder / "listing.yml").write_text(yaml.safe_dump(listing | {"name": "listing"}))
    correlation = {
        "title": "Enumeration from one address",
        "id": "0b9f0c6e-0000-4000-8000-000000000009",
        "correlation": {
            "type": kind,
            "rules": [rules],
            "group-by": ["sourceIPAddress"],
            "timespan": "10m",
            "condition": {"gte": 3, "field": "eventName"} if kind.startswith("value_") else {"gte": 3},
            "generate": generate,
        },
        "level": "high",
    }
    (folder / "correlation.yml").write_text(yaml.safe_dump(correlation))
    return folder


def test_a_correlation_counts_what_its_rules_match_and_they_only_feed_it(tmp_path: Path) -> None:
    loaded = load([correlation_pack(tmp_path / "pack")])
    assert ([d.id for d in loaded.detectors], loaded.refused) == (["sigma-0b9f0c6e-0000-4000-8000-000000000009"], [])
    [detector] = pickle.loads(pickle.dumps(loaded.detectors))  # as worker processes get it
    varied = [listing(n, m) for n, m in (("ListUsers", 1), ("ListRoles", 2), ("ListGroups", 3))]
    found = detector().detect(normalize(*varied), Context())
    assert list(zip(found["kind"], found["dedup_key"], strict=True)) == [("count", "203.0.113.9")]
    assert detector().detect(normalize(*[listing("ListUsers", m) for m in (1, 2, 3)]), Context()).empty
    both = load([correlation_pack(tmp_path / "both", generate=True)])
    assert len(both.detectors) == 2  # generate: true keeps the rule's own findings too


@pytest.mark.parametrize(
    ("kind", "rules", "reason"),
    [
        ("value_sum", "listing", "a value_sum correlation"),
        ("event_count", "nowhere", "names rules that are not loaded"),
    ],
)
def test_a_correlation_that_cannot_be_evaluated_is_reported(tmp_path: Path, kind: str, rules: str, reason: str) -> None:
    loaded = load([correlation_pack(tmp_path / "pack", kind, rules=rules)])
    assert [why for _, why in loaded.refused if reason in why], loaded.refused


def temporal_pack(folder: Path, kind: str) -> type[Any]:
    """A temporal correlation of `listing` then `stopping` (StopLogging) by source address within 10 minutes."""
    correlation_pack(folder, kind)
    stopping = yaml.safe_load(sigma("sel:\n  eventName: StopLogging\ncondition: sel")) | {"name": "stopping"}
    stopping["id"] = "0b9f0c6e-0000-4000-8000-000000000010"
    (folder / "stopping.yml").write_text(yaml.safe_dump(stopping))
    document = yaml.safe_load((folder / "correlation.yml").read_text())
    document["correlation"]["rules"] = ["listing", "stopping"]
    (folder / "correlation.yml").write_text(yaml.safe_dump(document))
    [detector] = load([folder]).detectors
    return detector


STOP_AT_8 = event("StopLogging", "cloudtrail.amazonaws.com", iam_user("mallory"), ip="203.0.113.9") | {
    "eventTime": "2024-05-01T10:08:00Z"
}


def fired(detector: type[Any], *records: dict[str, Any]) -> list[tuple[str, str]]:
    found = detector().detect(normalize(*records), Context())
    return list(zip(found["kind"], found["dedup_key"], strict=True))


def test_a_temporal_correlation_needs_each_of_its_rules_within_the_timespan(tmp_path: Path) -> None:
    detector = temporal_pack(tmp_path / "pack", "temporal")
    assert fired(detector, listing("ListUsers", 1), STOP_AT_8) == [("count", "203.0.113.9")]
    assert fired(detector, listing("ListUsers", 1), listing("ListRoles", 2)) == []
    assert fired(detector, listing("ListUsers", 1), STOP_AT_8 | {"eventTime": "2024-05-01T10:30:00Z"}) == []
    assert fired(detector, listing("ListUsers", 1), STOP_AT_8 | {"sourceIPAddress": "198.51.100.1"}) == []
    before = STOP_AT_8 | {"eventTime": "2024-05-01T09:59:00Z"}
    assert fired(detector, before, listing("ListUsers", 1)) == [("count", "203.0.113.9")]  # in any order


def test_a_temporal_ordered_correlation_needs_its_rules_one_after_another(tmp_path: Path) -> None:
    detector = temporal_pack(tmp_path / "pack", "temporal_ordered")
    assert "in order" in detector.trigger
    assert fired(detector, listing("ListUsers", 1), STOP_AT_8) == [("count", "203.0.113.9")]
    before = STOP_AT_8 | {"eventTime": "2024-05-01T09:59:00Z"}
    assert fired(detector, before, listing("ListUsers", 1)) == []  # stopped first, listed after: not the story
    assert fired(detector, before, listing("ListUsers", 1), STOP_AT_8) == [("count", "203.0.113.9")]
    assert fired(detector, listing("ListUsers", 1), STOP_AT_8 | {"eventTime": "2024-05-01T10:30:00Z"}) == []
    late_start = listing("ListUsers", 25)  # a later listing restarts the chain inside the window
    assert fired(detector, listing("ListUsers", 1), late_start, STOP_AT_8 | {"eventTime": "2024-05-01T10:30:00Z"}) == [
        ("count", "203.0.113.9")
    ]


def test_a_regular_expression_that_could_backtrack_is_refused_by_name(tmp_path: Path) -> None:
    """Lookarounds and backreferences need a backtracking engine, which an attacker's text could stall: such a
    rule is refused (pySigma and this engine both read regular expressions as RE2)."""
    (tmp_path / "lookbehind.yml").write_text(sigma("sel:\n  userAgent|re: '(?<=aws-)cli'\ncondition: sel"))
    [(path, why)] = load([tmp_path]).refused
    assert path.endswith("lookbehind.yml")
    assert "(?<=aws-)cli" in why


@pytest.mark.parametrize(
    "expression",
    ["(?si)^.*aws\\-cli.*$", "(?s)^Stop.*$", "(?i)ÉTÉ", "^a.c$", "(?m)^second", "(a|aa)+$", "\\d{3}"],
)
def test_a_pattern_judges_one_text_as_it_judges_a_whole_column(expression: str) -> None:
    """Columns are judged in one call to Arrow's RE2, single values (an expansion's spellings) with re2: the two
    must agree, on case, newlines, non-ASCII text and missing values."""
    texts = ["AWS-CLI/2.15", "aws-cli", "Stop\nLogging", "été", "ÉTÉ", "abc", "a\nc", "first\nsecond", "a" * 50 + "!"]
    texts += ["build 123", "", None]
    check = Pattern(expression)
    assert check.many(texts).tolist() == [text is not None and check(text) for text in texts]
