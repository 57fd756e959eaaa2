-- TrailGuard lake in DuckDB: every event once, whatever re-processing wrote twice.
CREATE OR REPLACE VIEW trailguard_events AS
SELECT * EXCLUDE (rn) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ingested_at) AS rn
  FROM read_parquet('/var/lib/trailguard/lake/events/date=*/*.parquet', hive_partitioning = true, union_by_name = true)
)
WHERE rn = 1;
