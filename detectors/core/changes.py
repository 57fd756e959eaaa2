"""Configuration changes watched by the CIS AWS Foundations monitoring controls (section 4).

Each control is a list of event names, sometimes tied to one event source. A detector for a
control is a table, not code: the names the CIS filter lists, the names it is known to miss,
which of them are high when they succeed, and the service they belong to. Names are paired with
their service, so Organizations' `CreatePolicy` is not an IAM policy change; where the CIS filter
names no service, the same names from any other service still match (as `other-service`, low),
so that nothing the filter would alarm on goes unreported.

Noise is handled by severity and grouping: one finding per principal, account and hour listing
every event; a failed attempt rates below a success; a change made by an AWS service on a
user's behalf (`invokedBy`) rates low.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from detectors.core.base import Context, Detector, Wanted
from detectors.core.lazy import np, pd
from detectors.core.severity import Severity

CHANGE_COLUMNS = ("event_source", "succeeded", "error_code", "invoked_by", "user_type")


class ChangeDetector(Detector):
    """A CIS monitoring control over configuration changes, declared by its tables."""

    service: ClassVar[str]  # the event source the names belong to
    cis_names: ClassVar[frozenset[str]]  # the published filter's names
    added: ClassVar[frozenset[str]] = frozenset()  # same effect, missed by the filter (listed in the guide)
    critical: ClassVar[frozenset[str]] = frozenset()  # high when they succeed, medium when they fail
    any_source: ClassVar[bool] = False  # the filter names no event source
    elsewhere: ClassVar[Mapping[str, frozenset[str]]] = {}  # source -> its names another detector reports
    severity = Severity.MEDIUM
    columns = CHANGE_COLUMNS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if hasattr(cls, "cis_names"):  # a control's table is what it selects
            cls.wants = {"event_name": Wanted(cls.names())}
        super().__init_subclass__(**kwargs)

    @classmethod
    def names(cls) -> frozenset[str]:
        return cls.cis_names | cls.added

    @classmethod
    def max_severity(cls) -> Severity:
        return Severity.HIGH if cls.critical else Severity.MEDIUM

    @classmethod
    def fires_on(cls) -> str:
        return f"{cls.service} calls: {', '.join(sorted(cls.names()))}"

    @classmethod
    def rated(cls) -> str:
        worst = f"high for {', '.join(f'`{n}`' for n in sorted(cls.critical))}, " if cls.critical else ""
        return (
            f"`change` medium, {worst}one step lower when the call failed, low when an AWS service made it for the "
            "principal (`invokedBy`); one finding per principal, account and hour"
            + ("; the same names from other services `other-service` low" if cls.any_source else "")
        )

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        own = events["event_source"].eq(self.service)
        taken = pd.Series(False, index=events.index)
        for source, names_there in self.elsewhere.items():
            taken |= events["event_source"].eq(source) & events["event_name"].isin(names_there)
        other = ~own & ~taken & events["event_name"].isin(self.cis_names)
        keep = own | (other & self.any_source)
        changes, own = events[keep], own[keep]
        failed = ~changes["succeeded"].fillna(False).astype(bool)
        critical = changes["event_name"].isin(self.critical)
        on_behalf = changes["invoked_by"].notna() | changes["user_type"].eq("AWSService")
        severity = np.select(
            [~own | on_behalf, critical & ~failed, critical | ~failed],
            [Severity.LOW, Severity.HIGH, Severity.MEDIUM],
            Severity.LOW,
        )
        account = changes["recipient_account_id"].fillna("-")
        principal = changes["principal"].fillna(changes["invoked_by"]).fillna("-")
        outcome = np.where(failed, " (failed: " + changes["error_code"].fillna("denied") + ")", "")
        return changes.assign(
            kind=np.where(own, "change", "other-service"),
            severity=severity,
            dedup_key=account + "|" + principal,
            summary=principal + " called " + changes["event_name"] + outcome + " in " + account,
        )


def change_kinds(service: str, added: frozenset[str] = frozenset()) -> dict[str, str]:
    """The guide's lines for the two kinds, naming the events added to the CIS list."""
    extra = f" (beyond the CIS list: {', '.join(sorted(added))})" if added else ""
    return {
        "change": f"a change through {service}{extra}; failed attempts rate lower, by AWS services low",
        "other-service": f"a name from the CIS list called on another service than {service}; kept because the "
        "CIS filter matches it, rated low",
    }


def names(text: str) -> frozenset[str]:
    """Event names as the CIS text lists them, separated by blanks."""
    return frozenset(text.split())
