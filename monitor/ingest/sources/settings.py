"""One source as configured: its place and its options, typed once, whether they came from a `[[sources]]`
table or from a URI's query (`--source 's3://trail?role_arn=...'`, one `lookup://` URI per member account)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from urllib.parse import parse_qs

from monitor.typed import Problems

SCHEMES = ("s3", "sqs", "lookup", "securitylake")  # and a local path
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/.+")
KMS_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/.+")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
ACCOUNT = re.compile(r"\d{12}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")

# the options a URI's query may carry, and the schemes each applies to ("" for local paths)
_APPLIES = {
    "role_arn": ("s3", "sqs", "lookup", "securitylake"),
    "accounts": ("s3", "securitylake"),
    "regions": ("s3", "securitylake"),
    "kms_key_arn": ("s3", "sqs", "securitylake"),
    "bucket": ("sqs",),
    "visibility": ("sqs",),
    "wait": ("sqs",),
}


@dataclass(frozen=True)
class SourceSettings:
    """One place events come from: s3://, sqs://, lookup:// or a local path (see `trailguard ingest --help`)."""

    uri: str = field(
        metadata={
            "doc": "s3://bucket[/prefix], sqs://<region>/<account-id>/<queue>, "
            "lookup://<region>[,<region>...], securitylake://bucket[/prefix] or a local path; options may follow a ?"
        }
    )
    role_arn: str | None = field(default=None, metadata={"doc": "assumed to read this source"})
    accounts: tuple[str, ...] = field(default=(), metadata={"doc": "s3, securitylake: only these accounts' prefixes"})
    regions: tuple[str, ...] = field(default=(), metadata={"doc": "s3, securitylake: only these regions' prefixes"})
    kms_key_arn: str | None = field(default=None, metadata={"doc": "the trail's KMS key, for the printed IAM policy"})
    bucket: str | None = field(default=None, metadata={"doc": "sqs: the trail bucket its notifications name"})
    visibility: int | None = field(
        default=None, metadata={"doc": "sqs: seconds a received message stays hidden (default 600)"}
    )
    wait: int | None = field(
        default=None,
        metadata={
            "doc": "sqs: seconds a receive waits for the first notification, as stream mode reads (default: none)"
        },
    )

    @property
    def name(self) -> str:
        """How messages and the watchdog name the source: its URI, and the role it is read through."""
        return f"{self.uri} (as {self.role_arn})" if self.role_arn else self.uri

    @property
    def scheme(self) -> str:
        """ "s3", "sqs", "lookup", "securitylake", or "" for a local path."""
        scheme, found, _ = self.uri.partition("://")
        return scheme if found else ""

    @property
    def place(self) -> list[str]:
        """The URI's parts after the scheme: s3 and securitylake [bucket, prefix]; sqs [region, account, queue];
        lookup regions."""
        rest = self.uri.partition("://")[2].strip("/")
        if self.scheme in ("s3", "securitylake"):
            bucket, _, prefix = rest.partition("/")
            return [bucket, prefix.strip("/")]
        if self.scheme == "lookup":
            return [r for r in rest.split(",") if r]
        return rest.split("/")

    def problems(self) -> list[tuple[str, str]]:
        """(option, problem) for every value that cannot be used; empty when the source can be read."""
        found: list[tuple[str, str]] = []
        if "://" in self.uri and self.scheme not in SCHEMES:
            found.append(("uri", f"{self.uri!r}: expected s3://, sqs://, lookup://, securitylake:// or a local path"))
            return found
        if self.scheme == "sqs" and len(self.place) != 3:
            found.append(("uri", f"{self.uri!r}: expected sqs://<region>/<account-id>/<queue>"))
        if self.scheme in ("s3", "securitylake") and not BUCKET.fullmatch(self.place[0]):
            found.append(("uri", f"{self.uri!r}: expected {self.scheme}://<bucket>[/<prefix>]"))
        if self.scheme == "lookup" and (not self.place or not all(REGION.fullmatch(r) for r in self.place)):
            found.append(("uri", f"{self.uri!r}: expected lookup://<region>[,<region>...]"))
        for option, applies in _APPLIES.items():
            if getattr(self, option) not in (None, ()) and self.scheme not in applies:
                found.append((option, f"only {', '.join(f'{s}://' for s in applies)} sources take {option}"))
        checks = [
            ("role_arn", ROLE_ARN, "an IAM role ARN"),
            ("kms_key_arn", KMS_ARN, "a KMS key ARN"),
            ("bucket", BUCKET, "an S3 bucket name"),
        ]
        found += [(k, f"{getattr(self, k)!r} is not {what}") for k, rx, what in checks if _bad(rx, getattr(self, k))]
        found += [(k, f"{v!r} is not a 12-digit account id") for k, v in _each(self.accounts, "accounts", ACCOUNT)]
        found += [(k, f"{v!r} is not an AWS region") for k, v in _each(self.regions, "regions", REGION)]
        if self.visibility is not None and not 0 <= self.visibility <= 43_200:
            found.append(("visibility", f"{self.visibility} is not 0 to 43200 seconds"))
        if self.wait is not None and not 1 <= self.wait <= 20:
            found.append(("wait", f"{self.wait} is not 1 to 20 seconds"))
        return found


def _bad(pattern: re.Pattern[str], value: str | None) -> bool:
    return value is not None and not pattern.fullmatch(value)


def _each(values: tuple[str, ...], key: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return [(key, v) for v in values if not pattern.fullmatch(v)]


class SourceError(Problems):
    """Every problem of one source, by option."""


def parse(text: str, **options: object) -> SourceSettings:
    """A source from a URI whose query may carry its options (`accounts` and `regions` comma-separated), with
    `options` (a configuration table's) on top; SourceError with every problem."""
    base, _, query = text.partition("?")
    try:
        given: dict[str, object] = {k: v[-1] for k, v in parse_qs(query, strict_parsing=bool(query)).items()}
    except ValueError:
        raise SourceError([("uri", "cannot read the options after '?'")]) from None
    known = {f.name for f in fields(SourceSettings)} - {"uri"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise SourceError([(k, f"unknown option (known: {', '.join(sorted(known))})") for k in unknown])
    given |= {k: tuple(v for v in str(given[k]).split(",") if v) for k in ("accounts", "regions") if k in given}
    given |= {k: v for k, v in options.items() if v not in (None, ())}
    visibility, wait = _seconds(given, "visibility"), _seconds(given, "wait")
    settings = SourceSettings(
        base,
        role_arn=_text(given.get("role_arn")),
        accounts=tuple(map(str, _items(given.get("accounts")))),
        regions=tuple(map(str, _items(given.get("regions")))),
        kms_key_arn=_text(given.get("kms_key_arn")),
        bucket=_text(given.get("bucket")),
        visibility=visibility,
        wait=wait,
    )
    problems = settings.problems()
    if problems:
        raise SourceError(problems)
    return settings


def _seconds(given: dict[str, object], option: str) -> int | None:
    value = given.get(option)
    if value is None or isinstance(value, int):
        return value
    if not str(value).isdigit():
        raise SourceError([(option, f"{value!r} is not a number of seconds")])
    return int(str(value))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _items(value: object) -> tuple[object, ...]:
    return tuple(value) if isinstance(value, list | tuple) else ()
