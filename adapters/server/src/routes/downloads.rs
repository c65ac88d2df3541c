//! `/downloads`: the history (list with filters, one, delete, stats, bulk),
//! and the media itself (`/downloads/{id}/file` with Range,
//! `/downloads/{id}/thumbnail`).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
};
use http::{HeaderValue, StatusCode};
use mediadl::model::{
    Bucket, Download, DownloadFilter, DownloadStatus, GroupBy, NewQueueItem, Page, Role, Window,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, bearer_token, reader, user_for_token, writer};
use crate::error::{ApiError, ApiResult, codes, handle};
use crate::json::JsonWriter;
use crate::pagination;
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::state::AppState;

/// Longest filter text accepted.
const MAX_FILTER_LEN: usize = 256;
/// Most ids in one bulk request.
const MAX_BULK_IDS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    page: Option<u32>,
    per_page: Option<u32>,
    platform: Option<String>,
    source: Option<String>,
    status: Option<DownloadStatus>,
    date_from: Option<NaiveDate>,
    date_to: Option<NaiveDate>,
    search: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    delete_file: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    period: Option<String>,
    group_by: Option<String>,
}

/// The spec's bulk actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BulkAction {
    Delete,
    Retry,
    MarkUpgraded,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    action: BulkAction,
    #[schema(min_items = 1, max_items = 1000)]
    ids: Vec<i64>,
    #[serde(default)]
    delete_files: bool,
}

/// `?token=` for media URLs used in `<img src>`, where a browser sends no header.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A download as the API shows it: the record plus `thumbnail_url` and
/// `file_url`, serialised straight into the response body.
#[derive(Debug, Serialize)]
pub struct DownloadView<'a> {
    #[serde(flatten)]
    download: &'a Download,
    thumbnail_url: String,
    file_url: Option<String>,
}

impl<'a> DownloadView<'a> {
    /// The view of `download`, with its file and thumbnail links.
    pub fn new(download: &'a Download) -> Self {
        Self {
            download,
            thumbnail_url: format!("/api/v1/downloads/{}/thumbnail", download.id),
            file_url: download
                .file_path
                .as_ref()
                .map(|_| format!("/api/v1/downloads/{}/file", download.id)),
        }
    }
}

/// Appends `DownloadView::new(d)` as JSON: what its `Serialize` writes,
/// byte for byte (the tests compare them), with the links written in place
/// instead of formatted into strings first. For the list, where
/// serialising is a large share of a request's work.
fn write_download_json(d: &Download, out: &mut JsonWriter) {
    out.raw("{\"id\":");
    out.int(d.id);
    out.raw(",\"url\":");
    out.str(&d.url);
    out.raw(",\"url_hash\":");
    out.str(&d.url_hash);
    out.raw(",\"archive_key\":");
    out.str(&d.archive_key);
    out.raw(",\"platform\":");
    out.str(&d.platform);
    out.raw(",\"source\":");
    out.str(&d.source);
    out.raw(",\"content_type\":");
    out.str(&d.content_type);
    out.raw(",\"filename\":");
    out.opt_str(d.filename.as_deref());
    out.raw(",\"file_path\":");
    out.opt_str(d.file_path.as_deref());
    out.raw(",\"file_size\":");
    out.opt_int(d.file_size);
    out.raw(",\"file_hash\":");
    out.opt_str(d.file_hash.as_deref());
    out.raw(",\"post_date\":");
    match &d.post_date {
        Some(at) => out.datetime(at),
        None => out.raw("null"),
    }
    out.raw(",\"download_date\":");
    out.datetime(&d.download_date);
    out.raw(",\"status\":");
    out.str(d.status.as_str());
    out.raw(",\"attempts\":");
    out.int(d.attempts);
    out.raw(",\"error_message\":");
    out.opt_str(d.error_message.as_deref());
    out.raw(",\"duplicate_of\":");
    out.opt_int(d.duplicate_of);
    out.raw(",\"queue_id\":");
    out.opt_int(d.queue_id);
    out.raw(",\"metadata\":");
    out.value(&d.metadata);
    out.raw(",\"thumbnail_url\":\"/api/v1/downloads/");
    out.int(d.id);
    out.raw("/thumbnail\",\"file_url\":");
    if d.file_path.is_some() {
        out.raw("\"/api/v1/downloads/");
        out.int(d.id);
        out.raw("/file\"");
    } else {
        out.raw("null");
    }
    out.raw("}");
}

/// Roughly the length of [`write_download_json`]'s output, to size the
/// buffer once.
fn download_json_len_hint(d: &Download) -> usize {
    let texts = [
        Some(&d.url),
        Some(&d.url_hash),
        Some(&d.archive_key),
        Some(&d.source),
        d.filename.as_ref(),
        d.file_path.as_ref(),
        d.file_hash.as_ref(),
        d.error_message.as_ref(),
    ];
    // Keys, punctuation, numbers, dates and links take about 450 bytes.
    texts.iter().flatten().map(|text| text.len()).sum::<usize>() + 64 * d.metadata.len() + 450
}

/// A page of the history as JSON: `{"items":[…],"total":…,"page":…,
/// "per_page":…,"total_pages":…}`.
fn page_json(items: &[Download], total: u64, page: Page) -> Vec<u8> {
    let capacity = items.iter().map(download_json_len_hint).sum::<usize>() + 128;
    let mut out = JsonWriter::with_capacity(capacity);
    out.raw("{\"items\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.raw(",");
        }
        write_download_json(item, &mut out);
    }
    out.raw("],\"total\":");
    out.int(total);
    out.raw(",\"page\":");
    out.int(page.page);
    out.raw(",\"per_page\":");
    out.int(page.per_page);
    out.raw(",\"total_pages\":");
    out.int(pagination::total_pages(total, page));
    out.raw("}");
    out.into_bytes()
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The `/downloads` routes: the history, the files and their thumbnails.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = warp::path!("downloads")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<ListQuery>())
        .and(raw_query())
        .and_then(|_: AuthUser, state, q, raw| handle(list(state, q, raw)));
    let stats = warp::path!("downloads" / "stats")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<StatsQuery>())
        .and_then(|_: AuthUser, state, q| handle(stats(state, q)));
    let bulk = warp::path!("downloads" / "bulk")
        .and(warp::post())
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<BulkRequest>())
        .and_then(|user, state, body| handle(bulk(user, state, body)));
    let get = warp::path!("downloads" / i64)
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state: AppState| {
            handle(async move {
                let download = state.store.get_download(id).await?;
                Ok(warp::reply::json(&DownloadView::new(&download)).into_response())
            })
        });
    let delete = warp::path!("downloads" / i64)
        .and(warp::delete())
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(query::<DeleteQuery>())
        .and_then(|id, _: AuthUser, state, q: DeleteQuery| {
            handle(delete(id, state, q.delete_file))
        });
    let file = warp::path!("downloads" / i64 / "file")
        .and(warp::get())
        .and(media_reader(state.clone()))
        .and(with(state.clone()))
        .and(warp::header::optional::<String>("range"))
        .and_then(|id, _: AuthUser, state, range| handle(file(id, state, range)));
    let thumbnail = warp::path!("downloads" / i64 / "thumbnail")
        .and(warp::get())
        .and(media_reader(state.clone()))
        .and(with(state))
        .and_then(|id, _: AuthUser, state| handle(thumbnail(id, state)));
    list.or(stats)
        .unify()
        .or(bulk)
        .unify()
        .or(get)
        .unify()
        .or(delete)
        .unify()
        .or(file)
        .unify()
        .or(thumbnail)
        .unify()
        .boxed()
}

/// A reader authenticated by the `Authorization` header or `?token=`.
fn media_reader(
    state: AppState,
) -> impl Filter<Extract = (AuthUser,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(query::<TokenQuery>())
        .and_then(move |header: Option<String>, q: TokenQuery| {
            let state = state.clone();
            async move {
                let token = bearer_token(header.as_deref())
                    .map(str::to_owned)
                    .or(q.token);
                let Some(token) = token else {
                    return Err(warp::reject::custom(ApiError::unauthorized(
                        codes::UNAUTHORIZED,
                        "authentication required: Authorization: Bearer <token> or ?token=",
                    )));
                };
                let user = user_for_token(&state, &token)
                    .await
                    .map_err(warp::reject::custom)?;
                user.require(Role::Viewer).map_err(warp::reject::custom)?;
                Ok(user)
            }
        })
}

fn bounded(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.len() > MAX_FILTER_LEN => Err(ApiError::validation(
            field,
            format!("at most {MAX_FILTER_LEN} characters"),
        )),
        Some(text) if text.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

async fn list(state: AppState, q: ListQuery, raw: String) -> ApiResult {
    let page = pagination::page(q.page, q.per_page)?;
    if let (Some(from), Some(to)) = (q.date_from, q.date_to)
        && from > to
    {
        return Err(ApiError::validation(
            "date_from",
            "must not be after date_to",
        ));
    }
    let filter = DownloadFilter {
        platform: bounded("platform", q.platform)?,
        source: bounded("source", q.source)?,
        status: q.status,
        date_from: q.date_from,
        date_to: q.date_to,
        search: bounded("search", q.search)?,
    };
    let paged = state.store.list_downloads(&filter, page).await?;
    let mut response = Response::new(page_json(&paged.items, paged.total, page).into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    pagination::add_headers(&mut response, paged.total, page, "/api/v1/downloads", &raw);
    Ok(response)
}

/// The window of a `period` (`today`, `week`, `month`, `year`, `all`).
pub fn period_window(period: Option<&str>, now: DateTime<Utc>) -> Result<Window, ApiError> {
    let start_of_day = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|naive| naive.and_utc())
        .unwrap_or(now);
    let from = match period.unwrap_or("all") {
        "today" | "day" => Some(start_of_day),
        "week" => Some(start_of_day - Duration::days(6)),
        "month" => Some(start_of_day - Duration::days(29)),
        "year" => Some(start_of_day - Duration::days(364)),
        "all" => None,
        other => {
            return Err(ApiError::validation(
                "period",
                format!("unknown period {other:?} (today, week, month, year, all)"),
            ));
        }
    };
    Ok(Window { from, to: None })
}

fn group_map(groups: &[mediadl::model::GroupTotals]) -> serde_json::Map<String, Value> {
    groups
        .iter()
        .map(|group| (group.key.clone(), json!(group.totals.total)))
        .collect()
}

async fn stats(state: AppState, q: StatsQuery) -> ApiResult {
    let now = state.clock.now();
    let window = period_window(q.period.as_deref(), now)?;
    let extra = match q.group_by.as_deref() {
        None | Some("platform") | Some("source") => None,
        Some("content_type") => Some(GroupBy::ContentType),
        Some(other) => {
            return Err(ApiError::validation(
                "group_by",
                format!("unknown group {other:?} (platform, source, content_type)"),
            ));
        }
    };
    let totals = state.store.download_totals(window).await?;
    let by_platform = state
        .store
        .download_totals_by(GroupBy::Platform, window)
        .await?;
    let by_source = state
        .store
        .download_totals_by(GroupBy::Source, window)
        .await?;
    // Daily points for short periods, monthly for a year or everything.
    let (bucket, timeline_window) = match q.period.as_deref() {
        Some("year") => (Bucket::Month, window),
        None | Some("all") => (Bucket::Month, window),
        _ => (Bucket::Day, window),
    };
    let timeline = state
        .store
        .download_timeline(bucket, timeline_window)
        .await?;
    let mut body = json!({
        "total_downloads": totals.total,
        "completed": totals.completed,
        "failed": totals.failed,
        "success_rate": totals.success_rate(),
        "total_size_bytes": totals.size_bytes,
        "by_platform": group_map(&by_platform),
        "by_source": group_map(&by_source),
        "timeline": timeline.iter().map(|point| json!({
            "date": point.timestamp.date_naive().to_string(),
            "count": point.downloads,
        })).collect::<Vec<_>>(),
    });
    if let Some(group) = extra {
        let groups = state.store.download_totals_by(group, window).await?;
        body["by_content_type"] = Value::Object(group_map(&groups));
    }
    Ok(warp::reply::json(&body).into_response())
}

/// Removes a record and, when asked and no other record points at it, its
/// file (only inside the download root).
async fn delete_one(state: &AppState, id: i64, delete_file: bool) -> Result<(), ApiError> {
    let download = state.store.get_download(id).await?;
    let others = if delete_file && download.duplicate_of.is_none() {
        state.store.duplicates_of(id).await?
    } else {
        Vec::new()
    };
    state.store.delete_download(id).await?;
    if delete_file
        && download.duplicate_of.is_none()
        && others.is_empty()
        && let Some(path) = download.file_path.as_deref()
    {
        match contained_path(&state.download_root(), Path::new(path)) {
            Some(path) => {
                if let Err(err) = tokio::fs::remove_file(&path).await
                    && err.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(target: "mediadl_server::routes::downloads", path = %path.display(), error = %err, "could not delete file");
                }
                let _ =
                    tokio::fs::remove_file(state.thumbnail_dir().join(format!("{id}.jpg"))).await;
            }
            None => tracing::warn!(
                target: "mediadl_server::routes::downloads",
                path, "not deleting a file outside the download root"
            ),
        }
    }
    Ok(())
}

async fn delete(id: i64, state: AppState, delete_file: bool) -> ApiResult {
    delete_one(&state, id, delete_file).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn bulk(user: AuthUser, state: AppState, body: BulkRequest) -> ApiResult {
    if body.ids.is_empty() || body.ids.len() > MAX_BULK_IDS {
        return Err(ApiError::validation(
            "ids",
            format!("1 to {MAX_BULK_IDS} ids"),
        ));
    }
    if body.action == BulkAction::Delete {
        user.require(Role::Admin)?;
    }
    let mut success = 0u32;
    let mut errors = Vec::new();
    for id in body.ids {
        let outcome = match body.action {
            BulkAction::Delete => delete_one(&state, id, body.delete_files).await,
            BulkAction::Retry => retry_download(&state, id).await,
            BulkAction::MarkUpgraded => {
                let mut patch = mediadl::model::Metadata::new();
                patch.insert("upgraded".into(), Value::Bool(true));
                state
                    .store
                    .update_download_metadata(id, patch)
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from)
            }
        };
        match outcome {
            Ok(()) => success += 1,
            Err(err) => {
                errors.push(json!({"id": id, "error_code": err.code, "detail": err.detail}))
            }
        }
    }
    Ok(warp::reply::json(&json!({
        "success": success,
        "failed": errors.len(),
        "errors": errors,
    }))
    .into_response())
}

/// Queues a download again: its queue item when it still exists, else a
/// new `direct` item for its URL.
async fn retry_download(state: &AppState, id: i64) -> Result<(), ApiError> {
    let download = state.store.get_download(id).await?;
    if let Some(queue_id) = download.queue_id {
        match state.queue.retry(queue_id).await {
            Ok(_) => return Ok(()),
            Err(mediadl::Error::Store(mediadl::StoreError::NotFound { .. })) => {}
            Err(err) => return Err(err.into()),
        }
    }
    if download.platform != "direct" {
        return Err(ApiError::conflict(
            "the queue item that produced this download is gone; queue the source again",
        ));
    }
    state
        .queue
        .submit(NewQueueItem {
            priority: 0,
            max_attempts: 0,
            ..NewQueueItem::new(download.url, "direct", download.source, "file")
        })
        .await?;
    Ok(())
}

/// `path` resolved, when it lies inside `root`.
fn contained_path(root: &Path, path: &Path) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let path = std::fs::canonicalize(path).ok()?;
    path.starts_with(&root).then_some(path)
}

/// A single `bytes=` range resolved against `len`: `Ok(None)` for no (or an
/// unsupported multi-) range, `Err` when it cannot be satisfied.
fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (start, "") => (start.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| ())?;
            let end: u64 = end.parse().map_err(|_| ())?;
            (start, end.min(len.saturating_sub(1)))
        }
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn file(id: i64, state: AppState, range: Option<String>) -> ApiResult {
    let download = state.store.get_download(id).await?;
    let owner = match download.duplicate_of {
        Some(original) => state
            .store
            .get_download(original)
            .await
            .unwrap_or(download.clone()),
        None => download.clone(),
    };
    let stored = owner
        .file_path
        .as_deref()
        .ok_or_else(|| ApiError::not_found("this download has no file"))?;
    let path = contained_path(&state.download_root(), Path::new(stored))
        .ok_or_else(|| ApiError::not_found("the file is missing"))?;
    let mut handle = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("the file is missing"))?;
    let len = handle.metadata().await.map_err(ApiError::internal)?.len();
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let (status, start, end) = match parse_range(range.as_deref(), len) {
        Ok(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Err(()) => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                codes::RANGE_NOT_SATISFIABLE,
                format!("range not satisfiable for {len} bytes"),
            )
            .to_response();
            response
                .headers_mut()
                .insert(CONTENT_RANGE, header(&format!("bytes */{len}")));
            return Ok(response);
        }
    };
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    handle
        .seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(ApiError::internal)?;
    let stream = tokio_util::io::ReaderStream::new(handle.take(body_len));
    let mut reply = warp::reply::stream(stream).into_response();
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, header(mime.essence_str()));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    let name = download
        .filename
        .clone()
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("download-{id}"));
    headers.insert(CONTENT_DISPOSITION, content_disposition("inline", &name));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(CONTENT_RANGE, header(&format!("bytes {start}-{end}/{len}")));
    }
    Ok(reply)
}

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `inline; filename="…"; filename*=UTF-8''…` with the name made safe.
pub fn content_disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    header(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
}

async fn thumbnail(id: i64, state: AppState) -> ApiResult {
    let download = state.store.get_download(id).await?;
    let owner = match download.duplicate_of {
        Some(original) => state
            .store
            .get_download(original)
            .await
            .unwrap_or(download.clone()),
        None => download,
    };
    let source = owner
        .file_path
        .as_deref()
        .and_then(|path| contained_path(&state.download_root(), Path::new(path)));
    let is_image = source.as_deref().is_some_and(|path| {
        mime_guess::from_path(path)
            .first()
            .is_some_and(|mime| mime.type_() == mime_guess::mime::IMAGE)
    });
    let made = match (source, is_image) {
        (Some(source), true) => {
            let cached = state.thumbnail_dir().join(format!("{}.jpg", owner.id));
            tokio::task::spawn_blocking(move || crate::thumbnail::thumbnail(&source, &cached))
                .await
                .map_err(ApiError::internal)?
                .ok()
        }
        _ => None,
    };
    let (bytes, content_type) = match made {
        Some(jpeg) => (Bytes::from(jpeg), "image/jpeg"),
        None => (
            Bytes::from_static(crate::thumbnail::placeholder_png()),
            "image/png",
        ),
    };
    let mut response = Response::new(bytes.into());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn download(id: i64) -> Download {
        Download {
            id,
            url: format!("https://cdn.example.com/media/{id}/original.jpg"),
            url_hash: mediadl::model::url_hash(&format!("direct:{id}")),
            archive_key: format!("direct:{id}"),
            platform: "direct".into(),
            source: "example.com".into(),
            content_type: "file".into(),
            filename: Some(format!("{id}.jpg")),
            file_path: Some(format!("/data/downloads/direct/{id}.jpg")),
            file_size: Some(123_456),
            file_hash: Some(format!("sha256:{id:064x}")),
            post_date: None,
            download_date: Utc.with_ymd_and_hms(2026, 11, 27, 20, 35, 58).unwrap()
                + Duration::microseconds(123_456),
            status: DownloadStatus::Completed,
            attempts: 1,
            error_message: None,
            duplicate_of: None,
            queue_id: Some(7),
            metadata: mediadl::model::Metadata::new(),
        }
    }

    /// The list's hand-written JSON is what serde writes for the same views.
    #[test]
    fn list_json_is_the_serde_json_of_the_page() {
        #[derive(Serialize)]
        struct SerdePage<'a> {
            items: &'a [DownloadView<'a>],
            total: u64,
            page: u32,
            per_page: u32,
            total_pages: u64,
        }
        let plain = download(1);
        let failed = Download {
            filename: None,
            file_path: None,
            file_size: None,
            file_hash: None,
            status: DownloadStatus::Failed,
            error_message: Some("HTTP 404 \"Not Found\"\n\tat line 1".into()),
            queue_id: None,
            ..download(2)
        };
        let odd = Download {
            id: -3,
            url: "https://example.org/Grüße 🌍?q=a\\b&c=\u{1}".into(),
            source: "東京".into(),
            post_date: Some(Utc.with_ymd_and_hms(1999, 1, 2, 3, 4, 5).unwrap()),
            download_date: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + Duration::milliseconds(250),
            attempts: u32::MAX,
            duplicate_of: Some(1),
            file_size: Some(u64::MAX),
            metadata: serde_json::json!({
                "title": "a \"quoted\" title",
                "tags": ["x", "y"],
                "nested": {"w": 1920, "ratio": 1.5, "none": null},
            })
            .as_object()
            .cloned()
            .unwrap(),
            ..download(3)
        };
        let records = [plain, failed, odd];
        let views: Vec<DownloadView<'_>> = records.iter().map(DownloadView::new).collect();
        for (range, total, page) in [
            (0..3, 1_000_001, Page::new(3, 50)),
            (0..0, 0, Page::new(1, 50)),
            (1..2, 7, Page::new(2, 5)),
        ] {
            let expected = serde_json::to_string(&SerdePage {
                items: &views[range.clone()],
                total,
                page: page.page,
                per_page: page.per_page,
                total_pages: pagination::total_pages(total, page),
            })
            .unwrap();
            let written = String::from_utf8(page_json(&records[range], total, page)).unwrap();
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn ranges_resolve_against_the_length() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(parse_range(Some("bytes=-4"), 10), Ok(Some((6, 9))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=abc"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ok(None));
    }

    #[test]
    fn periods_and_dispositions() {
        let now = Utc::now();
        assert!(period_window(Some("all"), now).unwrap().from.is_none());
        assert!(period_window(Some("week"), now).unwrap().from.unwrap() < now);
        assert_eq!(
            period_window(Some("decade"), now)
                .unwrap_err()
                .field
                .as_deref(),
            Some("period")
        );
        let value = content_disposition("inline", "a\"b/ü.jpg");
        assert_eq!(
            value.to_str().unwrap(),
            "inline; filename=\"a_b/_.jpg\"; filename*=UTF-8''a%22b%2F%C3%BC%2Ejpg"
        );
    }
}
