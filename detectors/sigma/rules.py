"""Sigma rules as detectors: each CloudTrail rule a detector of its own (`sigma-<rule id>`), with the same
grouping, finding ids, outbox, suppressions and engines as any other; every other file reported with why.

A rule's level is its severity, its description, false positives, references and ATT&CK tags its
investigation guide; it selects the events its whole condition matches (fields inside JSON objects read only
for the rows its other conditions leave) and raises one finding per principal, account and hour.
"""

from __future__ import annotations

import copyreg
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detectors.core.base import TACTICS, Context, Detector, Guide, Judge
from detectors.core.lazy import pd
from detectors.core.severity import Severity
from detectors.sigma import Loaded
from detectors.sigma.compile import Any_, Frame, Node, Unsupported, compile_tree, necessary, refuse_large_patterns
from detectors.sigma.counts import Aggregation, Counted

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML was built with it: 10x faster


def _parsed(text: str) -> Any:
    """A rule file's YAML, read safely (no Python objects), as pySigma reads it."""
    return yaml.load(text, Loader=_LOADER)


LEVELS = {
    "informational": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
SUFFIXES = (".yml", ".yaml")


class _RuleClass(type):
    """A rule's class is made at run time: it pickles as its rule's text, so that worker processes (a scan's,
    a Dask cluster's) rebuild it."""


class SigmaDetector(Detector, metaclass=_RuleClass):
    """The detector of one Sigma rule; `rule()` makes the class."""

    condition: ClassVar[Node]
    source: ClassVar[str]  # the rule's file
    text: ClassVar[str]  # the rule's YAML
    tags: ClassVar[tuple[str, ...]] = ()

    def select(self, events: pd.DataFrame) -> pd.Series:
        return self.condition.mask(Frame.of(events), pd.Series(True, index=events.index))

    @classmethod
    def needs(cls, columns: frozenset[str]) -> Mapping[str, Sequence[Judge]] | None:
        return necessary(cls.condition, columns)

    def hits(self, events: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        principal = events["principal"].fillna("-")
        account = events["recipient_account_id"].fillna("-")
        return events.assign(
            kind="match",
            severity=self.severity,
            dedup_key=account + "|" + principal,
            summary=principal + " called " + events["event_name"].fillna("-") + " in " + account,
        )


def rule(text: str, source: str) -> type[SigmaDetector]:
    """The detector class of a rule's YAML; Unsupported says why it cannot be one, SigmaError why it is no rule."""
    document = _parsed(text)
    refuse_large_patterns(document.get("detection") if isinstance(document, dict) else None)
    parsed = SigmaRule.from_yaml(text)
    product, service = parsed.logsource.product, parsed.logsource.service
    if (product, service) != ("aws", "cloudtrail"):
        raise Unsupported(f"logsource is not AWS CloudTrail (product {product}, service {service})")
    if len(parsed.detection.condition) != 1:
        raise Unsupported("more than one condition")
    if "|" in parsed.detection.condition[0]:  # the old aggregation syntax: a count over the rule's selection
        return _counted(text, source, parsed.detection.condition[0])
    if " near " in f" {parsed.detection.condition[0]} ":
        raise Unsupported("a temporal correlation (near) without a timeframe")
    condition = compile_tree(parsed.detection.parsed_condition[0].parsed)
    columns = tuple(dict.fromkeys(f.column for f in condition.fields()))
    tags = tuple(str(t) for t in parsed.tags)
    attack = [f"MITRE ATT&CK {t.name.upper()}" for t in parsed.tags if t.namespace == "attack" and t.name[:1] == "t"]
    title = parsed.title
    attributes: dict[str, Any] = {
        "id": f"sigma-{parsed.id}" if parsed.id else f"sigma-{_slug(title)}",
        "title": title,
        "severity": LEVELS.get(parsed.level.name.lower() if parsed.level else "medium", Severity.MEDIUM),
        "trigger": f"Sigma rule {Path(source).name}",
        "references": (*(str(r) for r in parsed.references), *attack) or (f"Sigma rule {Path(source).name}",),
        "columns": columns or ("event_name",),
        "select_columns": tuple(dict.fromkeys(("event_name", *columns))),
        "condition": condition,
        "source": source,
        "text": text,
        "tags": tags,
        "tactics": _tactics(parsed),
        "guide": _guide(
            parsed,
            parsed.description or title,
            "Read the matched events (event_ids) and what the principal did in the hours around them.",
            {"match": f"events matching the Sigma rule '{title}' ({Path(source).name})"},
        ),
    }
    return type(f"Sigma_{_slug(title).replace('-', '_')}", (SigmaDetector,), attributes)


def _counted(text: str, source: str, condition: str) -> type[SigmaDetector]:
    """An aggregating rule: the detector of its selection, counting what that selects (see `counts`)."""
    document = _parsed(text)
    detection = document["detection"]
    base, aggregation = Aggregation.from_pipe(
        condition, detection.pop("timeframe", None) or document.pop("timeframe", None)
    )
    detection["condition"] = base
    selection = rule(yaml.safe_dump(document, sort_keys=False), source)
    columns = tuple(f.column for f in (aggregation.counted, *aggregation.by) if f)
    attributes = {
        "text": text,
        "aggregation": aggregation,
        "lookbehind": aggregation.span,
        "columns": tuple(dict.fromkeys((*selection.columns, *columns))),
        "trigger": f"{selection.trigger}: {aggregation.text} within {aggregation.span}",
    }
    return type(selection.__name__, (Counted, selection), attributes)


def correlation(text: str, source: str, referenced: tuple[type[SigmaDetector], ...]) -> type[SigmaDetector]:
    """A correlation rule's detector: the events any of its rules match, counted as it says (see `counts`)."""
    parsed = SigmaCorrelationRule.from_dict(_parsed(text))
    aggregation = Aggregation.from_correlation(parsed, tuple(r.condition for r in referenced))
    title, tags = parsed.title, tuple(str(t) for t in parsed.tags)
    columns = tuple(dict.fromkeys((*(c for r in referenced for c in r.columns), *(f.column for f in aggregation.by))))
    names = ", ".join(r.title for r in referenced)
    attributes: dict[str, Any] = {
        "id": f"sigma-{parsed.id}" if parsed.id else f"sigma-{_slug(title)}",
        "title": title,
        "severity": LEVELS.get(parsed.level.name.lower() if parsed.level else "medium", Severity.MEDIUM),
        "trigger": f"Sigma correlation {Path(source).name}: {aggregation.text} within {aggregation.span}",
        "references": tuple(str(r) for r in parsed.references) or (f"Sigma correlation {Path(source).name}",),
        "columns": columns,
        "select_columns": tuple(dict.fromkeys(("event_name", *columns))),
        "condition": Any_([r.condition for r in referenced]),
        "aggregation": aggregation,
        "lookbehind": aggregation.span,
        "source": source,
        "text": text,
        "rebuild": (correlation, (text, source, referenced)),
        "tags": tags,
        "tactics": tuple(dict.fromkeys((*_tactics(parsed), *(t for r in referenced for t in r.tactics)))),
        "guide": _guide(
            parsed,
            parsed.description or f"{title}: {aggregation.text} of events matching {names}.",
            "Read the counted events (event_ids): who, from where, and what came next.",
            {"count": f"{aggregation.text} within {aggregation.span} of events matching {names}"},
        ),
    }
    return type(f"Sigma_{_slug(title).replace('-', '_')}", (Counted, SigmaDetector), attributes)


def _tactics(parsed: Any) -> tuple[str, ...]:
    """The ATT&CK tactics a rule's tags name (`attack.defense-evasion`, or the older `attack.defense_evasion`)."""
    named = (str(t.name).lower().replace("_", "-") for t in parsed.tags if t.namespace == "attack")
    return tuple(dict.fromkeys(n for n in named if n in TACTICS))


def _guide(parsed: Any, description: str, investigation: str, kinds: dict[str, str]) -> Guide:
    """A rule's guide from its own words; the first three triage lines are what a Slack alert shows: the
    description, the false positives the author lists, and the ATT&CK tags and references."""
    tags = ", ".join(str(t) for t in parsed.tags) or "none"
    positives = tuple(str(f) for f in parsed.falsepositives) or ("None listed by the rule.",)
    references = ", ".join(str(r) for r in parsed.references) or "none"
    return Guide(
        triage=(
            description,
            f"False positives the rule lists: {'; '.join(positives)}",
            f"Tags: {tags}; references: {references}",
        ),
        investigation=(investigation,),
        false_positives=positives,
        response=(f"Follow the rule's references: {references}.",),
        kinds=kinds,
    )


def _reduce(cls: Any) -> Any:
    if "rebuild" in cls.__dict__:
        return cls.rebuild
    return (rule, (cls.text, cls.source)) if "text" in cls.__dict__ else cls.__qualname__


copyreg.pickle(_RuleClass, _reduce)


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


_NOT_READ = (SigmaError, ValueError, TypeError, KeyError, AttributeError, OSError, yaml.YAMLError)


def load(paths: Iterable[str | Path]) -> Loaded:
    """Every .yml/.yaml file under `paths` (files or folders, recursively), as a detector or a reason. Correlation
    rules come after the rules they name (by `name` or id); a rule a correlation uses only feeds it, unless the
    correlation says `generate: true`."""
    loaded, correlations, by_name = Loaded(), [], {}
    for path in _files(paths):
        if not path.exists():
            loaded.refused.append((str(path), "no such file or folder"))
            continue
        try:
            text = path.read_text()
            document = _parsed(text)
            if isinstance(document, dict) and "correlation" in document:
                correlations.append((path, text, document))
                continue
            detector = rule(text, str(path))
            loaded.detectors.append(detector)
            by_name.update({key: detector for key in (document.get("name"), document.get("id")) if key})
        except Unsupported as exc:
            loaded.refused.append((str(path), str(exc)))
        except _NOT_READ as exc:
            loaded.refused.append((str(path), f"not a Sigma rule this engine reads ({type(exc).__name__}: {exc})"))
    fed: set[str] = set()
    for path, text, document in correlations:
        names = document["correlation"].get("rules") or []
        missing = [n for n in names if n not in by_name]
        try:
            if missing:
                raise Unsupported(f"names rules that are not loaded: {', '.join(map(str, missing))}")
            referenced = tuple(by_name[n] for n in names)
            loaded.detectors.append(correlation(text, str(path), referenced))
            fed |= set() if document["correlation"].get("generate") else {r.id for r in referenced}
        except Unsupported as exc:
            loaded.refused.append((str(path), str(exc)))
        except _NOT_READ as exc:
            loaded.refused.append((str(path), f"not a Sigma correlation ({type(exc).__name__}: {exc})"))
    loaded.detectors = [d for d in loaded.detectors if d.id not in fed]
    ids = [d.id for d in loaded.detectors]
    for detector in [d for d in loaded.detectors if ids.count(d.id) > 1]:
        loaded.refused.append((detector.source, f"duplicate rule id {detector.id}"))
    loaded.detectors = [d for d in loaded.detectors if ids.count(d.id) == 1]
    return loaded


def _files(paths: Iterable[str | Path]) -> Sequence[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES) if path.is_dir() else [path]
    return found
