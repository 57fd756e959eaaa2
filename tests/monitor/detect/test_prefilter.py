"""The scan's pre-filter loses nothing: with and without it, the same findings, events, duplicates and errors."""

import gzip
import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from detectors.core.base import Context, Detector, Wanted
from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN
from detectors.root_usage import RootUsage
from detectors.sigma.rules import load as load_rules
from detectors.sigma.rules import rule
from monitor.demo.generator import generate_trail
from monitor.detect.prefilter import Prefilter
from monitor.detect.scan import ScanResult, scan
from monitor.ingest.events import GLANCED, Glance, IdentityGlance, Record, UserIdentity
from monitor.ingest.glance import glance
from monitor.ingest.limits import Limits
from tests.cloudtrail import EXTERNAL, PROD, assumed_role, console_login, event, iam_user, root
from tests.faults.corpus import corpus
from tests.sigmahq import sigmahq

LIMITS = Limits(max_inflated_mb=8, max_record_kb=256, max_records=2000)


def catalog() -> Prefilter:
    found = Prefilter.of(BUILTIN)
    assert found is not None
    return found


CATALOG = catalog()


def both(paths: list[Path], detectors: tuple[type[Detector], ...] = BUILTIN, workers: int = 1) -> ScanResult:
    """Scan with and without the pre-filter; everything but the coerced counts is the same, and returned."""
    ctx = Context()
    kept = scan(paths, detectors, ctx, workers=workers, limits=LIMITS)
    full = scan(paths, detectors, ctx, workers=workers, limits=LIMITS, prefilter=False)
    pd.testing.assert_frame_equal(kept.findings, full.findings)
    assert (kept.files, kept.records, kept.events, kept.duplicates) == (
        full.files,
        full.records,
        full.events,
        full.duplicates,
    )
    assert sorted(kept.errors) == sorted(full.errors)
    assert kept.detector_errors == full.detector_errors
    # a field is coerced when its record is decoded in full: the pre-filter decodes fewer
    assert all(kept.coerced[f] <= n for f, n in full.coerced.items())
    assert set(kept.coerced) <= set(full.coerced)
    return kept


def delivery(folder: Path, name: str, records: list[Any], raw: Callable[[bytes], bytes] = lambda b: b) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(raw(json.dumps({"Records": records}).encode())))
    return path


def every_select(rng: random.Random) -> list[dict[str, Any]]:
    """Records each builtin detector selects, and near misses: each CIS name from its service and another,
    the sign-ins (SSO, failed, root), keys, role chains, and every spelling of a denial."""
    changes = [
        event(name, source, iam_user(rng.choice(["a", "b"])), errorCode=rng.choice([None, "AccessDenied"]))
        for cls in BUILTIN
        if issubclass(cls, ChangeDetector)
        for name in sorted(cls.names())
        for source in (cls.service, "other.amazonaws.com")
    ]
    denied = [
        event("DescribeInstances", "ec2.amazonaws.com", iam_user("d"), errorCode=code)
        for code in (
            "AccessDenied",
            "AccessDeniedException",
            "Client.UnauthorizedOperation",
            "UnauthorizedOperation",
            "accessdenied",
            "NotAccessDenied",
            "UnauthorizedOperationX",
            "",
            "ThrottlingException",
        )
    ]
    caller = iam_user("ci", EXTERNAL)
    return [
        *changes,
        *denied,
        console_login(root()),
        console_login(iam_user("eve"), mfa="Yes"),
        console_login(iam_user("eve"), result="Failure", errorMessage="Failed authentication"),
        console_login(assumed_role("AWSReservedSSO_Admin_0123", PROD)),
        event("ListBuckets", "s3.amazonaws.com", root()),
        event("CreateAccessKey", "iam.amazonaws.com", iam_user("jack"), requestParameters={"userName": "jill"}),
        event("AssumeRole", "sts.amazonaws.com", caller, requestParameters={"roleArn": f"arn:aws:iam::{PROD}:role/x"}),
        event("AssumeRole", "sts.amazonaws.com", iam_user("ci", EXTERNAL), errorCode="AccessDenied"),
        *(event("GetObject", "s3.amazonaws.com", iam_user("noise")) for _ in range(40)),
    ]


def escaped(data: bytes) -> bytes:
    """The same records, their wanted values written with escapes (`\\u0065`): JSON readers see no difference."""
    data = data.replace(b'"ConsoleLogin"', b'"Consol\\u0065Login"').replace(b'"Root"', b'"R\\u006f\\u006ft"')
    return data.replace(b'"AccessDenied"', b'"Access\\u0044enied"').replace(b'"AssumeRole"', b'"\\u0041ssumeRole"')


def test_one_group_of_glanced_and_decoded_files_keeps_the_first_files_copy(tmp_path: Path) -> None:
    """A JSON-lines file (decoded in full) before a delivery object (glanced), in one group, holding one event
    with two contents: the copy kept is the first file's, with the pre-filter as without it."""
    login = console_login(root())
    (tmp_path / "a.jsonl").write_text(json.dumps({**login, "sourceIPAddress": "198.51.100.1"}) + "\n")
    noise = [event("GetObject", "s3.amazonaws.com", iam_user("noise")) for _ in range(1500)]
    delivery(tmp_path, "b.json.gz", [*noise[:100], {**login, "sourceIPAddress": "203.0.113.9"}, *noise[100:]])
    assert (tmp_path / "a.jsonl").stat().st_size * 8 < (tmp_path / "b.json.gz").stat().st_size  # one group
    result = both([tmp_path])
    assert (result.events, result.duplicates) == (1501, 1)
    assert set(result.findings["source_ip"]) == {"198.51.100.1"}


def test_a_busy_generated_day(tmp_path: Path) -> None:
    generate_trail(tmp_path / "day", 20_000, seed=11, busy=True)
    result = both([tmp_path / "day"], workers=2)
    assert len(result.findings) > 100
    assert set(result.findings["detector"]) >= {"root-usage", "unauthorized-api-calls", "cross-account-assume-role"}
    glanced = [glance(p.read_bytes(), str(p), LIMITS, CATALOG) for p in sorted(tmp_path.rglob("*.json.gz"))]
    assert all(g is not None for g in glanced)  # every object went through the pre-filter
    wanted, held = sum(len(g.wanted) for g in glanced if g), sum(g.records for g in glanced if g)
    assert 0 < wanted < held / 5


def test_every_select_and_its_near_misses_plain_and_escaped(tmp_path: Path) -> None:
    rng = random.Random(3)
    delivery(tmp_path, "plain.json.gz", every_select(rng))
    delivery(tmp_path, "escaped.json.gz", every_select(rng), escaped)
    result = both([tmp_path])
    assert set(result.findings["detector"]) == {c.id for c in BUILTIN}
    plain = both([tmp_path / "plain.json.gz"])
    assert len(both([tmp_path / "escaped.json.gz"]).findings) == len(plain.findings)
    glanced = [glance((tmp_path / n).read_bytes(), n, LIMITS, CATALOG) for n in ("plain.json.gz", "escaped.json.gz")]
    assert [len(g.wanted) if g else None for g in glanced] == [len(glanced[0].wanted) if glanced[0] else -1] * 2


def test_the_odd_records_a_glance_cannot_judge(tmp_path: Path) -> None:
    """Each of these makes its object be read the usual way, or is judged exactly as the full decode judges it."""
    login = console_login(root())
    odd = {
        "identity as text": [{**login, "userIdentity": json.dumps(root())}],
        "identity as a list": [{**login, "userIdentity": ["Root"]}],
        "name as a number": [{**login, "eventName": 7}],
        "a record that is text": ["ConsoleLogin", login],
        "records null": None,
        "no records": [],
        "flags as text": [{**login, "readOnly": "true", "managementEvent": "yes"}],
        "no time": [{k: v for k, v in login.items() if k != "eventTime"}, login],
        "no id": [{k: v for k, v in login.items() if k != "eventID"}],
        "a bad time": [{**login, "eventTime": "2024-02-30T00:00:00Z"}],
        "an empty name": [{**login, "eventName": ""}],
        "an empty type": [{**login, "userIdentity": {**root(), "type": ""}}],
        "a huge wanted record": [
            {**login, "userAgent": "A" * (300 << 10)},
            event("GetObject", "s3.amazonaws.com", root()),
        ],
        "a huge unwanted record": [
            {**event("GetObject", "s3.amazonaws.com", iam_user()), "userAgent": "A" * (300 << 10)}
        ],
        "the same record twice": [login, login],
        "a huge unwanted name": [event("A" * (300 << 10), "s3.amazonaws.com", iam_user()), login],
    }
    for n, records in enumerate(odd.values()):
        (tmp_path / f"{n:02d}.json.gz").write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    duplicate_keys = b'{"Records": [{"eventID": "k1", "eventTime": "2024-05-01T10:00:00Z", "eventName": "GetObject",'
    duplicate_keys += (
        b' "userIdentity": {"type": "IAMUser"}, "eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com"}]}'
    )
    (tmp_path / "keys.json").write_bytes(duplicate_keys)
    result = both([tmp_path])
    assert result.errors
    assert result.records == 20
    assert "root-usage" in set(result.findings["detector"])


def test_what_only_the_rest_of_an_object_reveals(tmp_path: Path) -> None:
    """Cases where a record's fate once hung on other records, or on the file's name and layout."""
    noise = event("GetObject", "s3.amazonaws.com", iam_user("noise"))
    mfa = console_login(iam_user("eve"), mfa="Yes")
    text = json.dumps({"Records": [{**mfa, "additionalEventData": json.dumps(mfa["additionalEventData"])}]})
    forced = json.loads(text)["Records"] + [{**noise, "readOnly": "true"}]  # a wrong type elsewhere in the object
    login = console_login(root())
    inputs = {
        "a-text-object-beside-a-wrong-type.json": json.dumps({"Records": forced}).encode(),
        "b-text-object-alone.json": text.encode(),
        "c-leading-lines.json": b"\n" * 100 + json.dumps({"Records": [login]}).encode(),
        "d-named-as-lines.jsonl": json.dumps({"Records": [login, noise]}).encode(),
        "e-not-utf8.json": json.dumps({"Records": [login, {**noise, "userAgent": "UA"}]})
        .encode()
        .replace(b"UA", b"\xff"),
        "f-one-copy-too-large.json": json.dumps(
            {"Records": [login, {**login, "userAgent": "A" * (300 << 10)}]}
        ).encode(),
        # three objects of one group: one's times must not depend on another's
        "g-minutes.json": json.dumps({"Records": [console_login(root(), time="2024-05-01T10:00Z")]}).encode(),
        "h-space.json": json.dumps({"Records": [console_login(iam_user("bob"), time="2024-05-01 10:00:00")]}).encode(),
        "i-noise.json": json.dumps({"Records": [noise] * 100}).encode(),
    }
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    result = both([tmp_path])
    assert "user/eve" not in " ".join(result.findings["summary"])  # the MFA in the text object is read, beside anything
    assert (result.records, result.events, result.duplicates) == (112, 5, 106)  # ids shared across the inputs
    assert [e.split("/")[-1] for e in result.errors] == [
        "e-not-utf8.json: record 2: Invalid UTF-8 encoded string",
        "f-one-copy-too-large.json: record 2: record of 307,412 bytes, over the 256 KiB limit (limits.max_record_kb)",
    ]


def test_the_fault_corpus(tmp_path: Path) -> None:
    for item in corpus(seed=5, count=80):
        (tmp_path / item.name).write_bytes(item.data)
    result = both([tmp_path], workers=2)
    assert result.errors


def test_a_glance_decodes_only_what_is_wanted() -> None:
    records = [event("GetObject", "s3.amazonaws.com", iam_user()) for _ in range(8)]
    records[3] = console_login(iam_user())
    records[6] = event("GetObject", "s3.amazonaws.com", root())
    data = gzip.compress(json.dumps({"Records": records}).encode())
    seen = glance(data, "x.json.gz", Limits(), CATALOG)
    assert seen is not None
    assert (seen.records, len(seen.event_ids), seen.where) == (8, 8, ["record 4", "record 7"])
    assert [r.eventID for r in seen.wanted] == [records[3]["eventID"], records[6]["eventID"]]
    assert glance(b'{"Events": []}', "x.json", Limits(), CATALOG) is None  # another shape: read the usual way
    quiet = glance(gzip.compress(json.dumps({"Records": records[:3]}).encode()), "q.json.gz", Limits(), CATALOG)
    assert quiet is not None
    assert (quiet.records, len(quiet.event_ids), quiet.wanted, quiet.bad) == (3, 3, [], [])  # nothing wanted


def test_a_glance_holds_each_field_as_the_full_decode_types_it() -> None:
    """What makes a glanced value the one the select column would hold."""
    for glanced, full in ((Glance, Record), (IdentityGlance, UserIdentity)):
        fields = {f.name: f.type for f in msgspec.inspect.type_info(full).fields}  # type: ignore[attr-defined]
        for f in msgspec.inspect.type_info(glanced).fields:  # type: ignore[attr-defined]
            if f.name != "userIdentity":
                assert f.type == fields[f.name], f.name


def test_a_detector_that_writes_its_own_select_turns_the_prefilter_off() -> None:
    class Own(RootUsage):
        wants: ClassVar[Mapping[str, Wanted]] = {}

        def select(self, events: pd.DataFrame) -> pd.Series:
            return events["user_type"].eq("Root")

    class Elsewhere(RootUsage):
        wants: ClassVar[Mapping[str, Wanted]] = {"aws_region": Wanted(frozenset({"us-east-1"}))}

    assert Prefilter.of(BUILTIN) is not None
    assert Prefilter.of((*BUILTIN, Own)) is None
    assert Prefilter.of((*BUILTIN, Elsewhere)) is None  # a column a glance does not hold


def test_wants_is_asked_as_select_asks_it() -> None:
    wanted = Wanted(frozenset({"A"}), r"B.*")
    column = pd.Series(["A", "a", "Bx", None, "", "xB"], dtype=object)
    assert wanted.mask(column).tolist() == [True, False, True, False, False, False]
    with pytest.raises(ValueError, match="empty text"):
        Wanted(frozenset({""}))


def test_sigmahq_rules_through_their_needs(tmp_path: Path) -> None:
    """SigmaHQ's rules, each pre-filtered by what its condition needs; over a small input (every record glanced)
    and a busy day (where glancing stops paying once most records are wanted, as with this pack)."""
    rules = tuple(d for d in load_rules([sigmahq() / "rules"]).detectors if d.needs(GLANCED) is not None)
    assert len(rules) > 40
    delivery(tmp_path / "small", "plain.json.gz", every_select(random.Random(4)))
    delivery(tmp_path / "small", "escaped.json.gz", every_select(random.Random(5)), escaped)
    small = both([tmp_path / "small"], (*BUILTIN, *rules))
    assert len(small.findings) > 50
    filtered = Prefilter.of((*BUILTIN, *rules))
    assert filtered is not None
    assert not filtered.exact  # a rule's needs are weaker than its condition: the selects narrow them
    generate_trail(tmp_path / "day", 6_000, seed=13, busy=True)
    assert len(both([tmp_path / "day"], (*BUILTIN, *rules)).findings) > 100


RULE = """
title: t
logsource: {product: aws, service: cloudtrail}
detection:
  %s
level: high
"""


@pytest.mark.parametrize(
    ("detection", "needs"),
    [
        ("a: {eventSource: iam.amazonaws.com, eventName: [CreateUser, DeleteUser]}\n  condition: a", {"event_source"}),
        ("a: {eventName: X}\n  b: {errorCode: Y}\n  condition: a or b", {"event_name", "error_code"}),
        ("a: {eventName: X}\n  b: {userAgent: Y}\n  condition: a or b", None),  # the user agent is not glanced
        ("a: {eventName: X}\n  b: {userAgent: Y}\n  condition: a and b", {"event_name"}),
        ("a: {eventName: X}\n  condition: not a", None),
        ("a: {requestParameters.bucketName: x}\n  condition: a", None),  # a field inside JSON text
        ("a: {errorCode: null}\n  condition: a", None),  # a null test holds where the field is missing
    ],
)
def test_what_a_sigma_condition_needs(detection: str, needs: set[str] | None) -> None:
    found = rule(RULE % detection, "t.yml").needs(GLANCED)
    assert (None if found is None else set(found)) == needs


def test_the_need_of_a_test_is_judged_as_the_rule_judges_it() -> None:
    cls = rule(RULE % "a: {eventName|startswith: create}\n  condition: a", "t.yml")
    needs = cls.needs(GLANCED)
    assert needs is not None
    values = ["CreateUser", "createuser", "DeleteUser", None, ""]
    judged = np.zeros(len(values), dtype=bool)
    for judge in needs["event_name"]:
        judged |= judge(values)
    assert judged.tolist() == cls().select(pd.DataFrame({"event_name": values})).tolist()
    assert judged.tolist() == [True, True, False, False, False]


def test_glancing_stops_where_most_records_are_wanted() -> None:
    filtered = Prefilter({"event_name": [lambda values: np.ones(len(values), dtype=bool)]})
    columns = {"event_id": pa.array(["x"] * 1000), "event_name": pa.array(["A"] * 1000)}
    for _ in range(4):
        filtered(columns)
    assert filtered.worth  # still on trial
    filtered(columns)
    filtered(columns)
    assert not filtered.worth


def test_a_wanted_pattern_means_the_same_to_select_and_to_the_prefilter() -> None:
    """Anchors and classes as Python's `re` reads them, in both (pandas alone would hand some to RE2)."""
    for wanted in (Wanted(pattern=r"^Root|Rogue$"), Wanted(pattern=r"R[a-z]+")):
        values = ["Root", "RootX", "Rogue", "xRogue", "R", None]
        assert wanted.mask(pd.Series(values, dtype=object)).tolist() == wanted.judge(values).tolist()
