"""AssumeRole across account boundaries: what is new, and what comes from outside.

Every call is compared with the detector's history (see `History`): a (source account, source
principal, role) triple seen in the baseline window is quiet, whatever account it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from fnmatch import translate
from typing import Any, ClassVar

from detectors.core.assume_role import CALL_COLUMNS, cross_account_calls, session_origin
from detectors.core.base import Context, Detector, Guide, History, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity
from detectors.core.windows import burst_close

KEYS = ("source_account", "source_principal", "role_arn")


class CrossAccountAssumeRole(Detector):
    id = "cross-account-assume-role"
    title = "Cross-account role assumption"
    severity = Severity.HIGH
    trigger = "AssumeRole across accounts: from outside the organization, new, or denied in bursts"
    rating = (
        "`external-account` high: a new (source account, principal, role) triple from outside the "
        "organization and the trusted accounts; `first-seen` low from the organization, medium from a trusted "
        "account; `role-chain` high when any hop starts outside, else medium; `denied-burst` high; `denied` "
        "high, for a role the principal has not assumed before (a denied retry of a pair it assumes is context "
        "for an incident, not a finding). AWS services, same-account chaining, `expected` pairs and "
        "TrailGuard's own roles are never findings"
    )
    references = ("MITRE ATT&CK T1550.001", "MITRE ATT&CK T1078.004", "MITRE ATT&CK T1580")
    tactics = ("initial-access", "lateral-movement")
    columns = CALL_COLUMNS
    wants: ClassVar[Mapping[str, Wanted]] = {"event_name": Wanted(frozenset({"AssumeRole"}))}
    history = History(days=30, keys=KEYS)
    lookbehind = timedelta(hours=12)  # a session lasts up to 12 hours before it chains on
    lookahead = timedelta(hours=1)  # the longest denied-burst window
    options: ClassVar[Mapping[str, Any]] = {
        "denied_threshold": 10,
        "denied_window_minutes": 5,
        "organization": "low",
        "expected": [],
    }
    guide = Guide(
        triage=(
            "Read both accounts' names: is the source ours, a known vendor, or unknown?",
            "Was the role meant to trust that principal (its trust policy, its ExternalId)?",
            "Follow the session into the target account: what did it do after assuming the role?",
        ),
        investigation=(
            "List the source principal's other AssumeRole calls in the last 30 days (the cross-account notebook).",
            "For denied attempts, count the roles and accounts tried: many names is enumeration.",
            "For chains, find the first hop: who created the session that assumed this role?",
        ),
        false_positives=(
            "A new pipeline, vendor or account: add it to [[accounts]] or to the detector's `expected` pairs.",
            "A re-created role keeps its ARN but a new principal id: the first call after it is new.",
        ),
        response=(
            "If unexpected: tighten the role's trust policy, revoke its sessions (aws:TokenIssueTime),"
            " and review what they did.",
        ),
        kinds={
            "external-account": "The caller's account is neither in the organization nor a trusted account.",
            "first-seen": "This principal never assumed this role in the baseline window.",
            "role-chain": "A session that came from another account assumed a role in a third.",
            "denied-burst": "Many denied assumptions from one principal or account: role enumeration.",
            "denied": "A denied assumption of a role the principal has not assumed before (a denied retry of a role it "
            "assumes is no finding of its own: incidents show it beside the principal's findings).",
        },
    )

    @classmethod
    def option_problems(cls, options: Any) -> list[str]:
        bad = [e for e in options.get("expected", []) if not isinstance(e, dict) or set(e) != {"source", "role"}]
        problems = [f"expected entry {e!r} needs exactly `source` and `role`" for e in bad]
        if options.get("denied_window_minutes", 5) > cls.lookahead / timedelta(minutes=1):
            problems.append("denied_window_minutes may be at most 60")
        if options.get("organization", "low") not in ("low", "quiet"):
            problems.append('organization must be "low" or "quiet"')
        return problems

    def remember(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        calls = cross_account_calls(events)
        return calls[calls["succeeded"].fillna(False).astype(bool)].drop_duplicates("call_id")

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        calls = cross_account_calls(events).sort_values(["event_time", "owner_copy"], kind="stable")
        origin = session_origin(calls)  # before expected pairs go: a chain may start with one
        calls = calls[~self._expected(calls, ctx)]
        if calls.empty:
            return calls
        origin = origin[calls.index]
        org, trusted = ctx.settings.organization_accounts, ctx.settings.trusted_accounts
        external = ~calls["source_account"].isin(org | trusted)
        denied = ~calls["succeeded"].fillna(False).astype(bool)
        key = calls["source_account"] + "|" + calls["source_principal"] + "|" + calls["role_arn"]
        # known: in the history before the frame, or succeeded earlier in the frame (any slicing agrees)
        first_ok = calls["event_time"].where(~denied).groupby(key).transform("min")
        known = _known(calls, ctx.baseline) | first_ok.lt(calls["event_time"]).fillna(False)
        attempts = calls[denied].drop_duplicates("call_id")  # one row per call, the caller's copy if any
        threshold, minutes = int(self.option(ctx, "denied_threshold")), self.option(ctx, "denied_window_minutes")
        closes = [burst_close(attempts, k, threshold, timedelta(minutes=minutes)) for k in KEYS[:2]]
        earliest = pd.concat(closes).groupby(level=0).min().reindex(attempts.index)  # by principal or by account
        close = earliest.set_axis(attempts["call_id"]).reindex(calls["call_id"]).set_axis(calls.index)
        burst = close.notna()
        window = calls["event_time"].dt.floor(self.window).where(~denied & ~known)
        first = window.notna() & window.eq(window.groupby(key).transform("min"))  # a new triple fires once
        quiet_org = calls["source_account"].isin(org) & (self.option(ctx, "organization") == "quiet")
        high, medium, low = Severity.HIGH.value, Severity.MEDIUM.value, Severity.LOW.value
        cases = [  # (fires, kind, severity, what the principal did), the first that fires applies
            (denied & burst, "denied-burst", high, " was denied assuming roles again and again, e.g. "),
            (denied & ~known, "denied", high, " was denied assuming "),  # a known pair's retry: context
            (
                first & origin.notna(),
                "role-chain",
                np.where(external | ~origin.isin(org | trusted), high, medium),
                " chained from a session of account " + origin.fillna("") + " into ",
            ),
            (first & external, "external-account", high, ", outside the organization and not trusted, assumed "),
            (
                first & ~quiet_org,
                "first-seen",
                np.where(calls["source_account"].isin(org), low, medium),
                " first assumed ",
            ),
        ]
        fires = [c[0] for c in cases]
        kind = pd.Series(_first_of(fires, [c[1] for c in cases]), index=calls.index)
        did = pd.Series(_first_of(fires, [c[3] for c in cases]), index=calls.index)
        who = calls["principal"].fillna(calls["source_principal"]) + " (" + calls["source_account"] + ")"
        details = [
            {"role_arn": r, "origin_account": o}
            for r, o in zip(calls["role_arn"], origin.where(origin.notna(), None), strict=True)
        ]
        found = calls.assign(
            kind=kind,
            severity=_first_of(fires, [c[2] for c in cases]),
            account_id=calls["source_account"],
            target_account_id=calls["target_account"],
            anchor=close.where(burst, calls["event_time"]),  # a burst is one finding, where it crossed the threshold
            # a burst groups by account, other denials by principal (all roles tried), the rest by triple
            dedup_key=key.mask(denied, calls["source_account"] + "|" + calls["source_principal"]).mask(
                kind.eq("denied-burst"), calls["source_account"]
            ),
            summary=who + did.fillna("") + calls["role_arn"],
            details=pd.Series(details, index=calls.index, dtype=object),
        )
        return found[kind.notna()]

    def _expected(self, calls: pd.DataFrame, ctx: Context) -> pd.Series:
        """Configured expected pairs: `source` (an account id or principal, globs allowed) and `role`."""
        expected = pd.Series(False, index=calls.index)
        for pair in self.option(ctx, "expected"):
            source, role = translate(pair["source"]), translate(pair["role"])
            by = calls["source_account"].str.fullmatch(source) | calls["source_principal"].str.fullmatch(source)
            expected |= by.fillna(False) & calls["role_arn"].str.fullmatch(role).fillna(False)
        return expected


def _known(calls: pd.DataFrame, baseline: pd.DataFrame | None) -> pd.Series:
    if baseline is None or baseline.empty:
        return pd.Series(False, index=calls.index)
    seen = pd.MultiIndex.from_frame(baseline[list(KEYS)].astype(object))
    return pd.Series(pd.MultiIndex.from_frame(calls[list(KEYS)].astype(object)).isin(seen), index=calls.index)


def _first_of(conditions: list[pd.Series], values: list[Any]) -> np.ndarray:
    """Per row, the value (a scalar or one per row) of the first condition that holds; None if none does."""
    rows = len(conditions[0])
    fires = [c.to_numpy(dtype=bool) for c in conditions]
    return np.select(fires, [np.broadcast_to(np.asarray(v, dtype=object), rows) for v in values], np.asarray(None))
