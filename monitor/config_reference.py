"""The README's configuration reference, generated from the settings models so that it cannot drift from them
(a test compares): `python -m monitor.config_reference README.md` rewrites it in place."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from detectors.core import registry
from monitor.config import Config, NamedAccount, tunables
from monitor.ingest.sources.settings import SourceSettings
from monitor.typed import Section, Text, Whole

START = "<!-- configuration reference: generated from monitor/config.py by python -m monitor.config_reference -->"
END = "<!-- end of the configuration reference -->"


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


def reference() -> str:
    lines = [START, "", "| Key | Default | Accepts | Meaning |", "|---|---|---|---|"]
    lines += [f"| `{r.key}` | `{r.default}` | {r.accepts} | {r.meaning.replace('|', '/')} |" for r in rows()]
    return "\n".join([*lines, "", END])


def rewrite(readme: Path) -> bool:
    """Put the reference between its markers; True if the file changed."""
    text = readme.read_text()
    start, end = text.index(START), text.index(END) + len(END)
    new = text[:start] + reference() + text[end:]
    readme.write_text(new)
    return new != text


if __name__ == "__main__":
    print("rewritten" if rewrite(Path(sys.argv[1])) else "already up to date")
