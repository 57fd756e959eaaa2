"""VPC changed: CIS AWS Foundations 4.14, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class VpcChanges(ChangeDetector):
    id = "vpc-changes"
    title = "VPC changed"
    references = ("CIS AWS Foundations 4.14 (3.14 in v1.2)", "AWS Security Hub CloudWatch.14", "MITRE ATT&CK T1599")
    tactics = ("defense-evasion",)
    service = "ec2.amazonaws.com"
    cis_names = names(
        """
        CreateVpc DeleteVpc ModifyVpcAttribute AcceptVpcPeeringConnection CreateVpcPeeringConnection
        DeleteVpcPeeringConnection RejectVpcPeeringConnection AttachClassicLinkVpc DetachClassicLinkVpc
        DisableVpcClassicLink EnableVpcClassicLink
        """
    )
    added = names("ModifyVpcPeeringConnectionOptions")
    any_source = True
    guide = Guide(
        triage=("A peering connects this VPC to another account's: which account, and is it known?",),
        investigation=("Check the routes and security groups changed with it.",),
        false_positives=("Network builds by the platform team's pipelines.",),
        response=("Delete an unexpected peering and its routes.",),
        kinds=change_kinds(service, added),
    )
