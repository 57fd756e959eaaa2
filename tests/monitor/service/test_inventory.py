"""The account inventory: AWS Organizations (moto over HTTP) merged with the configured accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from detectors.cross_account_assume_role import CrossAccountAssumeRole
from monitor.config import load
from monitor.outbox import delivery
from monitor.service import inventory
from monitor.store.state import State
from tests.cloudtrail import findings, iam_user, stored_finding
from tests.detectors.test_cross_account_assume_role import assume
from tests.slack_server import FakeSlack

VENDOR = "777788889999"


def config(tmp_path: Path, organizations: bool = True) -> Path:
    path = tmp_path / "tg.toml"
    path.write_text(
        f"""
[inventory]
organizations = {str(organizations).lower()}
refresh_hours = 24
[[accounts]]
id = "{VENDOR}"
name = "vendor-ci"
owner = "platform team"
channel = "C0VENDOR"
"""
    )
    return path


def test_organization_accounts_merged_with_configured_ones(aws: str, tmp_path: Path) -> None:
    org = boto3.client("organizations")
    org.create_organization(FeatureSet="ALL")
    created = org.create_account(Email="prod@example.com", AccountName="prod")["CreateAccountStatus"]["AccountId"]
    cfg = load(config(tmp_path), env={})
    state = State(tmp_path / "state.db")
    now = datetime.now(UTC)
    assert inventory.refresh(cfg, state, now) is None
    accounts = inventory.load(cfg, state)
    assert accounts.accounts[created].name == "prod"
    assert accounts.accounts[created].origin == "organization"
    assert accounts.accounts[VENDOR].origin == "trusted"
    assert accounts.accounts[VENDOR].owner == "platform team"
    assert created in accounts.ids("organization")
    assert VENDOR not in accounts.ids("organization")
    settings = accounts.settings(cfg.detection)
    assert settings.trusted_accounts == {VENDOR}
    assert created in settings.organization_accounts
    callers = {created: "low", VENDOR: "medium", "121212121212": "high"}  # ours, trusted, unknown
    found = findings(CrossAccountAssumeRole, *(assume(iam_user("ci", a)) for a in callers), settings=settings)
    assert dict(zip(found["account_id"], found["severity"], strict=True)) == callers
    assert found.set_index("account_id").loc["121212121212", "kind"] == "external-account"
    fetched = state.org_accounts()[1]
    org.create_account(Email="dev@example.com", AccountName="dev")
    assert inventory.refresh(cfg, state, now + timedelta(hours=1)) is None  # fresh enough: not read again
    assert state.org_accounts()[1] == fetched
    assert inventory.refresh(cfg, state, now + timedelta(hours=25)) is None
    assert "dev" in inventory.load(cfg, state).names().values()


def test_a_failed_refresh_keeps_the_last_good_list(aws: str, tmp_path: Path) -> None:
    cfg = load(config(tmp_path), env={})
    state = State(tmp_path / "state.db")
    state.replace_org_accounts([("111122223333", "prod", "ACTIVE")])
    error = inventory.refresh(cfg, state, datetime.now(UTC) + timedelta(days=2))  # no organization in moto
    assert error == "organizations: ListAccounts returned no accounts (not an organization's management account?)"
    assert inventory.load(cfg, state).names()["111122223333"] == "prod"


def test_alerts_name_accounts_and_route_to_the_account_channel(tmp_path: Path, slack_env: FakeSlack) -> None:
    path = config(tmp_path, organizations=False)
    path.write_text(path.read_text() + '[slack]\nchannel = "C0DEFAULT"\n')
    cfg = load(path, env={})
    state = State(tmp_path / "state.db")
    accounts = inventory.load(cfg, state)
    sinks = delivery.build(cfg, state, {}, inventory=accounts)
    state.store_findings([stored_finding(finding_id="f1", account_id=VENDOR)], sinks.names)
    assert sinks.deliver().sent == 1
    (post,) = slack_env.posts()
    assert post["channel"] == "C0VENDOR"
    assert f"{VENDOR} (vendor-ci)" in str(post["blocks"])
