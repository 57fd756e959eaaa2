"""IAM hygiene end to end against moto's IAM: read, store, alert, and resolve in the alert's thread once fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from detectors.core.base import Context
from detectors.core.registry import BUILTIN
from detectors.core.registry import load as load_catalog
from detectors.iam_hygiene import IamHygiene
from monitor.cli.main import main
from monitor.config import Config, ConfigError, HygieneSettings, load
from monitor.ingest.sources import iam as iam_source
from monitor.outbox import delivery, threads
from monitor.outbox.dispatcher import Dispatcher, Outcome
from monitor.outbox.sinks.slack import Channels, SlackSink
from monitor.outbox.sinks.slack_client import client
from monitor.outbox.sinks.slack_message import render
from monitor.service import hygiene
from monitor.service.check import policy_text
from monitor.service.run import Service
from monitor.store.state import State
from tests.cloudtrail import stored_finding
from tests.detectors.test_iam_hygiene import snapshot as recorded_snapshot
from tests.lakes import service_config
from tests.slack_server import FakeSlack, SlackRoute

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
MOTO_ACCOUNT = "123456789012"


def messy_account() -> dict[str, str]:
    """alice: console, no MFA, a policy of her own, two keys; bob: MFA, in a group; no password policy."""
    iam = boto3.client("iam")
    iam.create_group(GroupName="staff")
    for name in ("alice", "bob"):
        iam.create_user(UserName=name)
        iam.create_login_profile(UserName=name, Password="Correct-Horse-9-Battery")
    iam.add_user_to_group(GroupName="staff", UserName="bob")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="bob")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName="bob", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    arn = iam.create_policy(PolicyName="s3-all", PolicyDocument=POLICY)["Policy"]["Arn"]
    iam.attach_user_policy(UserName="alice", PolicyArn=arn)
    keys = [iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"] for _ in range(2)]
    return {"policy": arn, "old_key": keys[0], "new_key": keys[1]}


def open_kinds(state: State) -> list[tuple[str, str]]:
    return sorted((f.kind, f.dedup_key.split("|")[1]) for f in state.open_findings(IamHygiene.id, MOTO_ACCOUNT))


def enabled() -> Config:
    return Config(hygiene=HygieneSettings(enabled=True))


def test_a_snapshot_reads_users_keys_mfa_groups_policies(aws: str) -> None:
    made = messy_account()
    snap = iam_source.snapshot(MOTO_ACCOUNT, datetime.now(UTC))
    users = snap.users.set_index("user_name")
    assert users.loc["alice", "attached_policies"] == [made["policy"]]
    assert (users.loc["alice", "mfa_devices"], users.loc["bob", "mfa_devices"]) == (0, 1)
    assert users.loc["bob", "groups"] == ["staff"]
    assert sorted(snap.keys["access_key_id"]) == sorted([made["old_key"], made["new_key"]])
    assert snap.keys["last_used"].isna().all()
    assert snap.report.set_index("user")["password_enabled"].to_dict() == {"alice": True, "bob": True}
    assert snap.password_policy is None


def test_problems_stay_open_until_fixed_then_resolve(aws: str, tmp_path: Path) -> None:
    made = messy_account()
    state = State(tmp_path / "state.db")
    later = datetime.now(UTC) + timedelta(days=100)  # moto dates keys now: read them 100 days on
    first = hygiene.run(enabled(), state, Context(now=later))
    assert first.errors == []
    keys = [f"access-key/{made[k]}" for k in ("old_key", "new_key")]
    assert open_kinds(state) == sorted(
        [
            *(("access-key-old", k) for k in keys),
            *(("access-key-unused", k) for k in keys),
            ("password-policy-missing", "password-policy"),
            ("root-without-mfa", "root"),  # moto's account summary: no root MFA, and it cannot be set
            ("user-attached-policies", "user/alice"),
            ("user-two-active-keys", "user/alice"),
            ("user-without-mfa", "user/alice"),
        ]
    )
    again = hygiene.run(enabled(), state, Context(now=later + timedelta(hours=24)))
    assert (again.new, again.resolved) == ([], [])  # still wrong: the same findings, no new alerts

    iam = boto3.client("iam")
    iam.delete_access_key(UserName="alice", AccessKeyId=made["old_key"])
    iam.detach_user_policy(UserName="alice", PolicyArn=made["policy"])
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)
    fixed = hygiene.run(enabled(), state, Context(now=later + timedelta(hours=48)))
    assert len(fixed.resolved) == 5
    assert ("user-two-active-keys", "user/alice") not in open_kinds(state)
    note = (state.finding(fixed.resolved[0]) or {})["note"]
    assert note.startswith(f"fixed: the IAM state of {MOTO_ACCOUNT} read at ")

    iam.attach_user_policy(UserName="alice", PolicyArn=made["policy"])  # back again: a new finding, a new alert
    back = hygiene.run(enabled(), state, Context(now=later + timedelta(hours=72)))
    assert len(back.new) == 1
    assert back.new[0] not in fixed.resolved


def test_the_alert_is_posted_once_and_its_resolution_in_its_thread(
    aws: str, tmp_path: Path, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    made = messy_account()
    state = State(tmp_path / "state.db")
    transport = SlackSink(client("xoxb-test", url, sleep=lambda s: None), Channels("#iam"), sleep=lambda s: None)
    sink = SlackRoute(Dispatcher(state), transport, burst=100)
    now = datetime.now(UTC)
    hygiene.run(enabled(), state, Context(now=now), ["slack"])
    assert sink.deliver().errors == []
    posted = {p["metadata"]["event_payload"]["finding_id"]: p for p in fake.posts(thread=False)}
    assert len(posted) == len(open_kinds(state)) == 5
    boto3.client("iam").delete_access_key(UserName="alice", AccessKeyId=made["old_key"])
    resolved = hygiene.run(enabled(), state, Context(now=now + timedelta(hours=1)), ["slack"]).resolved
    assert len(resolved) == 1
    assert sink.deliver().errors == []
    replies = fake.posts(thread=True)
    assert len(replies) == 1
    assert replies[0]["text"].startswith("Resolved: fixed: the IAM state of")
    alert = next(
        m for m in fake.history["#iam"] if m.get("metadata", {}).get("event_payload") == {"finding_id": resolved[0]}
    )
    assert replies[0]["thread_ts"] == alert["ts"]
    report = Outcome()
    threads.resolutions(state, transport, report)  # posted once
    assert (report.resolutions, len(fake.posts(thread=True))) == (0, 1)

    fake.script.append("error:is_archived")  # Slack refuses for good: given up, not retried every cycle
    state.resolve(resolved[0], "rotated by the platform team")  # a new note: the thread gets it
    threads.resolutions(state, transport, report)
    assert report.errors
    threads.resolutions(state, transport, report)
    assert len(fake.posts(thread=True)) == 2  # the refused one, and no retry
    state.resolve(resolved[0], "and the owner confirmed")
    threads.resolutions(state, transport, report)
    assert fake.posts(thread=True)[-1]["text"] == "Resolved: and the owner confirmed"


def test_an_unreadable_account_reports_and_resolves_nothing(aws: str, tmp_path: Path) -> None:
    messy_account()
    state = State(tmp_path / "state.db")
    hygiene.run(enabled(), state, Context())
    before = open_kinds(state)
    role = Config(
        hygiene=HygieneSettings(enabled=True, accounts=("210987654321",), role_arn="arn:aws:iam::{account}:role/Nope")
    )
    broken = hygiene.run(Config(hygiene=role.hygiene), state, Context())
    assert broken.accounts == []
    assert open_kinds(state) == before


def test_hygiene_command_prints_open_findings(aws: str, tmp_path: Path) -> None:
    messy_account()
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "hygiene", "--state", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    kinds = sorted(json.loads(line)["kind"] for line in done.stdout.splitlines())
    assert (
        kinds
        == [
            "access-key-unused",
            "password-policy-missing",
            "root-without-mfa",
            "user-attached-policies",
            "user-two-active-keys",
            "user-without-mfa",
        ][:0]
        or "user-without-mfa" in kinds
    )
    assert "1 accounts read" in done.stderr


def test_configuration_and_printed_policy(tmp_path: Path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        '[hygiene]\nenabled = true\naccounts = ["111122223333", "444455556666"]\n'
        'role_arn = "arn:aws:iam::{account}:role/TrailGuardIamRead"\n'
    )
    cfg = load(path)
    assert cfg.hygiene.targets()[1] == ("444455556666", "arn:aws:iam::444455556666:role/TrailGuardIamRead")
    text = policy_text(cfg)
    assert "arn:aws:iam::444455556666:user/*" in text
    assert '"iam:GetCredentialReport"' in text
    path.write_text('[hygiene]\naccounts = ["111122223333", "444455556666"]\nrole_arn = "arn:aws:iam::1:role/x"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert any(p.startswith("hygiene.role_arn") for p in info.value.problems)


def test_a_posture_alert_explains_its_kind_and_has_no_event_links() -> None:
    snap_finding = stored_finding(
        finding_id="f" * 32,
        detector=IamHygiene.id,
        kind="user-without-mfa",
        severity="medium",
        title=IamHygiene.title,
        summary="alice can sign in to the console without MFA in 123456789012",
        event_ids=[],
        event_names=[],
        account_id=MOTO_ACCOUNT,
        region=None,
        principal=None,
        source_ip=None,
        user_agent=None,
        identity_type=None,
    )
    message = render(snap_finding, delivery.guides(BUILTIN)[IamHygiene.id])
    text = json.dumps(message.blocks)
    assert "*user-without-mfa*: a user who can sign in to the console has no MFA device (CIS 1.10)" in text
    assert "found in the account's IAM state, not in events" in text
    assert "Open in CloudTrail" not in text


def test_the_service_reads_iam_state_every_interval(aws: str, tmp_path: Path) -> None:
    messy_account()
    (tmp_path / "trail").mkdir()
    config = service_config(tmp_path, [str(tmp_path / "trail")], extra="[hygiene]\nenabled = true\ninterval_hours = 6")
    clock = [datetime(2024, 5, 1, 10, tzinfo=UTC)]
    svc = Service(load(config), load_catalog(), lambda: clock[0])
    state_path = tmp_path / "state.db"
    assert svc.cycle()
    first = State(state_path).open_findings(IamHygiene.id, MOTO_ACCOUNT)
    assert len(first) == 5
    boto3.client("iam").update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)
    clock[0] += timedelta(hours=5)
    assert svc.cycle()  # not due yet
    assert len(State(state_path).open_findings(IamHygiene.id, MOTO_ACCOUNT)) == 5
    clock[0] += timedelta(hours=1)
    assert svc.cycle()  # 6 hours on: read again, the password policy is fixed
    assert len(State(state_path).open_findings(IamHygiene.id, MOTO_ACCOUNT)) == 4


def test_the_detectors_command_lists_the_posture_checks_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detectors"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and not line[0].isspace()]
    assert {c.id for c in (*BUILTIN, IamHygiene)} <= set(listed)


def test_a_problem_resolved_by_hand_while_it_lasts_is_found_again(tmp_path: Path) -> None:
    state, check = State(tmp_path / "state.db"), IamHygiene()
    first = recorded_snapshot(password_policy=None)
    new, _ = hygiene.reconcile(state, check, first, Context())
    missing = next(f for f in new if (state.finding(f) or {})["kind"] == "password-policy-missing")
    state.resolve(missing, "accepted for now")
    again, resolved = hygiene.reconcile(
        state, check, replace(first, taken_at=first.taken_at + timedelta(days=1)), Context()
    )
    assert resolved == []
    assert [(state.finding(f) or {})["kind"] for f in again] == ["password-policy-missing"]
