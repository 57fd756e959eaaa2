"""The lake's de-duplicating view for DuckDB and Athena, generated from the one schema.

Readers outside TrailGuard get the same exactly-once guarantee as `Lake.read`: the view keeps
the first-ingested row of each `event_id`. The checked-in files under `deploy/` are these
functions' output (a test keeps them in step with the schema).
"""

from __future__ import annotations

import pyarrow as pa

from monitor.ingest.events import SCHEMA

_ATHENA_TYPES = {pa.string(): "string", pa.bool_(): "boolean"}


def _athena_type(kind: pa.DataType) -> str:
    return "timestamp" if pa.types.is_timestamp(kind) else _ATHENA_TYPES[kind]


def duckdb_view(lake: str) -> str:
    """A DuckDB view over a local or S3 lake (`lake` as a path or s3:// URI). Columns are matched by name: files
    written before a column was added lack it (the lake adds columns, never renames them)."""
    files = f"{lake.rstrip('/')}/events/date=*/*.parquet".replace("'", "''")  # a quote in a path ends no string
    return f"""-- TrailGuard lake in DuckDB: every event once, whatever re-processing wrote twice.
CREATE OR REPLACE VIEW trailguard_events AS
SELECT * EXCLUDE (rn) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ingested_at) AS rn
  FROM read_parquet('{files}', hive_partitioning = true, union_by_name = true)
)
WHERE rn = 1;
"""


def athena_ddl(location: str) -> str:
    """The raw table with partition projection on `date`, and the de-duplicating view."""
    base = location.rstrip("/")
    columns = ",\n  ".join(f"{f.name} {_athena_type(f.type)}" for f in SCHEMA)
    columns_list = ",\n  ".join(SCHEMA.names)
    return f"""-- TrailGuard lake in Athena. Replace the location with your lake's (s3://bucket/prefix).
CREATE EXTERNAL TABLE IF NOT EXISTS trailguard_events_raw (
  {columns}
)
PARTITIONED BY (`date` string)
STORED AS PARQUET
LOCATION '{base}/events/'
TBLPROPERTIES (
  'parquet.compression' = 'ZSTD',
  'projection.enabled' = 'true',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy-MM-dd',
  'projection.date.range' = '2020-01-01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{base}/events/date=${{date}}'
);

-- Every event once: the first-ingested copy of each event_id.
CREATE OR REPLACE VIEW trailguard_events AS
SELECT
  {columns_list},
  `date`
FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ingested_at) AS rn
  FROM trailguard_events_raw
)
WHERE rn = 1;
"""
