-- Every download write updates one row in each rollup, so those rows are
-- rewritten constantly. Half-empty pages let PostgreSQL keep the new
-- versions on the same page (HOT updates, pruned in place), and vacuuming
-- after a thousand dead rows rather than a fraction of the table keeps
-- the small tables small, so aggregates stay a scan of a few pages.
ALTER TABLE download_rollup SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE download_daily SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);
