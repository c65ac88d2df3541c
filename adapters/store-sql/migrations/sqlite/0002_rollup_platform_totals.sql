-- List counts by platform (`GET /downloads?platform=…`) sum a year of
-- hourly roll-up rows per request. With the counts in the index the sum
-- reads only index pages; without them every row cost a second lookup in
-- the table, which was most of the list endpoint's time over a million
-- downloads. The new index starts with the old one's columns, so it
-- serves everything the old one did.
DROP INDEX download_rollup_platform_idx;
CREATE INDEX download_rollup_platform_totals_idx
    ON download_rollup (platform, hour, completed, failed, size_bytes);
