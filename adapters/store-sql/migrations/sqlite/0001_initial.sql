-- mediadl on SQLite: the initial schema.
-- Forward-only: later changes go in new numbered files, never edits here.
--
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC): they
-- compare, index and bucket as plain integers, at the precision PostgreSQL
-- keeps. JSON documents are TEXT.

-- The download history.
CREATE TABLE downloads (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    url            TEXT    NOT NULL,
    url_hash       TEXT    NOT NULL,
    archive_key    TEXT    NOT NULL,
    platform       TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    filename       TEXT,
    file_path      TEXT,
    file_size      INTEGER CHECK (file_size >= 0),
    file_hash      TEXT,
    post_date      INTEGER,
    download_date  INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('completed', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    error_message  TEXT,
    duplicate_of   INTEGER,
    queue_id       INTEGER,
    metadata       TEXT    NOT NULL DEFAULT '{}'
);

-- "Downloaded once": the archive key is the identity of a media item.
CREATE UNIQUE INDEX downloads_archive_key_key ON downloads (archive_key);
-- The list's order alone (no filter, date ranges) and after each equality filter.
CREATE INDEX downloads_date_idx ON downloads (download_date, id);
CREATE INDEX downloads_platform_date_idx ON downloads (platform, download_date, id);
CREATE INDEX downloads_source_date_idx ON downloads (source, download_date, id);
CREATE INDEX downloads_status_date_idx ON downloads (status, download_date, id);
-- Latest completed download per platform.
CREATE INDEX downloads_platform_status_date_idx ON downloads (platform, status, download_date);
-- De-duplication by content and the duplicates of a record.
CREATE INDEX downloads_file_hash_idx ON downloads (file_hash) WHERE file_hash IS NOT NULL;
CREATE INDEX downloads_duplicate_of_idx ON downloads (duplicate_of) WHERE duplicate_of IS NOT NULL;

-- Stats: totals kept by triggers, so totals, breakdowns, timelines and
-- list counts over a million downloads read thousands of rows, not
-- millions. Partial hours (days) at a window's edges are read from
-- `downloads` itself. Rows whose counts fall to zero are harmless.
CREATE TABLE download_rollup (
    hour          INTEGER NOT NULL,
    platform      TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    completed     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    -- Bytes of completed downloads that own their file.
    size_bytes    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, platform, content_type)
) WITHOUT ROWID;
CREATE INDEX download_rollup_platform_idx ON download_rollup (platform, hour);

CREATE TABLE download_source_rollup (
    day           INTEGER NOT NULL,
    source        TEXT    NOT NULL,
    completed     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    size_bytes    INTEGER NOT NULL DEFAULT 0,
    -- Source first: an all-time breakdown groups in key order, no sort.
    PRIMARY KEY (source, day)
) WITHOUT ROWID;
CREATE INDEX download_source_rollup_day_idx ON download_source_rollup (day, source);

-- Floor to the hour / day that also holds for times before 1970.
CREATE TRIGGER downloads_rollup_insert AFTER INSERT ON downloads BEGIN
    INSERT INTO download_rollup (hour, platform, content_type, completed, failed, size_bytes)
    VALUES (
        NEW.download_date - (((NEW.download_date % 3600000000) + 3600000000) % 3600000000),
        NEW.platform, NEW.content_type,
        NEW.status = 'completed', NEW.status = 'failed',
        CASE WHEN NEW.status = 'completed' AND NEW.duplicate_of IS NULL
             THEN COALESCE(NEW.file_size, 0) ELSE 0 END
    )
    ON CONFLICT (hour, platform, content_type) DO UPDATE SET
        completed  = completed + excluded.completed,
        failed     = failed + excluded.failed,
        size_bytes = size_bytes + excluded.size_bytes;
    INSERT INTO download_source_rollup (day, source, completed, failed, size_bytes)
    VALUES (
        NEW.download_date - (((NEW.download_date % 86400000000) + 86400000000) % 86400000000),
        NEW.source,
        NEW.status = 'completed', NEW.status = 'failed',
        CASE WHEN NEW.status = 'completed' AND NEW.duplicate_of IS NULL
             THEN COALESCE(NEW.file_size, 0) ELSE 0 END
    )
    ON CONFLICT (source, day) DO UPDATE SET
        completed  = completed + excluded.completed,
        failed     = failed + excluded.failed,
        size_bytes = size_bytes + excluded.size_bytes;
END;

CREATE TRIGGER downloads_rollup_delete AFTER DELETE ON downloads BEGIN
    UPDATE download_rollup SET
        completed  = completed - (OLD.status = 'completed'),
        failed     = failed - (OLD.status = 'failed'),
        size_bytes = size_bytes - CASE WHEN OLD.status = 'completed' AND OLD.duplicate_of IS NULL
                                       THEN COALESCE(OLD.file_size, 0) ELSE 0 END
    WHERE hour = OLD.download_date - (((OLD.download_date % 3600000000) + 3600000000) % 3600000000)
      AND platform = OLD.platform AND content_type = OLD.content_type;
    UPDATE download_source_rollup SET
        completed  = completed - (OLD.status = 'completed'),
        failed     = failed - (OLD.status = 'failed'),
        size_bytes = size_bytes - CASE WHEN OLD.status = 'completed' AND OLD.duplicate_of IS NULL
                                       THEN COALESCE(OLD.file_size, 0) ELSE 0 END
    WHERE day = OLD.download_date - (((OLD.download_date % 86400000000) + 86400000000) % 86400000000)
      AND source = OLD.source;
END;

CREATE TRIGGER downloads_rollup_update
AFTER UPDATE OF download_date, platform, source, content_type, status, file_size, duplicate_of ON downloads
BEGIN
    UPDATE download_rollup SET
        completed  = completed - (OLD.status = 'completed'),
        failed     = failed - (OLD.status = 'failed'),
        size_bytes = size_bytes - CASE WHEN OLD.status = 'completed' AND OLD.duplicate_of IS NULL
                                       THEN COALESCE(OLD.file_size, 0) ELSE 0 END
    WHERE hour = OLD.download_date - (((OLD.download_date % 3600000000) + 3600000000) % 3600000000)
      AND platform = OLD.platform AND content_type = OLD.content_type;
    UPDATE download_source_rollup SET
        completed  = completed - (OLD.status = 'completed'),
        failed     = failed - (OLD.status = 'failed'),
        size_bytes = size_bytes - CASE WHEN OLD.status = 'completed' AND OLD.duplicate_of IS NULL
                                       THEN COALESCE(OLD.file_size, 0) ELSE 0 END
    WHERE day = OLD.download_date - (((OLD.download_date % 86400000000) + 86400000000) % 86400000000)
      AND source = OLD.source;
    INSERT INTO download_rollup (hour, platform, content_type, completed, failed, size_bytes)
    VALUES (
        NEW.download_date - (((NEW.download_date % 3600000000) + 3600000000) % 3600000000),
        NEW.platform, NEW.content_type,
        NEW.status = 'completed', NEW.status = 'failed',
        CASE WHEN NEW.status = 'completed' AND NEW.duplicate_of IS NULL
             THEN COALESCE(NEW.file_size, 0) ELSE 0 END
    )
    ON CONFLICT (hour, platform, content_type) DO UPDATE SET
        completed  = completed + excluded.completed,
        failed     = failed + excluded.failed,
        size_bytes = size_bytes + excluded.size_bytes;
    INSERT INTO download_source_rollup (day, source, completed, failed, size_bytes)
    VALUES (
        NEW.download_date - (((NEW.download_date % 86400000000) + 86400000000) % 86400000000),
        NEW.source,
        NEW.status = 'completed', NEW.status = 'failed',
        CASE WHEN NEW.status = 'completed' AND NEW.duplicate_of IS NULL
             THEN COALESCE(NEW.file_size, 0) ELSE 0 END
    )
    ON CONFLICT (source, day) DO UPDATE SET
        completed  = completed + excluded.completed,
        failed     = failed + excluded.failed,
        size_bytes = size_bytes + excluded.size_bytes;
END;

-- The work queue. `lease_token` is set while a worker holds the item.
CREATE TABLE queue (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    url                   TEXT    NOT NULL,
    platform              TEXT    NOT NULL,
    source                TEXT    NOT NULL,
    content_type          TEXT    NOT NULL,
    referer               TEXT,
    save_path             TEXT,
    priority              INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    status                TEXT    NOT NULL
        CHECK (status IN ('pending', 'downloading', 'paused', 'completed', 'failed')),
    attempts              INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL,
    created_date          INTEGER NOT NULL,
    started_at            INTEGER,
    download_date         INTEGER,
    progress              INTEGER NOT NULL DEFAULT 0,
    estimated_completion  INTEGER,
    assigned_worker       TEXT,
    error_message         TEXT,
    next_attempt_at       INTEGER NOT NULL,
    lease_token           TEXT,
    lease_expires_at      INTEGER,
    items_downloaded      INTEGER NOT NULL DEFAULT 0,
    items_total           INTEGER,
    options               TEXT    NOT NULL DEFAULT '{}',
    metadata              TEXT    NOT NULL DEFAULT '{}'
);
-- The claim (due pending items, most urgent first) and lists by status.
-- Few indexes on purpose: every claim and completion rewrites them.
CREATE INDEX queue_status_idx ON queue (status, priority, created_date, id);
-- The reaper: leases that ran out.
CREATE INDEX queue_lease_idx ON queue (lease_expires_at) WHERE status = 'downloading';
-- Lists by platform.
CREATE INDEX queue_platform_idx ON queue (platform, priority, created_date, id);

-- Scheduled jobs and their history.
CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    platform         TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    content_type     TEXT    NOT NULL,
    schedule         TEXT    NOT NULL,
    timezone         TEXT,
    enabled          INTEGER NOT NULL,
    catch_up         TEXT    NOT NULL,
    config           TEXT    NOT NULL DEFAULT '{}',
    monitor_until    INTEGER,
    last_run         INTEGER,
    last_run_status  TEXT,
    last_run_items   INTEGER,
    next_run         INTEGER,
    last_slot        INTEGER,
    total_runs       INTEGER NOT NULL DEFAULT 0,
    success_count    INTEGER NOT NULL DEFAULT 0,
    failure_count    INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE job_runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id            TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    started_at        INTEGER NOT NULL,
    completed_at      INTEGER,
    duration_seconds  REAL,
    status            TEXT    NOT NULL
        CHECK (status IN ('running', 'success', 'failure', 'skipped')),
    items_downloaded  INTEGER NOT NULL DEFAULT 0,
    error_message     TEXT,
    queue_id          INTEGER
);
CREATE INDEX job_runs_started_idx ON job_runs (started_at, id);
CREATE INDEX job_runs_job_idx ON job_runs (job_id, started_at, id);
CREATE INDEX job_runs_running_idx ON job_runs (job_id) WHERE status = 'running';

-- Accounts: `username_key` is the lowercased name, unique.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL,
    username_key   TEXT    NOT NULL UNIQUE,
    email          TEXT,
    role           TEXT    NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
    disabled       INTEGER NOT NULL DEFAULT 0,
    -- argon2 PHC strings only.
    password_hash  TEXT    NOT NULL CHECK (password_hash LIKE '$argon2%'),
    created_at     INTEGER NOT NULL,
    last_login     INTEGER
);

CREATE TABLE refresh_tokens (
    id          TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- The settings document: one row.
CREATE TABLE settings (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    document  TEXT    NOT NULL
);

-- Stored application logs.
CREATE TABLE logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp  INTEGER NOT NULL,
    level      TEXT    NOT NULL,
    module     TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    metadata   TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX logs_timestamp_idx ON logs (timestamp, id);
CREATE INDEX logs_level_idx ON logs (level, timestamp, id);

-- Small JSON documents per key (a thread's last page, a feed cursor).
CREATE TABLE state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
