"""CloudTrail records written the way query engines and SIEMs export them, from their documented formats: the
tests read these back and compare with the raw records.

- CloudTrail Lake `get-query-results`: `QueryResultRows`, each row a list of one-column string maps; nested
  fields as the struct text Trino prints, request and response objects as string maps.
- CloudTrail Lake's console CSV download: the same columns and text, with a header row.
- Athena query results over the standard CloudTrail table: lower-case columns, `useridentity` and
  `resources` as Hive struct text with lower-case keys, the request, response and additional data as JSON text.
- OpenSearch / Elasticsearch: a search response (`hits.hits[]._source`) and `elasticdump` lines.
- Splunk: export lines (`{"preview": false, "result": {"_raw": ...}}`) and a results document.
- Amazon Security Lake: OCSF rows in Parquet (`tests.ocsf`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from tests import ocsf

LAKE_COLUMNS = (
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "sharedEventID",
    "eventCategory",
)
ATHENA_COLUMNS = tuple(c.lower() for c in LAKE_COLUMNS if c not in ("managementEvent", "eventCategory"))


def hive(value: Any) -> str:
    """Struct, map and array text as Hive and Trino print it, keys lower-cased as Hive does."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k.lower()}={hive(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(hive(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def string_map(value: Any) -> str:
    """A map<string, string> as CloudTrail Lake keeps request and response objects: nested values as JSON."""
    if not isinstance(value, dict):
        return "" if value is None else json.dumps(value)
    items = (
        f"{k}={json.dumps(v, separators=(',', ':')) if isinstance(v, dict | list) else v}" for k, v in value.items()
    )
    return "{" + ", ".join(items) + "}"


def lake_cell(column: str, record: dict[str, Any]) -> str:
    value = record.get(column)
    if value is None:
        return ""
    if column == "eventTime":  # as CloudTrail Lake prints times: a space, milliseconds, no zone
        return value.replace("T", " ").replace("Z", ".000")
    if column in ("requestParameters", "responseElements", "additionalEventData"):
        return string_map(value)
    if column in ("userIdentity", "resources") or isinstance(value, bool):
        return hive(value)
    return str(value)


def athena_cell(column: str, record: dict[str, Any]) -> str:
    name = next(c for c in LAKE_COLUMNS if c.lower() == column)
    value = record.get(name)
    if value is None:
        return ""
    if name in ("requestParameters", "responseElements", "additionalEventData"):
        return json.dumps(value)
    if name in ("userIdentity", "resources") or isinstance(value, bool):
        return hive(value)
    return str(value)


def _csv(header: Sequence[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def cloudtrail_lake_json(records: list[dict[str, Any]]) -> bytes:
    rows = [[{c: lake_cell(c, r)} for c in LAKE_COLUMNS] for r in records]
    stats = {"ResultsCount": len(rows), "TotalResultsCount": len(rows), "BytesScanned": 1024}
    return json.dumps({"QueryStatus": "FINISHED", "QueryStatistics": stats, "QueryResultRows": rows}).encode()


def cloudtrail_lake_csv(records: list[dict[str, Any]]) -> bytes:
    return _csv(LAKE_COLUMNS, [[lake_cell(c, r) for c in LAKE_COLUMNS] for r in records])


def athena_csv(records: list[dict[str, Any]], columns: Sequence[str] = ATHENA_COLUMNS) -> bytes:
    return _csv(columns, [[athena_cell(c, r) for c in columns] for r in records])


def opensearch_hits(records: list[dict[str, Any]]) -> bytes:
    hits = [{"_index": "cloudtrail", "_id": r["eventID"], "_score": 1.0, "_source": r} for r in records]
    return json.dumps({"took": 3, "timed_out": False, "hits": {"total": {"value": len(hits)}, "hits": hits}}).encode()


def elasticdump(records: list[dict[str, Any]]) -> bytes:
    lines = [{"_index": "cloudtrail", "_type": "_doc", "_id": r["eventID"], "_source": r} for r in records]
    return "\n".join(json.dumps(line) for line in lines).encode()


def splunk_lines(records: list[dict[str, Any]]) -> bytes:
    results = [{"_raw": json.dumps(r), "sourcetype": "aws:cloudtrail", "_time": r["eventTime"]} for r in records]
    return "\n".join(json.dumps({"preview": False, "offset": n, "result": x}) for n, x in enumerate(results)).encode()


def splunk_results(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"results": [{"_raw": json.dumps(r), "sourcetype": "aws:cloudtrail"} for r in records]}).encode()


SHAPES: dict[str, tuple[str, Callable[[list[dict[str, Any]]], bytes]]] = {
    "security-lake-ocsf": ("ocsf.gz.parquet", ocsf.parquet),
    "cloudtrail-lake-json": ("results.json", cloudtrail_lake_json),
    "cloudtrail-lake-csv": ("results.csv", cloudtrail_lake_csv),
    "athena-csv": ("athena.csv", athena_csv),
    "opensearch-hits": ("search.json", opensearch_hits),
    "elasticdump": ("dump.json", elasticdump),
    "splunk-lines": ("splunk.json", splunk_lines),
    "splunk-results": ("splunk-results.json", splunk_results),
}
