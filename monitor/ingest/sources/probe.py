"""Try each source's read permissions the way the monitor will use them, without consuming anything."""

from __future__ import annotations

from pathlib import Path

from monitor.ingest.sources import aws, securitylake
from monitor.ingest.sources.settings import SourceSettings


def caller(role_arn: str | None = None) -> str:
    """The ARN of the identity the monitor runs as (or reaches through `role_arn`)."""
    arn: str = aws.session(role_arn).client("sts", config=aws.config(attempts=2)).get_caller_identity()["Arn"]
    return arn


def probe(source: SourceSettings) -> str:
    """What could be read from the source; raises the client's error when a permission is missing."""
    role, config = source.role_arn, aws.config(attempts=2)
    if source.scheme in ("s3", "securitylake"):
        bucket, prefix = source.place
        s3 = aws.session(role).client("s3", config=config)
        logs = securitylake.root(prefix) if source.scheme == "securitylake" else f"{prefix}/AWSLogs/".lstrip("/")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=logs, MaxKeys=1).get("Contents", [])
        if not listed:
            return f"listed s3://{bucket}/{logs}: empty so far"
        s3.get_object(Bucket=bucket, Key=listed[0]["Key"], Range="bytes=0-0")
        return f"listed s3://{bucket}/{logs} and read {listed[0]['Key']}"
    if source.scheme == "sqs":
        region, account, queue = source.place
        sqs = aws.session(role, region).client("sqs", config=config)
        url = sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return f"queue {url} found (messages are not received by the check)"
    if source.scheme == "lookup":
        regions = source.place
        for region in regions:
            aws.session(role, region).client("cloudtrail", config=config).lookup_events(MaxResults=1)
        return f"LookupEvents answered in {', '.join(regions)}"
    if not Path(source.uri).exists():
        raise FileNotFoundError(f"{source.uri}: no such file or directory")
    return f"{source.uri} exists"
