from detectors.kms_key_disable_or_delete import KmsKeyDisableOrDelete
from tests.cloudtrail import event, findings, iam_user


def test_scheduling_deletion_is_high_and_disabling_medium() -> None:
    found = findings(
        KmsKeyDisableOrDelete,
        event("ScheduleKeyDeletion", "kms.amazonaws.com", iam_user("alice")),
        event("DisableKey", "kms.amazonaws.com", iam_user("bob")),
    ).sort_values("principal")
    assert list(found["severity"]) == ["high", "medium"]


def test_deleting_imported_key_material_is_high() -> None:
    found = findings(KmsKeyDisableOrDelete, event("DeleteImportedKeyMaterial", "kms.amazonaws.com", iam_user()))
    assert list(found["severity"]) == ["high"]


def test_negative_enabling_a_key_or_cancelling_deletion() -> None:
    for name in ("EnableKey", "CancelKeyDeletion"):
        assert findings(KmsKeyDisableOrDelete, event(name, "kms.amazonaws.com", iam_user())).empty
