"""Network ACL changed: CIS AWS Foundations 4.11, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class NaclChanges(ChangeDetector):
    id = "nacl-changes"
    title = "Network ACL changed"
    references = ("CIS AWS Foundations 4.11 (3.11 in v1.2)", "AWS Security Hub CloudWatch.11", "MITRE ATT&CK T1562.007")
    tactics = ("defense-evasion",)
    service = "ec2.amazonaws.com"
    cis_names = names(
        """
        CreateNetworkAcl CreateNetworkAclEntry DeleteNetworkAcl DeleteNetworkAclEntry ReplaceNetworkAclEntry
        ReplaceNetworkAclAssociation
        """
    )
    any_source = True
    guide = Guide(
        triage=("Read the entry in the request parameters: does it allow a wide range in from anywhere?",),
        investigation=("Which subnets use the ACL, and what traffic passed after the change?",),
        false_positives=("Network changes by the platform team's pipelines.",),
        response=("Restore the previous entries and review who may change network ACLs.",),
        kinds=change_kinds(service),
    )
