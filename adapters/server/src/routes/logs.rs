//! `/logs`: stored log entries (query, download as a file, clean up).

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use http::HeaderValue;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use mediadl::model::settings::Redactor;
use mediadl::model::{LogEntry, LogFilter, LogLevel};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, reader};
use crate::error::{ApiError, ApiResult, handle};
use crate::logs::redact_entry;
use crate::request::query;
use crate::routes::auth::with;
use crate::routes::endpoint;
use crate::state::AppState;

/// Largest `limit` of `GET /logs` (the spec's max).
const MAX_LIMIT: u32 = 1000;
/// Most entries one log file download holds.
const MAX_FILE_ENTRIES: usize = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// Minimum level; empty means any.
    #[param(schema_with = level_choices)]
    level: Option<String>,
    /// Instagram, TikTok, Scheduler, …
    #[param(max_length = 256)]
    module: Option<String>,
    /// Substring of the message.
    #[param(max_length = 256)]
    search: Option<String>,
    /// RFC 3339 or YYYY-MM-DD.
    #[param(schema_with = timestamp_or_date)]
    date_from: Option<String>,
    /// RFC 3339 or YYYY-MM-DD.
    #[param(schema_with = timestamp_or_date)]
    date_to: Option<String>,
    /// Entries to return.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
}

/// The levels `level` takes (empty: any).
fn level_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["DEBUG", "INFO", "WARNING", "ERROR", ""])
}

/// An RFC 3339 timestamp or a date, as [`parse_time`] reads them.
fn timestamp_or_date() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
    };
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    Schema::AnyOf(
        AnyOfBuilder::new()
            .item(string(KnownFormat::DateTime))
            .item(string(KnownFormat::Date))
            .build(),
    )
}

/// The formats of `GET /logs/download`.
fn format_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["text", "json"])
}

/// The stored logs.
const LOGS: &str = "/api/v1/logs";

/// `GET /logs`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogList {
    /// Entries, newest first.
    logs: Vec<LogEntry>,
    /// Entries stored.
    total: u64,
    /// Entries matching the filters.
    filtered: u64,
    /// Entries in `logs`.
    returned: usize,
}

/// `DELETE /logs`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogsRemoved {
    /// Entries removed.
    deleted_entries: u64,
    /// The same count: entries are the files of the original.
    deleted_files: u64,
    /// Bytes freed.
    deleted_size_bytes: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DownloadQuery {
    /// YYYY-MM-DD, default today.
    date: Option<NaiveDate>,
    /// Default text.
    #[param(schema_with = format_choices)]
    format: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Default: `logs.retention_days`.
    #[param(minimum = 0, maximum = 36_500)]
    older_than_days: Option<u32>,
}

/// An RFC 3339 timestamp or a `YYYY-MM-DD` date (start of day, or end of
/// day for an upper bound).
fn parse_time(field: &str, text: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::validation(field, "expected an RFC 3339 timestamp or YYYY-MM-DD"))?;
    let start = date
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .ok_or_else(|| ApiError::validation(field, "bad date"))?;
    Ok(if end_of_day {
        start + Duration::days(1) - Duration::nanoseconds(1)
    } else {
        start
    })
}

fn level(text: Option<String>) -> Result<Option<LogLevel>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<LogLevel>()
                .map_err(|_| ApiError::validation("level", "one of DEBUG, INFO, WARNING, ERROR"))
        })
        .transpose()
}

/// The `/logs` routes.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = endpoint::<__path_list>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<LogsQuery>())
        .and_then(|_: AuthUser, state, q| handle(list(state, q)));
    let download = endpoint::<__path_download>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<DownloadQuery>())
        .and_then(|_: AuthUser, state, q| handle(download(state, q)));
    let delete = endpoint::<__path_delete>()
        .and(admin(state.clone()))
        .and(with(state))
        .and(query::<DeleteQuery>())
        .and_then(|_: AuthUser, state, q| handle(delete(state, q)));
    list.or(download).unify().or(delete).unify().boxed()
}

/// Delete old logs
#[utoipa::path(delete, path = LOGS, tag = "logs", security(("bearer" = ["admin"])),
    params(DeleteQuery),
    responses((status = 200, description = "What was removed", body = LogsRemoved)))]
async fn delete(state: AppState, q: DeleteQuery) -> ApiResult {
    let days = q
        .older_than_days
        .unwrap_or(state.settings.current().logs.retention_days);
    if days > 36_500 {
        return Err(ApiError::validation("older_than_days", "at most 36500"));
    }
    let cutoff = state.clock.now() - Duration::days(i64::from(days));
    let deleted = state.store.delete_logs_before(cutoff).await?;
    Ok(warp::reply::json(&LogsRemoved {
        deleted_entries: deleted.entries,
        deleted_files: deleted.entries,
        deleted_size_bytes: deleted.bytes,
    })
    .into_response())
}

/// Stored logs, newest first
#[utoipa::path(get, path = LOGS, tag = "logs", security(("bearer" = [])),
    params(LogsQuery),
    responses((status = 200, description = "The matching entries", body = LogList,
        headers(("X-Total-Count" = u64, description = "Entries matching the filters")))))]
async fn list(state: AppState, q: LogsQuery) -> ApiResult {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    for (field, value) in [("module", &q.module), ("search", &q.search)] {
        if value.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(ApiError::validation(field, "at most 256 characters"));
        }
    }
    let filter = LogFilter {
        level: level(q.level)?,
        module: q.module.filter(|m| !m.is_empty()),
        search: q.search.filter(|s| !s.is_empty()),
        date_from: q
            .date_from
            .as_deref()
            .map(|t| parse_time("date_from", t, false))
            .transpose()?,
        date_to: q
            .date_to
            .as_deref()
            .map(|t| parse_time("date_to", t, true))
            .transpose()?,
        limit,
    };
    let mut page = state.store.query_logs(&filter).await?;
    redact_entries(&state, &mut page.logs);
    let mut response = warp::reply::json(&LogList {
        returned: page.logs.len(),
        logs: page.logs,
        total: page.total,
        filtered: page.matching,
    })
    .into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(page.matching));
    Ok(response)
}

/// Stored entries with the secrets of the settings now in effect hidden
/// (an entry may predate the secret it mentions).
fn redact_entries(state: &AppState, entries: &mut [LogEntry]) {
    let redactor = Redactor::from_settings(&state.settings.current());
    for entry in entries {
        redact_entry(&redactor, &mut entry.message, &mut entry.metadata);
    }
}

fn text_line(entry: &LogEntry) -> String {
    let mut line = format!(
        "{} {:<7} [{}] {}",
        entry.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        entry.level.as_str(),
        entry.module,
        entry.message.replace('\n', "\\n"),
    );
    for (key, value) in &entry.metadata {
        line.push_str(&format!(" {key}={value}"));
    }
    line.push('\n');
    line
}

/// One day's logs as a file
#[utoipa::path(get, path = "/api/v1/logs/download", tag = "logs", security(("bearer" = [])),
    params(DownloadQuery),
    responses((status = 200, description = "The day's entries", content_type = "application/octet-stream", body = String,
        headers(("Content-Disposition" = String,
            description = "attachment; filename=\"media_downloader_YYYYMMDD.log\" (or .json)")))))]
async fn download(state: AppState, q: DownloadQuery) -> ApiResult {
    let json_format = match q.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::validation(
                "format",
                format!("unknown format {other:?} (json, text)"),
            ));
        }
    };
    let date = q.date.unwrap_or_else(|| state.clock.now().date_naive());
    let day = date.to_string();
    let from = parse_time("date", &day, false)?;
    let mut to = parse_time("date", &day, true)?;
    // Newest first in pages of 1000, walking back in time.
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();
    loop {
        let page = state
            .store
            .query_logs(&LogFilter {
                date_from: Some(from),
                date_to: Some(to),
                limit: MAX_LIMIT,
                ..LogFilter::default()
            })
            .await?;
        let fetched = page.logs.len();
        let Some(oldest) = page.logs.last().map(|entry| entry.timestamp) else {
            break;
        };
        let before = entries.len();
        entries.extend(page.logs.into_iter().filter(|entry| seen.insert(entry.id)));
        if fetched < MAX_LIMIT as usize
            || entries.len() == before
            || entries.len() >= MAX_FILE_ENTRIES
        {
            break;
        }
        to = oldest;
    }
    entries.reverse();
    redact_entries(&state, &mut entries);
    let (body, extension) = if json_format {
        (
            serde_json::to_vec_pretty(&entries).map_err(ApiError::internal)?,
            "json",
        )
    } else {
        (
            entries
                .iter()
                .map(text_line)
                .collect::<String>()
                .into_bytes(),
            "log",
        )
    };
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let name = format!("media_downloader_{}.{extension}", date.format("%Y%m%d"));
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            .map_err(ApiError::internal)?,
    );
    Ok(response)
}
