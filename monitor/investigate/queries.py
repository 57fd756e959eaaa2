"""Questions an analyst asks of the lake after an alert, as functions the notebooks call.

Each returns a small pandas frame: the notebooks only choose parameters, call these, and plot
(`monitor.investigate.plots`), so the same answers are one import away in any Jupyter session, and the
tests check them. Times are UTC; a principal is an ARN as the findings show it.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.console_login_without_mfa import through_idp
from detectors.core.assume_role import cross_account_calls
from detectors.core.base import Settings
from monitor.lake import Lake
from monitor.outbox.finding import rank
from monitor.store.state import State


def window(lake: Lake, start: str | None = None, end: str | None = None) -> tuple[datetime, datetime]:
    """The time range asked for, or the lake's newest whole day when none is given."""
    if start and end:
        return _utc(start), _utc(end)
    days = lake.days()
    if not days:
        raise ValueError(f"{lake.uri}: the lake holds no events")
    last = datetime.combine(days[-1], datetime.min.time(), UTC)
    return (_utc(start) if start else last), (_utc(end) if end else last + timedelta(days=1))


Moment = datetime | date | str  # a time, a day (its midnight, UTC) or ISO text; UTC unless it says otherwise


def events(lake: Lake, start: Moment, end: Moment) -> pd.DataFrame:
    """Every event in the range, duplicates dropped, oldest first."""
    frame: pd.DataFrame = lake.read(_utc(start), _utc(end)).to_pandas()
    return frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)


def finding(state_path: str | Path, finding_id: str | None = None) -> dict[str, Any]:
    """A stored finding; without an id, the earliest of the most severe open ones (where a story starts)."""
    state = State(Path(state_path), create=False)
    try:
        if finding_id:
            found = state.finding(finding_id)
            if found is None:
                raise ValueError(f"{state_path}: no finding {finding_id!r}")
            return found
        stored = state.list_findings(status="open")
    finally:
        state.close()
    if not stored:
        raise ValueError(f"{state_path}: no open findings")
    most = max(rank(f["severity"]) for f in stored)
    return min((f for f in stored if rank(f["severity"]) == most), key=lambda f: f["event_time"])


def incident_of(state_path: str | Path, finding_id: str) -> dict[str, Any] | None:
    """The incident a finding belongs to, with its findings (`members`, in time order); None if it has none."""
    state = State(Path(state_path), create=False)
    try:
        incident_id = state.incident_of(finding_id)
        told = state.incident(incident_id) if incident_id else None
        if told is None:
            return None
        members = [state.finding(f) for f in told["finding_ids"]]
    finally:
        state.close()
    return told | {"members": sorted((m for m in members if m), key=lambda m: m["event_time"])}


def incident_events(lake: Lake, incident: dict[str, Any], margin: timedelta = timedelta(hours=1)) -> pd.DataFrame:
    """What the incident's principals did and what came from its addresses, across its accounts, over its span."""
    start = datetime.fromisoformat(incident["first_seen"]) - margin
    frame = events(lake, start, datetime.fromisoformat(incident["last_seen"]) + margin)
    principals = {m["principal"] for m in incident["members"] if m["principal"]}
    mine = frame["principal"].isin(principals) | frame["source_ip"].isin(incident["addresses"])
    return frame[mine].reset_index(drop=True)


def flagged(state_path: str | Path) -> set[str]:
    """The event ids any stored finding names, open or resolved: what a timeline marks."""
    state = State(Path(state_path), create=False)
    try:
        return {event for found in state.list_findings() for event in found["event_ids"]}
    finally:
        state.close()


def account_names(state_path: str | Path) -> dict[str, str]:
    """Account id -> name, as the account inventory last stored them in the state file."""
    state = State(Path(state_path), create=False)
    try:
        return {account: name for account, name, _ in state.org_accounts()[0]}
    finally:
        state.close()


def of_principal(frame: pd.DataFrame, principal: str) -> pd.DataFrame:
    """What a principal did: its own calls, and for a role every session of it."""
    return frame[frame["principal"].eq(principal) | frame["session_issuer_arn"].eq(principal)]


def of_address(frame: pd.DataFrame, address: str) -> pd.DataFrame:
    """Every call from an address, or from any address of a network (CIDR), whoever made it."""
    if "/" not in address:
        return frame[frame["source_ip"].eq(address)]
    network = ipaddress.ip_network(address, strict=False)
    inside = {ip for ip in frame["source_ip"].dropna().unique() if _within(ip, network)}
    return frame[frame["source_ip"].isin(inside)]


def address_users(frame: pd.DataFrame) -> pd.DataFrame:
    """Who used the addresses in `frame` (from `of_address`): each principal and account with its calls, denials,
    first and last call and the event names, first used first: the identities one address links."""
    if frame.empty:
        return pd.DataFrame(columns=["principal", "account", "events", "denied", "first", "last", "calls"])
    who = frame["principal"].fillna(frame["user_name"]).fillna(frame["user_type"]).fillna("-")
    denied = frame["error_code"].fillna("").str.contains("AccessDenied|UnauthorizedOperation|Failed authentication")
    grouped = frame.assign(who=who, denied=denied).groupby(["who", "recipient_account_id"], dropna=False)
    table = grouped.agg(
        events=("event_id", "size"),
        denied=("denied", "sum"),
        first=("event_time", "min"),
        last=("event_time", "max"),
        calls=("event_name", lambda names: ", ".join(dict.fromkeys(names.dropna()))),
    )
    table = table.reset_index().rename(columns={"who": "principal", "recipient_account_id": "account"})
    return table.sort_values(["first", "principal"], ignore_index=True)


def first_seen(recent: pd.DataFrame, history: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """For each value of each column in `recent`: how often, when first, and whether `history` never had it."""
    rows = []
    for column in columns:
        known = set(history[column].dropna())
        for value, group in recent.dropna(subset=[column]).groupby(column):
            rows.append(
                {
                    "attribute": column,
                    "value": value,
                    "events": len(group),
                    "first": group["event_time"].min(),
                    "new": value not in known,
                }
            )
    result = pd.DataFrame(rows, columns=["attribute", "value", "events", "first", "new"])
    return result.sort_values(["new", "attribute", "first"], ascending=[False, True, True]).reset_index(drop=True)


def identities(frame: pd.DataFrame, access_key_id: str) -> pd.DataFrame:
    """Who stands behind an access key: the user or role session that used it (with the role a
    session belongs to) and, for a key an event issued, that call: `CreateAccessKey` for a user's
    key, `AssumeRole` for a session's, whose caller is the identity the session came from."""
    used = frame[frame["access_key_id"].eq(access_key_id)]
    rows = [
        {"step": "used by", "identity": p, "type": t, "role": r, "account": a, "source_ip": ip, "events": len(g)}
        for (p, t, r, a, ip), g in used.groupby(
            ["principal", "user_type", "session_issuer_arn", "user_account_id", "source_ip"], dropna=False
        )
    ]
    issued = frame[frame["new_access_key_id"].eq(access_key_id)]
    rows += [
        {
            "step": f"issued by {name}",
            "identity": principal,
            "type": kind,
            "role": role,
            "account": account,
            "source_ip": ip,
            "events": 1,
        }
        for name, principal, kind, role, account, ip in zip(
            issued["event_name"],
            issued["principal"],
            issued["user_type"],
            issued["role_arn"].where(issued["event_name"].str.startswith("AssumeRole"), issued["session_issuer_arn"]),
            issued["user_account_id"],
            issued["source_ip"],
            strict=True,
        )
    ]
    return pd.DataFrame(rows, columns=["step", "identity", "type", "role", "account", "source_ip", "events"])


def calls_by_service(frame: pd.DataFrame, every: str | None = None) -> pd.DataFrame:
    """Calls per service (rows) and time bucket (columns): the activity heatmap. The bucket is
    `every`, or the shortest of 5 minutes to a day that keeps the span within 48 columns."""
    if frame.empty:
        return pd.DataFrame()
    span = frame["event_time"].max() - frame["event_time"].min()
    every = every or next((e for e in ("5min", "15min", "1h", "6h") if span <= 48 * pd.Timedelta(e)), "1D")
    service = frame["event_source"].fillna("-").str.replace(".amazonaws.com", "", regex=False)
    bucket = frame["event_time"].dt.floor(every)
    return frame.groupby([service.rename("service"), bucket.rename("time")]).size().unstack(fill_value=0)


def errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed calls by error code and event name, denials first."""
    failed = frame[frame["error_code"].notna() | frame["error_message"].notna()]
    code = failed["error_code"].fillna(failed["error_message"])
    table = failed.groupby([code.rename("error"), failed["event_name"]]).size().rename("events").reset_index()
    table["denied"] = table["error"].str.contains("AccessDenied|UnauthorizedOperation|Failed authentication")
    return table.sort_values(["denied", "events"], ascending=False).reset_index(drop=True)


def networks(frame: pd.DataFrame) -> pd.DataFrame:
    """Where calls came from: each source address with its network (/24 or /48), whether it is
    private, and the AWS service name when an AWS service made the call. A geography column
    needs a GeoIP database, which TrailGuard does not ship."""
    rows = []
    for address, group in frame.dropna(subset=["source_ip"]).groupby("source_ip"):
        kind, network = _classify(str(address))
        rows.append(
            {
                "source_ip": address,
                "kind": kind,
                "network": network,
                "events": len(group),
                "first": group["event_time"].min(),
            }
        )
    return pd.DataFrame(rows, columns=["source_ip", "kind", "network", "events", "first"]).sort_values(
        "events", ascending=False, ignore_index=True
    )


def unusual_names(recent: pd.DataFrame, history: pd.DataFrame, rare: int = 2) -> pd.DataFrame:
    """Event names in `recent` the principal never or rarely (fewer than `rare` times) called before."""
    before = history["event_name"].value_counts()
    now = recent["event_name"].value_counts()
    table = pd.DataFrame({"events": now, "before": before.reindex(now.index).fillna(0).astype(int)})
    return table[table["before"] < rare].sort_values("events", ascending=False).rename_axis("event_name").reset_index()


def access_edges(frame: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cross-account role assumptions as edges: source account and principal -> role (target account),
    with successful and denied calls, and whether the edge is new against `history`."""
    calls = cross_account_calls(frame).drop_duplicates("call_id")
    if calls.empty:
        return pd.DataFrame(
            columns=[
                "source_account",
                "source_principal",
                "role_arn",
                "target_account",
                "calls",
                "denied",
                "first",
                "new",
            ]
        )
    ok = calls["succeeded"].fillna(False).astype(bool)
    keys = ["source_account", "source_principal", "role_arn", "target_account"]
    edges = (
        calls.assign(ok=ok, denied=~ok)
        .groupby(keys)
        .agg(calls=("ok", "sum"), denied=("denied", "sum"), first=("event_time", "min"))
    )
    edges = edges.reset_index()
    known: set[tuple[str, str, str]] = set()
    if history is not None and not history.empty:
        past = cross_account_calls(history)
        known = set(zip(past["source_account"], past["source_principal"], past["role_arn"], strict=True))
    triples = zip(edges["source_account"], edges["source_principal"], edges["role_arn"], strict=True)
    return edges.assign(new=[t not in known for t in triples])


def root_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Root's own calls: not those AWS services make for it."""
    return frame[frame["user_type"].eq("Root") & frame["invoked_by"].isna()]


def root_activity(frame: pd.DataFrame, every: str = "1h") -> pd.DataFrame:
    """Root's own calls per time bucket and event name."""
    root = root_events(frame)
    if root.empty:
        return pd.DataFrame()
    bucket = root["event_time"].dt.floor(every).rename("time")
    return root.groupby([bucket, root["event_name"]]).size().unstack(fill_value=0)


def key_lifecycle(frame: pd.DataFrame) -> pd.DataFrame:
    """Every access key the events show: its user, when it was created, first and last used, deleted."""
    created = frame[frame["event_name"].eq("CreateAccessKey") & frame["new_access_key_id"].notna()]
    deleted = frame[frame["event_name"].eq("DeleteAccessKey") & frame["succeeded"].eq(True)]
    deleted_keys = deleted["request_parameters"].map(lambda text: _field(text, "accessKeyId"))
    used = frame[frame["access_key_id"].fillna("").str.startswith("AKIA")]
    keys = set(created["new_access_key_id"]) | set(deleted_keys.dropna()) | set(used["access_key_id"])
    rows = []
    for key in sorted(keys):
        uses = used[used["access_key_id"].eq(key)]
        made = created[created["new_access_key_id"].eq(key)]
        gone = deleted[deleted_keys.eq(key)]
        owners = [*uses["principal"], *made["target_user_name"].fillna(made["principal"])]
        owners += [_field(text, "userName") for text in gone["request_parameters"]]
        rows.append(
            {
                "access_key_id": key,
                "user": next((o for o in owners if o), None),
                "created": made["event_time"].min(),
                "created_by": made["principal"].iloc[0] if len(made) else None,
                "first_used": uses["event_time"].min(),
                "last_used": uses["event_time"].max(),
                "deleted": gone["event_time"].min(),
                "calls": len(uses),
            }
        )
    return pd.DataFrame(
        rows, columns=["access_key_id", "user", "created", "created_by", "first_used", "last_used", "deleted", "calls"]
    )


OUTCOMES = ("with MFA", "MFA at the IdP", "without MFA", "failed")


def console_logins(frame: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Console sign-ins per principal: with MFA, through an identity provider (whose MFA CloudTrail cannot see,
    as the detector judges them; `settings` names the site's IdP roles), without MFA, and failed."""
    logins = frame[frame["event_name"].eq("ConsoleLogin")]
    if logins.empty:
        return pd.DataFrame(columns=list(OUTCOMES))
    ok = logins["succeeded"].fillna(False).astype(bool)
    mfa = logins["mfa_used"].eq(True) | logins["session_mfa_authenticated"].eq(True)
    idp = through_idp(logins, settings or Settings())
    outcome = pd.Series("failed", index=logins.index).mask(ok & ~mfa, "without MFA")
    outcome = outcome.mask(ok & ~mfa & idp, "MFA at the IdP").mask(ok & mfa, "with MFA")
    who = logins["principal"].fillna(logins["user_name"]).fillna("-")
    table = logins.groupby([who.rename("principal"), outcome.rename("outcome")]).size().unstack(fill_value=0)
    return table.reindex(columns=list(OUTCOMES), fill_value=0)


_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _classify(address: str) -> tuple[str, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "aws service" if address.endswith(".amazonaws.com") else "name", address
    network = str(ipaddress.ip_network(f"{address}/{24 if ip.version == 4 else 48}", strict=False))
    if any(ip in n for n in _PRIVATE if n.version == ip.version):
        return "private", network
    return ("public" if ip.is_global else "reserved"), network


def _within(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:  # an AWS service's name, not an address
        return False


def _field(text: object, name: str) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _utc(given: Moment) -> datetime:
    if isinstance(given, str):
        given = datetime.fromisoformat(given.replace("Z", "+00:00"))
    if not isinstance(given, datetime):
        given = datetime.combine(given, datetime.min.time())
    return given.replace(tzinfo=UTC) if given.tzinfo is None else given.astimezone(UTC)
