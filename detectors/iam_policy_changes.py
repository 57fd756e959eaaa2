"""IAM policy changed: CIS AWS Foundations 4.4, as a table of events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names
from detectors.organizations_changes import OrganizationsChanges


class IamPolicyChanges(ChangeDetector):
    id = "iam-policy-changes"
    title = "IAM policy changed"
    references = ("CIS AWS Foundations 4.4 (3.4 in v1.2)", "AWS Security Hub CloudWatch.4", "MITRE ATT&CK T1098")
    tactics = ("persistence", "privilege-escalation")
    service = "iam.amazonaws.com"
    cis_names = names(
        """
        DeleteGroupPolicy DeleteRolePolicy DeleteUserPolicy PutGroupPolicy PutRolePolicy PutUserPolicy
        CreatePolicy DeletePolicy CreatePolicyVersion DeletePolicyVersion AttachRolePolicy DetachRolePolicy
        AttachUserPolicy DetachUserPolicy AttachGroupPolicy DetachGroupPolicy
        """
    )
    added = names(
        """
        SetDefaultPolicyVersion UpdateAssumeRolePolicy PutRolePermissionsBoundary
        DeleteRolePermissionsBoundary PutUserPermissionsBoundary DeleteUserPermissionsBoundary
        """
    )
    any_source = True
    elsewhere: ClassVar[Mapping[str, frozenset[str]]] = {OrganizationsChanges.service: OrganizationsChanges.names()}
    guide = Guide(
        triage=(
            "Read the policy document or ARN in the events' request parameters: does it grant administrator "
            "rights, iam:PassRole or sts:AssumeRole to *?",
            "Ask the principal's owner whether the change is part of a reviewed deployment.",
        ),
        investigation=(
            "List what the principal changed in the same hour (event_ids) and whether the changed user or role "
            "acted afterwards.",
            "A trust policy change (UpdateAssumeRolePolicy) opening a role to another account is a backdoor "
            "until proven otherwise.",
        ),
        false_positives=(
            "Infrastructure-as-code pipelines (CloudFormation, Terraform) deploying IAM changes: suppress their role.",
        ),
        response=("Revert the policy to its previous version and review who can change IAM policies.",),
        kinds=change_kinds(service, added),
    )
