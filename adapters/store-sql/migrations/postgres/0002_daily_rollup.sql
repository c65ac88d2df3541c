-- Per-day, per-platform totals: a few rows per day, so the dashboard's
-- overview (totals, platforms, storage), day/week/month timelines and the
-- download list's counts stay fast however many downloads and sources
-- there are. The hourly rollup remains for per-source and per-content-type
-- breakdowns and hourly timelines.

CREATE TABLE download_daily (
    day         TIMESTAMPTZ NOT NULL,
    platform    TEXT        NOT NULL,
    completed   BIGINT      NOT NULL DEFAULT 0,
    failed      BIGINT      NOT NULL DEFAULT 0,
    -- Bytes of completed downloads that own their file.
    size_bytes  BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (day, platform)
);

INSERT INTO download_daily (day, platform, completed, failed, size_bytes)
SELECT date_trunc('day', download_date, 'UTC'), platform,
       count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status = 'failed'),
       COALESCE(sum(file_size) FILTER (WHERE status = 'completed' AND duplicate_of IS NULL), 0)
FROM downloads
GROUP BY 1, 2;

CREATE OR REPLACE FUNCTION download_rollup_apply(d downloads, sign INTEGER) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    completed_delta BIGINT := CASE WHEN d.status = 'completed' THEN sign ELSE 0 END;
    failed_delta    BIGINT := CASE WHEN d.status = 'failed' THEN sign ELSE 0 END;
    size_delta      BIGINT := CASE WHEN d.status = 'completed' AND d.duplicate_of IS NULL
                                   THEN sign * COALESCE(d.file_size, 0) ELSE 0 END;
BEGIN
    INSERT INTO download_rollup AS r (hour, platform, source, content_type, completed, failed, size_bytes)
    VALUES (date_trunc('hour', d.download_date, 'UTC'), d.platform, d.source, d.content_type,
            completed_delta, failed_delta, size_delta)
    ON CONFLICT (hour, platform, source, content_type) DO UPDATE SET
        completed  = r.completed + EXCLUDED.completed,
        failed     = r.failed + EXCLUDED.failed,
        size_bytes = r.size_bytes + EXCLUDED.size_bytes;
    INSERT INTO download_daily AS r (day, platform, completed, failed, size_bytes)
    VALUES (date_trunc('day', d.download_date, 'UTC'), d.platform,
            completed_delta, failed_delta, size_delta)
    ON CONFLICT (day, platform) DO UPDATE SET
        completed  = r.completed + EXCLUDED.completed,
        failed     = r.failed + EXCLUDED.failed,
        size_bytes = r.size_bytes + EXCLUDED.size_bytes;
END;
$$;
