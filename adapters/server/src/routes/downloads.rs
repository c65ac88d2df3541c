//! `/downloads`: the history (list with filters, one, delete, stats, bulk),
//! and the media itself (`/downloads/{id}/file` with Range,
//! `/downloads/{id}/thumbnail`, and `/downloads/links`, which signs their
//! URLs for `<img>` and `<video>`; see [`crate::media_links`]).
//!
//! Served media is inert: every media response says `nosniff` and
//! `Content-Security-Policy: sandbox`, and only raster images, audio and
//! video are shown inline; anything else (HTML, SVG, XML, PDF, unknown) is
//! an attachment, so a page a user downloaded never runs in the
//! dashboard's origin.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderMap, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, StatusCode};
use mediadl::downloads::{BulkAction, Media, MediaFile};
use mediadl::model::{Download, DownloadFilter, DownloadStatus, Period, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, bearer_token, reader, user_for_token, writer};
use crate::error::{ApiError, ApiResult, ErrorBody, codes, handle};
use crate::media_links::{DownloadLinks, LinkQuery, MediaKind, MediaLinks};
use crate::pagination::{self, PageInfo};
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::routes::{endpoint, endpoint_with};
use crate::state::AppState;

/// Longest filter text accepted.
const MAX_FILTER_LEN: usize = 256;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u32>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
    /// Platform name.
    #[param(max_length = 256)]
    platform: Option<String>,
    /// Username or forum name.
    #[param(max_length = 256)]
    source: Option<String>,
    /// Completed or failed.
    status: Option<DownloadStatus>,
    /// YYYY-MM-DD, inclusive.
    date_from: Option<NaiveDate>,
    /// YYYY-MM-DD, inclusive, not before date_from.
    date_to: Option<NaiveDate>,
    /// Substring of URL or filename.
    #[param(max_length = 256)]
    search: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Also delete the file.
    #[serde(default)]
    #[param(required = false)]
    delete_file: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// Window, default all.
    #[param(schema_with = period_choices)]
    period: Option<String>,
    /// `content_type` adds `by_content_type`.
    #[param(schema_with = group_choices)]
    group_by: Option<String>,
}

/// The `period`s [`Period`] knows.
fn period_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["today", "day", "week", "month", "year", "all"])
}

/// The groupings of `GET /downloads/stats`.
fn group_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["platform", "source", "content_type"])
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

/// Most downloads whose links one request may ask for.
const MAX_LINK_IDS: usize = 200;

/// `POST /downloads/links`: the downloads to sign media links for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinksRequest {
    #[schema(min_items = 1, max_items = 200)]
    ids: Vec<i64>,
}

/// Signed links of some downloads, all expiring at `expires_at`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LinksResponse {
    /// When every link of this answer stops working.
    #[schema(value_type = String, format = DateTime)]
    expires_at: DateTime<Utc>,
    /// One entry per requested id, in the order asked.
    links: Vec<DownloadLinks>,
}

/// The query of a media URL: a signed link's parts, or the access token
/// that is no longer accepted there.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MediaQuery {
    /// Signed link: the user it was made for.
    user: Option<i64>,
    /// Signed link: expiry, Unix seconds.
    expires: Option<i64>,
    /// Signed link: URL-safe base64 HMAC.
    signature: Option<String>,
    /// Not accepted (only read to say so).
    #[param(ignore)]
    token: Option<String>,
}

/// A download as the API shows it: the record plus `thumbnail_url` and
/// `file_url`, serialised straight into the response body.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadView<'a> {
    #[serde(flatten)]
    download: &'a Download,
    /// `/api/v1/downloads/{id}/thumbnail`.
    thumbnail_url: String,
    /// `/api/v1/downloads/{id}/file`, `null` without a file.
    #[schema(required = true)]
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

/// A page of the history.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DownloadPage<'a> {
    /// The page's downloads.
    items: Vec<DownloadView<'a>>,
    /// Where the page is.
    #[serde(flatten)]
    page: PageInfo,
}

/// The collection's path (also the base of its `Link` headers).
const DOWNLOADS: &str = "/api/v1/downloads";
/// One download.
const DOWNLOAD: &str = "/api/v1/downloads/{id}";

/// `GET /downloads/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DownloadStats {
    /// Downloads in the period.
    total_downloads: u64,
    /// Of which completed.
    completed: u64,
    /// Of which failed.
    failed: u64,
    /// Percent completed.
    #[schema(minimum = 0, maximum = 100)]
    success_rate: f64,
    /// Bytes saved.
    total_size_bytes: u64,
    /// Downloads per platform.
    by_platform: BTreeMap<String, u64>,
    /// Downloads per source.
    by_source: BTreeMap<String, u64>,
    /// Downloads per kind of content (`group_by=content_type` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    by_content_type: Option<BTreeMap<String, u64>>,
    /// Downloads per day (per month for a year or everything).
    timeline: Vec<DayCount>,
}

/// One point of [`DownloadStats::timeline`].
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DayCount {
    /// The bucket's first day.
    date: NaiveDate,
    /// Downloads in it.
    count: u64,
}

/// `POST /downloads/bulk`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkResult {
    /// Ids done.
    success: u32,
    /// Ids refused.
    failed: usize,
    /// Why each refused id was.
    errors: Vec<BulkError>,
}

/// One refused id of a bulk action.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkError {
    /// The download's id.
    id: i64,
    /// The error code its own request would have had.
    error_code: String,
    /// Why.
    detail: String,
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The `/downloads` routes: the history, the files and their thumbnails.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = endpoint::<__path_list>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<ListQuery>())
        .and(raw_query())
        .and_then(|_: AuthUser, state, q, raw| handle(list(state, q, raw)));
    let stats = endpoint::<__path_stats>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<StatsQuery>())
        .and_then(|_: AuthUser, state, q| handle(stats(state, q)));
    let bulk = endpoint::<__path_bulk>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<BulkRequest>())
        .and_then(|user, state, body| handle(bulk(user, state, body)));
    let get = endpoint_with::<__path_get, i64>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(get(id, state)));
    let delete = endpoint_with::<__path_delete, i64>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(query::<DeleteQuery>())
        .and_then(|id, _: AuthUser, state, q: DeleteQuery| {
            handle(delete(id, state, q.delete_file))
        });
    let links = endpoint::<__path_links>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<LinksRequest>())
        .and_then(|user, state, body| handle(links(user, state, body)));
    let file = media_route::<__path_file>(state.clone(), MediaKind::File)
        .and(with(state.clone()))
        .and(warp::header::optional::<String>("range"))
        .and_then(|id, state, range| handle(file(id, state, range)));
    let thumbnail = media_route::<__path_thumbnail>(state.clone(), MediaKind::Thumbnail)
        .and(with(state))
        .and_then(|id, state| handle(thumbnail(id, state)));
    list.or(stats)
        .unify()
        .or(bulk)
        .unify()
        .or(links)
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

/// One download
#[utoipa::path(get, path = DOWNLOAD, tag = "downloads", security(("bearer" = [])),
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "The download", body = DownloadView)))]
async fn get(id: i64, state: AppState) -> ApiResult {
    let download = state.store.get_download(id).await?;
    Ok(warp::reply::json(&DownloadView::new(&download)).into_response())
}

/// `GET /downloads/{id}/{kind}`, extracting the id once the request
/// carries a reader's `Authorization: Bearer` token or a signed link of
/// this `kind` of this download. `?token=` is refused: an access token in
/// a URL leaks into logs, history and `Referer` headers.
fn media_route<P: utoipa::Path>(
    state: AppState,
    kind: MediaKind,
) -> impl Filter<Extract = (i64,), Error = warp::Rejection> + Clone {
    endpoint_with::<P, i64>()
        .and(warp::header::optional::<String>("authorization"))
        .and(query::<MediaQuery>())
        .and_then(move |id: i64, header: Option<String>, q: MediaQuery| {
            let state = state.clone();
            async move {
                authorize_media(&state, id, kind, header.as_deref(), q)
                    .await
                    .map(|()| id)
                    .map_err(warp::reject::custom)
            }
        })
}

async fn authorize_media(
    state: &AppState,
    id: i64,
    kind: MediaKind,
    header: Option<&str>,
    q: MediaQuery,
) -> Result<(), ApiError> {
    if let Some(token) = bearer_token(header) {
        return user_for_token(state, token).await?.require(Role::Viewer);
    }
    let link = LinkQuery {
        user: q.user,
        expires: q.expires,
        signature: q.signature,
    };
    if !link.is_present() {
        let detail = if q.token.is_some() {
            "?token= is not accepted on media URLs: send Authorization: Bearer <token>, \
             or use a signed link from POST /api/v1/downloads/links"
        } else {
            "authentication required: Authorization: Bearer <token> or a signed link \
             (POST /api/v1/downloads/links)"
        };
        return Err(ApiError::unauthorized(codes::UNAUTHORIZED, detail));
    }
    let user_id = state
        .media_links
        .verify(id, kind, &link, state.clock.now())?;
    // A link ends with its user: deleted or disabled accounts open nothing.
    match state.store.get_user(user_id).await {
        Ok(user) if !user.disabled => Ok(()),
        Ok(_) => Err(ApiError::unauthorized(
            codes::ACCOUNT_DISABLED,
            "the account of this media link is disabled",
        )),
        Err(mediadl::StoreError::NotFound { .. }) => Err(ApiError::forbidden(
            "the user of this media link no longer exists",
        )),
        Err(err) => Err(err.into()),
    }
}

/// Signs media links of the downloads in `body` for the caller.
/// Signed file and thumbnail links, for <img>/<video> URLs
#[utoipa::path(post, path = "/api/v1/downloads/links", tag = "downloads", security(("bearer" = [])),
    request_body = LinksRequest,
    responses((status = 200, description = "One link pair per id", body = LinksResponse)))]
async fn links(user: AuthUser, state: AppState, body: LinksRequest) -> ApiResult {
    if body.ids.is_empty() || body.ids.len() > MAX_LINK_IDS {
        return Err(ApiError::validation(
            "ids",
            format!("1 to {MAX_LINK_IDS} ids"),
        ));
    }
    let expires = MediaLinks::expiry(state.clock.now());
    let expires_at = DateTime::from_timestamp(expires, 0)
        .ok_or_else(|| ApiError::internal("link expiry out of range"))?;
    let links = body
        .ids
        .iter()
        .map(|&id| state.media_links.links(id, user.id(), expires))
        .collect();
    Ok(warp::reply::json(&LinksResponse { expires_at, links }).into_response())
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

/// List downloads
#[utoipa::path(get, path = DOWNLOADS, tag = "downloads", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "One page of downloads", body = DownloadPage)))]
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
    let body = DownloadPage {
        items: paged.items.iter().map(DownloadView::new).collect(),
        page: PageInfo::new(paged.total, page),
    };
    Ok(pagination::paged_json(
        &body,
        paged.total,
        page,
        DOWNLOADS,
        &raw,
    ))
}

fn group_map(groups: &[mediadl::model::GroupTotals]) -> BTreeMap<String, u64> {
    groups
        .iter()
        .map(|group| (group.key.clone(), group.totals.total))
        .collect()
}

/// Download statistics
#[utoipa::path(get, path = "/api/v1/downloads/stats", tag = "downloads", security(("bearer" = [])),
    params(StatsQuery),
    responses((status = 200, description = "Totals, groups and a timeline", body = DownloadStats)))]
async fn stats(state: AppState, q: StatsQuery) -> ApiResult {
    let period = q
        .period
        .as_deref()
        .map(str::parse::<Period>)
        .transpose()?
        .unwrap_or_default();
    let by_content_type = match q.group_by.as_deref() {
        None | Some("platform") | Some("source") => false,
        Some("content_type") => true,
        Some(other) => {
            return Err(ApiError::validation(
                "group_by",
                format!("unknown group {other:?} (platform, source, content_type)"),
            ));
        }
    };
    let stats = state.downloads.statistics(period, by_content_type).await?;
    let totals = &stats.totals;
    let body = DownloadStats {
        total_downloads: totals.total,
        completed: totals.completed,
        failed: totals.failed,
        success_rate: totals.success_rate(),
        total_size_bytes: totals.size_bytes,
        by_platform: group_map(&stats.by_platform),
        by_source: group_map(&stats.by_source),
        by_content_type: stats.by_content_type.as_deref().map(group_map),
        timeline: stats
            .timeline
            .iter()
            .map(|point| DayCount {
                date: point.timestamp.date_naive(),
                count: point.downloads,
            })
            .collect(),
    };
    Ok(warp::reply::json(&body).into_response())
}

/// Delete a download record (and its file)
#[utoipa::path(delete, path = DOWNLOAD, tag = "downloads", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "numeric id"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, body = ErrorBody),
    ))]
async fn delete(id: i64, state: AppState, delete_file: bool) -> ApiResult {
    state.downloads.delete(id, delete_file).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Bulk delete (admin), retry or mark_upgraded
#[utoipa::path(post, path = "/api/v1/downloads/bulk", tag = "downloads", security(("bearer" = ["user"])),
    request_body = BulkRequest,
    responses((status = 200, description = "What was done and what was refused", body = BulkResult)))]
async fn bulk(user: AuthUser, state: AppState, body: BulkRequest) -> ApiResult {
    if body.action == BulkAction::Delete {
        user.require(Role::Admin)?;
    }
    let outcome = state
        .downloads
        .bulk(body.action, &body.ids, body.delete_files)
        .await?;
    let errors: Vec<BulkError> = outcome
        .errors
        .into_iter()
        .map(|(id, err)| {
            let err = ApiError::from(err);
            BulkError {
                id,
                error_code: err.code.to_owned(),
                detail: err.detail,
            }
        })
        .collect();
    Ok(warp::reply::json(&BulkResult {
        success: outcome.success,
        failed: errors.len(),
        errors,
    })
    .into_response())
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

/// The file (Range supported; bearer token or a signed link)
#[utoipa::path(get, path = "/api/v1/downloads/{id}/file", tag = "downloads", security(("bearer" = []), ()),
    params(
        ("id" = i64, Path, description = "numeric id"),
        MediaQuery,
        ("Range" = Option<String>, Header, nullable = false, description = "one `bytes=` range"),
    ),
    responses(
        (status = 200, description = "The whole file", content_type = "*/*", body = String),
        (status = 206, description = "Partial Content (the requested range)", content_type = "*/*", body = String),
        (status = 307, description = "The bytes are at a presigned URL of the media bucket (`storage.s3.presigned_redirect`)"),
        (status = 403, body = ErrorBody),
        (status = 416, body = ErrorBody),
    ))]
async fn file(id: i64, state: AppState, range: Option<String>) -> ApiResult {
    let Media { download, file, .. } = state.downloads.media(id).await?;
    let (key, len) = match file {
        MediaFile::None => return Err(ApiError::not_found("this download has no file")),
        MediaFile::Missing => return Err(ApiError::not_found("the file is missing")),
        MediaFile::At { key, size } => (key, size),
    };
    // A bucket set to hand out presigned URLs serves the bytes itself.
    if let Some(url) = state.downloads.storage().presigned_url(&key).await? {
        let mut reply = warp::reply().into_response();
        *reply.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        reply
            .headers_mut()
            .insert(warp::http::header::LOCATION, header(url.as_str()));
        reply
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(reply);
    }
    let mime = mime_guess::from_path(key.name()).first_or_octet_stream();
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
    // A missing object (deleted behind our back since the size was read) is a 404.
    let stream = state
        .downloads
        .storage()
        .read(&key, (len > 0).then_some(start..=end))
        .await?;
    // Storage streams are Send; warp also asks Sync, which a stream polled
    // through `&mut` only never needs.
    let mut reply = warp::reply::stream(sync_wrapper::SyncStream::new(stream)).into_response();
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
        .or_else(|| Some(key.name().to_owned()))
        .unwrap_or_else(|| format!("download-{id}"));
    let disposition = if shows_inline(&mime) {
        "inline"
    } else {
        "attachment"
    };
    headers.insert(CONTENT_DISPOSITION, content_disposition(disposition, &name));
    make_inert(headers);
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(CONTENT_RANGE, header(&format!("bytes {start}-{end}/{len}")));
    }
    Ok(reply)
}

/// Raster images, audio and video: types a browser shows but never runs
/// as a document. Everything else is sent as an attachment.
fn shows_inline(mime: &mime_guess::Mime) -> bool {
    matches!(
        (mime.type_().as_str(), mime.subtype().as_str()),
        (
            "image",
            "jpeg"
                | "png"
                | "gif"
                | "webp"
                | "avif"
                | "bmp"
                | "apng"
                | "x-icon"
                | "vnd.microsoft.icon"
        ) | (
            "audio",
            "mpeg"
                | "mp4"
                | "m4a"
                | "x-m4a"
                | "aac"
                | "ogg"
                | "opus"
                | "wav"
                | "x-wav"
                | "wave"
                | "flac"
                | "x-flac"
                | "webm"
        ) | (
            "video",
            "mp4"
                | "webm"
                | "ogg"
                | "quicktime"
                | "x-matroska"
                | "x-m4v"
                | "mp2t"
                | "mpeg"
                | "3gpp"
        )
    )
}

/// Headers that keep any media response from running in our origin: no
/// type sniffing, and a sandbox without scripts, plugins or same-origin
/// access should a browser open it as a document anyway.
fn make_inert(headers: &mut HeaderMap) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
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

/// A small JPEG preview, or a placeholder PNG
#[utoipa::path(get, path = "/api/v1/downloads/{id}/thumbnail", tag = "downloads", security(("bearer" = []), ()),
    params(("id" = i64, Path, description = "numeric id"), MediaQuery),
    responses(
        (status = 200, description = "The preview", content((String = "image/jpeg"), (String = "image/png"))),
        (status = 403, body = ErrorBody),
    ))]
async fn thumbnail(id: i64, state: AppState) -> ApiResult {
    let media = state.downloads.media(id).await?;
    let source = match media.file {
        MediaFile::At { key, .. } => state.downloads.storage().local_path(&key),
        MediaFile::None | MediaFile::Missing => None,
    };
    let is_image = source.as_deref().is_some_and(|path| {
        mime_guess::from_path(path)
            .first()
            .is_some_and(|mime| mime.type_() == mime_guess::mime::IMAGE)
    });
    let made = match (source, is_image) {
        (Some(source), true) => state.thumbnails.thumbnail(media.owner_id, source).await,
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
    make_inert(headers);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dispositions() {
        let value = content_disposition("inline", "a\"b/ü.jpg");
        assert_eq!(
            value.to_str().unwrap(),
            "inline; filename=\"a_b/_.jpg\"; filename*=UTF-8''a%22b%2F%C3%BC%2Ejpg"
        );
    }
}
