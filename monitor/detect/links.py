"""What ties a finding to others: the identities behind its events and the unusual addresses they came from.

An identity is written once, whatever event shows it: the root user of an account, an IAM user by account and
name, a role by account and name (every session of a role is the role; an IAM Identity Center session is the
person it names), a federated user. A session also carries the identity that assumed its role, found through
the AssumeRole event that issued the session's access key (and so on up a chain); a CreateAccessKey carries
the user the key was made for. An address links only when it is unusual: a public address, not an AWS
service's and not in the configured trusted (corporate) ranges.

Keys are plain text (`user:111111111111:jack`, `addr:203.0.113.66`), so that the store can index them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from detectors.core.lazy import pd

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# the lake's columns keys are read from
COLUMNS = (
    "event_id",
    "event_time",
    "event_name",
    "recipient_account_id",
    "user_type",
    "user_account_id",
    "user_name",
    "user_principal_id",
    "principal",
    "session_issuer_arn",
    "access_key_id",
    "new_access_key_id",
    "target_user_name",
    "source_ip",
    "source_ip_is_service",
)
INTERNAL = tuple(  # RFC 1918, carrier-grade NAT, unique local: addresses shared by whole networks
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
IDENTITY_COLUMNS = (
    "user_type",
    "user_account_id",
    "recipient_account_id",
    "session_issuer_arn",
    "user_name",
    "user_principal_id",
    "principal",
)
SSO_ROLE = "AWSReservedSSO_"  # IAM Identity Center's roles: a permission set, worn by many people
CHAIN = 5  # hops followed from a session back to who assumed its role
SESSION = timedelta(hours=12)  # the longest a role session lasts: how far back its AssumeRole can be


@dataclass(frozen=True)
class Linking:
    """How findings are linked: the longest gap between two linked findings, and the addresses that do not link."""

    window: timedelta = timedelta(hours=24)
    trusted: tuple[Network, ...] = ()


def identity(events: pd.DataFrame) -> pd.Series:
    """Each event's caller as one key, or None (an AWS service acting)."""
    kind = events["user_type"].fillna("")
    account = events["user_account_id"].fillna(events["recipient_account_id"]).fillna("-")
    role = events["session_issuer_arn"].fillna("").str.rsplit("/", n=1).str[-1]
    keys = pd.Series(None, index=events.index, dtype=object)
    keys[kind.eq("Root")] = "root:" + account
    keys[kind.eq("IAMUser")] = "user:" + account + ":" + events["user_name"].fillna("-")
    sso = role.str.startswith(SSO_ROLE)
    keys[kind.eq("AssumedRole") & ~sso] = "role:" + account + ":" + role
    keys[kind.eq("AssumedRole") & sso] = "session:" + events["principal"].fillna("-")
    keys[kind.eq("FederatedUser")] = "federated:" + events["principal"].fillna("-")
    # another account's caller, as the role's account sees it (its own copy may be in a trail not collected)
    unique = events["user_principal_id"].fillna("").str.split(":").str[0]  # a role's id, without the session
    keys[kind.eq("AWSAccount")] = "caller:" + account + ":" + unique
    return keys.where(keys.notna() & ~keys.astype(str).str.endswith(":"), None)


def unusual(address: str, trusted: Sequence[Network]) -> bool:
    """An address that can tell a caller: a public one outside the trusted ranges. An AWS service's name, a
    private, shared, loopback or link-local address (a VPC endpoint's, a NAT's) stands for many callers."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return False
    return not any(ip in network for network in (*INTERNAL, *trusted))


def keys(findings: Mapping[str, Iterable[str]], events: pd.DataFrame, linking: Linking) -> dict[str, frozenset[str]]:
    """Each finding's keys (finding id -> the ids of its events), from `events`: its own events, and the
    AssumeRole and CreateAccessKey events that issued the access keys they used or made."""
    wanted = {i for ids in findings.values() for i in ids}
    # the findings' own events, and every event that issued a key (a session's, a new user key)
    events = events[events["event_id"].isin(wanted) | events["new_access_key_id"].notna()]
    events = events.drop_duplicates("event_id").reset_index(drop=True)
    row = {event_id: n for n, event_id in enumerate(events["event_id"])}
    mine = sorted({row[i] for i in wanted if i in row})
    callers = identity(events)
    who, addresses = callers.to_numpy(dtype=object), events["source_ip"].to_numpy(dtype=object)
    telling = {a for a in pd.unique(addresses[mine]) if isinstance(a, str) and unusual(a, linking.trusted)}
    used = events["access_key_id"].to_numpy(dtype=object)
    made = events["new_access_key_id"].where(events["event_name"].eq("CreateAccessKey")).to_numpy(dtype=object)
    stands = _issued(events, callers, {k for n in mine for k in (used[n], made[n]) if isinstance(k, str)})
    found = {}
    for finding_id, event_ids in findings.items():
        own = [row[i] for i in event_ids if i in row]
        linked = {who[n] for n in own if who[n]} | {f"addr:{addresses[n]}" for n in own if addresses[n] in telling}
        linked |= {i for n in own if made[n] in stands for i in stands[made[n]][0]}  # the user a new key is for
        frontier, seen = {used[n] for n in own if isinstance(used[n], str)}, set()
        for _ in range(CHAIN):  # a session's assumer may be a session too: up the chain
            frontier = {k for k in frontier if k in stands and k not in seen}
            seen |= frontier
            linked |= {i for k in frontier for i in stands[k][0]}
            frontier = {k for f in frontier for k in stands[f][1]}
        found[finding_id] = frozenset(linked)
    return found


def _issued(events: pd.DataFrame, who: pd.Series, wanted: set[str]) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """The `wanted` access keys issued in the events (and those their issuing calls used, up a chain) -> (whom
    each stands for, the keys its issuing calls were made with): a new user key stands for the user it was made
    for, a session's key for whoever assumed the role."""
    issuing = events[events["new_access_key_id"].notna()]
    made = issuing["event_name"].eq("CreateAccessKey") & issuing["target_user_name"].notna()
    account = issuing["recipient_account_id"].fillna("-")
    owner = ("user:" + account + ":" + issuing["target_user_name"].fillna("")).where(made, who[issuing.index])
    table = pd.DataFrame({"key": issuing["new_access_key_id"], "owner": owner, "used": issuing["access_key_id"]})
    stands: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for _ in range(CHAIN):
        rows = table[table["key"].isin(wanted - set(stands))]
        for key, group in rows.groupby("key", sort=False):
            stands[str(key)] = (frozenset(group["owner"].dropna()), frozenset(group["used"].dropna()))
        wanted = {used for _, keys_used in stands.values() for used in keys_used}
    return stands
