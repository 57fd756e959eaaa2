"""Where a Sigma rule's CloudTrail field names are in the normalized events.

Sigma rules name CloudTrail's own fields (`eventName`, `userIdentity.type`,
`requestParameters.containerDefinitions.command`). A field is either a normalized column, or a path inside
one of the free-form objects the lake keeps as JSON text (read for the rows a rule's other conditions
leave, see `compile`). A field that is neither is an unknown field: the rule is reported, never run blind.
"""

from __future__ import annotations

from typing import NamedTuple

COLUMNS = {
    "eventID": "event_id",
    "eventTime": "event_time",
    "eventSource": "event_source",
    "eventName": "event_name",
    "eventType": "event_type",
    "eventVersion": "event_version",
    "awsRegion": "aws_region",
    "recipientAccountId": "recipient_account_id",
    "sourceIPAddress": "source_ip",
    "userAgent": "user_agent",
    "errorCode": "error_code",
    "errorMessage": "error_message",
    "readOnly": "read_only",
    "managementEvent": "management_event",
    "sharedEventID": "shared_event_id",
    "requestID": "request_id",
    "userIdentity.type": "user_type",
    "userIdentity.arn": "user_arn",
    "userIdentity.accountId": "user_account_id",
    "userIdentity.principalId": "user_principal_id",
    "userIdentity.userName": "user_name",
    "userIdentity.accessKeyId": "access_key_id",
    "userIdentity.invokedBy": "invoked_by",
    "userIdentity.sessionContext.sessionIssuer.arn": "session_issuer_arn",
    "userIdentity.sessionContext.sessionIssuer.type": "session_issuer_type",
    "userIdentity.sessionContext.attributes.mfaAuthenticated": "session_mfa_authenticated",
    "requestParameters": "request_parameters",
    "responseElements": "response_elements",
    "additionalEventData": "additional_event_data",
    "resources": "resources",
    "serviceEventDetails": "service_event_details",
}
# the objects kept as JSON text: a field below one of them is a path inside its column
OBJECTS = ("requestParameters", "responseElements", "additionalEventData", "serviceEventDetails", "resources")


class Field(NamedTuple):
    """A normalized column, and the path inside its JSON text (empty for the column itself)."""

    column: str
    path: tuple[str, ...] = ()


def resolve(name: str) -> Field | None:
    """Where a CloudTrail field name is; None for a field the lake does not keep."""
    if name in COLUMNS:
        return Field(COLUMNS[name])
    top, _, rest = name.partition(".")
    if top in OBJECTS and rest:
        return Field(COLUMNS[top], tuple(rest.split(".")))
    return None
