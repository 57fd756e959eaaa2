from detectors.config_changes import ConfigChanges
from tests.cloudtrail import event, findings, iam_user


def test_stopping_the_recorder_is_high_and_reconfiguring_it_medium() -> None:
    found = findings(
        ConfigChanges,
        event("StopConfigurationRecorder", "config.amazonaws.com", iam_user("alice")),
        event("PutConfigurationRecorder", "config.amazonaws.com", iam_user("bob")),
    ).sort_values("principal")
    assert list(found["severity"]) == ["high", "medium"]


def test_deleting_the_recorder_is_high() -> None:
    found = findings(ConfigChanges, event("DeleteConfigurationRecorder", "config.amazonaws.com", iam_user()))
    assert list(found["severity"]) == ["high"]


def test_negative_starting_the_recorder() -> None:
    assert findings(ConfigChanges, event("StartConfigurationRecorder", "config.amazonaws.com", iam_user())).empty
