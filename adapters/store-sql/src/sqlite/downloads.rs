//! The download history and its statistics on SQLite.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{
    Bucket, Download, DownloadFilter, DownloadStatus, DownloadTotals, GroupBy, GroupTotals,
    Metadata, NewDownload, Page, Paged, TimelinePoint, Window, url_hash,
};
use mediadl::store::rules::{self, from_micros};
use mediadl::store::{DownloadRepo, StoreResult};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{self, json_text, micros, opt_micros};
use super::{SqliteStore, map_err};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 86_400_000_000;
/// Keys per `IN (…)` list, well under SQLite's variable limit.
const KEY_CHUNK: usize = 500;

const INSERT: &str = "INSERT INTO downloads (url, url_hash, archive_key, platform, source, \
    content_type, filename, file_path, file_size, file_hash, post_date, download_date, status, \
    attempts, error_message, duplicate_of, queue_id, metadata) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
    RETURNING *";

const REPLACE: &str = "UPDATE downloads SET url = $1, url_hash = $2, archive_key = $3, \
    platform = $4, source = $5, content_type = $6, filename = $7, file_path = $8, \
    file_size = $9, file_hash = $10, post_date = $11, download_date = $12, status = $13, \
    attempts = $14, error_message = $15, duplicate_of = $16, queue_id = $17, metadata = $18 \
    WHERE id = $19 RETURNING *";

/// Binds the 18 columns of a record in the order of [`INSERT`] and [`REPLACE`].
fn bind_download<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    new: &NewDownload,
) -> StoreResult<sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>> {
    let file_size = new
        .file_size
        .map(i64::try_from)
        .transpose()
        .map_err(|_| StoreError::Invalid("file_size is too large".into()))?;
    Ok(query
        .bind(new.url.clone())
        .bind(url_hash(&new.archive_key))
        .bind(new.archive_key.clone())
        .bind(new.platform.clone())
        .bind(new.source.clone())
        .bind(new.content_type.clone())
        .bind(new.filename.clone())
        .bind(new.file_path.clone())
        .bind(file_size)
        .bind(new.file_hash.clone())
        .bind(opt_micros(new.post_date))
        .bind(micros(new.download_date))
        .bind(new.status.as_str())
        .bind(i64::from(new.attempts))
        .bind(new.error_message.clone())
        .bind(new.duplicate_of)
        .bind(new.queue_id)
        .bind(json_text(&new.metadata)?))
}

/// Appends the `WHERE` clause of a download filter.
fn push_filter(qb: &mut QueryBuilder<Sqlite>, filter: &DownloadFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(platform) = &filter.platform {
        qb.push(" AND platform = ").push_bind(platform.clone());
    }
    if let Some(source) = &filter.source {
        qb.push(" AND source = ").push_bind(source.clone());
    }
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    let (from, to) = rules::download_date_range(filter);
    if let Some(from) = from {
        qb.push(" AND download_date >= ").push_bind(micros(from));
    }
    if let Some(to) = to {
        qb.push(" AND download_date < ").push_bind(micros(to));
    }
    if let Some(search) = &filter.search {
        let pattern = rules::like_substring_pattern(search);
        qb.push(" AND (url LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR filename LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

/// The page query: the records plus, in a column of each row, the count of
/// all records the filter matches ([`push_count`]), so one statement
/// answers both (one round trip to the connection's thread, one snapshot).
fn list_query(filter: &DownloadFilter, page: Page) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::new("SELECT *, (");
    push_count(&mut qb, filter);
    qb.push(") AS total_matching FROM downloads");
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY download_date DESC, id DESC LIMIT ")
        .push_bind(i64::from(page.per_page))
        .push(" OFFSET ")
        .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
    qb
}

pub(super) async fn explain_list(
    store: &SqliteStore,
    filter: &DownloadFilter,
) -> StoreResult<Vec<String>> {
    let mut qb = QueryBuilder::new("EXPLAIN QUERY PLAN ");
    qb.push("SELECT * FROM downloads");
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY download_date DESC, id DESC LIMIT 50");
    let rows = qb.build().fetch_all(&store.reader).await.map_err(map_err)?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("detail").map_err(map_err))
        .collect()
}

/// Appends a query counting the records a filter matches. Filters that the
/// roll-ups can answer exactly (day-aligned dates with platform and/or
/// status, or with source alone) read the roll-ups instead of counting
/// index entries; without dates, platform and status read the all-time
/// totals.
fn push_count(qb: &mut QueryBuilder<Sqlite>, filter: &DownloadFilter) {
    let (from, to) = rules::download_date_range(filter);
    let from = from.map_or(i64::MIN, micros);
    let to = to.map_or(i64::MAX, micros);
    let column = match filter.status {
        None => "completed + failed",
        Some(DownloadStatus::Completed) => "completed",
        Some(DownloadStatus::Failed) => "failed",
    };
    let unbounded = from == i64::MIN && to == i64::MAX;
    if filter.search.is_none() && filter.source.is_none() && unbounded {
        qb.push(format!(
            "SELECT COALESCE(SUM({column}), 0) FROM download_platform_totals"
        ));
        if let Some(platform) = &filter.platform {
            qb.push(" WHERE platform = ").push_bind(platform.clone());
        }
    } else if filter.search.is_none() && filter.source.is_none() {
        qb.push(format!(
            "SELECT COALESCE(SUM({column}), 0) FROM download_rollup WHERE hour >= "
        ));
        qb.push_bind(from).push(" AND hour < ").push_bind(to);
        if let Some(platform) = &filter.platform {
            qb.push(" AND platform = ").push_bind(platform.clone());
        }
    } else if filter.search.is_none() && filter.platform.is_none() {
        qb.push(format!(
            "SELECT COALESCE(SUM({column}), 0) FROM download_source_rollup WHERE day >= "
        ));
        qb.push_bind(from).push(" AND day < ").push_bind(to);
        if let Some(source) = &filter.source {
            qb.push(" AND source = ").push_bind(source.clone());
        }
    } else {
        qb.push("SELECT COUNT(*) FROM downloads");
        push_filter(qb, filter);
    }
}

/// Counts the records a filter matches (see [`push_count`]).
async fn count_matching(store: &SqliteStore, filter: &DownloadFilter) -> StoreResult<u64> {
    let mut qb = QueryBuilder::new("");
    push_count(&mut qb, filter);
    let count: i64 = qb
        .build_query_scalar()
        .fetch_one(&store.reader)
        .await
        .map_err(map_err)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// A stats window split into whole units (read from a roll-up) and the
/// partial units at its edges (read from `downloads`).
struct Split {
    rollup: Option<(i64, i64)>,
    raw: Vec<(i64, i64)>,
}

fn split_window(window: Window, unit: i64) -> Split {
    let from = window.from.map(micros);
    let to = window.to.map(micros);
    let whole_from = from.map_or(i64::MIN, |f| {
        let floor = f - f.rem_euclid(unit);
        if floor == f {
            f
        } else {
            floor.saturating_add(unit)
        }
    });
    let whole_to = to.map_or(i64::MAX, |t| t - t.rem_euclid(unit));
    let from = from.unwrap_or(i64::MIN);
    let to = to.unwrap_or(i64::MAX);
    if whole_from >= whole_to {
        return Split {
            rollup: None,
            raw: vec![(from, to)],
        };
    }
    let mut raw = Vec::new();
    if from < whole_from {
        raw.push((from, whole_from));
    }
    if whole_to < to {
        raw.push((whole_to, to));
    }
    Split {
        rollup: Some((whole_from, whole_to)),
        raw,
    }
}

const OWNED_SIZE: &str = "CASE WHEN status = 'completed' AND duplicate_of IS NULL \
    THEN COALESCE(file_size, 0) ELSE 0 END";

/// `WITH src(ts, key, completed, failed, size_bytes) AS (…)`: the window's
/// rows, grouped by `key_column` (platform, content type or source).
fn push_stats_source(qb: &mut QueryBuilder<Sqlite>, window: Window, key_column: &str) {
    let by_source = key_column == "source";
    let (table, ts, unit) = if by_source {
        ("download_source_rollup", "day", DAY)
    } else {
        ("download_rollup", "hour", HOUR)
    };
    let split = split_window(window, unit);
    qb.push("WITH src(ts, key, completed, failed, size_bytes) AS (");
    let mut first = true;
    if let Some((from, to)) = split.rollup {
        qb.push(format!(
            "SELECT {ts}, {key_column}, completed, failed, size_bytes FROM {table} WHERE {ts} >= "
        ))
        .push_bind(from)
        .push(format!(" AND {ts} < "))
        .push_bind(to);
        first = false;
    }
    for (from, to) in split.raw {
        if !first {
            qb.push(" UNION ALL ");
        }
        first = false;
        qb.push(format!(
            "SELECT download_date, {key_column}, status = 'completed', status = 'failed', \
             {OWNED_SIZE} FROM downloads WHERE download_date >= "
        ))
        .push_bind(from)
        .push(" AND download_date < ")
        .push_bind(to);
    }
    qb.push(") ");
}

fn totals_from(row: &sqlx::sqlite::SqliteRow) -> StoreResult<DownloadTotals> {
    let completed: i64 = row.try_get(0).map_err(map_err)?;
    let failed: i64 = row.try_get(1).map_err(map_err)?;
    let size: i64 = row.try_get(2).map_err(map_err)?;
    let positive = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(DownloadTotals {
        total: positive(completed + failed),
        completed: positive(completed),
        failed: positive(failed),
        size_bytes: positive(size),
    })
}

#[async_trait]
impl DownloadRepo for SqliteStore {
    async fn insert_download(&self, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let mut conn = self.write_conn().await?;
        let row = bind_download(sqlx::query(INSERT), &new)?
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| match map_err(err) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "archive key {} is already recorded",
                    new.archive_key
                )),
                other => other,
            })?;
        rows::download(&row)
    }

    async fn insert_downloads(
        &self,
        new: Vec<NewDownload>,
    ) -> StoreResult<Vec<StoreResult<Download>>> {
        // One commit for the batch; a constraint failure undoes only its
        // own statement in SQLite, so the others stand.
        let mut tx = self.write_tx().await?;
        let mut done = Vec::with_capacity(new.len());
        for one in new {
            if let Err(err) = rules::validate_new_download(&one) {
                done.push(Err(err));
                continue;
            }
            let inserted = bind_download(sqlx::query(INSERT), &one)?
                .fetch_one(&mut *tx)
                .await;
            done.push(match inserted.map_err(map_err) {
                Ok(row) => rows::download(&row),
                Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                    "archive key {} is already recorded",
                    one.archive_key
                ))),
                Err(err) => return Err(err),
            });
        }
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn replace_download(&self, id: i64, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let mut conn = self.write_conn().await?;
        let row = bind_download(sqlx::query(REPLACE), &new)?
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("download", id))?;
        rows::download(&row)
    }

    async fn get_download(&self, id: i64) -> StoreResult<Download> {
        let row = sqlx::query("SELECT * FROM downloads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("download", id))?;
        rows::download(&row)
    }

    async fn list_downloads(
        &self,
        filter: &DownloadFilter,
        page: Page,
    ) -> StoreResult<Paged<Download>> {
        let page = Page::new(page.page, page.per_page);
        if !rules::download_filter_can_match(filter) {
            return Ok(Paged {
                items: Vec::new(),
                total: 0,
            });
        }
        let mut qb = list_query(filter, page);
        let rows = qb.build().fetch_all(&self.reader).await.map_err(map_err)?;
        let total = match rows.first() {
            Some(row) => {
                let count: i64 = row.try_get("total_matching").map_err(map_err)?;
                u64::try_from(count).unwrap_or(0)
            }
            // A page past the end still reports the total.
            None => count_matching(self, filter).await?,
        };
        let items = rows::downloads(&rows)?;
        Ok(Paged { items, total })
    }

    async fn delete_download(&self, id: i64) -> StoreResult<Download> {
        let mut conn = self.write_conn().await?;
        let row = sqlx::query("DELETE FROM downloads WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("download", id))?;
        rows::download(&row)
    }

    async fn download_by_archive_key(&self, archive_key: &str) -> StoreResult<Option<Download>> {
        sqlx::query("SELECT * FROM downloads WHERE archive_key = $1")
            .bind(archive_key.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::download)
            .transpose()
    }

    async fn known_archive_keys(&self, archive_keys: &[String]) -> StoreResult<Vec<String>> {
        let mut known = HashSet::new();
        for chunk in archive_keys.chunks(KEY_CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT archive_key FROM downloads WHERE status = 'completed' AND archive_key IN (",
            );
            let mut keys = qb.separated(", ");
            for key in chunk {
                keys.push_bind(key.clone());
            }
            qb.push(")");
            let found: Vec<String> = qb
                .build_query_scalar()
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
            known.extend(found);
        }
        let mut seen = HashSet::new();
        Ok(archive_keys
            .iter()
            .filter(|key| known.contains(*key) && seen.insert(key.as_str()))
            .cloned()
            .collect())
    }

    async fn download_by_file_hash(&self, file_hash: &str) -> StoreResult<Option<Download>> {
        sqlx::query(
            "SELECT * FROM downloads WHERE file_hash = $1 AND status = 'completed' \
             AND duplicate_of IS NULL ORDER BY id LIMIT 1",
        )
        .bind(file_hash.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(rows::download)
        .transpose()
    }

    async fn update_download_metadata(&self, id: i64, patch: Metadata) -> StoreResult<Download> {
        let mut tx = self.write_tx().await?;
        let text: String = sqlx::query_scalar("SELECT metadata FROM downloads WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("download", id))?;
        let mut metadata: Metadata = serde_json::from_str(&text).map_err(|err| {
            StoreError::Internal(format!("corrupt metadata of download {id}: {err}"))
        })?;
        metadata.extend(patch);
        let row = sqlx::query("UPDATE downloads SET metadata = $1 WHERE id = $2 RETURNING *")
            .bind(json_text(&metadata)?)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows::download(&row)
    }

    async fn relocate_file(&self, from: &str, to: &str) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE downloads SET file_path = $2 WHERE file_path = $1")
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn downloads_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Download>> {
        sqlx::query(
            "SELECT * FROM downloads WHERE download_date < $1 \
             ORDER BY download_date, id LIMIT $2",
        )
        .bind(micros(cutoff))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)
        .and_then(|rows| rows::downloads(&rows))
    }

    async fn duplicates_of(&self, id: i64) -> StoreResult<Vec<Download>> {
        sqlx::query("SELECT * FROM downloads WHERE duplicate_of = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)
            .and_then(|rows| rows::downloads(&rows))
    }

    async fn download_totals(&self, window: Window) -> StoreResult<DownloadTotals> {
        let mut qb = QueryBuilder::new("");
        push_stats_source(&mut qb, window, "platform");
        qb.push(
            "SELECT COALESCE(SUM(completed), 0), COALESCE(SUM(failed), 0), \
             COALESCE(SUM(size_bytes), 0) FROM src",
        );
        let row = qb.build().fetch_one(&self.reader).await.map_err(map_err)?;
        totals_from(&row)
    }

    async fn download_totals_by(
        &self,
        group: GroupBy,
        window: Window,
    ) -> StoreResult<Vec<GroupTotals>> {
        let key_column = match group {
            GroupBy::Platform => "platform",
            GroupBy::Source => "source",
            GroupBy::ContentType => "content_type",
        };
        let mut qb = QueryBuilder::new("");
        push_stats_source(&mut qb, window, key_column);
        qb.push(
            "SELECT COALESCE(SUM(completed), 0), COALESCE(SUM(failed), 0), \
             COALESCE(SUM(size_bytes), 0), key FROM src GROUP BY key \
             HAVING SUM(completed) + SUM(failed) > 0 \
             ORDER BY SUM(completed) + SUM(failed) DESC, key",
        );
        let rows = qb.build().fetch_all(&self.reader).await.map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(GroupTotals {
                    key: row.try_get(3).map_err(map_err)?,
                    totals: totals_from(row)?,
                })
            })
            .collect()
    }

    async fn download_timeline(
        &self,
        bucket: Bucket,
        window: Window,
    ) -> StoreResult<Vec<TimelinePoint>> {
        let mut qb = QueryBuilder::new("");
        push_stats_source(&mut qb, window, "platform");
        qb.push(format!(
            "SELECT ts - (((ts % {HOUR}) + {HOUR}) % {HOUR}) AS hour, \
             SUM(completed), SUM(failed) FROM src GROUP BY hour ORDER BY hour"
        ));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(map_err)?;
        // Hours are few (8,760 a year); weeks and months are cut in Rust by
        // the same rule the other stores use.
        let mut points: BTreeMap<DateTime<Utc>, TimelinePoint> = BTreeMap::new();
        for row in &rows {
            let hour: i64 = row.try_get(0).map_err(map_err)?;
            let completed: i64 = row.try_get(1).map_err(map_err)?;
            let failed: i64 = row.try_get(2).map_err(map_err)?;
            let start = rules::bucket_start(bucket, from_micros(hour));
            let point = points.entry(start).or_insert(TimelinePoint {
                timestamp: start,
                downloads: 0,
                success: 0,
                failed: 0,
            });
            point.success += u64::try_from(completed).unwrap_or(0);
            point.failed += u64::try_from(failed).unwrap_or(0);
            point.downloads = point.success + point.failed;
        }
        Ok(points
            .into_values()
            .filter(|point| point.downloads > 0)
            .collect())
    }

    async fn storage_used(&self) -> StoreResult<u64> {
        let used: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(size_bytes), 0) FROM download_rollup")
                .fetch_one(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    async fn last_download_per_platform(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        // One index probe per platform instead of a scan of every record.
        let rows = sqlx::query(
            "SELECT platform, latest FROM ( \
                SELECT p.platform AS platform, \
                    (SELECT MAX(d.download_date) FROM downloads d \
                     WHERE d.platform = p.platform AND d.status = 'completed') AS latest \
                FROM (SELECT DISTINCT platform FROM download_rollup) p \
             ) WHERE latest IS NOT NULL ORDER BY platform",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let platform: String = row.try_get(0).map_err(map_err)?;
                let latest: i64 = row.try_get(1).map_err(map_err)?;
                Ok((platform, from_micros(latest)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn windows_split_into_whole_hours_and_edges() {
        let split = split_window(
            Window {
                from: Some(at("2026-01-01T10:30:00Z")),
                to: Some(at("2026-01-01T13:15:00Z")),
            },
            HOUR,
        );
        assert_eq!(
            split.rollup,
            Some((
                micros(at("2026-01-01T11:00:00Z")),
                micros(at("2026-01-01T13:00:00Z"))
            ))
        );
        assert_eq!(
            split.raw,
            vec![
                (
                    micros(at("2026-01-01T10:30:00Z")),
                    micros(at("2026-01-01T11:00:00Z"))
                ),
                (
                    micros(at("2026-01-01T13:00:00Z")),
                    micros(at("2026-01-01T13:15:00Z"))
                )
            ]
        );
        let inside = split_window(
            Window {
                from: Some(at("2026-01-01T10:10:00Z")),
                to: Some(at("2026-01-01T10:20:00Z")),
            },
            HOUR,
        );
        assert_eq!(inside.rollup, None);
        assert_eq!(inside.raw.len(), 1);
        let open = split_window(Window::default(), HOUR);
        assert_eq!(open.rollup, Some((i64::MIN, i64::MAX)));
        assert!(open.raw.is_empty());
    }
}
