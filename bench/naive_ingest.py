"""The ingest pipeline users write first, fixed as the baseline: per object `json.load`,
`pandas.json_normalize` of its Records, `astype(str)` on object columns (the usual fix for
`to_parquet` failing on mixed types), and `to_parquet` of one file per object."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pandas as pd


def main(root: str, out: str) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    events = 0
    for n, path in enumerate(sorted(Path(root).rglob("*.json.gz"))):
        with gzip.open(path) as fh:
            records = json.load(fh)["Records"]
        df = pd.json_normalize(records)
        objects = df.select_dtypes(include=["object", "str"]).columns  # what "object" meant before pandas 3
        df[objects] = df[objects].astype(str)
        df.to_parquet(target / f"{n:06d}.parquet")
        events += len(df)
    print(json.dumps({"events": events}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
