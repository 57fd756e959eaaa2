"""Seeded generator of realistic CloudTrail activity, for the demo, the tests and the benchmarks.

Events look like a trail's: users, role sessions from SSO and applications, AWS services acting,
data events, errors, and the type conflicts between services that break schema inference
(`tags` as a list here and an object there, `startTime` as a number or a string). With
`story=True` a handful of incidents are planted among the noise, each one a case a detector
must find.
"""

from __future__ import annotations

import gzip
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN

ORG_ACCOUNTS = ("111111111111", "222222222222", "333333333333")
EXTERNAL_ACCOUNT = "999988887777"
REGIONS = ("us-east-1", "eu-west-1")
_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off command/ec2.describe-instances",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213 md/arch#x86_64 lang/python#3.12.2 cfg/retry-mode#std",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.4",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36",
    "console.amazonaws.com",
    "Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0 aws-sdk-go-v2/1.25.3",
)
_USERS = ("alice", "bob", "carol", "deploy-bot", "ci-runner")
_ROLES = ("app-backend", "data-pipeline", "AWSReservedSSO_AdministratorAccess_5f2e1c7a9b3d", "ops-readonly")


@dataclass(frozen=True)
class Call:
    source: str
    name: str
    read_only: bool
    params: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    data_event: bool = False


_SPECIAL_CALLS = (
    Call(
        "ec2.amazonaws.com",
        "DescribeInstances",
        True,
        {
            "instancesSet": {},
            "filterSet": {"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]},
        },
    ),
    Call(
        "s3.amazonaws.com",
        "GetObject",
        True,
        {"bucketName": "app-artifacts", "key": "builds/app-1.2.3.tar.gz", "Host": "app-artifacts.s3.amazonaws.com"},
        None,
        True,
    ),
    Call(
        "s3.amazonaws.com",
        "PutObject",
        False,
        {"bucketName": "app-uploads", "key": "in/2024/report.csv", "Host": "app-uploads.s3.amazonaws.com"},
        None,
        True,
    ),
    Call(
        "kms.amazonaws.com",
        "Decrypt",
        True,
        {
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "encryptionContext": {"aws:lambda:FunctionArn": "arn:aws:lambda:us-east-1:111111111111:function:api"},
        },
    ),
    Call("lambda.amazonaws.com", "Invoke", False, {"functionName": "api-handler"}, None, True),
    Call("sts.amazonaws.com", "GetCallerIdentity", True, None),
    # the same key with different JSON types across services, as in real trails
    Call(
        "ecs.amazonaws.com",
        "RunTask",
        False,
        {
            "cluster": "prod",
            "taskDefinition": "worker:42",
            "tags": [{"key": "team", "value": "data"}],
            "startTime": 1709251200,
        },
    ),
    Call(
        "ecs.amazonaws.com",
        "TagResource",
        False,
        {"resourceArn": "arn:aws:ecs:us-east-1:111111111111:cluster/prod", "tags": {"team": "data"}},
    ),
    Call("glue.amazonaws.com", "StartJobRun", False, {"jobName": "nightly-etl", "startTime": "2024-03-01T02:00:00Z"}),
)
_SERVICES = {
    "ec2": ("Instances", "Volumes", "Snapshots", "Images", "SecurityGroups", "Subnets", "Vpcs", "NetworkInterfaces"),
    "s3": ("BucketPolicy", "BucketAcl", "BucketTagging", "BucketVersioning", "BucketLifecycle", "BucketEncryption"),
    "iam": ("Role", "User", "Policy", "Group", "InstanceProfile", "RolePolicy"),
    "lambda": ("Function", "FunctionConfiguration", "Alias", "EventSourceMapping", "Layer"),
    "logs": ("LogGroup", "LogStream", "MetricFilter", "SubscriptionFilter", "RetentionPolicy"),
    "dynamodb": ("Table", "Backup", "GlobalTable", "ContinuousBackups", "TimeToLive"),
    "ssm": ("Parameter", "Document", "Association", "MaintenanceWindow", "PatchBaseline"),
    "ecs": ("Service", "Cluster", "TaskDefinition", "ContainerInstance", "CapacityProvider"),
    "rds": ("DBInstance", "DBCluster", "DBSnapshot", "DBParameterGroup", "DBSubnetGroup"),
    "kms": ("Key", "Alias", "Grant", "KeyPolicy", "KeyRotationStatus"),
    "cloudformation": ("Stack", "StackSet", "ChangeSet", "StackResource", "StackInstance"),
    "secretsmanager": ("Secret", "SecretValue", "ResourcePolicy", "RotationSchedule"),
    "elasticloadbalancing": ("LoadBalancer", "TargetGroup", "Listener", "Rule", "TargetHealth"),
    "monitoring": ("Alarm", "Dashboard", "MetricStream", "InsightRule", "AnomalyDetector"),
}
_VERBS = ("Describe", "List", "Create", "Update", "Delete")


def _call(service: str, verb: str, noun: str) -> Call:
    """A plausible API call whose parameters are named after what it acts on."""
    stem = noun[0].lower() + noun[1:]
    params: dict[str, Any] = {
        f"{stem}Name": f"{stem}-prod-01",
        f"{stem}Arn": f"arn:aws:{service}:us-east-1:111111111111:{stem}/prod-01",
    }
    if verb in ("Describe", "List"):
        params |= {"maxResults": 100, "filters": [{"name": f"{stem}-state", "values": ["available", "in-use"]}]}
    if verb in ("Create", "Update", "Put"):
        params |= {
            f"{stem}Configuration": {
                "description": f"managed {noun} for the payments platform",
                "enabled": True,
                "settings": {"retention": 30, "mode": verb.lower()},
            }
        }
    response = {f"{stem}Id": f"{stem}-0123456789abcdef", "status": "ACTIVE"} if verb != "Describe" else None
    return Call(f"{service}.amazonaws.com", f"{verb}{noun}", verb in ("Describe", "Get", "List"), params, response)


# A busy estate (the benchmarks) also changes what the CIS controls watch and is denied now and then;
# the demo's routine activity leaves those to its story.
_BUSY_CALLS = _SPECIAL_CALLS + tuple(_call(s, v, n) for s, nouns in _SERVICES.items() for n in nouns for v in _VERBS)
_WATCHED = frozenset(n for cls in BUILTIN if issubclass(cls, ChangeDetector) for n in cls.names())
_CALLS = tuple(call for call in _BUSY_CALLS if call.name not in _WATCHED)
_ERRORS = (
    ("ResourceNotFoundException", "The requested resource was not found"),
    ("ThrottlingException", "Rate exceeded"),
)
_BUSY_ERRORS = (
    ("AccessDenied", "User is not authorized to perform this operation"),
    ("ThrottlingException", "Rate exceeded"),
)
# What a stolen key is tried on first, each call denied: the last one tries to blind the trail.
_PROBES = (
    ("iam.amazonaws.com", "ListUsers", "AccessDenied"),
    ("iam.amazonaws.com", "GetAccountAuthorizationDetails", "AccessDenied"),
    ("s3.amazonaws.com", "ListBuckets", "AccessDenied"),
    ("secretsmanager.amazonaws.com", "ListSecrets", "AccessDeniedException"),
    ("ec2.amazonaws.com", "DescribeInstances", "Client.UnauthorizedOperation"),
    ("cloudtrail.amazonaws.com", "StopLogging", "AccessDenied"),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ip(rng: random.Random) -> str:
    return f"{rng.choice((10, 172, 198, 203))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def iam_user(account: str, name: str, key: str = "AKIAEXAMPLEKEY000001") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + name.upper().ljust(17, "X")[:17],
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": key,
        "userName": name,
    }


def role_session(account: str, role: str, session: str, mfa: bool = False) -> dict[str, Any]:
    path = "aws-reserved/sso.amazonaws.com/" if role.startswith("AWSReservedSSO_") else ""
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{role.upper()[:12].ljust(12, 'X')}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLESESSION01",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROA{role.upper()[:12].ljust(12, 'X')}",
                "arn": f"arn:aws:iam::{account}:role/{path}{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-03-01T00:00:00Z", "mfaAuthenticated": "true" if mfa else "false"},
        },
    }


def root(account: str) -> dict[str, Any]:
    return {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account}


@dataclass(frozen=True)
class Parts:
    """The parts of a record a call sets (the rest are drawn at random or fixed)."""

    read_only: bool = False
    params: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None  # additionalEventData
    ip: str | None = None
    agent: str | None = None
    error: tuple[str, str] | None = None  # (errorCode, errorMessage)


def record(
    rng: random.Random,
    when: datetime,
    account: str,
    region: str,
    identity: dict[str, Any],
    source: str,
    name: str,
    parts: Parts = Parts(),
    **fields: Any,
) -> dict[str, Any]:
    """One CloudTrail record with the envelope every real one carries; `fields` are CloudTrail's, set last."""
    read_only, params, response, extra = parts.read_only, parts.params, parts.response, parts.extra
    ip, agent, error = parts.ip, parts.agent, parts.error
    rec: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": _time(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip or _ip(rng),
        "userAgent": agent or rng.choice(_AGENTS),
        "requestParameters": params,
        "responseElements": response,
        "requestID": _uuid(rng),
        "eventID": _uuid(rng),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.', maxsplit=1)[0]}.{region}.amazonaws.com",
        },
    }
    if extra is not None:
        rec["additionalEventData"] = extra
    if error is not None:
        rec["errorCode"], rec["errorMessage"] = error
    rec.update(fields)
    return rec


def routine(rng: random.Random, when: datetime, account: str, region: str, busy: bool = False) -> dict[str, Any]:
    """One benign call, by a user, a role session or an AWS service (with `busy`, more changes and denials)."""
    call = rng.choice(_BUSY_CALLS if busy else _CALLS)
    who = rng.random()
    if who < 0.35:
        identity = iam_user(account, rng.choice(_USERS))
    elif who < 0.9:
        identity = role_session(account, rng.choice(_ROLES), f"s-{rng.randrange(10_000)}", mfa=rng.random() < 0.3)
    else:
        identity = {"type": "AWSService", "invokedBy": call.source}
    rec = record(
        rng,
        when,
        account,
        region,
        identity,
        call.source,
        call.name,
        Parts(
            read_only=call.read_only,
            params=call.params,
            response=call.response,
            error=rng.choice(_BUSY_ERRORS if busy else _ERRORS) if rng.random() < 0.03 else None,
            ip=call.source if identity["type"] == "AWSService" else None,
        ),
    )
    if call.data_event:
        rec.update(managementEvent=False, eventCategory="Data")
        rec["resources"] = [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{(call.params or {}).get('bucketName', 'b')}/k"}
        ]
        rec["additionalEventData"] = {"SignatureVersion": "SigV4", "bytesTransferredIn": 0, "x-amz-id-2": _uuid(rng)}
    return rec


def _console_login(
    rng: random.Random, when: datetime, account: str, identity: dict[str, Any], mfa: str
) -> dict[str, Any]:
    return record(
        rng,
        when,
        account,
        "us-east-1",
        identity,
        "signin.amazonaws.com",
        "ConsoleLogin",
        Parts(
            response={"ConsoleLogin": "Success"},
            agent=_AGENTS[3],
            extra={"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": mfa},
        ),
        eventType="AwsConsoleSignIn",
    )


class Beat(NamedTuple):
    """One step of the demo's story: what it shows, and its records."""

    caption: str
    records: list[dict[str, Any]]


def story(rng: random.Random, day: datetime) -> list[Beat]:
    """The incidents of the demo day, and the benign look-alikes around them, in the order they are told."""
    prod, dev, shared = ORG_ACCOUNTS
    at = day + timedelta(hours=9, minutes=12)
    attacker_ip = "203.0.113.66"
    root_beat = Beat(
        f"root signs in to {prod} without MFA from {attacker_ip} and creates itself an access key",
        [
            _console_login(rng, at, prod, root(prod), "No") | {"sourceIPAddress": attacker_ip},
            record(
                rng,
                at + timedelta(minutes=3),
                prod,
                "us-east-1",
                root(prod),
                "iam.amazonaws.com",
                "ListUsers",
                Parts(read_only=True, params={"maxItems": 100}, ip=attacker_ip, agent="console.amazonaws.com"),
            ),
            record(
                rng,
                at + timedelta(minutes=4),
                prod,
                "us-east-1",
                root(prod),
                "iam.amazonaws.com",
                "CreateAccessKey",
                Parts(
                    ip=attacker_ip,
                    agent="console.amazonaws.com",
                    response={
                        "accessKey": {"accessKeyId": "AKIAROOTNEWKEY000001", "status": "Active", "userName": prod}
                    },
                ),
            ),
        ],
    )
    key_beat = Beat(
        f"the IAM user jack creates an access key for another user, jackson ({dev})",
        [
            record(
                rng,
                day + timedelta(hours=11, minutes=40),
                dev,
                "us-east-1",
                iam_user(dev, "jack"),
                "iam.amazonaws.com",
                "CreateAccessKey",
                Parts(
                    params={"userName": "jackson"},
                    response={
                        "accessKey": {"accessKeyId": "AKIAJACKSONNEWKEY001", "status": "Active", "userName": "jackson"}
                    },
                ),
            )
        ],
    )
    probe_beat = Beat(
        f"jackson's new key is tried from {attacker_ip}: IAM, S3, Secrets Manager, EC2, then StopLogging",
        [
            record(
                rng,
                day + timedelta(hours=11, minutes=52) + timedelta(seconds=20 * n),
                dev,
                "us-east-1",
                iam_user(dev, "jackson", "AKIAJACKSONNEWKEY001"),
                source,
                name,
                Parts(
                    read_only=name != "StopLogging",
                    ip=attacker_ip,
                    agent=_AGENTS[0],
                    error=(code, f"jackson is not authorized to perform: {name}"),
                ),
            )
            for n, (source, name, code) in enumerate(_PROBES)
        ],
    )
    vendor_beat = Beat(
        f"a role in {shared} is assumed from {EXTERNAL_ACCOUNT}, outside the organization (both copies)",
        _cross_account(rng, day + timedelta(hours=14, minutes=5), EXTERNAL_ACCOUNT, shared, "vendor-audit"),
    )
    benign = Beat(
        "benign look-alikes: an SSO sign-in, an MFA sign-in, the nightly deploy between the organization's "
        "accounts, a role chained in one account",
        [
            _console_login(rng, at, dev, role_session(dev, _ROLES[2], "alice@example.com"), "No"),
            _console_login(rng, at, dev, iam_user(dev, "carol"), "Yes"),
            *_cross_account(rng, day + timedelta(hours=3, minutes=30), shared, prod, "deploy"),
            record(
                rng,
                at,
                prod,
                "us-east-1",
                role_session(prod, "app-backend", "i-0abc"),
                "sts.amazonaws.com",
                "AssumeRole",
                Parts(params={"roleArn": f"arn:aws:iam::{prod}:role/data-pipeline", "roleSessionName": "etl"}),
            ),
        ],
    )
    return [root_beat, key_beat, probe_beat, vendor_beat, benign]


def retimed(beat: Beat, end: datetime) -> list[dict[str, Any]]:
    """A beat's records moved so that its last happens at `end`, the gaps between them kept."""
    times = [datetime.fromisoformat(r["eventTime"]) for r in beat.records]
    shift = end - max(times)
    return [r | {"eventTime": _time(t + shift)} for r, t in zip(beat.records, times, strict=True)]


def _cross_account(rng: random.Random, when: datetime, source: str, target: str, role: str) -> list[dict[str, Any]]:
    caller = (
        iam_user(source, "automation") if source not in ORG_ACCOUNTS else role_session(source, "ci-deployer", "build-1")
    )
    role_arn = f"arn:aws:iam::{target}:role/{role}"
    params = {"roleArn": role_arn, "roleSessionName": "session-1", "durationSeconds": 3600}
    resources = [{"accountId": target, "type": "AWS::IAM::Role", "ARN": role_arn}]
    shared = _uuid(rng)
    session_key = "ASIA" + shared.replace("-", "")[:16].upper()  # each session its own key
    response = {"credentials": {"accessKeyId": session_key, "expiration": "Mar 1, 2024, 3:00:00 PM"}}
    parts = Parts(params=params, response=response, ip=_ip(rng))
    call = {"resources": resources, "sharedEventID": shared}
    mine = record(rng, when, source, "us-east-1", caller, "sts.amazonaws.com", "AssumeRole", parts, **call)
    owner_identity = {"type": "AWSAccount", "principalId": caller["principalId"], "accountId": source}
    theirs = record(rng, when, target, "us-east-1", owner_identity, "sts.amazonaws.com", "AssumeRole", parts, **call)
    return [mine, theirs]


@dataclass
class TrailWriter:
    """Writes records as S3 delivery objects laid out like a trail bucket."""

    root: Path
    org_id: str | None = None
    written: list[Path] = field(default_factory=list)

    def write(self, account: str, region: str, when: datetime, records: list[dict[str, Any]], tag: str) -> Path:
        org = f"{self.org_id}/" if self.org_id else ""
        folder = self.root / f"AWSLogs/{org}{account}/CloudTrail/{region}/{when:%Y/%m/%d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{tag}.json.gz"
        path.write_bytes(gzip.compress(orjson.dumps({"Records": records}), compresslevel=6, mtime=0))
        self.written.append(path)
        return path


def generate_trail(
    out: Path,
    events: int,
    *,
    per_object: int = 1000,
    seed: int = 7,
    day: datetime = datetime(2024, 3, 1, tzinfo=UTC),
    with_story: bool = True,
    busy: bool = False,
    accounts: int = len(ORG_ACCOUNTS),
) -> list[Path]:
    """Write about `events` records as gzipped S3 objects across accounts and regions of the 24 hours from `day`
    (the story's three accounts, and more of the organization's routine activity when `accounts` is larger).

    `busy`: routine activity includes configuration changes and denied calls (about 1.5%), as in
    a large estate: thousands of low and medium findings a day, for the benchmarks.
    """
    rng = random.Random(seed)
    writer = TrailWriter(out)
    planted = [r for beat in story(rng, day) for r in beat.records] if with_story else []
    objects = max(1, -(-events // per_object))
    estate = organization(accounts)
    for n in range(objects):
        account = estate[n % len(estate)]
        region = REGIONS[(n // len(estate)) % len(REGIONS)]
        start = day + timedelta(seconds=86_400 * n // objects)
        count = min(per_object, events - n * per_object)
        recs = [
            routine(rng, start + timedelta(seconds=rng.randrange(300)), account, region, busy) for _ in range(count)
        ]
        mine = [r for r in planted if r["recipientAccountId"] == account and r["awsRegion"] == region]
        if n < len(estate) * len(REGIONS):
            recs.extend(mine)
        recs.sort(key=lambda r: r["eventTime"])
        writer.write(account, region, start, recs, f"{rng.getrandbits(32):08x}")
    return writer.written


def generate_days(
    out: Path, events: int, days: int, last: datetime, *, accounts: int = 3, seed: int = 7, busy: bool = False
) -> list[Path]:
    """`days` of routine activity (`busy`: as in `generate_trail`) ending with the 24 hours from `last`, which alone
    holds the story; the nightly deployment between the organization's accounts runs on the days before too, so a
    lake learns it."""
    written: list[Path] = []
    per_object = max(50, min(1000, events // (accounts * len(REGIONS))))  # every account and region has objects
    for n in range(days):
        day, story = last - timedelta(days=days - 1 - n), n == days - 1
        written += generate_trail(
            out, events, per_object=per_object, seed=seed + n, day=day, with_story=story, accounts=accounts, busy=busy
        )
    return written + (generate_history(out, days - 1, day=last) if days > 1 else [])


def organization(accounts: int) -> tuple[str, ...]:
    """The story's three accounts, then more member accounts with made-up ids."""
    return ORG_ACCOUNTS + tuple(f"{500000000000 + n:012d}" for n in range(max(0, accounts - len(ORG_ACCOUNTS))))


def generate_history(out: Path, days: int, day: datetime = datetime(2024, 3, 1, tzinfo=UTC)) -> list[Path]:
    """The days before `day` as the lake already knows them: the organization's pipeline deploying
    every night (the same pair as in the story), so the cross-account baseline has it. Seeded apart
    from `generate_trail`, so that no event id repeats across the lake."""
    rng = random.Random(f"history-{days}")
    writer = TrailWriter(out)
    shared, prod = ORG_ACCOUNTS[2], ORG_ACCOUNTS[0]
    for back in range(days, 0, -1):
        when = day + timedelta(hours=3, minutes=30) - timedelta(days=back)
        for record in _cross_account(rng, when, shared, prod, "deploy"):
            writer.write(record["recipientAccountId"], "us-east-1", when, [record], f"{rng.getrandbits(32):08x}")
    return writer.written
