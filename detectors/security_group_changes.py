"""Security group changed: CIS AWS Foundations 4.10, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class SecurityGroupChanges(ChangeDetector):
    id = "security-group-changes"
    title = "Security group changed"
    references = ("CIS AWS Foundations 4.10 (3.10 in v1.2)", "AWS Security Hub CloudWatch.10", "MITRE ATT&CK T1562.007")
    tactics = ("defense-evasion",)
    service = "ec2.amazonaws.com"
    cis_names = names(
        """
        AuthorizeSecurityGroupIngress AuthorizeSecurityGroupEgress RevokeSecurityGroupIngress
        RevokeSecurityGroupEgress CreateSecurityGroup DeleteSecurityGroup
        """
    )
    added = names("ModifySecurityGroupRules")
    any_source = True
    guide = Guide(
        triage=("Read the rules in the request parameters: is a port opened to 0.0.0.0/0 or ::/0?",),
        investigation=("Which instances use the group, and did connections arrive after the change (VPC flow logs)?",),
        false_positives=("Deployments and autoscaling groups managed by infrastructure-as-code.",),
        response=("Revoke the rule and review who may change security groups.",),
        kinds=change_kinds(service, added),
    )
