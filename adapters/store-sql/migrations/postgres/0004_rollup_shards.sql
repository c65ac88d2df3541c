-- Workers recording downloads of one source at the same time (a job run
-- with several workers) all update the same rollup rows, and each waits
-- for the previous writer's commit. Each logical rollup row is spread over
-- 8 shards, picked by the writing backend, so up to 8 writers proceed at
-- once; readers sum over shards as they already sum over rows.
ALTER TABLE download_rollup ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE download_rollup DROP CONSTRAINT download_rollup_pkey;
ALTER TABLE download_rollup ADD PRIMARY KEY (hour, platform, source, content_type, shard);

ALTER TABLE download_daily ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE download_daily DROP CONSTRAINT download_daily_pkey;
ALTER TABLE download_daily ADD PRIMARY KEY (day, platform, shard);

CREATE OR REPLACE FUNCTION download_rollup_apply(d downloads, sign INTEGER) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    writer_shard    SMALLINT := (pg_backend_pid() % 8)::SMALLINT;
    completed_delta BIGINT := CASE WHEN d.status = 'completed' THEN sign ELSE 0 END;
    failed_delta    BIGINT := CASE WHEN d.status = 'failed' THEN sign ELSE 0 END;
    size_delta      BIGINT := CASE WHEN d.status = 'completed' AND d.duplicate_of IS NULL
                                   THEN sign * COALESCE(d.file_size, 0) ELSE 0 END;
BEGIN
    INSERT INTO download_rollup AS r
        (hour, platform, source, content_type, shard, completed, failed, size_bytes)
    VALUES (date_trunc('hour', d.download_date, 'UTC'), d.platform, d.source, d.content_type,
            writer_shard, completed_delta, failed_delta, size_delta)
    ON CONFLICT (hour, platform, source, content_type, shard) DO UPDATE SET
        completed  = r.completed + EXCLUDED.completed,
        failed     = r.failed + EXCLUDED.failed,
        size_bytes = r.size_bytes + EXCLUDED.size_bytes;
    INSERT INTO download_daily AS r (day, platform, shard, completed, failed, size_bytes)
    VALUES (date_trunc('day', d.download_date, 'UTC'), d.platform, writer_shard,
            completed_delta, failed_delta, size_delta)
    ON CONFLICT (day, platform, shard) DO UPDATE SET
        completed  = r.completed + EXCLUDED.completed,
        failed     = r.failed + EXCLUDED.failed,
        size_bytes = r.size_bytes + EXCLUDED.size_bytes;
END;
$$;
