"""Route table changed: CIS AWS Foundations 4.13, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class RouteTableChanges(ChangeDetector):
    id = "route-table-changes"
    title = "Route table changed"
    references = ("CIS AWS Foundations 4.13 (3.13 in v1.2)", "AWS Security Hub CloudWatch.13", "MITRE ATT&CK T1599")
    tactics = ("defense-evasion",)
    service = "ec2.amazonaws.com"
    cis_names = names(
        """
        CreateRoute CreateRouteTable ReplaceRoute ReplaceRouteTableAssociation DeleteRouteTable DeleteRoute
        DisassociateRouteTable
        """
    )
    added = names("AssociateRouteTable")
    guide = Guide(
        triage=("Where does the route send traffic now (an internet gateway, a peering, an instance)?",),
        investigation=("Check the gateways and peerings created in the same hour.",),
        false_positives=("Network builds by the platform team's pipelines.",),
        response=("Restore the previous routes.",),
        kinds=change_kinds(service, added),
    )
