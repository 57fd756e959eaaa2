"""The detector contract: metadata, the context a detector sees, and the findings frame it returns.

A detector is a pure function of a DataFrame of normalized events. It marks the rows it cares
about (`select`), says for each one which variant fired, how bad it is and what groups it
(`hits`), and the base class turns hits into findings: one per dedup key and fixed UTC-aligned
window, with a finding id that any slicing of the same events reproduces.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import translate
from typing import Any, ClassVar

from detectors.core.lazy import np, pd
from detectors.core.severity import Severity


@dataclass(frozen=True)
class Guide:
    """The investigation guide every detector carries, in Elastic's fixed skeleton.

    `kinds` says, for a detector with several variants, what each one means and what to do first.
    """

    triage: tuple[str, ...]
    investigation: tuple[str, ...]
    false_positives: tuple[str, ...]
    response: tuple[str, ...]
    kinds: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class History:
    """What a stateful detector compares new events against: how far back, and by which key.

    The baseline is one row per key with `first_seen`, `last_seen` and `count`, built by
    `summarize` over the rows the detector's `remember` keeps. It is compact and mergeable, so
    the service keeps one summary per day, and a notebook or a distributed engine can build it
    with the same two functions.
    """

    days: int
    keys: tuple[str, ...]


BASELINE_STATS = ("first_seen", "last_seen", "count")


def empty_baseline(keys: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({k: pd.Series(dtype=object) for k in keys})
    return frame.assign(
        first_seen=pd.Series(dtype="datetime64[us, UTC]"),
        last_seen=pd.Series(dtype="datetime64[us, UTC]"),
        count=pd.Series(dtype="int64"),
    )


def summarize(keyed: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Key columns plus `event_time` -> one row per key: first seen, last seen, count."""
    if keyed.empty:
        return empty_baseline(keys)
    grouped = keyed.groupby(list(keys), sort=False, dropna=False)["event_time"]
    return grouped.agg(first_seen="min", last_seen="max", count="size").reset_index()


def merge(parts: list[pd.DataFrame], keys: tuple[str, ...]) -> pd.DataFrame:
    """Several summaries (e.g. one per day) -> one: the reduction is associative."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_baseline(keys)
    grouped = pd.concat(parts, ignore_index=True).groupby(list(keys), sort=False, dropna=False)
    return grouped.agg(
        first_seen=("first_seen", "min"), last_seen=("last_seen", "max"), count=("count", "sum")
    ).reset_index()


def full_match(patterns: tuple[str, ...], within: str = "") -> re.Pattern[str] | None:
    """One regex that full-matches any of the globs: `ci-logs` never matches `ci-logs-replica`. With `within`, a
    `*` or `?` never matches one of those characters (a path's separator)."""
    if not patterns:
        return None
    globs = "|".join(f"(?:{translate(p)})" for p in patterns)
    if within:  # translate's `*` is `.*` and its `?` an unescaped `.`
        other = f"[^{re.escape(within)}]"
        globs = re.sub(r"(?<!\\)\.(\*)?", lambda m: other + "*" if m[1] else other, globs)
    return re.compile(globs)


# judges a column's distinct values (Python values, None for null): which of them a select could choose
Judge = Callable[[Sequence[str | None]], "np.ndarray"]


@dataclass(frozen=True)
class Wanted:
    """What a select asks of one column, as data: values it takes, or a regular expression a whole value
    matches (a null is matched as ""). Being data, engines can also ask it of a record's raw fields without
    building the column (a scan's pre-filter, `monitor.detect.prefilter`)."""

    values: frozenset[str] = frozenset()
    pattern: str | None = None

    def __post_init__(self) -> None:
        if "" in self.values:  # the lake holds some empty texts as null: "" could not mean the same everywhere
            raise ValueError("an empty text is not a value a select can want")
        if self.pattern is not None:
            re.compile(self.pattern)

    def mask(self, column: pd.Series) -> pd.Series:
        """Each row's verdict, its distinct values judged once (with Python's `re`, as everywhere it is asked)."""
        codes, distinct = pd.factorize(column, use_na_sentinel=True)
        verdicts = self.judge([None if pd.isna(v) else str(v) for v in distinct] + [None])  # code -1: a null
        return pd.Series(verdicts[codes], index=column.index)

    def judge(self, values: Sequence[str | None]) -> np.ndarray:
        """Which of a column's distinct values (None for null) the select takes."""
        pattern = re.compile(self.pattern) if self.pattern is not None else None
        taken = [v in self.values or (pattern is not None and pattern.fullmatch(v or "") is not None) for v in values]
        return np.array(taken, dtype=bool)


@dataclass(frozen=True)
class Settings:
    """Detection settings shared by every detector, from the configuration file."""

    trusted_accounts: frozenset[str] = frozenset()
    external_idp_roles: tuple[str, ...] = ()
    monitor_role_arns: frozenset[str] = frozenset()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    organization_accounts: frozenset[str] = frozenset()  # from the account inventory
    organization_learned: bool = False  # no inventory: the accounts that deliver events are taken as the organization

    def matches_external_idp(self, role_arns: pd.Series) -> pd.Series:
        """Roles of `external_idp_roles`, whose `*` never crosses a `/`: a role's path is free text its creator
        picks, so `role/okta-*` must not take `role/okta-x/anything`."""
        pattern = full_match(self.external_idp_roles, within="/")
        if pattern is None:
            return pd.Series(False, index=role_arns.index)
        return role_arns.fillna("").map(lambda arn: pattern.fullmatch(arn) is not None).astype(bool)


@dataclass(frozen=True)
class Context:
    """What a detector may know besides the events: read-only, no I/O behind it.

    `baseline` is the summary of the detector's history before the events (see `History`); None
    when there is no history at hand, which makes every key new.
    """

    settings: Settings = field(default_factory=Settings)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    baseline: pd.DataFrame | None = None


FINDING_COLUMNS = (
    "finding_id",
    "detector",
    "kind",
    "severity",
    "title",
    "summary",
    "event_ids",
    "event_names",
    "event_time",
    "last_seen",
    "account_id",
    "target_account_id",
    "region",
    "principal",
    "identity_type",
    "source_ip",
    "user_agent",
    "dedup_key",
    "details",
)
# Columns the base class reads for every detector (own-call exclusion and the findings contract).
BASE_COLUMNS = (
    "event_id",
    "event_time",
    "event_name",
    "recipient_account_id",
    "aws_region",
    "principal",
    "user_type",
    "user_arn",
    "session_issuer_arn",
    "shared_event_id",
    "role_arn",
    "source_ip",
    "user_agent",
    "user_account_id",  # with error_code: whether a call that assumes TrailGuard's own role is TrailGuard's
    "error_code",
)


def finding_id(detector: str, kind: str, dedup_key: str, window_start: datetime) -> str:
    return _hashed(detector, kind, dedup_key, window_start.isoformat())


def _hashed(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def empty_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})


# MITRE ATT&CK's enterprise tactics, in its kill-chain order, as Sigma tags them (`attack.defense-evasion`)
TACTICS = (
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)


class Check:
    """What every entry of the catalog declares, whether it reads events or IAM state: its id and
    title, default severity, references, investigation guide and tunable options."""

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    references: ClassVar[tuple[str, ...]]
    tactics: ClassVar[tuple[str, ...]] = ()  # the ATT&CK tactics (TACTICS) its findings are evidence of
    history: ClassVar[History | None] = None
    highest: ClassVar[Severity | None] = None  # the most severe finding it raises, when above `severity`
    trigger: ClassVar[str] = ""  # what makes it fire, in a few words (`trailguard detectors`; default: its title)
    rating: ClassVar[str] = ""  # how severe each finding is and why (the catalog's words; default: its severity)
    # tunables from `[detectors.<id>]`: the defaults here fix each one's type
    options: ClassVar[Mapping[str, Any]] = {}
    guide: ClassVar[Guide]

    @classmethod
    def max_severity(cls) -> Severity:
        return cls.highest or cls.severity

    @classmethod
    def fires_on(cls) -> str:
        return cls.trigger or cls.title

    @classmethod
    def rated(cls) -> str:
        return cls.rating or str(cls.severity)

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[str]:
        """What is wrong with configured option values beyond their type (empty when nothing is)."""
        return []

    def option(self, ctx: Context, name: str) -> Any:
        return ctx.settings.options.get(self.id, {}).get(name, self.options[name])


class Detector(Check):
    """Base of every event detector. Subclasses set the metadata and implement `select` and `hits`."""

    columns: ClassVar[tuple[str, ...]]
    # `select` as data, for most detectors: a row is selected when one of these columns holds what is wanted of
    # it. A detector that declares `wants` gets `select` and `select_columns` from it; one that writes `select`
    # itself declares its `select_columns` (and no `wants`), and a scan then decodes every record for it.
    wants: ClassVar[Mapping[str, Wanted]] = {}
    select_columns: ClassVar[tuple[str, ...]] = ("event_name",)
    window: ClassVar[timedelta] = timedelta(hours=1)
    # how far before and after its range a detector must see events to judge the range (a burst, a
    # session's origin): engines hand it those as context, and it reports only the range's findings
    lookbehind: ClassVar[timedelta] = timedelta(0)
    lookahead: ClassVar[timedelta] = timedelta(0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.wants and "select_columns" not in cls.__dict__:
            cls.select_columns = tuple(cls.wants)

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        """Every normalized column this detector needs, its own and the base class's."""
        return tuple(dict.fromkeys(BASE_COLUMNS + cls.columns))

    @classmethod
    def needs(cls, columns: frozenset[str]) -> Mapping[str, Sequence[Judge]] | None:
        """What every row `select` chooses holds, in terms of `columns` only: in one of the columns returned, a
        value one of its judges takes. None when no such condition is known (a scan then decodes every record
        in full). By default, what `wants` declares."""
        if not cls.wants or cls.select is not Detector.select or not set(cls.wants) <= columns:
            return None
        return {column: [wanted.judge] for column, wanted in cls.wants.items()}

    def select(self, events: pd.DataFrame) -> pd.Series:
        """The rows a finding could come from: cheap, context-free, a superset of the hits.

        A function of each row's `select_columns` alone: engines run it before building the rest, and ask it
        once per distinct combination of those columns' values. By default, what `wants` declares.
        """
        if not self.wants:
            raise NotImplementedError
        chosen = pd.Series(False, index=events.index)
        for column, wanted in self.wants.items():
            chosen |= wanted.mask(events[column])
        return chosen

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        """The selected events that are findings, with `kind`, `severity`, `dedup_key`, `summary`.

        May add `account_id`, `target_account_id`, `details` (a dict) and `anchor` (the time whose
        window groups the row, by default its own); rows are grouped in their order, so put the
        row whose fields should represent a finding first.
        """
        raise NotImplementedError

    def remember(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        """For a stateful detector: the selected history rows it remembers, as `event_time` + history keys."""
        raise NotImplementedError

    def history_days(self, ctx: Context) -> int:
        """The baseline window in days: `history_days` in `[detectors.<id>]`, else the declared one."""
        assert self.history is not None, f"{self.id} keeps no history"
        return int(ctx.settings.options.get(self.id, {}).get("history_days", self.history.days))

    def baseline_rows(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        """History events -> the keyed rows a baseline summarizes (own calls excluded, as in `detect`)."""
        assert self.history is not None, f"{self.id} keeps no history"
        selected = events[self.select(events).fillna(False).astype(bool)]
        return self.remember(_without_own_calls(selected, ctx.settings), ctx)[["event_time", *self.history.keys]]

    def detect(
        self,
        events: pd.DataFrame,
        ctx: Context | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """The findings of the events, or only of the windows from `since` to `until` when the
        events around them are context (the detector's `lookbehind` and `lookahead`)."""
        ctx = ctx or Context()
        chosen = self.select(events).fillna(False).astype(bool)
        if not chosen.any():  # most detectors, most hours: nothing to judge
            return empty_findings()
        selected = events.loc[chosen, list(self.reads())]  # only its columns: a wide frame's others cost a copy
        hits = self.hits(_without_own_calls(selected, ctx.settings), ctx)
        anchor = hits["anchor"] if "anchor" in hits else hits["event_time"]
        owned = anchor.ge(since) if since else anchor.notna()
        hits = hits[owned & anchor.lt(until) if until else owned]
        if not len(hits):
            return empty_findings()
        with _no_collector_pauses():
            return self._group(hits)

    def _group(self, hits: pd.DataFrame) -> pd.DataFrame:
        """One finding per kind, dedup key and window, in the order of each one's first event.

        Vectorised: the first row of each group represents it, and the event ids and names are
        split out of one pass, so a day with thousands of findings costs milliseconds, not seconds.
        """
        rows = pd.DataFrame(
            {
                "kind": hits["kind"],
                "dedup_key": hits["dedup_key"],
                "window_start": (hits["anchor"] if "anchor" in hits else hits["event_time"]).dt.floor(self.window),
                "event_time": hits["event_time"],
                "event_id": hits["event_id"],
                "event_name": hits["event_name"],
                "severity": hits["severity"].astype(int),
                "summary": hits["summary"],
                "account_id": hits["account_id"] if "account_id" in hits else hits["recipient_account_id"],
                "target_account_id": hits.get("target_account_id", None),
                **{c: hits[c] for c in ("aws_region", "principal", "user_type", "source_ip", "user_agent")},
                "details": hits.get("details", None),
            }
        )
        if not rows["event_time"].is_monotonic_increasing:  # the first event represents, however rows arrived
            rows = rows.sort_values("event_time", kind="stable")
        number = rows.groupby(["kind", "dedup_key", "window_start"], sort=False, dropna=False).ngroup().to_numpy()
        first = rows[~pd.Series(number).duplicated().to_numpy()]
        per_group = rows.groupby(number)
        ids, names = _ordered_unique(number, rows["event_id"]), _ordered_unique(number, rows["event_name"])
        kinds, keys = first["kind"].tolist(), first["dedup_key"].tolist()
        starts, distinct = pd.factorize(first["window_start"])  # a few windows: each written out once
        written = [start.to_pydatetime().isoformat() for start in distinct]
        columns = {c: nulls_as_none(first[c]) for c in _REPRESENTED}
        found = pd.DataFrame(  # plain objects, as in `empty_findings`: a finding's text is not worth an Arrow copy
            {
                "finding_id": [
                    _hashed(self.id, str(k), str(d), written[s]) for k, d, s in zip(kinds, keys, starts, strict=True)
                ],
                "detector": self.id,
                "kind": kinds,
                "severity": [_SEVERITY_NAMES[s] for s in per_group["severity"].max().tolist()],
                "title": self.title,
                "summary": [
                    f"{s}{_listing(i, n)}" for s, i, n in zip(first["summary"].tolist(), ids, names, strict=True)
                ],
                "event_ids": ids,
                "event_names": names,
                "account_id": columns["account_id"],
                "target_account_id": columns["target_account_id"],
                "region": columns["aws_region"],
                "principal": columns["principal"],
                "identity_type": columns["user_type"],
                "source_ip": columns["source_ip"],
                "user_agent": columns["user_agent"],
                "dedup_key": keys,
                "details": [json.dumps(d, sort_keys=True) if d else "{}" for d in columns["details"]],
            },
            dtype=object,
        )
        first_seen, last_seen = (per_group["event_time"].agg(end).reset_index(drop=True) for end in ("min", "max"))
        found = found.assign(event_time=first_seen, last_seen=last_seen)
        return found[list(FINDING_COLUMNS)]


_SEVERITY_NAMES = {int(s): str(s) for s in Severity}
# the first event's fields that represent a finding
_REPRESENTED = (
    "account_id",
    "target_account_id",
    "aws_region",
    "principal",
    "user_type",
    "source_ip",
    "user_agent",
    "details",
)


@contextmanager
def _no_collector_pauses() -> Iterator[None]:
    """Python's cycle collector off while findings are built: their millions of small lists and strings hold no
    cycles, yet each allocation burst would make it walk every live object again (a third of a big day's time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _ordered_unique(number: np.ndarray, values: pd.Series) -> list[list[Any]]:
    """Per group number (0..n-1), its distinct values in the order they came."""
    pairs = pd.DataFrame({"group": number, "value": values.to_numpy(dtype=object)}).drop_duplicates()
    order = np.argsort(pairs["group"].to_numpy(), kind="stable")
    groups, ordered = pairs["group"].to_numpy()[order], pairs["value"].to_numpy()[order].tolist()
    bounds = [0, *(np.flatnonzero(np.diff(groups)) + 1).tolist(), len(ordered)]
    return [ordered[start:end] for start, end in itertools.pairwise(bounds)]


def _listing(ids: list[Any], names: list[Any]) -> str:
    """The summary's tail for a finding of several events: how many, and their first names."""
    if len(ids) < 2:
        return ""
    listed = ", ".join(map(str, names[:5])) + (", ..." if len(names) > 5 else "")
    return f" ({len(ids)} events: {listed})"


def nulls_as_none(column: pd.Series) -> list[Any]:
    """pandas' missing markers (NaN, NA) become None, so that every writer sees one null."""
    values = column.astype(object)
    return values.where(values.notna(), None).tolist()


def _without_own_calls(events: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Drop TrailGuard's own API calls, made through its configured roles, and every copy of them.

    The role owner's copy of TrailGuard assuming one of its roles names the role, not the caller (an account), so
    it is taken as TrailGuard's only when it succeeded and the caller is an account of TrailGuard's roles: anyone
    else assuming, or trying, the role that reads the whole organization's trail is what an attacker would do.
    A user agent marker alone is not trusted: any caller can set its user agent.
    """
    if not settings.monitor_role_arns or events.empty:
        return events
    roles = list(settings.monitor_role_arns)
    accounts = [arn.split(":")[4] for arn in roles]
    calling = events["session_issuer_arn"].isin(roles) | events["user_arn"].isin(roles)
    assuming = events["role_arn"].isin(roles) & events["user_account_id"].isin(accounts) & events["error_code"].isna()
    own = calling | assuming
    shared = events.loc[own, "shared_event_id"].dropna()
    return events[~(own | events["shared_event_id"].isin(shared))]
