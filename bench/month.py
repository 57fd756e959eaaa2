"""A generated month of organization activity, straight into the lake's schema, for the cross-account detector.

Each day: `events` events over the accounts and regions, a tenth of them AssumeRole: same-account
role sessions, AWS services assuming their roles, and the stable cross-account (source account,
role) pairs, each used by its own principal with a new session name on every call, both copies
written as an organization trail holds them; plus one denied retry from a known pair. On the
last day, three new pairs inside the organization and one account from outside assume roles.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from monitor.ingest.events import SCHEMA

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
OUTSIDER = "999900001111"
OTHER_CALLS = (
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "PutObject"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("kms.amazonaws.com", "Decrypt"),
    ("lambda.amazonaws.com", "Invoke"),
    ("dynamodb.amazonaws.com", "GetItem"),
    ("logs.amazonaws.com", "PutLogEvents"),
)


def accounts(n: int) -> list[str]:
    return [f"{100000000000 + 7919 * i:012d}" for i in range(n)]


@dataclass(frozen=True)
class Pair:
    source: str
    principal: str  # the source role's ARN
    role: str  # the target role's ARN


def stable_pairs(orgs: list[str], n: int, rng: random.Random) -> list[Pair]:
    pairs = []
    for i in range(n):
        source, target = rng.sample(orgs, 2)
        pairs.append(Pair(source, f"arn:aws:iam::{source}:role/pipeline-{i}", f"arn:aws:iam::{target}:role/deploy-{i}"))
    return pairs


def injected(orgs: list[str]) -> list[Pair]:
    """The last day's new cases: three new pairs inside the organization and one from outside."""
    return [
        Pair(orgs[1], f"arn:aws:iam::{orgs[1]}:role/data-export", f"arn:aws:iam::{orgs[7]}:role/warehouse-admin"),
        Pair(orgs[4], f"arn:aws:iam::{orgs[4]}:role/pipeline-new", f"arn:aws:iam::{orgs[9]}:role/deploy-new"),
        Pair(orgs[12], f"arn:aws:iam::{orgs[12]}:user/contractor", f"arn:aws:iam::{orgs[3]}:role/billing-read"),
        Pair(
            OUTSIDER,
            f"arn:aws:iam::{OUTSIDER}:user/unknown",
            f"arn:aws:iam::{orgs[0]}:role/OrganizationAccountAccessRole",
        ),
    ]


class _Rows:
    """Column lists for one day; every other column of the schema is null."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {}
        self.n = 0

    def add(self, **values: Any) -> None:
        for name, value in values.items():
            if name not in self.cols:
                self.cols[name] = [None] * self.n
            self.cols[name].append(value)
        self.n += 1
        for column in self.cols.values():
            if len(column) < self.n:
                column.append(None)

    def table(self) -> pa.Table:
        arrays = {f.name: pa.array(self.cols.get(f.name, [None] * self.n), f.type) for f in SCHEMA}
        return pa.table(arrays, schema=SCHEMA)


def _call(rows: _Rows, day: date, n: int, when: datetime, pair: Pair, region: str, denied: bool = False) -> None:
    """Both copies of one cross-account AssumeRole (only the owner's when the caller is outside)."""
    shared = f"{day:%Y%m%d}-x-{n:07d}"
    user = ":user/" in pair.principal
    common = {
        "event_time": when,
        "event_source": "sts.amazonaws.com",
        "event_name": "AssumeRole",
        "aws_region": region,
        "shared_event_id": shared,
        "user_account_id": pair.source,
        "role_arn": pair.role,
        "succeeded": not denied,
        "error_code": "AccessDenied" if denied else None,
        "new_access_key_id": None if denied else f"ASIA{day:%m%d}{n:012d}",
        "source_ip": f"10.{n % 250}.{n % 7}.{n % 200}",
    }
    principal_id = f"{'AIDA' if user else 'AROA'}{zlib.crc32(pair.principal.encode()):012d}"
    if pair.source != OUTSIDER:
        session = (
            pair.principal
            if user
            else f"{pair.principal.replace(':iam:', ':sts:').replace(':role/', ':assumed-role/')}/run-{n}"
        )
        rows.add(
            event_id=f"{shared}-caller",
            recipient_account_id=pair.source,
            user_type="IAMUser" if user else "AssumedRole",
            user_arn=session,
            principal=session,
            user_principal_id=principal_id if user else f"{principal_id}:run-{n}",
            session_issuer_arn=None if user else pair.principal,
            **common,
        )
    rows.add(
        event_id=f"{shared}-owner",
        recipient_account_id=pair.role.split(":")[4],
        user_type="AWSAccount",
        user_principal_id=principal_id if user else f"{principal_id}:run-{n}",
        principal=principal_id,
        **common,
    )


def day_table(day: date, events: int, orgs: list[str], pairs: list[Pair], last: bool, seed: int = 7) -> pa.Table:
    rng = random.Random(f"{seed}-{day}")
    rows = _Rows()
    start = datetime.combine(day, datetime.min.time(), UTC)

    def moment() -> datetime:
        return start + timedelta(microseconds=rng.randrange(86_400 * 10**6))

    assume_events = events // 10
    cross_calls = max(len(pairs), assume_events // 5 // 2)  # a fifth of AssumeRole events, two copies a call
    for n in range(cross_calls):
        _call(rows, day, n, moment(), pairs[n % len(pairs)], rng.choice(REGIONS))
    _call(rows, day, cross_calls, moment(), rng.choice(pairs), rng.choice(REGIONS), denied=True)
    if last:
        for k, pair in enumerate(injected(orgs)):
            _call(rows, day, cross_calls + 1 + k, moment(), pair, rng.choice(REGIONS))
    while rows.n < assume_events:  # same-account sessions and AWS services: never findings
        account, n = rng.choice(orgs), rows.n
        service = rng.random() < 0.3
        rows.add(
            event_id=f"{day:%Y%m%d}-s-{n:07d}",
            event_time=moment(),
            event_source="sts.amazonaws.com",
            event_name="AssumeRole",
            aws_region=rng.choice(REGIONS),
            recipient_account_id=account,
            user_type="AWSService" if service else "AssumedRole",
            invoked_by="lambda.amazonaws.com" if service else None,
            user_account_id=None if service else account,
            session_issuer_arn=None if service else f"arn:aws:iam::{account}:role/app",
            role_arn=f"arn:aws:iam::{account}:role/worker-{n % 5}",
            succeeded=True,
        )
    while rows.n < events:
        account, n = rng.choice(orgs), rows.n
        source, name = rng.choice(OTHER_CALLS)
        rows.add(
            event_id=f"{day:%Y%m%d}-o-{n:07d}",
            event_time=moment(),
            event_source=source,
            event_name=name,
            aws_region=rng.choice(REGIONS),
            recipient_account_id=account,
            user_type="AssumedRole",
            user_account_id=account,
            session_issuer_arn=f"arn:aws:iam::{account}:role/app",
            succeeded=True,
        )
    return rows.table().sort_by("event_time")
