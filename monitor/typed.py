"""Field types for settings models, each checking its value strictly and saying what it expects in the words the
configuration's reader sees ("expected a whole number from 1 to 86,400"), and describing itself for the
generated configuration reference."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, Strict
from pydantic_core import core_schema


class Problems(ValueError):
    """Several problems found by one check, each under its own key (relative to the checked value's)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {text}" if key else text for key, text in problems))
        self.problems = problems


class Section(BaseModel):
    """A table of the configuration: unknown keys are problems, and a read value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Whole:
    """A whole number within bounds (never a boolean, never a float)."""

    low: int
    high: int

    @property
    def expects(self) -> str:
        return f"a whole number from {self.low:,} to {self.high:,}"

    def check(self, value: object) -> object:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"expected {self.expects}")
        if isinstance(value, int) and not self.low <= value <= self.high:
            raise ValueError(f"expected {self.expects}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))


@dataclass(frozen=True)
class Text:
    """A non-empty string, optionally one that `valid` accepts (it is then `what`)."""

    what: str = "a non-empty string"
    valid: Callable[[str], object] | None = None

    @property
    def expects(self) -> str:
        return self.what

    def check(self, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a non-empty string")
        if self.valid is not None and not self.valid(value):
            raise ValueError(f"{value!r} is not {self.what}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))


def matching(pattern: str, what: str) -> Text:
    return Text(what, re.compile(pattern).fullmatch)


ACCOUNT = matching(r"\d{12}", "a 12-digit account id")
ROLE_ARN = matching(r"arn:aws[a-z-]*:iam::\d{12}:role/.+", "an IAM role ARN")

Flag = Annotated[bool, Strict()]
Account = Annotated[str, ACCOUNT]
RoleArn = Annotated[str, ROLE_ARN]


def _path(value: object) -> object:
    if isinstance(value, str) and value.strip():
        return Path(value).expanduser()
    if value is None or isinstance(value, Path):
        return value
    raise ValueError("expected a non-empty string")


@dataclass(frozen=True)
class _Expanded:
    """A path, `~` expanded."""

    expects: str = "a path"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_path, handler(source))


FilePath = Annotated[Path, _Expanded()]
