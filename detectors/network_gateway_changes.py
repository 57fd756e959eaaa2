"""Network gateway changed: CIS AWS Foundations 4.12, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class NetworkGatewayChanges(ChangeDetector):
    id = "network-gateway-changes"
    title = "Network gateway changed"
    references = ("CIS AWS Foundations 4.12 (3.12 in v1.2)", "AWS Security Hub CloudWatch.12", "MITRE ATT&CK T1599")
    tactics = ("defense-evasion",)
    service = "ec2.amazonaws.com"
    cis_names = names(
        """
        CreateCustomerGateway DeleteCustomerGateway AttachInternetGateway CreateInternetGateway
        DeleteInternetGateway DetachInternetGateway
        """
    )
    added = names(
        """
        CreateNatGateway DeleteNatGateway CreateEgressOnlyInternetGateway DeleteEgressOnlyInternetGateway
        CreateVpnGateway DeleteVpnGateway AttachVpnGateway DetachVpnGateway CreateTransitGateway
        DeleteTransitGateway CreateTransitGatewayVpcAttachment DeleteTransitGatewayVpcAttachment
        """
    )
    any_source = True
    guide = Guide(
        triage=("A new way in or out of a VPC: which VPC, and was the gateway expected?",),
        investigation=("Check the routes added with it (route-table-changes) and the traffic through it.",),
        false_positives=("Network builds by the platform team's pipelines.",),
        response=("Detach and delete an unexpected gateway and its routes.",),
        kinds=change_kinds(service, added),
    )
