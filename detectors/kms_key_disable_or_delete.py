"""KMS key disabled or scheduled for deletion: CIS AWS Foundations 4.7, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class KmsKeyDisableOrDelete(ChangeDetector):
    id = "kms-key-disable-or-delete"
    title = "KMS key disabled or scheduled for deletion"
    references = ("CIS AWS Foundations 4.7 (3.7 in v1.2)", "AWS Security Hub CloudWatch.7", "MITRE ATT&CK T1485")
    tactics = ("impact",)
    service = "kms.amazonaws.com"
    cis_names = names("DisableKey ScheduleKeyDeletion")
    added = names("DeleteImportedKeyMaterial")
    critical = names("ScheduleKeyDeletion DeleteImportedKeyMaterial")
    guide = Guide(
        triage=(
            "Which key (request parameters keyId) and what does it encrypt? Data under a deleted key is lost for good.",
        ),
        investigation=(
            "Check the pending window (pendingWindowInDays) and whether the principal also changed the key policy.",
        ),
        false_positives=("Retiring keys of decommissioned workloads, with a change ticket.",),
        response=("Cancel the deletion (CancelKeyDeletion) and enable the key again while you investigate.",),
        kinds=change_kinds(service, added),
    )
