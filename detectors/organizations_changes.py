"""AWS Organizations changed: CIS AWS Foundations 4.15, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class OrganizationsChanges(ChangeDetector):
    id = "organizations-changes"
    title = "AWS Organizations changed"
    references = ("CIS AWS Foundations 4.15", "MITRE ATT&CK T1484.002")
    tactics = ("defense-evasion", "privilege-escalation")
    service = "organizations.amazonaws.com"
    cis_names = names(
        """
        AcceptHandshake AttachPolicy CreateAccount CreateOrganizationalUnit CreatePolicy DeclineHandshake
        DeleteOrganization DeleteOrganizationalUnit DeletePolicy DetachPolicy DisablePolicyType
        EnablePolicyType InviteAccountToOrganization LeaveOrganization MoveAccount
        RemoveAccountFromOrganization UpdatePolicy UpdateOrganizationalUnit
        """
    )
    added = names(
        """
        RegisterDelegatedAdministrator DeregisterDelegatedAdministrator EnableAWSServiceAccess
        DisableAWSServiceAccess
        """
    )
    critical = names("LeaveOrganization DeleteOrganization RemoveAccountFromOrganization DisablePolicyType")
    guide = Guide(
        triage=("Did an account leave, or a service control policy get detached or disabled? Both remove guardrails.",),
        investigation=(
            "Read the policy and target ids in the request parameters; list what the principal did next in the "
            "affected accounts.",
        ),
        false_positives=("Account vending and SCP deployments by the cloud platform team.",),
        response=(
            "Re-attach the policy or re-invite the account, and limit organizations:* to the management pipeline.",
        ),
        kinds=change_kinds(service, added),
    )
