"""Findings linked into incidents, from raw CloudTrail records through detection into the state file: one story
per attacker (the demo's intrusion is one), unrelated findings apart, a role session tied to whoever assumed the
role, the same incident ids whatever the slicing, a late finding joining its incident."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from typing import Any

import pyarrow as pa
import pytest

from detectors.core.base import Context, Settings
from detectors.core.registry import BUILTIN
from monitor.demo.generator import story
from monitor.detect.incidents import components
from monitor.detect.incidents import story as tell
from monitor.detect.links import Linking
from monitor.detect.pipeline import Plan, detect
from monitor.lake import Lake
from monitor.outbox.finding import Finding
from monitor.store.state import State
from tests.cloudtrail import DEV, PROD, assumed_role, console_login, event, iam_user, normalize_batch, stored_finding
from tests.detectors.test_cross_account_assume_role import DENIED, ROLE, both_copies

DAY = datetime(2024, 3, 1, tzinfo=UTC)
CATALOG = {d.id: d for d in BUILTIN}
DEFAULT = Linking()


def lake_of(tmp_path: Any, *records: dict[str, Any]) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    lake.write(pa.Table.from_batches([normalize_batch(*records)]))
    return lake


def incidents(
    lake: Lake, state: State, since: datetime = DAY, hours: int = 24, linking: Linking = DEFAULT
) -> dict[str, list[tuple[str, str]]]:
    """Detect over the range, then each incident's findings as (detector, principal), in time order."""
    detect(lake, state, BUILTIN, Context(), since, since + timedelta(hours=hours), Plan(linking=linking))
    told = {}
    for incident in state.list_incidents():
        members = state.stored(incident["finding_ids"])
        told[incident["incident_id"]] = [(members[i].detector, members[i].principal or "") for i in members]
    return told


def demo_story() -> list[dict[str, Any]]:
    return [r for beat in story(random.Random(7), DAY) for r in beat.records]


def test_the_demo_story_is_one_incident_through_the_shared_address(tmp_path: Any) -> None:
    state = State(tmp_path / "state.db")
    told = incidents(lake_of(tmp_path, *demo_story()), state)
    [intrusion] = [i for i, members in told.items() if any(p.endswith(":root") for _, p in members)]
    principals = {p.rsplit(":", 1)[-1] for _, p in told[intrusion]}
    assert principals == {"root", "user/jack", "user/jackson"}  # root and the stolen key, through 203.0.113.66
    body = state.incident(intrusion)
    assert body is not None
    assert body["addresses"] == ["203.0.113.66"]
    assert body["severity"] == "critical"
    assert {"initial-access", "persistence", "defense-evasion", "discovery"} <= set(body["tactics"])
    assert body["summary"].startswith(f"{len(told[intrusion])} findings from ")
    others = [members for i, members in told.items() if i != intrusion]
    assert all(d == "cross-account-assume-role" for members in others for d, _ in members)  # the vendor, apart
    vendor = [state.incident(i) for i in told if i != intrusion and "999988887777" in str(state.incident(i))]
    assert vendor  # an outside caller is an identity too, as the role's account sees it
    assert any("999988887777" in who for body in vendor if body for who in body["identities"])


def test_unrelated_findings_in_the_same_hour_stay_two_incidents(tmp_path: Any) -> None:
    bob = console_login(iam_user("bob"), time="2024-03-01T10:05:00Z", ip="198.51.100.7")
    carol = event(
        "StopLogging", "cloudtrail.amazonaws.com", iam_user("carol"), time="2024-03-01T10:20:00Z", ip="192.0.2.10"
    )
    assert len(incidents(lake_of(tmp_path, bob, carol), State(tmp_path / "state.db"))) == 2


@pytest.mark.parametrize(
    ("address", "trusted", "linked"),
    [
        ("198.51.100.7", (), True),  # one outside address: one story
        ("198.51.100.7", ("198.51.100.0/24",), False),  # the office's NAT: everyone's
        ("10.0.4.7", (), False),  # a private address (a VPC endpoint's, a NAT's): everyone's
        ("iam.amazonaws.com", (), False),  # an AWS service acting
    ],
)
def test_an_address_links_only_when_it_can_tell_a_caller(
    tmp_path: Any, address: str, trusted: tuple[str, ...], linked: bool
) -> None:
    bob = console_login(iam_user("bob"), time="2024-03-01T10:05:00Z", ip=address)
    carol = event("StopLogging", "cloudtrail.amazonaws.com", iam_user("carol"), time="2024-03-01T10:20:00Z", ip=address)
    linking = Linking(trusted=tuple(ip_network(t) for t in trusted))
    found = incidents(lake_of(tmp_path, bob, carol), State(tmp_path / "state.db"), linking=linking)
    assert len(found) == (1 if linked else 2)


def test_a_role_session_links_to_the_user_who_assumed_the_role(tmp_path: Any) -> None:
    """alice signs in without MFA, assumes `ops`, and the session stops the trail from another address: the
    session's key was issued by alice's AssumeRole, so both findings are alice's story."""
    login = console_login(iam_user("alice"), time="2024-03-01T09:00:00Z", ip="198.51.100.7")
    assume = event(
        "AssumeRole",
        "sts.amazonaws.com",
        iam_user("alice"),
        time="2024-03-01T09:05:00Z",
        ip="198.51.100.7",
        requestParameters={"roleArn": f"arn:aws:iam::{PROD}:role/ops", "roleSessionName": "alice"},
        responseElements={"credentials": {"accessKeyId": "ASIAOPSSESSION000001"}},
    )
    session = assumed_role("ops", session="alice") | {"accessKeyId": "ASIAOPSSESSION000001"}
    stop = event("StopLogging", "cloudtrail.amazonaws.com", session, time="2024-03-01T09:30:00Z", ip="192.0.2.44")
    told = incidents(lake_of(tmp_path, login, assume, stop), State(tmp_path / "state.db"))
    [members] = told.values()
    assert {d for d, _ in members} == {"console-login-without-mfa", "cloudtrail-changes"}
    other_session = assumed_role("ops", session="bob") | {"accessKeyId": "ASIAOPSSESSION000002"}  # no AssumeRole seen
    alone = event(
        "StopLogging", "cloudtrail.amazonaws.com", other_session, time="2024-03-03T09:30:00Z", ip="192.0.2.45"
    )
    assert len(incidents(lake_of(tmp_path / "2", login, alone), State(tmp_path / "2.db"), hours=72)) == 2


def test_the_incident_ids_are_the_same_for_a_whole_range_and_hourly_cycles(tmp_path: Any) -> None:
    lake = lake_of(tmp_path, *demo_story())
    whole = incidents(lake, State(tmp_path / "whole.db"))
    hourly = State(tmp_path / "hourly.db")
    for hour in range(24):
        found = incidents(lake, hourly, DAY + timedelta(hours=hour), hours=1)
    assert {i: sorted(m) for i, m in found.items()} == {i: sorted(m) for i, m in whole.items()}


def test_a_late_finding_joins_its_incident(tmp_path: Any) -> None:
    records = demo_story()
    lake, state = lake_of(tmp_path, *records), State(tmp_path / "state.db")
    morning = incidents(lake, state, DAY + timedelta(hours=9), hours=1)  # root's sign-in, key, listing
    [(first, members)] = [(i, m) for i, m in morning.items() if any(p.endswith(":root") for _, p in m)]
    later = incidents(lake, state, DAY + timedelta(hours=11), hours=1)  # jack's key for jackson, its use
    assert first in later
    assert len(later[first]) > len(members)
    assert {p.rsplit("/", 1)[-1] for _, p in later[first]} >= {"jack", "jackson"}


def test_a_denied_retry_of_a_known_pair_is_no_finding_but_joins_the_incident_of_its_caller(tmp_path: Any) -> None:
    """dev's ci role assumes prod's deploy role every day; today one retry is denied, and the same role stops a
    trail in dev. The cross-account detector raises nothing for the retry; the incident of the trail's finding
    tells it: as context (with CIS 4.1's detector off), or as that detector's low finding (on: it counts every
    denial, as the control does)."""
    ci = assumed_role("ci", session="build-9", account=DEV)
    yesterday = both_copies(ci, shared="5c6b3c3f-0000-4000-8000-000000000001", time="2024-02-29T09:00:00Z")
    retry = both_copies(ci, shared="5c6b3c3f-0000-4000-8000-000000000002", time="2024-03-01T09:00:00Z", **DENIED)
    stop = event("StopLogging", "cloudtrail.amazonaws.com", ci, account=DEV, time="2024-03-01T09:30:00Z")
    lake = lake_of(tmp_path, *yesterday, *retry, stop)
    ctx = Context(Settings(organization_accounts=frozenset({PROD, DEV})))
    for cis in (False, True):
        state = State(tmp_path / f"state-{cis}.db")
        catalog = [d for d in BUILTIN if cis or d.id != "unauthorized-api-calls"]
        detect(lake, state, catalog, ctx, DAY - timedelta(days=1), DAY + timedelta(days=1))
        found = state.list_findings()
        assert not [f for f in found if f["detector"] == "cross-account-assume-role" and f["kind"] == "denied"]
        [incident] = [
            i
            for i in state.list_incidents()
            if any(f["kind"] == "change" for f in found if f["finding_id"] in i["finding_ids"])
        ]
        members = [f for f in found if f["finding_id"] in incident["finding_ids"]]
        if cis:
            assert incident["context"] == []
            assert retry[0]["eventID"] in [
                e for f in members if f["detector"] == "unauthorized-api-calls" for e in f["event_ids"]
            ]
        else:
            assert [c["event_id"] for c in incident["context"]] == [retry[0]["eventID"]]
            assert incident["context"][0]["summary"].endswith(f"was denied assuming {ROLE} (AccessDenied)")


def finding(fid: str, start: str, end: str | None = None, **values: Any) -> Finding:
    return stored_finding(finding_id=fid, event_time=start, last_seen=end or start, **values)


def test_linking_is_transitive_within_the_window_and_stops_at_a_gap() -> None:
    found = [
        finding("a", "2024-03-01T00:00:00.000000Z"),
        finding("b", "2024-03-01T23:00:00.000000Z", "2024-03-02T20:00:00.000000Z"),  # within a day of a...
        finding("c", "2024-03-03T19:00:00.000000Z"),  # ...and c within a day of b's end: one chain
        finding("d", "2024-03-06T00:00:00.000000Z"),  # two days after c: a new story
        finding("e", "2024-03-01T01:00:00.000000Z"),  # the same hour, nothing shared
    ]
    keys = {f: frozenset({"user:1:x"}) for f in "abcd"} | {"e": frozenset({"addr:192.0.2.1"})}
    assert sorted(map(sorted, components(found, keys, timedelta(hours=24)))) == [["a", "b", "c"], ["d"], ["e"]]
    assert len(components(found, keys, timedelta(hours=1))) == 5


@pytest.mark.parametrize(
    ("detectors", "severity", "raised"),
    [
        (["unauthorized-api-calls"], "medium", ""),
        (["access-key-created", "cloudtrail-changes"], "high", "defence evasion followed the creation of credentials"),
        (["cloudtrail-changes", "access-key-created"], "medium", ""),  # evasion first: no such story
        (["console-login-without-mfa", "access-key-created", "unauthorized-api-calls"], "high", "3 ATT&CK tactics"),
    ],
)
def test_an_incident_is_raised_a_step_by_its_tactics_and_their_order(
    detectors: list[str], severity: str, raised: str
) -> None:
    members = [
        finding(f"f{n}", f"2024-03-01T1{n}:00:00.000000Z", detector=d, severity="medium", summary=f"step {n}")
        for n, d in enumerate(detectors)
    ]
    told = tell(reversed(members), {}, CATALOG)
    assert (told.severity, raised in told.raised) == (severity, True)
    assert [f.finding_id for f in told.findings] == [f"f{n}" for n in range(len(detectors))]  # in time order


def test_a_single_finding_incident_reads_like_the_finding() -> None:
    alone = finding("a", "2024-03-01T10:00:00.000000Z", summary="root signed in", severity="high")
    told = tell([alone], {"a": frozenset({"root:111111111111", "addr:198.51.100.7"})}, CATALOG)
    assert (told.summary, told.severity, told.raised) == ("root signed in", "high", "")
    assert (told.identities, told.addresses) == (("root of 111111111111",), ("198.51.100.7",))
