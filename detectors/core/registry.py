"""The detector catalog: built-in detectors plus site detectors from the `trailguard.detectors` entry points.

Every detector, shipped or plugged in, passes the same catalog checks when it is loaded, so a
bad plugin fails loudly at start instead of producing malformed findings later.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from functools import cache
from importlib.metadata import EntryPoints, entry_points

from detectors.access_key_created import AccessKeyCreated
from detectors.cloudtrail_changes import CloudtrailChanges
from detectors.config_changes import ConfigChanges
from detectors.console_auth_failures import ConsoleAuthFailures
from detectors.console_login_without_mfa import ConsoleLoginWithoutMfa
from detectors.core.base import TACTICS, Detector, Guide
from detectors.core.severity import Severity
from detectors.cross_account_assume_role import CrossAccountAssumeRole
from detectors.iam_hygiene import IamHygiene
from detectors.iam_policy_changes import IamPolicyChanges
from detectors.kms_key_disable_or_delete import KmsKeyDisableOrDelete
from detectors.nacl_changes import NaclChanges
from detectors.network_gateway_changes import NetworkGatewayChanges
from detectors.organizations_changes import OrganizationsChanges
from detectors.root_usage import RootUsage
from detectors.route_table_changes import RouteTableChanges
from detectors.s3_bucket_policy_changes import S3BucketPolicyChanges
from detectors.security_group_changes import SecurityGroupChanges
from detectors.unauthorized_api_calls import UnauthorizedApiCalls
from detectors.vpc_changes import VpcChanges

# the identity detectors, then the CIS monitoring controls in their order (4.1, 4.4 to 4.15)
BUILTIN: tuple[type[Detector], ...] = (
    RootUsage,
    ConsoleLoginWithoutMfa,
    AccessKeyCreated,
    CrossAccountAssumeRole,
    UnauthorizedApiCalls,
    IamPolicyChanges,
    CloudtrailChanges,
    ConsoleAuthFailures,
    KmsKeyDisableOrDelete,
    S3BucketPolicyChanges,
    ConfigChanges,
    SecurityGroupChanges,
    NaclChanges,
    NetworkGatewayChanges,
    RouteTableChanges,
    VpcChanges,
    OrganizationsChanges,
)
# checks over IAM state rather than events (run on their own schedule, configured like detectors)
POSTURE: tuple[type[IamHygiene], ...] = (IamHygiene,)
ENTRY_POINT_GROUP = "trailguard.detectors"
_KEBAB = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


class CatalogError(Exception):
    """A detector breaks the catalog's rules; the message lists every problem."""


def problems(cls: type[Detector]) -> list[str]:
    """What is wrong with a detector's metadata (empty when nothing is)."""
    found = []
    ident = getattr(cls, "id", "")
    if not isinstance(ident, str) or not _KEBAB.fullmatch(ident):
        found.append(f"id {ident!r} is not kebab-case")
    elif cls.__module__.rsplit(".", 1)[-1] != ident.replace("-", "_"):
        found.append(f"id {ident!r} does not match its module {cls.__module__!r}")
    if not isinstance(getattr(cls, "severity", None), Severity):
        found.append("severity is not a Severity")
    if not getattr(cls, "title", ""):
        found.append("no title")
    if not getattr(cls, "references", ()):
        found.append("no references")
    if not getattr(cls, "columns", ()):
        found.append("no columns declared")
    tactics = getattr(cls, "tactics", ())
    if not tactics or not set(tactics) <= set(TACTICS):
        found.append(f"tactics {tactics!r} are not one or more of ATT&CK's ({', '.join(TACTICS)})")
    if not isinstance(getattr(cls, "window", None), timedelta) or cls.window <= timedelta(0):
        found.append("window is not a positive timedelta")
    guide = getattr(cls, "guide", None)
    if not isinstance(guide, Guide) or not all(
        (guide.triage, guide.investigation, guide.false_positives, guide.response)
    ):
        found.append("investigation guide incomplete (triage, investigation, false positives, response)")
    if cls.hits is Detector.hits:
        found.append("hits() not implemented")
    written = cls.select is not Detector.select
    if written == bool(getattr(cls, "wants", {})):  # one of the two, never both: they could disagree
        found.append("select() written and wants declared" if written else "neither select() nor wants")
    return [f"{cls.__module__}.{cls.__name__}: {p}" for p in found]


@cache
def _plugins(path: tuple[str, ...]) -> EntryPoints:
    """The installed plugins' entry points, looked up once per search path: the lookup reads every installed
    package's metadata, a few hundredths of a second each time."""
    return entry_points(group=ENTRY_POINT_GROUP)


def load(plugins: bool = True) -> tuple[type[Detector], ...]:
    """Every detector, checked; raises CatalogError naming each problem."""
    found = list(BUILTIN)
    if plugins:
        found += [ep.load() for ep in _plugins(tuple(sys.path))]
    errors = [p for cls in found for p in problems(cls)]
    ids = [getattr(cls, "id", None) for cls in found]
    errors += [f"duplicate detector id {i!r}" for i in sorted({str(i) for i in ids if ids.count(i) > 1})]
    if errors:
        raise CatalogError("; ".join(errors))
    return tuple(found)


def choose(catalog: tuple[type[Detector], ...], wanted: list[str] | None) -> tuple[type[Detector], ...]:
    """The detectors named in `wanted` (all when empty); an unknown id is an error that lists the known ones."""
    if not wanted:
        return catalog
    by_id = {cls.id: cls for cls in catalog}
    unknown = [w for w in wanted if w not in by_id]
    if unknown:
        raise CatalogError(f"unknown detector {', '.join(unknown)} (known: {', '.join(sorted(by_id))})")
    return tuple(by_id[w] for w in dict.fromkeys(wanted))
