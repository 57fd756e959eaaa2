"""The account inventory: the organization's accounts (AWS Organizations) merged with the configured
list of named accounts (trusted externals such as vendors, CI and audit, or names and owners for
the organization's own).

Alerts show names beside ids, routing sends an account's findings to its channel, and detectors
tell the organization and trusted accounts from the rest. The organization's list is read on a
schedule and kept in the state file, so a failed refresh keeps the last good list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from detectors.core.base import Settings
from monitor.config import Config
from monitor.ingest.sources.organizations import list_accounts
from monitor.store.accounts import Accounts
from monitor.store.ledger import Ledger


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    origin: str  # "organization" or "trusted"
    owner: str | None = None
    channel: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Inventory:
    accounts: Mapping[str, Account] = field(default_factory=dict)
    learned: bool = False  # no Organizations: the organization is the accounts that deliver events

    def names(self) -> dict[str, str]:
        return {i: a.name for i, a in self.accounts.items()}

    def channels(self) -> dict[str, str]:
        return {i: a.channel for i, a in self.accounts.items() if a.channel}

    def ids(self, origin: str) -> frozenset[str]:
        return frozenset(i for i, a in self.accounts.items() if a.origin == origin)

    def settings(self, base: Settings) -> Settings:
        """Detection settings that know the organization and the trusted accounts."""
        return replace(
            base,
            trusted_accounts=base.trusted_accounts | self.ids("trusted"),
            organization_accounts=base.organization_accounts | self.ids("organization"),
            organization_learned=self.learned,
        )


def refresh(cfg: Config, state: Accounts, now: datetime) -> str | None:
    """Read the organization's accounts again if the stored list is older than the refresh interval.

    Returns an error to report, or None; on error the stored list stays.
    """
    if not cfg.inventory.organizations:
        return None
    _, fetched = state.org_accounts()
    if fetched is not None and now - fetched < timedelta(hours=cfg.inventory.refresh_hours):
        return None
    try:
        found = list_accounts(cfg.inventory.role_arn)
    except Exception as exc:  # any failure: keep the last good list, report it
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return f"organizations: cannot list accounts ({code or type(exc).__name__})"
    if not found:  # an organization always lists at least its management account: never wipe the inventory
        return "organizations: ListAccounts returned no accounts (not an organization's management account?)"
    state.replace_org_accounts((a["Id"], a["Name"] or a["Id"], a["Status"]) for a in found)
    return None


def learned(state: Ledger) -> list[str]:
    """Without Organizations configured, the organization is taken to be the accounts that deliver events to the
    trail (an organization trail's account folders; every account seen in the lake). A file that names another
    account can make it one of them: configure `[inventory] organizations` to know the organization for sure."""
    return sorted({account for account, _ in state.activity()})


def load(cfg: Config, state: Accounts | None = None) -> Inventory:
    """The stored organization accounts (or those learned from the trail), with the configured accounts' names,
    owners and channels on top."""
    accounts: dict[str, Account] = {}
    if state is not None:
        for account_id, name, status in state.org_accounts()[0]:
            accounts[account_id] = Account(account_id, name, "organization", status=status)
    if not cfg.inventory.organizations and isinstance(state, Ledger):
        for account_id in learned(state):
            accounts.setdefault(account_id, Account(account_id, account_id, "organization", status="learned"))
    for named in cfg.accounts:
        known = accounts.get(named.id)
        origin = known.origin if known else "trusted"
        accounts[named.id] = Account(
            named.id, named.name, origin, named.owner, named.channel, known.status if known else None
        )
    return Inventory(accounts, learned=not cfg.inventory.organizations)
