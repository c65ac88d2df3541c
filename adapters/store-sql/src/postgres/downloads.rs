//! The download history and its aggregates.
//!
//! Aggregates read two rollups kept by a trigger in the same transaction
//! as each write — `download_daily` (per day and platform) and
//! `download_rollup` (per hour, platform, source and content type) — for
//! the whole days or hours of a window, and `downloads` only for the
//! partial ones at its edges, so stats over a million rows read a few
//! thousand.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{
    Bucket, Download, DownloadFilter, DownloadStatus, DownloadTotals, GroupBy, GroupTotals,
    Metadata, NewDownload, Page, Paged, TimelinePoint, Window, url_hash,
};
use mediadl::store::rules::{self, to_micros};
use mediadl::store::{DownloadRepo, StoreResult};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::error::{map_err, map_err_conflict};
use super::rows::{DownloadRow, convert_all, from_i64, to_i32, to_i64};

const INSERT: &str = include_str!("../../queries/postgres/insert_download.sql");
const REPLACE: &str = include_str!("../../queries/postgres/replace_download.sql");

/// Binds the 18 columns of a download in the order of the insert/replace files.
fn bind_download<'q>(
    query: sqlx::query::QueryAs<'q, Postgres, DownloadRow, sqlx::postgres::PgArguments>,
    new: &NewDownload,
) -> StoreResult<sqlx::query::QueryAs<'q, Postgres, DownloadRow, sqlx::postgres::PgArguments>> {
    let file_size = new
        .file_size
        .map(|size| to_i64("file_size", size))
        .transpose()?;
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
        .bind(new.post_date.map(to_micros))
        .bind(to_micros(new.download_date))
        .bind(new.status.as_str())
        .bind(to_i32("attempts", new.attempts)?)
        .bind(new.error_message.clone())
        .bind(new.duplicate_of)
        .bind(new.queue_id)
        .bind(Json(new.metadata.clone())))
}

/// Appends the `WHERE` clause of a download filter.
fn push_download_filter(query: &mut QueryBuilder<Postgres>, filter: &DownloadFilter) {
    let (from, to) = rules::download_date_range(filter);
    query.push(" WHERE TRUE");
    if let Some(platform) = &filter.platform {
        query.push(" AND platform = ").push_bind(platform.clone());
    }
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source.clone());
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(from) = from {
        query.push(" AND download_date >= ").push_bind(from);
    }
    if let Some(to) = to {
        query.push(" AND download_date < ").push_bind(to);
    }
    if let Some(search) = &filter.search {
        let pattern = rules::like_substring_pattern(search);
        query
            .push(" AND (url ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR filename ILIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

/// The page query of `list_downloads`, after `prefix` (`EXPLAIN ` or nothing).
fn list_query(prefix: &str, filter: &DownloadFilter, page: Page) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(prefix);
    query.push("SELECT * FROM downloads");
    push_download_filter(&mut query, filter);
    query
        .push(" ORDER BY download_date DESC, id DESC LIMIT ")
        .push_bind(i64::from(page.per_page))
        .push(" OFFSET ")
        .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
    query
}

/// The count of `list_downloads`. Without a text search every filter is
/// a column of a rollup and the date bounds are whole days, so a rollup
/// gives the exact count without touching `downloads`: the daily one
/// (a few rows per day) unless a source is named, then the hourly one.
fn count_query(filter: &DownloadFilter) -> QueryBuilder<Postgres> {
    if filter.search.is_some() {
        let mut query = QueryBuilder::new("SELECT count(*) FROM downloads");
        push_download_filter(&mut query, filter);
        return query;
    }
    let counted = match filter.status {
        Some(DownloadStatus::Completed) => "completed",
        Some(DownloadStatus::Failed) => "failed",
        None => "completed + failed",
    };
    let rollup = if filter.source.is_some() {
        Rollup::Hourly
    } else {
        Rollup::Daily
    };
    let mut query = QueryBuilder::new("SELECT COALESCE(sum(");
    query
        .push(counted)
        .push("), 0)::BIGINT FROM ")
        .push(rollup.table())
        .push(" WHERE TRUE");
    let (from, to) = rules::download_date_range(filter);
    if let Some(platform) = &filter.platform {
        query.push(" AND platform = ").push_bind(platform.clone());
    }
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source.clone());
    }
    if let Some(from) = from {
        query
            .push(" AND ")
            .push(rollup.time_column())
            .push(" >= ")
            .push_bind(from);
    }
    if let Some(to) = to {
        query
            .push(" AND ")
            .push(rollup.time_column())
            .push(" < ")
            .push_bind(to);
    }
    query
}

/// The two trigger-maintained rollups.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rollup {
    /// `download_rollup`: per hour, platform, source and content type.
    Hourly,
    /// `download_daily`: per UTC day and platform.
    Daily,
}

impl Rollup {
    fn table(self) -> &'static str {
        match self {
            Self::Hourly => "download_rollup",
            Self::Daily => "download_daily",
        }
    }

    fn time_column(self) -> &'static str {
        match self {
            Self::Hourly => "hour",
            Self::Daily => "day",
        }
    }

    fn bucket(self) -> Bucket {
        match self {
            Self::Hourly => Bucket::Hour,
            Self::Daily => Bucket::Day,
        }
    }

    fn width(self) -> chrono::Duration {
        match self {
            Self::Hourly => chrono::Duration::hours(1),
            Self::Daily => chrono::Duration::days(1),
        }
    }

    /// The coarsest rollup that can answer `key`.
    fn for_key(key: AggregateKey) -> Self {
        match key {
            AggregateKey::Nothing
            | AggregateKey::Column("platform")
            | AggregateKey::Bucket("day" | "week" | "month") => Self::Daily,
            _ => Self::Hourly,
        }
    }
}

/// What an aggregate groups its rows by.
#[derive(Clone, Copy)]
enum AggregateKey {
    Nothing,
    Column(&'static str),
    Bucket(&'static str),
}

/// A range of `download_date` still to be aggregated; `None` is open.
type Span = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `SELECT key, total, completed, failed, size_bytes FROM (parts) GROUP BY
/// key`, where the parts cover `window` exactly once: whole days from the
/// daily rollup (when it can answer `key`), whole hours left at the edges
/// from the hourly rollup, and only the partial hours left after that from
/// `downloads` — each part a plain range of a primary key or the date index.
fn aggregate_query(key: AggregateKey, window: Window) -> QueryBuilder<Postgres> {
    let tiers: &[Rollup] = match Rollup::for_key(key) {
        Rollup::Daily => &[Rollup::Daily, Rollup::Hourly],
        Rollup::Hourly => &[Rollup::Hourly],
    };
    let mut query = QueryBuilder::new(
        "SELECT key, (sum(completed) + sum(failed))::BIGINT AS total, \
         sum(completed)::BIGINT AS completed, sum(failed)::BIGINT AS failed, \
         sum(size_bytes)::BIGINT AS size_bytes FROM (SELECT NULL AS key, \
         0::BIGINT AS completed, 0::BIGINT AS failed, 0::BIGINT AS size_bytes WHERE FALSE",
    );
    let mut spans: Vec<Span> = vec![(window.from.map(to_micros), window.to.map(to_micros))];
    for &tier in tiers {
        let mut rest = Vec::new();
        for (from, to) in spans {
            // The first whole period inside the span, and the end of the last one.
            let lo = from.map(|from| {
                let start = rules::bucket_start(tier.bucket(), from);
                if start == from {
                    start
                } else {
                    start + tier.width()
                }
            });
            let hi = to.map(|to| rules::bucket_start(tier.bucket(), to));
            if let (Some(lo), Some(hi)) = (lo, hi)
                && lo >= hi
            {
                rest.push((from, to));
                continue;
            }
            push_rollup_part(&mut query, key, tier, lo, hi);
            if let (Some(from), Some(lo)) = (from, lo) {
                rest.push((Some(from), Some(lo)));
            }
            if let (Some(hi), Some(to)) = (hi, to) {
                rest.push((Some(hi), Some(to)));
            }
        }
        spans = rest;
    }
    for (from, to) in spans {
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            continue;
        }
        query
            .push(" UNION ALL SELECT ")
            .push(key_expression(key, None))
            .push(
                " AS key, (status = 'completed')::int::BIGINT, (status = 'failed')::int::BIGINT, \
             CASE WHEN status = 'completed' AND duplicate_of IS NULL \
             THEN COALESCE(file_size, 0) ELSE 0 END FROM downloads WHERE TRUE",
            );
        if let Some(from) = from {
            query.push(" AND download_date >= ").push_bind(from);
        }
        if let Some(to) = to {
            query.push(" AND download_date < ").push_bind(to);
        }
    }
    query.push(") AS parts GROUP BY key");
    query
}

/// The SQL expression of `key` over a rollup (`Some`) or `downloads` (`None`).
fn key_expression(key: AggregateKey, rollup: Option<Rollup>) -> String {
    let time = rollup.map_or("download_date", Rollup::time_column);
    match key {
        AggregateKey::Nothing => "''".to_owned(),
        AggregateKey::Column(column) => column.to_owned(),
        AggregateKey::Bucket(unit) => format!("date_trunc('{unit}', {time}, 'UTC')"),
    }
}

/// `UNION ALL` the rows of `rollup` whose period lies in `[lo, hi)`.
fn push_rollup_part(
    query: &mut QueryBuilder<Postgres>,
    key: AggregateKey,
    rollup: Rollup,
    lo: Option<DateTime<Utc>>,
    hi: Option<DateTime<Utc>>,
) {
    query
        .push(" UNION ALL SELECT ")
        .push(key_expression(key, Some(rollup)))
        .push(" AS key, completed, failed, size_bytes FROM ")
        .push(rollup.table())
        .push(" WHERE TRUE");
    if let Some(lo) = lo {
        query
            .push(" AND ")
            .push(rollup.time_column())
            .push(" >= ")
            .push_bind(lo);
    }
    if let Some(hi) = hi {
        query
            .push(" AND ")
            .push(rollup.time_column())
            .push(" < ")
            .push_bind(hi);
    }
}

#[derive(sqlx::FromRow)]
struct AggregateRow<K> {
    key: K,
    total: Option<i64>,
    completed: Option<i64>,
    failed: Option<i64>,
    size_bytes: Option<i64>,
}

impl<K> AggregateRow<K> {
    fn totals(&self) -> StoreResult<DownloadTotals> {
        Ok(DownloadTotals {
            total: from_i64("total", self.total.unwrap_or(0))?,
            completed: from_i64("completed", self.completed.unwrap_or(0))?,
            failed: from_i64("failed", self.failed.unwrap_or(0))?,
            size_bytes: from_i64("size_bytes", self.size_bytes.unwrap_or(0))?,
        })
    }
}

fn bucket_unit(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Hour => "hour",
        Bucket::Day => "day",
        Bucket::Week => "week",
        Bucket::Month => "month",
    }
}

fn group_column(group: GroupBy) -> &'static str {
    match group {
        GroupBy::Platform => "platform",
        GroupBy::Source => "source",
        GroupBy::ContentType => "content_type",
    }
}

impl PgStore {
    /// PostgreSQL's plan (`EXPLAIN`, text format) for the page query of
    /// [`DownloadRepo::list_downloads`] with `filter`: for diagnostics and
    /// for the test that checks the list is served by an index.
    pub async fn explain_list_downloads(
        &self,
        filter: &DownloadFilter,
        page: Page,
    ) -> StoreResult<String> {
        let mut explained = list_query("EXPLAIN ", filter, Page::new(page.page, page.per_page));
        let lines: Vec<String> = explained
            .build_query_scalar::<String>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(lines.join("\n"))
    }

    async fn fetch_download(&self, id: i64) -> StoreResult<Option<Download>> {
        sqlx::query_as::<_, DownloadRow>("SELECT * FROM downloads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(Download::try_from)
            .transpose()
    }
}

#[async_trait]
impl DownloadRepo for PgStore {
    async fn insert_download(&self, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let row = bind_download(sqlx::query_as::<_, DownloadRow>(INSERT), &new)?
            .fetch_one(&self.pool)
            .await
            .map_err(|err| {
                map_err_conflict(err, || {
                    format!("archive key {} is already recorded", new.archive_key)
                })
            })?;
        Download::try_from(row)
    }

    async fn replace_download(&self, id: i64, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let row = bind_download(sqlx::query_as::<_, DownloadRow>(REPLACE), &new)?
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| {
                map_err_conflict(err, || {
                    format!(
                        "archive key {} is recorded by another download",
                        new.archive_key
                    )
                })
            })?
            .ok_or_else(|| StoreError::not_found("download", id))?;
        Download::try_from(row)
    }

    async fn get_download(&self, id: i64) -> StoreResult<Download> {
        self.fetch_download(id)
            .await?
            .ok_or_else(|| StoreError::not_found("download", id))
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
        let mut list = list_query("", filter, page);
        let mut count = count_query(filter);
        // Both on one pooled connection would serialise them; two run at once.
        let (rows, total) = futures::try_join!(
            list.build_query_as::<DownloadRow>().fetch_all(&self.pool),
            count.build_query_scalar::<i64>().fetch_one(&self.pool),
        )
        .map_err(map_err)?;
        Ok(Paged {
            items: convert_all(rows)?,
            total: from_i64("count", total)?,
        })
    }

    async fn delete_download(&self, id: i64) -> StoreResult<Download> {
        sqlx::query_as::<_, DownloadRow>("DELETE FROM downloads WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("download", id))
            .and_then(Download::try_from)
    }

    async fn download_by_archive_key(&self, archive_key: &str) -> StoreResult<Option<Download>> {
        sqlx::query_as::<_, DownloadRow>("SELECT * FROM downloads WHERE archive_key = $1")
            .bind(archive_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(Download::try_from)
            .transpose()
    }

    async fn known_archive_keys(&self, archive_keys: &[String]) -> StoreResult<Vec<String>> {
        if archive_keys.is_empty() {
            return Ok(Vec::new());
        }
        // Keeps the caller's order and drops repeats, like the memory store.
        let known: Vec<String> = sqlx::query_scalar(
            "SELECT k.key FROM unnest($1::text[]) WITH ORDINALITY AS k(key, position) \
             WHERE EXISTS (SELECT 1 FROM downloads d \
                           WHERE d.archive_key = k.key AND d.status = 'completed') \
             ORDER BY k.position",
        )
        .bind(archive_keys)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut seen = std::collections::HashSet::new();
        Ok(known
            .into_iter()
            .filter(|key| seen.insert(key.clone()))
            .collect())
    }

    async fn download_by_file_hash(&self, file_hash: &str) -> StoreResult<Option<Download>> {
        sqlx::query_as::<_, DownloadRow>(
            "SELECT * FROM downloads WHERE file_hash = $1 AND status = 'completed' \
             AND duplicate_of IS NULL ORDER BY id LIMIT 1",
        )
        .bind(file_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(Download::try_from)
        .transpose()
    }

    async fn update_download_metadata(&self, id: i64, patch: Metadata) -> StoreResult<Download> {
        sqlx::query_as::<_, DownloadRow>(
            "UPDATE downloads SET metadata = metadata || $2 WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(Json(patch))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("download", id))
        .and_then(Download::try_from)
    }

    async fn relocate_file(&self, from: &str, to: &str) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE downloads SET file_path = $2 WHERE file_path = $1")
            .bind(from)
            .bind(to)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn downloads_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Download>> {
        let rows = sqlx::query_as::<_, DownloadRow>(
            "SELECT * FROM downloads WHERE download_date < $1 \
             ORDER BY download_date, id LIMIT $2",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        convert_all(rows)
    }

    async fn duplicates_of(&self, id: i64) -> StoreResult<Vec<Download>> {
        let rows = sqlx::query_as::<_, DownloadRow>(
            "SELECT * FROM downloads WHERE duplicate_of = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        convert_all(rows)
    }

    async fn download_totals(&self, window: Window) -> StoreResult<DownloadTotals> {
        let mut query = aggregate_query(AggregateKey::Nothing, window);
        let rows = query
            .build_query_as::<AggregateRow<String>>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        match rows.first() {
            Some(row) => row.totals(),
            None => Ok(DownloadTotals::default()),
        }
    }

    async fn download_totals_by(
        &self,
        group: GroupBy,
        window: Window,
    ) -> StoreResult<Vec<GroupTotals>> {
        let mut query = aggregate_query(AggregateKey::Column(group_column(group)), window);
        query.push(" HAVING sum(completed) + sum(failed) > 0 ORDER BY total DESC, key");
        let rows = query
            .build_query_as::<AggregateRow<String>>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(GroupTotals {
                    key: row.key.clone(),
                    totals: row.totals()?,
                })
            })
            .collect()
    }

    async fn download_timeline(
        &self,
        bucket: Bucket,
        window: Window,
    ) -> StoreResult<Vec<TimelinePoint>> {
        let mut query = aggregate_query(AggregateKey::Bucket(bucket_unit(bucket)), window);
        query.push(" HAVING sum(completed) + sum(failed) > 0 ORDER BY key");
        let rows = query
            .build_query_as::<AggregateRow<DateTime<Utc>>>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let totals = row.totals()?;
                Ok(TimelinePoint {
                    timestamp: row.key,
                    downloads: totals.total,
                    success: totals.completed,
                    failed: totals.failed,
                })
            })
            .collect()
    }

    async fn storage_used(&self) -> StoreResult<u64> {
        let used: i64 =
            sqlx::query_scalar("SELECT COALESCE(sum(size_bytes), 0)::BIGINT FROM download_daily")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        from_i64("storage used", used)
    }

    async fn last_download_per_platform(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        // Platforms from the daily rollup, then for each a backwards walk
        // of (platform, download_date) that stops at the first completed row.
        let rows: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT p.platform, (SELECT max(d.download_date) FROM downloads d \
                                 WHERE d.platform = p.platform AND d.status = 'completed') \
             FROM (SELECT DISTINCT platform FROM download_daily WHERE completed > 0) AS p \
             ORDER BY p.platform",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|(platform, latest)| latest.map(|latest| (platform, latest)))
            .collect())
    }
}
