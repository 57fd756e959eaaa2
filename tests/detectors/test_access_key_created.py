from typing import Any

import orjson

from detectors.access_key_created import AccessKeyCreated
from tests.cloudtrail import PROD, assumed_role, event, findings, iam_user, root


def create_key(
    identity: dict[str, Any], user: str | None, key: str = "AKIANEWKEY0000000001", **kw: Any
) -> dict[str, Any]:
    owner = user or identity.get("userName") or PROD
    return event(
        "CreateAccessKey",
        "iam.amazonaws.com",
        identity,
        requestParameters={"userName": user} if user else None,
        responseElements={"accessKey": {"accessKeyId": key, "status": "Active", "userName": owner}},
        **kw,
    )


def _kind_severity(record: dict[str, Any]) -> tuple[str, str]:
    found = findings(AccessKeyCreated, record)
    assert len(found) == 1
    return found["kind"].iloc[0], found["severity"].iloc[0]


def test_root_creating_a_key_for_itself_is_critical() -> None:
    assert _kind_severity(create_key(root(), None)) == ("root-key", "critical")


def test_root_creating_a_key_for_a_user_is_high() -> None:
    assert _kind_severity(create_key(root(), "alice")) == ("other-user", "high")


def test_user_creating_a_key_for_another_user_is_high() -> None:
    assert _kind_severity(create_key(iam_user("alice"), "bob")) == ("other-user", "high")


def test_jack_and_jackson_are_different_users_both_ways() -> None:
    assert _kind_severity(create_key(iam_user("jack"), "jackson"))[1] == "high"
    assert _kind_severity(create_key(iam_user("jackson"), "jack"))[1] == "high"


def test_self_service_key_is_medium() -> None:
    assert _kind_severity(create_key(iam_user("alice"), "alice")) == ("self", "medium")
    assert _kind_severity(create_key(iam_user("alice"), None)) == ("self", "medium")


def test_role_session_creating_a_key_for_a_user_is_high() -> None:
    assert _kind_severity(create_key(assumed_role("admin"), "alice"))[1] == "high"


def test_new_access_key_id_is_shown() -> None:
    found = findings(AccessKeyCreated, create_key(iam_user("alice"), "bob", key="AKIASHOWME0000000001"))
    assert "AKIASHOWME0000000001" in found["summary"].iloc[0]
    assert orjson.loads(found["details"].iloc[0]) == {"access_key_id": "AKIASHOWME0000000001", "user_name": "bob"}


def test_two_keys_are_two_findings() -> None:
    found = findings(
        AccessKeyCreated, create_key(iam_user(), "bob", key="AKIA1"), create_key(iam_user(), "bob", key="AKIA2")
    )
    assert len(found) == 2


def test_negative_failed_create_access_key() -> None:
    rec = create_key(iam_user("alice"), "bob", errorCode="LimitExceeded", errorMessage="Cannot exceed quota")
    rec["responseElements"] = None
    assert findings(AccessKeyCreated, rec).empty


def test_negative_other_iam_events() -> None:
    assert findings(AccessKeyCreated, event("UpdateAccessKey", "iam.amazonaws.com", iam_user())).empty
