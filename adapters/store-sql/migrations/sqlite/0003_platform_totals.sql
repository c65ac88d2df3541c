-- All-time totals per platform, kept by triggers. `GET /downloads` without
-- date bounds (the usual case) counts from here in a row per platform,
-- instead of summing a year of hourly roll-up rows on every request.
CREATE TABLE download_platform_totals (
    platform   TEXT    NOT NULL PRIMARY KEY,
    completed  INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO download_platform_totals (platform, completed, failed)
SELECT platform, SUM(completed), SUM(failed) FROM download_rollup GROUP BY platform;

CREATE TRIGGER downloads_platform_totals_insert AFTER INSERT ON downloads BEGIN
    INSERT INTO download_platform_totals (platform, completed, failed)
    VALUES (NEW.platform, NEW.status = 'completed', NEW.status = 'failed')
    ON CONFLICT (platform) DO UPDATE SET
        completed = completed + excluded.completed,
        failed    = failed + excluded.failed;
END;

CREATE TRIGGER downloads_platform_totals_delete AFTER DELETE ON downloads BEGIN
    UPDATE download_platform_totals SET
        completed = completed - (OLD.status = 'completed'),
        failed    = failed - (OLD.status = 'failed')
    WHERE platform = OLD.platform;
END;

CREATE TRIGGER downloads_platform_totals_update
AFTER UPDATE OF platform, status ON downloads
BEGIN
    UPDATE download_platform_totals SET
        completed = completed - (OLD.status = 'completed'),
        failed    = failed - (OLD.status = 'failed')
    WHERE platform = OLD.platform;
    INSERT INTO download_platform_totals (platform, completed, failed)
    VALUES (NEW.platform, NEW.status = 'completed', NEW.status = 'failed')
    ON CONFLICT (platform) DO UPDATE SET
        completed = completed + excluded.completed,
        failed    = failed + excluded.failed;
END;
