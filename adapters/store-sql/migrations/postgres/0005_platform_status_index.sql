-- The dashboard's "platform + status" list: without this index PostgreSQL
-- walks the platform (or status) index and filters the other column,
-- which grows with the share of rows the filter drops; with it, the page
-- is the first rows of one index range.
CREATE INDEX downloads_platform_status_date_idx
    ON downloads (platform, status, download_date DESC, id DESC);
