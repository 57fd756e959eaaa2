"""Try each source's read permissions the way the monitor will use them, without consuming anything."""

from __future__ import annotations

from pathlib import Path

from monitor.ingest.sources import aws
from monitor.ingest.sources.s3 import S3Source


def caller(role_arn: str | None = None) -> str:
    """The ARN of the identity the monitor runs as (or reaches through `role_arn`)."""
    arn: str = aws.session(role_arn).client("sts", config=aws.config(attempts=2)).get_caller_identity()["Arn"]
    return arn


def probe(uri: str) -> str:
    """What could be read from the source; raises the client's error when a permission is missing."""
    base, query = aws.split_uri(uri, frozenset({"role_arn", "accounts", "regions", "visibility", "bucket"}))
    role = query.get("role_arn")
    config = aws.config(attempts=2)
    if base.startswith("s3://"):
        source = S3Source.from_uri(uri)
        s3 = aws.session(role).client("s3", config=config)
        logs = f"{source.prefix}/AWSLogs/" if source.prefix else "AWSLogs/"
        listed = s3.list_objects_v2(Bucket=source.bucket, Prefix=logs, MaxKeys=1).get("Contents", [])
        if not listed:
            return f"listed s3://{source.bucket}/{logs}: empty so far"
        s3.get_object(Bucket=source.bucket, Key=listed[0]["Key"], Range="bytes=0-0")
        return f"listed s3://{source.bucket}/{logs} and read {listed[0]['Key']}"
    if base.startswith("sqs://"):
        region, account, queue = base.removeprefix("sqs://").strip("/").split("/")
        sqs = aws.session(role, region).client("sqs", config=config)
        url = sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return f"queue {url} found (messages are not received by the check)"
    if base.startswith("lookup://"):
        regions = [r for r in base.removeprefix("lookup://").strip("/").split(",") if r]
        for region in regions:
            aws.session(role, region).client("cloudtrail", config=config).lookup_events(MaxResults=1)
        return f"LookupEvents answered in {', '.join(regions)}"
    path = Path(base)
    if not path.exists():
        raise FileNotFoundError(f"{base}: no such file or directory")
    return f"{base} exists"
