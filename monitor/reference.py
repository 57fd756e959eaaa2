"""The documentation's generated parts, from the code so that they cannot drift from it (a test compares): the
configuration reference in docs/configuration.md (from the settings models), the detector catalog in
docs/detectors.md (from each detector's metadata and guide) and the OCSF mapping in docs/lake.md (from
`monitor.ingest.ocsf`). `python -m monitor.reference docs` rewrites them."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from detectors.core import registry
from monitor.config import Config, NamedAccount, tunables
from monitor.ingest import ocsf
from monitor.ingest.sources.settings import SourceSettings
from monitor.typed import Section, Text, Whole


def _toml(value: Any) -> str:
    """A default as TOML writes it; none is shown as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return f"{value:_}".replace("_", ",") if isinstance(value, int) and value >= 10_000 else str(value)


def _accepts(info: FieldInfo) -> str:
    if isinstance(info.annotation, type) and issubclass(info.annotation, bool):
        return "true or false"
    if get_origin(info.annotation) is tuple:
        each = get_args(info.annotation)[0]
        what = next((m.expects for m in getattr(each, "__metadata__", ()) if isinstance(m, Text)), "")
        return f"a list, each {what}" if what and what != Text().what else "a list"
    found = next((m for m in info.metadata if isinstance(m, Whole | Text)), None)
    if isinstance(found, Whole):
        return f"{found.low:,} to {found.high:,}"
    return "" if found is None or found.what == Text().what else found.what


def _rows(model: type[BaseModel], prefix: str) -> Iterator[Row]:
    for name, info in model.model_fields.items():
        default = "required" if info.is_required() else _toml(info.get_default(call_default_factory=True))
        yield Row(f"{prefix}{info.alias or name}", default, _accepts(info), info.description or "")


class Row(NamedTuple):
    key: str
    default: str
    accepts: str
    meaning: str


def rows() -> Iterator[Row]:
    """Every key the configuration reads, in the order of its tables."""
    for name, info in Config.model_fields.items():
        table = info.alias or name
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, Section):
            yield from _rows(kind, f"{table}.")
        elif name == "sources":
            for f in dataclasses.fields(SourceSettings):
                default = "required" if f.default is dataclasses.MISSING else _toml(f.default)
                yield Row(f"sources[].{f.name}", default, "", f.metadata["doc"])
        elif name == "accounts":
            yield from _rows(NamedAccount, "accounts[].")
        elif name in ("lake", "state"):
            yield Row(f"{table}.{'uri' if name == 'lake' else 'path'}", "–", "", info.description or "")
        elif name == "detectors":
            for detector in [*registry.load(), *registry.POSTURE]:
                options = ", ".join(f"{k} = {_toml(v)}" for k, v in tunables(detector).items())
                meaning = "run it" + (f"; its options (defaults): {options}" if options else "")
                yield Row(f"detectors.{detector.id}.enabled", "true", "true or false", meaning)


def configuration() -> str:
    lines = ["| Key | Default | Accepts | Meaning |", "|---|---|---|---|"]
    lines += [f"| `{r.key}` | `{r.default}` | {r.accepts} | {r.meaning.replace('|', '/')} |" for r in rows()]
    return "\n".join(lines)


def catalog() -> str:
    """One section per detector: what it fires on, how severe, its kinds, options, references and guide."""
    checks = [*registry.load(), *registry.POSTURE]
    lines = ["| Detector | Up to | Title |", "|---|---|---|"]
    lines += [f"| [`{c.id}`](#{c.id}) | {c.max_severity()} | {c.title} |" for c in checks] + [""]
    for check in checks:
        guide, options = check.guide, tunables(check)
        lines += [f"### {check.id}", "", f"**{check.title}**, up to **{check.max_severity()}**.", ""]
        lines += [f"- Fires on: {check.fires_on()}.", f"- Severity: {check.rated()}."]
        lines += [f"- Kind `{kind}`: {meaning}" for kind, meaning in guide.kinds.items()]
        if options:
            shown = ", ".join(f"`{k} = {_toml(v)}`" for k, v in options.items())
            lines.append(f"- Options in `[detectors.{check.id}]`: {shown}.")
        lines.append(f"- References: {'; '.join(check.references)}.")
        if check.tactics:
            lines.append(f"- ATT&CK tactics: {', '.join(check.tactics)}.")
        lines.append("")
        for part in ("triage", "investigation", "false_positives", "response"):
            steps = " ".join(getattr(guide, part))
            lines.append(f"**{part.replace('_', ' ').capitalize()}.** {steps}")
            lines.append("")
    return "\n".join(lines).rstrip()


def ocsf_mapping() -> str:
    """How Security Lake's OCSF becomes CloudTrail's fields, and what it cannot carry."""
    lines = ["| OCSF | CloudTrail | only in |", "|---|---|---|"]
    for source, target, kind in ocsf.MAPPING:
        lines.append(f"| `{source}` | `{target}` | {f'class {kind}' if kind else 'every class'} |")
    lines += ["| `unmapped[<path>]` | the field at that CloudTrail path, when not set above | every class |"]
    missing = ", ".join(f"`{f}`" for f in ocsf.NOT_CARRIED)
    return "\n".join([*lines, "", f"Read only from `unmapped`, as OCSF has no field for them: {missing}."])


class Block(NamedTuple):
    """A generated part of a page, between two markers."""

    page: str
    name: str
    text: Callable[[], str]

    @property
    def start(self) -> str:
        return f"<!-- {self.name}: generated by python -m monitor.reference docs -->"

    @property
    def end(self) -> str:
        return f"<!-- end of the {self.name} -->"

    def generated(self) -> str:
        return f"{self.start}\n\n{self.text()}\n\n{self.end}"

    def shown(self, docs: Path) -> str:
        """What the page holds between the markers now."""
        text = (docs / self.page).read_text()
        return text[text.index(self.start) : text.index(self.end) + len(self.end)]


BLOCKS = (
    Block("configuration.md", "configuration reference", configuration),
    Block("detectors.md", "detector catalog", catalog),
    Block("lake.md", "OCSF mapping", ocsf_mapping),
)


def rewrite(docs: Path) -> list[str]:
    """Put each generated part between its markers; returns the pages that changed."""
    changed = []
    for block in BLOCKS:
        page = docs / block.page
        text = page.read_text()
        new = text.replace(block.shown(docs), block.generated())
        if new != text:
            page.write_text(new)
            changed.append(block.page)
    return changed


if __name__ == "__main__":
    print("\n".join(f"rewritten: {page}" for page in rewrite(Path(sys.argv[1]))) or "already up to date")
