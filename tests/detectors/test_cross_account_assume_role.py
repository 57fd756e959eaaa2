import json
from pathlib import Path
from typing import Any

from detectors.core.base import Context, Settings
from detectors.cross_account_assume_role import CrossAccountAssumeRole
from monitor.detect.scan import scan
from tests.cloudtrail import DEV, EXTERNAL, PROD, assumed_role, event, findings, iam_user

ROLE = f"arn:aws:iam::{PROD}:role/deploy"
VENDOR_ROLE = f"arn:aws:iam::{DEV}:role/vendor-access"
AUDIT = "555566667777"  # a trusted vendor account
ORG = Settings(organization_accounts=frozenset({PROD, DEV}), trusted_accounts=frozenset({AUDIT}))
DENIED = {"errorCode": "AccessDenied", "errorMessage": "not authorized to perform: sts:AssumeRole"}


def assume(
    identity: dict[str, Any], role_arn: str = ROLE, *, in_params: bool = True, key: str | None = None, **kw: Any
) -> dict[str, Any]:
    target = role_arn.split(":")[4]
    params = {"roleArn": role_arn, "roleSessionName": "s"} if in_params else {"roleSessionName": "s"}
    response = {"credentials": {"accessKeyId": key, "expiration": "May 1, 2024, 11:15:00 AM"}} if key else None
    return event(
        "AssumeRole",
        "sts.amazonaws.com",
        identity,
        requestParameters=params,
        responseElements=response,
        resources=[{"accountId": target, "type": "AWS::IAM::Role", "ARN": role_arn}],
        **kw,
    )


def both_copies(
    caller: dict[str, Any], shared: str = "5c6b3c3f-0000-4000-8000-00000000beef", **kw: Any
) -> list[dict[str, Any]]:
    """CloudTrail writes one copy to the caller's account and one to the role owner's."""
    mine = assume(caller, sharedEventID=shared, account=caller["accountId"], **kw)
    owner_view = {"type": "AWSAccount", "principalId": caller["principalId"], "accountId": caller["accountId"]}
    theirs = assume(owner_view, sharedEventID=shared, account=PROD, **kw)
    return [mine, theirs]


def at(minute: int, hour: int = 10, day: int = 1) -> str:
    return f"2024-05-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def kinds(found: Any) -> list[tuple[str, str]]:
    return list(zip(found["kind"], found["severity"], strict=True))


# -- without a baseline every triple is new: the kinds by where the caller comes from


def test_external_account_is_high() -> None:
    found = findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL)), settings=ORG)
    assert kinds(found) == [("external-account", "high")]
    assert (found["account_id"].iloc[0], found["target_account_id"].iloc[0]) == (EXTERNAL, PROD)


def test_new_pair_from_the_organization_is_low_and_from_a_trusted_vendor_medium() -> None:
    org = findings(CrossAccountAssumeRole, assume(assumed_role("ci", account=DEV)), settings=ORG)
    vendor = findings(CrossAccountAssumeRole, assume(iam_user("scanner", AUDIT)), settings=ORG)
    assert kinds(org) == [("first-seen", "low")]
    assert kinds(vendor) == [("first-seen", "medium")]


def test_organization_pairs_can_be_quiet() -> None:
    quiet = Settings(
        organization_accounts=ORG.organization_accounts, options={CrossAccountAssumeRole.id: {"organization": "quiet"}}
    )
    assert findings(CrossAccountAssumeRole, assume(assumed_role("ci", account=DEV)), settings=quiet).empty
    assert len(findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL)), settings=quiet)) == 1


def test_single_denied_attempt_is_high() -> None:
    found = findings(CrossAccountAssumeRole, assume(iam_user("x", EXTERNAL), **DENIED), settings=ORG)
    assert kinds(found) == [("denied", "high")]


# -- with a baseline: what was seen before is quiet


def test_pair_seen_last_week_is_quiet() -> None:
    last_week = assume(assumed_role("ci", session="build-1", account=DEV), time=at(0, day=24).replace("05-24", "04-24"))
    today = assume(assumed_role("ci", session="build-2", account=DEV))  # another session of the same role
    assert findings(CrossAccountAssumeRole, today, settings=ORG, history=[last_week]).empty


def test_same_role_from_a_new_external_account_is_high() -> None:
    history = [assume(iam_user("ci", EXTERNAL), time="2024-04-28T09:00:00Z")]
    newcomer = "121212121212"
    found = findings(CrossAccountAssumeRole, assume(iam_user("ci", newcomer)), settings=ORG, history=history)
    assert kinds(found) == [("external-account", "high")]
    assert found["account_id"].iloc[0] == newcomer


def test_known_account_new_principal_is_new() -> None:
    history = [assume(assumed_role("ci", account=DEV), time="2024-04-28T09:00:00Z")]
    found = findings(
        CrossAccountAssumeRole, assume(assumed_role("intruder", account=DEV)), settings=ORG, history=history
    )
    assert kinds(found) == [("first-seen", "low")]


def test_a_denied_retry_of_a_known_pair_is_no_finding_but_a_new_role_or_a_burst_still_fire() -> None:
    """A CI role retrying a role it assumes every day is context, not an alert; the same principal denied on
    a role it never assumed, or denied ten times in five minutes, is."""
    history = [assume(assumed_role("ci", account=DEV), time="2024-04-28T09:00:00Z")]
    retry = assume(assumed_role("ci", account=DEV), **DENIED)
    assert findings(CrossAccountAssumeRole, retry, settings=ORG, history=history).empty
    elsewhere = assume(assumed_role("ci", account=DEV), f"arn:aws:iam::{PROD}:role/admin", **DENIED)
    assert kinds(findings(CrossAccountAssumeRole, elsewhere, settings=ORG, history=history)) == [("denied", "high")]
    burst = [
        assume(assumed_role("ci", account=DEV), time=f"2024-05-01T10:2{n // 2}:{n % 2 * 30:02d}Z", **DENIED)
        for n in range(10)
    ]
    assert kinds(findings(CrossAccountAssumeRole, *burst, settings=ORG, history=history)) == [("denied-burst", "high")]


def test_denied_history_does_not_make_a_pair_known() -> None:
    history = [assume(iam_user("ci", EXTERNAL), time="2024-04-28T09:00:00Z", **DENIED)]
    found = findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL)), settings=ORG, history=history)
    assert kinds(found) == [("external-account", "high")]


def test_a_new_triple_fires_once_not_in_every_later_window() -> None:
    calls = [assume(iam_user("ci", EXTERNAL), time=at(5, hour=h)) for h in (10, 11, 14)]
    found = findings(CrossAccountAssumeRole, *calls, settings=ORG)
    assert len(found) == 1
    assert found["event_ids"].iloc[0] == [calls[0]["eventID"]]


# -- denied bursts: enumeration


def test_ten_denied_attempts_in_five_minutes_fire_once() -> None:
    roles = [f"arn:aws:iam::{PROD}:role/guess-{n}" for n in range(10)]
    tries = [
        assume(iam_user("x", EXTERNAL), role, time=f"2024-05-01T10:2{n // 2}:{n % 2 * 30:02d}Z", **DENIED)
        for n, role in enumerate(roles)
    ]
    found = findings(CrossAccountAssumeRole, *tries, settings=ORG)
    assert kinds(found) == [("denied-burst", "high")]
    assert sorted(found["event_ids"].iloc[0]) == sorted(t["eventID"] for t in tries)


def test_burst_is_counted_per_account_across_principals() -> None:
    tries = [assume(iam_user(f"u{n}", EXTERNAL), time=f"2024-05-01T10:20:{n * 5:02d}Z", **DENIED) for n in range(10)]
    assert kinds(findings(CrossAccountAssumeRole, *tries, settings=ORG)) == [("denied-burst", "high")]


def test_nine_attempts_or_ten_spread_over_an_hour_are_no_burst() -> None:
    nine = [assume(iam_user("x", EXTERNAL), time=at(20 + n // 3), **DENIED) for n in range(9)]
    spread = [assume(iam_user("x", EXTERNAL), time=at(n * 6), **DENIED) for n in range(10)]
    assert kinds(findings(CrossAccountAssumeRole, *nine, settings=ORG)) == [("denied", "high")]
    assert kinds(findings(CrossAccountAssumeRole, *spread, settings=ORG)) == [("denied", "high")]


def test_both_copies_of_a_denied_call_count_once() -> None:
    tries = [
        copy
        for n in range(5)
        for copy in both_copies(
            assumed_role("ci", account=DEV),
            shared=f"5c6b3c3f-0000-4000-8000-0000000000{n:02d}",
            time=at(20 + n),
            **DENIED,
        )
    ]
    assert kinds(findings(CrossAccountAssumeRole, *tries, settings=ORG)) == [("denied", "high")]


def test_burst_threshold_and_window_are_configurable() -> None:
    opts = Settings(options={CrossAccountAssumeRole.id: {"denied_threshold": 3, "denied_window_minutes": 30}})
    tries = [assume(iam_user("x", EXTERNAL), time=at(n * 10), **DENIED) for n in range(3)]
    assert kinds(findings(CrossAccountAssumeRole, *tries, settings=opts)) == [("denied-burst", "high")]


# -- role chaining across accounts


def test_session_from_another_account_chaining_into_a_third_is_role_chain() -> None:
    first = assume(
        iam_user("vendor", EXTERNAL), f"arn:aws:iam::{DEV}:role/vendor-access", key="ASIAFIRSTHOP0001", time=at(0)
    )
    hop = assumed_role("vendor-access", account=DEV) | {"accessKeyId": "ASIAFIRSTHOP0001"}
    second = assume(hop, ROLE, time=at(20))
    history = [
        assume(hop, ROLE, time="2024-04-28T09:00:00Z"),
        assume(iam_user("vendor", EXTERNAL), f"arn:aws:iam::{DEV}:role/vendor-access", time="2024-04-28T09:00:00Z"),
    ]
    found = findings(CrossAccountAssumeRole, first, second, settings=ORG)
    chain = found[found["kind"].eq("role-chain")].iloc[0]
    assert (chain["severity"], chain["account_id"], chain["target_account_id"]) == ("high", DEV, PROD)
    assert '"origin_account": "777788889999"' in chain["details"]
    assert findings(
        CrossAccountAssumeRole, first, second, settings=ORG, history=history
    ).empty  # a known chain is quiet
    expected = {"expected": [{"source": EXTERNAL, "role": VENDOR_ROLE}]}  # the first hop is expected, the chain is not
    vendor = Settings(organization_accounts=ORG.organization_accounts, options={CrossAccountAssumeRole.id: expected})
    assert kinds(findings(CrossAccountAssumeRole, first, second, settings=vendor)) == [("role-chain", "high")]


def test_chain_inside_the_organization_is_medium_and_a_same_account_hop_is_not_a_chain() -> None:
    first = assume(
        assumed_role("ci", account=DEV), f"arn:aws:iam::{AUDIT}:role/hub", key="ASIAHUBSESSION01", time=at(0)
    )
    hub = assumed_role("hub", account=AUDIT) | {"accessKeyId": "ASIAHUBSESSION01"}
    across = assume(hub, ROLE, time=at(5))
    inside = assume(hub, f"arn:aws:iam::{AUDIT}:role/other", time=at(6))
    found = findings(CrossAccountAssumeRole, first, across, inside, settings=ORG)
    assert sorted(kinds(found)) == [("first-seen", "low"), ("role-chain", "medium")]


# -- keys and copies


def test_both_copies_merge_into_one_finding_with_both_event_ids() -> None:
    copies = both_copies(iam_user("ci", EXTERNAL))
    found = findings(CrossAccountAssumeRole, *copies)
    assert len(found) == 1
    assert sorted(found["event_ids"].iloc[0]) == sorted(c["eventID"] for c in copies)
    assert found["principal"].iloc[0] == f"arn:aws:iam::{EXTERNAL}:user/ci"  # the caller's copy represents it


def test_owner_copy_alone_is_keyed_by_principal_id_and_account() -> None:
    found = findings(CrossAccountAssumeRole, both_copies(assumed_role("ci", session="run-9", account=EXTERNAL))[1])
    assert list(found["account_id"]) == [EXTERNAL]
    assert found["dedup_key"].iloc[0] == f"{EXTERNAL}|{EXTERNAL}:AROAEXAMPLECI|{ROLE}"  # the session name dropped


def test_caller_copy_key_is_the_role_not_the_session() -> None:
    history = [assume(assumed_role("ci", session="build-1", account=DEV), time="2024-04-28T09:00:00Z")]
    today = both_copies(
        assumed_role("ci", session="build-2", account=DEV)
    )  # the owner copy knows only the principal id
    assert findings(CrossAccountAssumeRole, *today, settings=ORG, history=history).empty


def test_role_from_resources_when_request_parameters_lack_it() -> None:
    found = findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL), in_params=False))
    assert found["target_account_id"].iloc[0] == PROD


def test_expected_pairs_are_never_findings() -> None:
    expected = {"expected": [{"source": EXTERNAL, "role": f"arn:aws:iam::{PROD}:role/dep*"}]}
    settings = Settings(options={CrossAccountAssumeRole.id: expected})
    assert findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL)), settings=settings).empty
    assert findings(CrossAccountAssumeRole, assume(iam_user("ci", EXTERNAL), **DENIED), settings=settings).empty
    other_role = assume(iam_user("ci", EXTERNAL), f"arn:aws:iam::{PROD}:role/admin")
    assert len(findings(CrossAccountAssumeRole, other_role, settings=settings)) == 1


# -- named negatives


def test_negative_same_account_role_chaining() -> None:
    assert findings(CrossAccountAssumeRole, assume(assumed_role("app", account=PROD))).empty


def test_negative_aws_service_assuming() -> None:
    service = {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}
    assert findings(CrossAccountAssumeRole, assume(service, account=PROD)).empty
    invoked = iam_user("ci", EXTERNAL) | {"invokedBy": "cloudformation.amazonaws.com"}
    assert findings(CrossAccountAssumeRole, assume(invoked)).empty


def test_negative_monitor_own_role_and_its_owner_copy() -> None:
    own = assumed_role("TrailGuard", account=DEV)
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{DEV}:role/TrailGuard"}))
    assert findings(CrossAccountAssumeRole, *both_copies(own), settings=settings).empty


def test_negative_monitor_assuming_its_read_role_seen_only_in_the_owner_copy() -> None:
    read_role = f"arn:aws:iam::{PROD}:role/trailguard-read"
    owner_copy = both_copies(assumed_role("TrailGuard", account=DEV), role_arn=read_role)[1]
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{DEV}:role/TrailGuard", read_role}))
    assert findings(CrossAccountAssumeRole, owner_copy, settings=settings).empty
    assert len(findings(CrossAccountAssumeRole, owner_copy)) == 1  # without the setting it is a finding


def test_an_outsider_assuming_or_trying_trailguards_own_role_is_a_finding() -> None:
    """The role that reads the whole organization's trail is exempt only for TrailGuard: the owner's copy of a
    call from an account of TrailGuard's roles that succeeded. An outside account assuming it, and a burst of
    denied tries, are findings as for any role."""
    read_role = f"arn:aws:iam::{PROD}:role/trailguard-read"
    settings = Settings(monitor_role_arns=frozenset({f"arn:aws:iam::{DEV}:role/TrailGuard", read_role}))
    outsider = both_copies(iam_user("mallory", EXTERNAL), role_arn=read_role)[1]
    assert kinds(findings(CrossAccountAssumeRole, outsider, settings=settings)) == [("external-account", "high")]
    tries = [assume(iam_user("mallory", EXTERNAL), read_role, time=at(m), account=PROD, **DENIED) for m in range(12)]
    assert {severity for _, severity in kinds(findings(CrossAccountAssumeRole, *tries, settings=settings))} == {"high"}


def test_negative_other_sts_calls() -> None:
    rec = event("GetCallerIdentity", "sts.amazonaws.com", iam_user("ci", EXTERNAL))
    assert findings(CrossAccountAssumeRole, rec).empty


def test_a_scan_takes_the_accounts_its_files_deliver_as_the_organization_as_the_service_does(tmp_path: Path) -> None:
    """Without an account inventory, `run` takes the accounts that deliver events as the organization's; so does a
    scan (its files' account folders and the accounts events are recorded in): role use from DEV, which delivers
    a folder of its own, is a new pair inside the organization, from EXTERNAL an outside one. With an inventory
    configured, nothing is learned."""
    for account, records in (
        (PROD, [assume(assumed_role("ci", account=DEV), account=PROD), assume(iam_user("x", EXTERNAL), account=PROD)]),
        (DEV, [event("ListBuckets", "s3.amazonaws.com", iam_user("y", DEV))]),
    ):
        folder = tmp_path / "trail" / "AWSLogs" / account / "CloudTrail" / "us-east-1" / "2024" / "05" / "01"
        folder.mkdir(parents=True)
        (folder / f"{account}_CloudTrail_us-east-1_20240501T1000Z_a.json").write_text(json.dumps({"Records": records}))
    learned = scan([tmp_path / "trail"], [CrossAccountAssumeRole], Context(Settings(organization_learned=True)))
    assert sorted(kinds(learned.findings)) == [("external-account", "high"), ("first-seen", "low")]
    given = scan([tmp_path / "trail"], [CrossAccountAssumeRole], Context(Settings()))
    assert sorted(kinds(given.findings)) == [("external-account", "high"), ("external-account", "high")]


def test_the_role_aws_names_in_resources_wins_over_the_callers_text() -> None:
    """`requestParameters.roleArn` is what the caller sent (with a region in it, it matches no account pattern);
    `resources` is what AWS resolved: the role is taken from there."""
    odd = assume(iam_user("x", EXTERNAL), account=PROD)
    odd["requestParameters"]["roleArn"] = f"arn:aws:iam:us-east-1:{PROD}:role/deploy"
    assert kinds(findings(CrossAccountAssumeRole, odd)) == [("external-account", "high")]


def test_an_empty_invoked_by_is_no_service_acting_for_the_caller() -> None:
    record = assume(iam_user("x", EXTERNAL) | {"invokedBy": ""}, account=PROD)
    assert kinds(findings(CrossAccountAssumeRole, record)) == [("external-account", "high")]
