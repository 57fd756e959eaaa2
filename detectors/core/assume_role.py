"""Cross-account role assumptions as calls: who (keyed the same whichever copy CloudTrail wrote)
assumed which role in which account, and where the calling session itself came from."""

from __future__ import annotations

from detectors.core.lazy import pd

CALL_COLUMNS = (
    "event_source",
    "succeeded",
    "invoked_by",
    "user_account_id",
    "user_principal_id",
    "access_key_id",
    "new_access_key_id",
    "role_arn",
)


def cross_account_calls(events: pd.DataFrame) -> pd.DataFrame:
    """STS role assumptions by a caller (not an AWS service) from another account than the role's.

    Adds `source_account`, `target_account`, `call_id` (one per call: both copies share it),
    `owner_copy` and `source_principal`. The source principal is the caller's ARN, a role session
    reduced to its role so that session names do not make every call new; where only the role
    owner's copy exists (`userIdentity.type == "AWSAccount"`) it is `account:principalId`, the
    session part dropped. Both copies of one call carry the caller copy's key.
    """
    service = events["invoked_by"].notna() | events["user_type"].eq("AWSService")
    calls = events[events["event_source"].eq("sts.amazonaws.com") & ~service]
    calls = calls.assign(
        source_account=calls["user_account_id"],
        target_account=calls["role_arn"].str.extract(r"^arn:[^:]+:iam::(\d{12}):", expand=False),
        call_id=calls["shared_event_id"].fillna(calls["event_id"]),
        owner_copy=calls["user_type"].eq("AWSAccount"),
    )
    cross = calls["source_account"].notna() & calls["target_account"].notna()
    calls = calls[(cross & calls["source_account"].ne(calls["target_account"])).fillna(False).astype(bool)]
    caller = calls["session_issuer_arn"].fillna(calls["user_arn"])
    owner = calls["source_account"] + ":" + calls["user_principal_id"].str.replace(r":.*", "", regex=True)
    own_key = caller.where(~calls["owner_copy"], owner).fillna(calls["source_account"])  # the account if nothing else
    caller_keys = own_key[~calls["owner_copy"]].groupby(calls["call_id"]).first()
    return calls.assign(source_principal=calls["call_id"].map(caller_keys).astype(object).fillna(own_key))


def session_origin(calls: pd.DataFrame) -> pd.Series:
    """For each call made with a session that an earlier cross-account call issued: the account
    that call came from (role chaining across accounts); missing for every other call."""
    issued = calls[calls["succeeded"].fillna(False).astype(bool) & calls["new_access_key_id"].notna()]
    origin = issued.drop_duplicates("new_access_key_id").set_index("new_access_key_id")["source_account"]
    by_key = calls.loc[~calls["owner_copy"], ["call_id", "access_key_id"]].dropna()
    by_call = by_key.assign(origin=by_key["access_key_id"].map(origin)).dropna().groupby("call_id")["origin"].first()
    return calls["call_id"].map(by_call).astype(object)
