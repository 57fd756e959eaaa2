"""boto3 clients as TrailGuard builds them: explicit retries and timeouts, a user agent that
identifies TrailGuard in CloudTrail, the default credential chain (never static keys), and, per
account, an assumed role whose credentials refresh themselves for long-running processes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from detectors.core.lazy import Later
from monitor import __version__

if TYPE_CHECKING:
    import boto3
    from botocore import config as botocore_config
    from botocore import credentials as botocore_credentials
    from botocore import session as botocore_sessions
else:  # the SDK loads when a client is first built: a command that calls no AWS API never pays for it
    boto3 = Later("boto3")
    botocore_config = Later("botocore.config")
    botocore_credentials = Later("botocore.credentials")
    botocore_sessions = Later("botocore.session")

USER_AGENT_EXTRA = f"trailguard/{__version__}"
SESSION_NAME = "trailguard"


def config(retry_mode: Literal["standard", "adaptive"] = "standard", attempts: int = 8) -> botocore_config.Config:
    return botocore_config.Config(
        retries={"mode": retry_mode, "max_attempts": attempts},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra=USER_AGENT_EXTRA,
    )


def session(role_arn: str | None = None, region: str | None = None) -> boto3.Session:
    """The default credential chain, or a role assumed from it with refreshing credentials."""
    base = boto3.Session(region_name=region)
    if role_arn is None:
        return base
    sts = base.client("sts", config=config())

    def refresh() -> dict[str, Any]:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
        expiry: datetime = creds["Expiration"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    botocore_session = botocore_sessions.get_session()
    # botocore has no public setter for refreshable credentials; this is the documented-by-use way
    botocore_session._credentials = botocore_credentials.DeferredRefreshableCredentials(refresh, "sts-assume-role")  # type: ignore[attr-defined]
    if region:
        botocore_session.set_config_variable("region", region)
    return boto3.Session(botocore_session=botocore_session)
