"""The pipeline users write first, fixed as the baseline: per object `json.load`,
`pandas.json_normalize` of its Records, then the catalog's predicates (the identity detectors',
denied calls, failed sign-ins, the CIS change lists) as vectorised pandas expressions on the
flattened columns. Prints the hit count and the events read."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pandas as pd

from detectors.core.changes import ChangeDetector
from detectors.core.registry import BUILTIN
from detectors.unauthorized_api_calls import DENIED

CHANGE_NAMES = sorted({n for cls in BUILTIN if issubclass(cls, ChangeDetector) for n in cls.names()})


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series(None, index=df.index, dtype=object)


def hits(df: pd.DataFrame) -> int:
    name = _col(df, "eventName")
    failed = _col(df, "errorCode").notna() | _col(df, "errorMessage").notna()
    root = _col(df, "userIdentity.type").eq("Root") & _col(df, "userIdentity.invokedBy").isna()
    login = (
        name.eq("ConsoleLogin")
        & _col(df, "responseElements.ConsoleLogin").eq("Success")
        & _col(df, "additionalEventData.MFAUsed").fillna("No").str.lower().ne("yes")
        & _col(df, "userIdentity.type").isin(["IAMUser", "Root", "AssumedRole"])
    )
    key = name.eq("CreateAccessKey") & ~failed
    role_account = _col(df, "requestParameters.roleArn").astype("string").str.split(":").str[4]
    cross = name.eq("AssumeRole") & role_account.notna() & role_account.ne(_col(df, "userIdentity.accountId"))
    denied = _col(df, "errorCode").astype("string").str.fullmatch(DENIED).fillna(False).astype(bool)
    signin_failed = name.eq("ConsoleLogin") & _col(df, "responseElements.ConsoleLogin").eq("Failure")
    changes = name.isin(CHANGE_NAMES)
    return int((root | login | key | cross | denied | signin_failed | changes).sum())


def main(root: str) -> None:
    events = found = 0
    for path in sorted(Path(root).rglob("*.json.gz")):
        with gzip.open(path) as fh:
            records = json.load(fh)["Records"]
        df = pd.json_normalize(records)
        events += len(df)
        found += hits(df)
    print(json.dumps({"events": events, "hits": found}))


if __name__ == "__main__":
    main(sys.argv[1])
