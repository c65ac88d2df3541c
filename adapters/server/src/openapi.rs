//! The OpenAPI 3.1 document (`/api/v1/openapi.json`) and Swagger UI at
//! `/api/docs` from assets compiled into the binary (nothing is fetched at
//! build or run time).
//!
//! The document is exact: every operation lists its parameters with their
//! ranges, its request body, each status it answers with and that answer's
//! body and headers. Bodies that are serde types (the core's model, the
//! requests) take their schemas from `utoipa::ToSchema` derives on those
//! types; bodies the handlers compose are described here next to the
//! operation table. `.ci/run` checks the running server against this
//! document with schemathesis (see docs/API.md).

use std::sync::{Arc, LazyLock};

use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ErrorBody;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Viewer,
    User,
    Admin,
}

/// What an operation answers on success (or, for 502, on a failed test).
#[derive(Debug, Clone)]
enum Answer {
    /// No body.
    Empty,
    /// A JSON body with this schema.
    Json(Value),
    /// A JSON page with the pagination headers.
    Paged(Value),
    /// A JSON body with `X-Total-Count`.
    Counted(Value),
    /// A whole file (`partial: false`) or one range of it.
    File { partial: bool },
    /// A JPEG thumbnail or the PNG placeholder.
    Image,
    /// A log file as an attachment.
    Attachment,
}

/// One operation of the table: what it takes and what it answers besides
/// the errors every operation of its kind shares (see [`operation`]).
#[derive(Debug)]
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    params: Vec<Value>,
    /// The request body object, if the operation takes one.
    body: Option<Value>,
    /// Answers other than the shared errors.
    responses: Vec<(u16, Answer)>,
    /// Error statuses of this operation beyond the shared ones.
    errors: &'static [u16],
}

/// The schemas under `#/components/schemas` that come from serde types.
fn derived_schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)> {
    use crate::routes::{auth, downloads, platforms, queue, users};
    use mediadl::model;
    use mediadl::notify;
    use mediadl::scheduler::{ForumMonitorRequest, JobPatch, NewJob};
    fn entry<T: ToSchema>() -> (String, utoipa::openapi::RefOr<utoipa::openapi::Schema>) {
        (T::name().into_owned(), T::schema())
    }
    vec![
        entry::<ErrorBody>(),
        entry::<model::Role>(),
        entry::<model::User>(),
        entry::<model::DownloadStatus>(),
        entry::<model::Download>(),
        entry::<model::QueueStatus>(),
        entry::<model::RequestOptions>(),
        entry::<model::QueueItem>(),
        entry::<model::JobKind>(),
        entry::<model::CatchUp>(),
        entry::<model::RunStatus>(),
        entry::<model::Job>(),
        entry::<model::JobRun>(),
        entry::<model::LogLevel>(),
        entry::<model::LogEntry>(),
        entry::<model::NotificationTopic>(),
        entry::<NewJob>(),
        entry::<JobPatch>(),
        entry::<ForumMonitorRequest>(),
        entry::<notify::TestTransport>(),
        entry::<notify::TestRequest>(),
        entry::<notify::TestOutcome>(),
        entry::<notify::history::DeliveryTransport>(),
        entry::<notify::history::DeliveryStatus>(),
        entry::<notify::history::DeliveryAttempt>(),
        entry::<notify::history::Delivery>(),
        entry::<auth::LoginRequest>(),
        entry::<auth::RefreshRequest>(),
        entry::<auth::PasswordChange>(),
        entry::<auth::UserSummary>(),
        entry::<users::NewUserRequest>(),
        entry::<users::UserChange>(),
        entry::<mediadl::downloads::BulkAction>(),
        entry::<downloads::BulkRequest>(),
        entry::<downloads::LinksRequest>(),
        entry::<downloads::LinksResponse>(),
        entry::<crate::media_links::DownloadLinks>(),
        entry::<queue::QueueRequest>(),
        entry::<queue::QueueChange>(),
        entry::<queue::ClearRequest>(),
        entry::<platforms::InstagramRequest>(),
        entry::<platforms::TiktokRequest>(),
    ]
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn nullable_date_time() -> Value {
    json!({ "type": ["string", "null"], "format": "date-time" })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

/// An object whose listed properties are all present.
fn object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .map(|map| map.keys().cloned().map(Value::String).collect())
        .unwrap_or_default();
    json!({ "type": "object", "required": required, "properties": properties })
}

/// A map from names to counts (`by_platform`, `by_source`, …).
fn counts_by_name() -> Value {
    json!({ "type": "object", "additionalProperties": count() })
}

/// The body of a paginated list: `items` plus the page numbers.
fn page_of(item: Value) -> Value {
    object(json!({
        "items": { "type": "array", "items": item },
        "total": count(),
        "page": { "type": "integer", "minimum": 1 },
        "per_page": { "type": "integer", "minimum": 1, "maximum": 200 },
        "total_pages": { "type": "integer", "minimum": 1 },
    }))
}

/// The schemas of bodies the handlers compose (names as in the document).
fn composed_schemas() -> Vec<(&'static str, Value)> {
    let queued = object(json!({
        "queue_id": { "type": "integer" },
        "task_id": { "type": "string", "description": "`queue-<queue_id>`" },
        "status": { "const": "queued" },
        "message": { "type": "string" },
    }));
    let cookies = json!({
        "type": "object",
        "required": ["present", "count", "expires_at"],
        "properties": {
            "present": { "type": "boolean" },
            "count": count(),
            "expires_at": nullable_date_time(),
            "expired": { "type": "boolean" },
            "error": { "type": "string", "description": "why the stored file cannot be read" },
        },
    });
    let settings_section = json!({ "type": "object" });
    vec![
        ("Health", object(json!({ "status": { "const": "ok" } }))),
        (
            "Readiness",
            object(json!({
                "status": { "const": "ok" },
                "checks": object(json!({
                    "database": { "const": "ok" },
                    "storage": { "const": "ok" },
                })),
            })),
        ),
        (
            "Tokens",
            object(json!({
                "access_token": { "type": "string" },
                "refresh_token": { "type": "string" },
                "token_type": { "const": "bearer" },
                "expires_in": { "type": "integer", "description": "seconds (900)" },
            })),
        ),
        (
            "Login",
            json!({ "allOf": [reference("Tokens"), object(json!({ "user": reference("UserSummary") }))] }),
        ),
        ("UserPage", page_of(reference("User"))),
        (
            "DownloadView",
            json!({ "allOf": [reference("Download"), object(json!({
                "thumbnail_url": { "type": "string" },
                "file_url": nullable("string"),
            }))] }),
        ),
        ("DownloadPage", page_of(reference("DownloadView"))),
        (
            "DownloadStats",
            json!({
                "type": "object",
                "required": ["total_downloads", "completed", "failed", "success_rate",
                    "total_size_bytes", "by_platform", "by_source", "timeline"],
                "properties": {
                    "total_downloads": count(),
                    "completed": count(),
                    "failed": count(),
                    "success_rate": { "type": "number", "minimum": 0, "maximum": 100 },
                    "total_size_bytes": count(),
                    "by_platform": counts_by_name(),
                    "by_source": counts_by_name(),
                    "by_content_type": counts_by_name(),
                    "timeline": { "type": "array", "items": object(json!({
                        "date": { "type": "string", "format": "date" },
                        "count": count(),
                    })) },
                },
            }),
        ),
        (
            "BulkResult",
            object(json!({
                "success": count(),
                "failed": count(),
                "errors": { "type": "array", "items": object(json!({
                    "id": { "type": "integer" },
                    "error_code": { "type": "string" },
                    "detail": { "type": "string" },
                })) },
            })),
        ),
        (
            "QueuePage",
            json!({ "allOf": [page_of(reference("QueueItem")), object(json!({
                "pending": count(),
                "downloading": count(),
                "paused": count(),
                "completed": count(),
                "failed": count(),
            }))] }),
        ),
        (
            "QueueAdded",
            object(json!({
                "id": { "type": "integer" },
                "url": { "type": "string" },
                "platform": { "type": "string" },
                "source": { "type": "string" },
                "content_type": { "type": "string" },
                "priority": { "type": "integer", "minimum": 0, "maximum": 10 },
                "status": reference("QueueStatus"),
                "created_date": date_time(),
                "task_id": { "type": "string" },
            })),
        ),
        (
            "QueueStats",
            object(json!({
                "total": count(),
                "pending": count(),
                "downloading": count(),
                "paused": count(),
                "completed": count(),
                "failed": count(),
                "avg_wait_time_seconds": nullable("number"),
                "avg_run_time_seconds": nullable("number"),
                "estimated_completion": nullable_date_time(),
                "active_workers": count(),
            })),
        ),
        ("QueueCleared", object(json!({ "deleted": count() }))),
        (
            "QueueChanged",
            object(json!({
                "id": { "type": "integer" },
                "status": reference("QueueStatus"),
                "priority": { "type": "integer", "minimum": 0, "maximum": 10 },
            })),
        ),
        (
            "QueueRetried",
            object(json!({
                "id": { "type": "integer" },
                "status": reference("QueueStatus"),
                "attempts": count(),
                "max_attempts": count(),
                "task_id": { "type": "string" },
            })),
        ),
        (
            "JobView",
            json!({ "allOf": [reference("Job"), object(json!({ "schedule_human": { "type": "string" } }))] }),
        ),
        (
            "JobList",
            object(json!({ "jobs": { "type": "array", "items": reference("JobView") } })),
        ),
        (
            "JobStarted",
            json!({
                "type": "object",
                "required": ["task_id", "queue_id", "run_id", "status", "message"],
                "properties": {
                    "task_id": nullable("string"),
                    "queue_id": nullable("integer"),
                    "run_id": { "type": "integer" },
                    "status": { "type": "string", "description": "`queued`, or how a maintenance run ended" },
                    "message": { "type": "string" },
                    "items_downloaded": count(),
                    "error_message": nullable("string"),
                },
            }),
        ),
        (
            "JobHistory",
            object(json!({ "history": { "type": "array", "items": reference("JobRun") } })),
        ),
        ("Queued", queued),
        (
            "ForumMonitor",
            object(json!({
                "thread_id": { "type": "string" },
                "job_id": { "type": "string" },
                "status": { "enum": ["active", "stopped"] },
                "monitor_until": nullable_date_time(),
                "next_run": nullable_date_time(),
                "schedule": { "type": "string" },
                "schedule_human": { "type": "string" },
                "created": { "type": "boolean" },
                "task_id": nullable("string"),
                "queue_id": nullable("integer"),
                "run_id": { "type": "integer" },
            })),
        ),
        ("CookiesSummary", cookies),
        (
            "Platform",
            json!({
                "type": "object",
                "required": ["name", "display_name", "enabled", "downloaders", "content_types",
                    "features", "status", "last_successful_download"],
                "properties": {
                    "name": { "type": "string" },
                    "display_name": { "type": "string" },
                    "enabled": { "type": "boolean" },
                    "downloaders": { "type": "array", "items": object(json!({
                        "name": { "type": "string" },
                        "display_name": { "type": "string" },
                        "enabled": { "type": "boolean" },
                        "reason": nullable("string"),
                        "aliases": { "type": "array", "items": { "type": "string" } },
                        "default": { "type": "boolean" },
                    })) },
                    "content_types": { "type": "array", "items": { "type": "string" } },
                    "features": { "type": "array", "items": { "type": "string" } },
                    "status": { "enum": ["operational", "unavailable", "disabled"] },
                    "last_successful_download": nullable_date_time(),
                    "cookies": reference("CookiesSummary"),
                },
            }),
        ),
        (
            "PlatformList",
            object(json!({ "platforms": { "type": "array", "items": reference("Platform") } })),
        ),
        (
            "CookiesUpdated",
            object(json!({
                "platform": { "type": "string" },
                "cookies": object(json!({
                    "present": { "const": true },
                    "count": count(),
                    "expires_at": nullable_date_time(),
                })),
            })),
        ),
        (
            "Settings",
            json!({
                "type": "object",
                "description": "The settings document, secrets shown as \"***\"",
                "required": ["general", "downloads", "network", "platforms", "notifications", "logs"],
                "properties": {
                    "general": settings_section,
                    "downloads": settings_section,
                    "network": settings_section,
                    "platforms": settings_section,
                    "notifications": settings_section,
                    "logs": settings_section,
                },
            }),
        ),
        (
            "SettingsPatch",
            json!({
                "type": "object",
                "description": "Merged into the settings (RFC 7396: null removes a key, \
                    so a null for a key that is not there changes nothing)",
                "additionalProperties": { "type": "null" },
                "properties": {
                    "general": { "type": ["object", "null"] },
                    "downloads": { "type": ["object", "null"] },
                    "network": { "type": ["object", "null"] },
                    "platforms": { "type": ["object", "null"] },
                    "notifications": { "type": ["object", "null"] },
                    "logs": { "type": ["object", "null"] },
                },
            }),
        ),
        (
            "SettingsUpdated",
            object(json!({ "message": { "type": "string" }, "updated_fields": count() })),
        ),
        (
            "LogList",
            object(json!({
                "logs": { "type": "array", "items": reference("LogEntry") },
                "total": count(),
                "filtered": count(),
                "returned": count(),
            })),
        ),
        (
            "LogsDeleted",
            object(json!({
                "deleted_entries": count(),
                "deleted_files": count(),
                "deleted_size_bytes": count(),
            })),
        ),
        (
            "Overview",
            object(json!({
                "downloads": object(json!({
                    "today": count(), "week": count(), "month": count(), "total": count(),
                })),
                "queue": object(json!({
                    "pending": count(), "downloading": count(), "paused": count(), "failed": count(),
                })),
                "success_rate": object(json!({
                    "today": { "type": "number" }, "week": { "type": "number" }, "month": { "type": "number" },
                })),
                "storage": object(json!({
                    "used_bytes": count(),
                    "used_human": { "type": "string" },
                    "limit_bytes": { "type": ["integer", "null"], "minimum": 0 },
                    "limit_human": nullable("string"),
                    "percent": nullable("number"),
                })),
                "platforms": {
                    "type": "object",
                    "additionalProperties": object(json!({
                        "status": { "enum": ["operational", "unavailable"] },
                        "downloads_today": count(),
                    })),
                },
                "next_scheduled_task": {
                    "oneOf": [
                        { "type": "null" },
                        object(json!({
                            "job_id": { "type": "string" },
                            "job_name": { "type": "string" },
                            "scheduled_time": date_time(),
                            "in_seconds": count(),
                        })),
                    ],
                },
            })),
        ),
        (
            "Timeline",
            object(
                json!({ "timeline": { "type": "array", "items": object(json!({
                "timestamp": date_time(),
                "downloads": count(),
                "success": count(),
                "failed": count(),
            })) } }),
            ),
        ),
        (
            "PlatformStats",
            object(
                json!({ "platforms": { "type": "array", "items": object(json!({
                "platform": { "type": "string" },
                "downloads": count(),
                "success": count(),
                "failed": count(),
                "success_rate": { "type": "number" },
                "total_size_bytes": count(),
            })) } }),
            ),
        ),
        (
            "TestResults",
            object(json!({
                "success": { "const": true },
                "results": { "type": "array", "items": reference("TestOutcome") },
            })),
        ),
        (
            "TestFailed",
            json!({ "allOf": [
                { "$ref": "#/components/schemas/ErrorBody" },
                object(json!({ "results": { "type": "array", "items": reference("TestOutcome") } })),
            ] }),
        ),
        (
            "DeliveryList",
            object(json!({
                "deliveries": { "type": "array", "items": reference("Delivery") },
                "total": count(),
            })),
        ),
    ]
}

/// A response header: name, schema, description.
type HeaderSpec = (&'static str, Value, &'static str);

fn integer_header(name: &'static str, description: &'static str) -> HeaderSpec {
    (
        name,
        json!({ "type": "integer", "minimum": 0 }),
        description,
    )
}

/// Sent with every response.
fn request_id_header() -> HeaderSpec {
    (
        "X-Request-Id",
        json!({ "type": "string" }),
        "The request's id (also `request_id` in error bodies)",
    )
}

/// Sent with every response of a rate-limited path.
fn rate_limit_headers() -> Vec<HeaderSpec> {
    vec![
        integer_header("X-RateLimit-Limit", "Requests allowed per hour"),
        integer_header("X-RateLimit-Remaining", "Requests left now"),
        integer_header(
            "X-RateLimit-Reset",
            "Unix seconds when the full allowance is back",
        ),
    ]
}

/// Sent with the first page and every other page of a list.
fn pagination_headers() -> Vec<HeaderSpec> {
    vec![
        integer_header("X-Total-Count", "Items matching the filters"),
        integer_header("X-Page", "This page, from 1"),
        integer_header("X-Per-Page", "Page size"),
        integer_header("X-Total-Pages", "Pages (at least 1)"),
        (
            "Link",
            json!({ "type": "string" }),
            "`first`, `prev`, `next`, `last` links keeping the filters",
        ),
    ]
}

fn headers_object(headers: &[HeaderSpec]) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .map(|(name, schema, description)| {
            (
                (*name).to_string(),
                json!({ "required": true, "description": description, "schema": schema }),
            )
        })
        .collect();
    Value::Object(map)
}

/// A response object; `content` is a map of media types to schemas.
fn response(description: &str, content: Option<Value>, headers: &[HeaderSpec]) -> Value {
    let mut response = json!({ "description": description, "headers": headers_object(headers) });
    if let Some(content) = content {
        response["content"] = content;
    }
    response
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The headers of every response of an operation.
fn common_headers(rate_limited: bool) -> Vec<HeaderSpec> {
    let mut headers = vec![request_id_header()];
    if rate_limited {
        headers.extend(rate_limit_headers());
    }
    headers
}

/// 200 with a JSON body of `schema` (a component name).
fn ok(schema: &str) -> Vec<(u16, Answer)> {
    status_with(200, schema)
}

fn status_with(status: u16, schema: &str) -> Vec<(u16, Answer)> {
    vec![(status, Answer::Json(reference(schema)))]
}

fn no_content() -> Vec<(u16, Answer)> {
    vec![(204, Answer::Empty)]
}

fn json_body(schema: &str, required: bool) -> Option<Value> {
    Some(json!({ "required": required, "content": json_content(reference(schema)) }))
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn id_param() -> Value {
    path_param("id", json!({ "type": "integer" }), "numeric id")
}

fn job_id_param() -> Value {
    path_param("id", json!({ "type": "string" }), "job id")
}

fn page_params() -> Vec<Value> {
    vec![
        query(
            "page",
            json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000 }),
            "page number, from 1",
        ),
        query(
            "per_page",
            json!({ "type": "integer", "minimum": 1, "maximum": 200 }),
            "page size, default 50",
        ),
    ]
}

fn timestamp_or_date() -> Value {
    json!({ "anyOf": [
        { "type": "string", "format": "date-time" },
        { "type": "string", "format": "date" },
    ] })
}

fn text(max: u32) -> Value {
    json!({ "type": "string", "maxLength": max })
}

fn choice(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn limit(max: u32, default: u32) -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": max, "default": default })
}

fn ops() -> Vec<Op> {
    use Access::*;
    let op = |method, path, tag, summary, access| Op {
        method,
        path,
        tag,
        summary,
        access,
        params: Vec::new(),
        body: None,
        responses: Vec::new(),
        errors: &[],
    };
    let with = |mut op: Op, params: Vec<Value>, body: Option<Value>, responses, errors| {
        op.params = params;
        op.body = body;
        op.responses = responses;
        op.errors = errors;
        op
    };
    let history_limit = limit(1000, 100);
    // A signed link's query (`POST /downloads/links`): the alternative to
    // the bearer token for <img>/<video> URLs.
    let signed_link = || {
        vec![
            query(
                "user",
                json!({ "type": "integer" }),
                "signed link: the user it was made for",
            ),
            query(
                "expires",
                json!({ "type": "integer" }),
                "signed link: expiry, Unix seconds",
            ),
            query(
                "signature",
                json!({ "type": "string" }),
                "signed link: URL-safe base64 HMAC",
            ),
        ]
    };
    vec![
        with(
            op("get", "/api/v1/health", "health", "Liveness", Public),
            vec![],
            None,
            ok("Health"),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/health/ready",
                "health",
                "Readiness: the database answers and the download directory is writable",
                Public,
            ),
            vec![],
            None,
            ok("Readiness"),
            &[503],
        ),
        with(
            op(
                "post",
                "/api/v1/auth/login",
                "auth",
                "Log in with username and password",
                Public,
            ),
            vec![],
            json_body("LoginRequest", true),
            ok("Login"),
            &[401],
        ),
        with(
            op(
                "post",
                "/api/v1/auth/refresh",
                "auth",
                "Exchange a refresh token (single use) for new tokens",
                Public,
            ),
            vec![],
            json_body("RefreshRequest", true),
            ok("Tokens"),
            &[401],
        ),
        with(
            op("get", "/api/v1/auth/me", "auth", "The current user", Viewer),
            vec![],
            None,
            ok("User"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/auth/password",
                "auth",
                "Change one's own password",
                Viewer,
            ),
            vec![],
            json_body("PasswordChange", true),
            no_content(),
            &[404],
        ),
        with(
            op(
                "post",
                "/api/v1/auth/logout",
                "auth",
                "Revoke one's refresh tokens",
                Viewer,
            ),
            vec![],
            None,
            no_content(),
            &[],
        ),
        with(
            op("get", "/api/v1/users", "users", "List users", Admin),
            page_params(),
            None,
            vec![(200, Answer::Paged(reference("UserPage")))],
            &[],
        ),
        with(
            op("post", "/api/v1/users", "users", "Create a user", Admin),
            vec![],
            json_body("NewUserRequest", true),
            status_with(201, "User"),
            &[409],
        ),
        with(
            op(
                "patch",
                "/api/v1/users/{id}",
                "users",
                "Change a user",
                Admin,
            ),
            vec![id_param()],
            json_body("UserChange", true),
            ok("User"),
            &[404, 409],
        ),
        with(
            op(
                "delete",
                "/api/v1/users/{id}",
                "users",
                "Delete a user (not oneself)",
                Admin,
            ),
            vec![id_param()],
            None,
            no_content(),
            &[404, 409],
        ),
        with(
            op(
                "get",
                "/api/v1/downloads",
                "downloads",
                "List downloads",
                Viewer,
            ),
            [
                page_params(),
                vec![
                    query("platform", text(256), "platform name"),
                    query("source", text(256), "username or forum name"),
                    query("status", reference("DownloadStatus"), "completed or failed"),
                    query(
                        "date_from",
                        json!({ "type": "string", "format": "date" }),
                        "YYYY-MM-DD, inclusive",
                    ),
                    query(
                        "date_to",
                        json!({ "type": "string", "format": "date" }),
                        "YYYY-MM-DD, inclusive, not before date_from",
                    ),
                    query("search", text(256), "substring of URL or filename"),
                ],
            ]
            .concat(),
            None,
            vec![(200, Answer::Paged(reference("DownloadPage")))],
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/downloads/stats",
                "downloads",
                "Download statistics",
                Viewer,
            ),
            vec![
                query(
                    "period",
                    choice(&["today", "day", "week", "month", "year", "all"]),
                    "window, default all",
                ),
                query(
                    "group_by",
                    choice(&["platform", "source", "content_type"]),
                    "content_type adds by_content_type",
                ),
            ],
            None,
            ok("DownloadStats"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/downloads/bulk",
                "downloads",
                "Bulk delete (admin), retry or mark_upgraded",
                User,
            ),
            vec![],
            json_body("BulkRequest", true),
            ok("BulkResult"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/downloads/links",
                "downloads",
                "Signed file and thumbnail links, for <img>/<video> URLs",
                Viewer,
            ),
            vec![],
            json_body("LinksRequest", true),
            ok("LinksResponse"),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/downloads/{id}",
                "downloads",
                "One download",
                Viewer,
            ),
            vec![id_param()],
            None,
            ok("DownloadView"),
            &[],
        ),
        with(
            op(
                "delete",
                "/api/v1/downloads/{id}",
                "downloads",
                "Delete a download record (and its file)",
                Admin,
            ),
            vec![
                id_param(),
                query(
                    "delete_file",
                    json!({ "type": "boolean" }),
                    "also delete the file",
                ),
            ],
            None,
            no_content(),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/downloads/{id}/file",
                "downloads",
                "The file (Range supported; bearer token or a signed link)",
                Viewer,
            ),
            [
                vec![id_param()],
                signed_link(),
                vec![json!({ "name": "Range", "in": "header", "required": false,
                    "description": "one `bytes=` range", "schema": { "type": "string" } })],
            ]
            .concat(),
            None,
            vec![
                (200, Answer::File { partial: false }),
                (206, Answer::File { partial: true }),
            ],
            &[403, 416],
        ),
        with(
            op(
                "get",
                "/api/v1/downloads/{id}/thumbnail",
                "downloads",
                "A small JPEG preview, or a placeholder PNG",
                Viewer,
            ),
            [vec![id_param()], signed_link()].concat(),
            None,
            vec![(200, Answer::Image)],
            &[403],
        ),
        with(
            op("get", "/api/v1/queue", "queue", "List queue items", Viewer),
            [
                page_params(),
                vec![
                    query("status", reference("QueueStatus"), "one status"),
                    query("platform", text(64), "platform name"),
                ],
            ]
            .concat(),
            None,
            vec![(200, Answer::Paged(reference("QueuePage")))],
            &[],
        ),
        with(
            op("post", "/api/v1/queue", "queue", "Add an item", User),
            vec![],
            json_body("QueueRequest", true),
            status_with(201, "QueueAdded"),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/queue/stats",
                "queue",
                "Queue statistics",
                Viewer,
            ),
            vec![],
            None,
            ok("QueueStats"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/queue/clear",
                "queue",
                "Remove finished items (completed and failed by default)",
                Admin,
            ),
            vec![],
            json_body("ClearRequest", false),
            ok("QueueCleared"),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/queue/{id}",
                "queue",
                "One queue item",
                Viewer,
            ),
            vec![id_param()],
            None,
            ok("QueueItem"),
            &[],
        ),
        with(
            op(
                "patch",
                "/api/v1/queue/{id}",
                "queue",
                "Change priority, pause or resume",
                User,
            ),
            vec![id_param()],
            json_body("QueueChange", true),
            ok("QueueChanged"),
            &[409],
        ),
        with(
            op(
                "delete",
                "/api/v1/queue/{id}",
                "queue",
                "Remove an item (a running one is cancelled)",
                Admin,
            ),
            vec![id_param()],
            None,
            no_content(),
            &[409],
        ),
        with(
            op(
                "post",
                "/api/v1/queue/{id}/retry",
                "queue",
                "Retry a failed item",
                User,
            ),
            vec![id_param()],
            None,
            ok("QueueRetried"),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/scheduler/jobs",
                "scheduler",
                "List scheduled jobs",
                Viewer,
            ),
            vec![],
            None,
            ok("JobList"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/scheduler/jobs",
                "scheduler",
                "Create a job",
                Admin,
            ),
            vec![],
            json_body("NewJob", true),
            status_with(201, "JobView"),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/scheduler/jobs/{id}",
                "scheduler",
                "One job",
                Viewer,
            ),
            vec![job_id_param()],
            None,
            ok("JobView"),
            &[],
        ),
        with(
            op(
                "patch",
                "/api/v1/scheduler/jobs/{id}",
                "scheduler",
                "Change a job",
                Admin,
            ),
            vec![job_id_param()],
            json_body("JobPatch", true),
            ok("JobView"),
            &[409],
        ),
        with(
            op(
                "delete",
                "/api/v1/scheduler/jobs/{id}",
                "scheduler",
                "Delete a job",
                Admin,
            ),
            vec![job_id_param()],
            None,
            no_content(),
            // 422: built-in maintenance jobs can only be disabled.
            &[409, 422],
        ),
        with(
            op(
                "post",
                "/api/v1/scheduler/jobs/{id}/run",
                "scheduler",
                "Run a job now",
                User,
            ),
            vec![job_id_param()],
            None,
            status_with(202, "JobStarted"),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/scheduler/history",
                "scheduler",
                "Job run history, newest first",
                Viewer,
            ),
            vec![
                query("job_id", json!({ "type": "string" }), "job id"),
                query(
                    "status",
                    choice(&["success", "failure", "running", "skipped", ""]),
                    "one run status; empty means any",
                ),
                query("limit", history_limit.clone(), "newest runs to return"),
            ],
            None,
            ok("JobHistory"),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/platforms",
                "platforms",
                "Platforms, downloaders and their status",
                Viewer,
            ),
            vec![],
            None,
            ok("PlatformList"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/platforms/instagram/download",
                "platforms",
                "Queue an Instagram download",
                User,
            ),
            vec![],
            json_body("InstagramRequest", true),
            status_with(202, "Queued"),
            &[409],
        ),
        with(
            op(
                "post",
                "/api/v1/platforms/tiktok/download",
                "platforms",
                "Queue a TikTok download",
                User,
            ),
            vec![],
            json_body("TiktokRequest", true),
            status_with(202, "Queued"),
            &[409],
        ),
        with(
            op(
                "post",
                "/api/v1/platforms/forum/monitor",
                "platforms",
                "Monitor a forum thread (201 new, 200 re-checked)",
                User,
            ),
            vec![],
            json_body("ForumMonitorRequest", true),
            [status_with(201, "ForumMonitor"), ok("ForumMonitor")].concat(),
            &[409],
        ),
        with(
            op(
                "put",
                "/api/v1/platforms/{name}/cookies",
                "platforms",
                "Upload a Netscape cookies.txt",
                Admin,
            ),
            vec![path_param("name", json!({ "type": "string" }), "platform")],
            Some(json!({ "required": true, "content": {
                "text/plain": { "schema": { "type": "string" } },
            } })),
            ok("CookiesUpdated"),
            &[404, 409],
        ),
        with(
            op(
                "delete",
                "/api/v1/platforms/{name}/cookies",
                "platforms",
                "Remove stored cookies",
                Admin,
            ),
            vec![path_param("name", json!({ "type": "string" }), "platform")],
            None,
            no_content(),
            // 422: the platform takes no cookies.
            &[404, 409, 422],
        ),
        with(
            op(
                "get",
                "/api/v1/settings",
                "settings",
                "All settings, secrets masked",
                Admin,
            ),
            vec![],
            None,
            ok("Settings"),
            &[],
        ),
        with(
            op(
                "patch",
                "/api/v1/settings",
                "settings",
                "Deep-merge settings",
                Admin,
            ),
            vec![],
            json_body("SettingsPatch", true),
            ok("SettingsUpdated"),
            &[409],
        ),
        with(
            op(
                "get",
                "/api/v1/logs",
                "logs",
                "Stored logs, newest first",
                Viewer,
            ),
            vec![
                query(
                    "level",
                    choice(&["DEBUG", "INFO", "WARNING", "ERROR", ""]),
                    "minimum level; empty means any",
                ),
                query("module", text(256), "Instagram, TikTok, Scheduler, …"),
                query("search", text(256), "substring of the message"),
                query("date_from", timestamp_or_date(), "RFC 3339 or YYYY-MM-DD"),
                query("date_to", timestamp_or_date(), "RFC 3339 or YYYY-MM-DD"),
                query("limit", limit(1000, 100), "entries to return"),
            ],
            None,
            vec![(200, Answer::Counted(reference("LogList")))],
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/logs/download",
                "logs",
                "One day's logs as a file",
                Viewer,
            ),
            vec![
                query(
                    "date",
                    json!({ "type": "string", "format": "date" }),
                    "YYYY-MM-DD, default today",
                ),
                query("format", choice(&["text", "json"]), "default text"),
            ],
            None,
            vec![(200, Answer::Attachment)],
            &[],
        ),
        with(
            op("delete", "/api/v1/logs", "logs", "Delete old logs", Admin),
            vec![query(
                "older_than_days",
                json!({ "type": "integer", "minimum": 0, "maximum": 36_500 }),
                "default: logs.retention_days",
            )],
            None,
            ok("LogsDeleted"),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/stats/overview",
                "stats",
                "Dashboard overview",
                Viewer,
            ),
            vec![],
            None,
            ok("Overview"),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/stats/timeline",
                "stats",
                "Downloads over time",
                Viewer,
            ),
            vec![
                query(
                    "period",
                    choice(&["day", "today", "week", "month", "year"]),
                    "window, default week",
                ),
                query(
                    "group_by",
                    choice(&["hour", "day", "week", "month"]),
                    "bucket, default by period",
                ),
            ],
            None,
            ok("Timeline"),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/stats/platforms",
                "stats",
                "Breakdown by platform",
                Viewer,
            ),
            vec![],
            None,
            ok("PlatformStats"),
            &[],
        ),
        with(
            op(
                "post",
                "/api/v1/notifications/test",
                "notifications",
                "Send a test notification through the configured transports",
                Admin,
            ),
            vec![],
            json_body("TestRequest", false),
            [
                status_with(200, "TestResults"),
                status_with(502, "TestFailed"),
            ]
            .concat(),
            &[],
        ),
        with(
            op(
                "get",
                "/api/v1/notifications/deliveries",
                "notifications",
                "Email and webhook delivery history, newest first",
                Admin,
            ),
            vec![
                query(
                    "transport",
                    reference("DeliveryTransport"),
                    "email or webhook",
                ),
                query("status", reference("DeliveryStatus"), "one status"),
                query(
                    "limit",
                    limit(mediadl::notify::settings::MAX_HISTORY, 100),
                    "entries to return",
                ),
            ],
            None,
            ok("DeliveryList"),
            &[],
        ),
    ]
}

fn operation_id(method: &str, path: &str) -> String {
    format!(
        "{method}_{}",
        path.trim_start_matches("/api/v1/")
            .replace(['/', '{', '}'], "_")
    )
}

/// Links from an answer that names a resource to the operations on it
/// (source method and path, target method and path, where the id is).
/// Schemathesis' stateful phase follows them with real ids.
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "post",
        "/api/v1/queue",
        "get",
        "/api/v1/queue/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/queue",
        "patch",
        "/api/v1/queue/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/queue",
        "delete",
        "/api/v1/queue/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/queue",
        "post",
        "/api/v1/queue/{id}/retry",
        "$response.body#/id",
    ),
    (
        "get",
        "/api/v1/queue",
        "get",
        "/api/v1/queue/{id}",
        "$response.body#/items/0/id",
    ),
    (
        "get",
        "/api/v1/queue",
        "post",
        "/api/v1/queue/{id}/retry",
        "$response.body#/items/0/id",
    ),
    (
        "get",
        "/api/v1/downloads",
        "get",
        "/api/v1/downloads/{id}",
        "$response.body#/items/0/id",
    ),
    (
        "get",
        "/api/v1/downloads",
        "get",
        "/api/v1/downloads/{id}/file",
        "$response.body#/items/0/id",
    ),
    (
        "get",
        "/api/v1/downloads",
        "get",
        "/api/v1/downloads/{id}/thumbnail",
        "$response.body#/items/0/id",
    ),
    (
        "get",
        "/api/v1/downloads",
        "delete",
        "/api/v1/downloads/{id}",
        "$response.body#/items/0/id",
    ),
    (
        "post",
        "/api/v1/users",
        "patch",
        "/api/v1/users/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/users",
        "delete",
        "/api/v1/users/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/scheduler/jobs",
        "get",
        "/api/v1/scheduler/jobs/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/scheduler/jobs",
        "patch",
        "/api/v1/scheduler/jobs/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/scheduler/jobs",
        "delete",
        "/api/v1/scheduler/jobs/{id}",
        "$response.body#/id",
    ),
    (
        "post",
        "/api/v1/scheduler/jobs",
        "post",
        "/api/v1/scheduler/jobs/{id}/run",
        "$response.body#/id",
    ),
];

fn links_from(method: &str, path: &str) -> Option<Value> {
    let links: Map<String, Value> = LINKS
        .iter()
        .filter(|(from_method, from_path, ..)| *from_method == method && *from_path == path)
        .map(|(_, _, to_method, to_path, id)| {
            let target = operation_id(to_method, to_path);
            (
                target.clone(),
                json!({ "operationId": target, "parameters": { "id": id } }),
            )
        })
        .collect();
    (!links.is_empty()).then_some(Value::Object(links))
}

/// The headers that keep served media from running in our origin.
fn inert_headers() -> [HeaderSpec; 2] {
    [
        (
            "X-Content-Type-Options",
            json!({ "const": "nosniff" }),
            "The type is not sniffed",
        ),
        (
            "Content-Security-Policy",
            json!({ "const": "sandbox; default-src 'none'" }),
            "Opened as a document, the media runs nothing",
        ),
    ]
}

/// What each shared error status means.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed request: the body is not JSON (BAD_REQUEST)",
        401 => {
            "Not authenticated, bad or expired token or media link (MEDIA_LINK_EXPIRED), wrong credentials, disabled account"
        }
        403 => {
            "The role does not allow this (FORBIDDEN), or a media link that is not valid here (MEDIA_LINK_INVALID)"
        }
        404 => "No such resource (NOT_FOUND) or no such path (ROUTE_NOT_FOUND)",
        409 => "The change conflicts with the current state (CONFLICT)",
        413 => "Body over 1 MiB (PAYLOAD_TOO_LARGE)",
        416 => "Range outside the file (RANGE_NOT_SATISFIABLE; Content-Range: bytes */LEN)",
        422 => "A value has the wrong type or is out of range; `field` names it (VALIDATION_ERROR)",
        429 => "Rate limited (RATE_LIMITED) or login locked (ACCOUNT_LOCKED); see Retry-After",
        503 => "The database is unavailable (SERVICE_UNAVAILABLE); see Retry-After",
        _ => "Error",
    }
}

/// The statuses and response of one operation, success and errors.
fn operation(op: &Op) -> Value {
    let rate_limited = !crate::routes::health::PROBE_PATHS.contains(&op.path);
    let headers = common_headers(rate_limited);
    let mut responses = Map::new();
    for (status, answer) in &op.responses {
        let description = match status {
            201 => "Created",
            202 => "Accepted",
            204 => "No Content",
            206 => "Partial Content (the requested range)",
            502 => "A test delivery failed; `detail` says why",
            _ => "OK",
        };
        let mut extra = headers.clone();
        let content = match answer {
            Answer::Empty => None,
            Answer::Json(schema) => Some(json_content(schema.clone())),
            Answer::Paged(schema) => {
                extra.extend(pagination_headers());
                Some(json_content(schema.clone()))
            }
            Answer::Counted(schema) => {
                extra.push(integer_header(
                    "X-Total-Count",
                    "Entries matching the filters",
                ));
                Some(json_content(schema.clone()))
            }
            Answer::File { partial } => {
                extra.push(integer_header("Content-Length", "Bytes in this body"));
                extra.push((
                    "Accept-Ranges",
                    json!({ "const": "bytes" }),
                    "Ranges are supported",
                ));
                extra.push((
                    "Content-Disposition",
                    json!({ "type": "string" }),
                    "inline for raster images, audio and video; attachment for anything else",
                ));
                extra.extend(inert_headers());
                if *partial {
                    extra.push((
                        "Content-Range",
                        json!({ "type": "string" }),
                        "bytes START-END/LENGTH",
                    ));
                }
                Some(json!({ "*/*": { "schema": { "type": "string" } } }))
            }
            Answer::Image => {
                extra.extend(inert_headers());
                Some(json!({
                "image/jpeg": { "schema": { "type": "string" } },
                "image/png": { "schema": { "type": "string" } },
                }))
            }
            Answer::Attachment => {
                extra.push((
                    "Content-Disposition",
                    json!({ "type": "string" }),
                    "attachment; filename=\"media_downloader_YYYYMMDD.log\" (or .json)",
                ));
                Some(json!({ "application/octet-stream": { "schema": { "type": "string" } } }))
            }
        };
        let mut response = response(description, content, &extra);
        if (200..300).contains(status)
            && let Some(links) = links_from(op.method, op.path)
        {
            response["links"] = links;
        }
        responses.insert(status.to_string(), response);
    }
    let mut errors: Vec<u16> = op.errors.to_vec();
    if rate_limited {
        // Every API path but the health probes is counted and reads the database.
        errors.extend([429, 503]);
    }
    if op.access != Access::Public {
        errors.push(401);
    }
    if matches!(op.access, Access::User | Access::Admin) {
        errors.push(403);
    }
    if op.body.is_some() {
        errors.extend([400, 413, 422]);
    }
    if op.params.iter().any(|p| p["in"] == "query") {
        errors.push(422);
    }
    if op.params.iter().any(|p| p["in"] == "path") {
        errors.push(404);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let mut extra = headers.clone();
        if matches!(status, 429 | 503) {
            extra.push(integer_header("Retry-After", "Seconds to wait"));
        }
        if status == 416 {
            extra.push((
                "Content-Range",
                json!({ "type": "string" }),
                "bytes */LENGTH",
            ));
        }
        responses.insert(
            status.to_string(),
            response(
                error_description(status),
                Some(json_content(reference("ErrorBody"))),
                &extra,
            ),
        );
    }
    let mut operation = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": operation_id(op.method, op.path),
        "parameters": op.params,
        "responses": responses,
    });
    if let Some(body) = &op.body {
        operation["requestBody"] = body.clone();
    }
    if op.access != Access::Public {
        operation["security"] = json!([{ "bearer": [] }]);
    }
    operation
}

/// The API description as JSON.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method] = operation(&op);
    }
    let mut schemas = Map::new();
    for (name, schema) in derived_schemas() {
        schemas.insert(
            name,
            serde_json::to_value(schema).unwrap_or_else(|_| json!({})),
        );
    }
    for (name, schema) in composed_schemas() {
        schemas.insert(name.to_string(), schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mediadl API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Media archiver API. Errors share one body (detail, error_code, \
                timestamp, request_id); every response carries X-Request-Id and, under /api/v1 \
                except /health, X-RateLimit-* headers. The WebSocket is at \
                /ws/downloads?token=… (see docs/API.md).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
        },
    })
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// A documented path's segments (`None` for a `{parameter}`) and the
/// methods it answers, as an `Allow` header value.
type PathMethods = (Vec<Option<&'static str>>, String);

static ALLOWED: LazyLock<Vec<PathMethods>> = LazyLock::new(|| {
    let mut allowed: Vec<PathMethods> = Vec::new();
    for op in ops() {
        let method = op.method.to_ascii_uppercase();
        let segments: Vec<Option<&'static str>> = op
            .path
            .split('/')
            .map(|segment| (!segment.starts_with('{')).then_some(segment))
            .collect();
        match allowed.iter_mut().find(|(known, _)| *known == segments) {
            Some((_, methods)) => {
                methods.push_str(", ");
                methods.push_str(&method);
            }
            None => allowed.push((segments, method)),
        }
    }
    allowed
});

/// The `Allow` header of a 405 for `path`: the methods the document lists
/// for it (the most literal match wins: `/queue/stats` over `/queue/{id}`);
/// the dashboard's files answer GET and HEAD, the docs and WebSocket GET.
pub fn allowed_methods(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').collect();
    ALLOWED
        .iter()
        .filter(|(pattern, _)| {
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(expected, actual)| expected.is_none_or(|literal| literal == *actual))
        })
        .max_by_key(|(pattern, _)| pattern.iter().filter(|segment| segment.is_some()).count())
        .map(|(_, methods)| methods.as_str())
        .unwrap_or(if path.starts_with("/api/") || path.starts_with("/ws/") {
            "GET"
        } else {
            "GET, HEAD"
        })
}

/// `/api/v1/openapi.json` and `/api/docs/…`.
pub fn routes() -> BoxedFilter<(Response,)> {
    let json = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| {
            let mut response = Response::new(DOCUMENT.as_str().to_owned().into());
            response.headers_mut().insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        });
    let config = Arc::new(utoipa_swagger_ui::Config::from("/api/v1/openapi.json"));
    let docs_root = warp::path::full()
        .and_then(|full: warp::path::FullPath| async move {
            if full.as_str() == "/api/docs" {
                Ok(warp::redirect::see_other(http::Uri::from_static("/api/docs/")).into_response())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(warp::get())
        .map(|response: Response| response);
    let docs = warp::path("api")
        .and(warp::path("docs"))
        .and(warp::get())
        .and(warp::path::tail())
        .and_then(move |tail: warp::path::Tail| {
            let config = Arc::clone(&config);
            async move {
                match utoipa_swagger_ui::serve(tail.as_str(), config) {
                    Ok(Some(file)) => {
                        let mut response = Response::new(file.bytes.into_owned().into());
                        let headers = response.headers_mut();
                        if let Ok(value) = http::HeaderValue::from_str(&file.content_type) {
                            headers.insert(CONTENT_TYPE, value);
                        }
                        if file.gzpipped {
                            headers
                                .insert(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
                        }
                        headers.insert(
                            CACHE_CONTROL,
                            http::HeaderValue::from_static("public, max-age=3600"),
                        );
                        Ok(response)
                    }
                    Ok(None) => Err(warp::reject::not_found()),
                    Err(err) => Ok(crate::error::ApiError::internal(err).to_response()),
                }
            }
        });
    json.or(docs_root).unify().or(docs).unify().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_refs(value: &Value, refs: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    refs.push(target.clone());
                }
                map.values().for_each(|v| collect_refs(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 50, "{} refs", refs.len());
        for target in refs {
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
        }
    }

    #[test]
    fn operations_document_bodies_errors_and_headers() {
        let doc: Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let list = &doc["paths"]["/api/v1/downloads"]["get"]["responses"];
        assert_eq!(
            list["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/DownloadPage"
        );
        for header in [
            "X-Total-Count",
            "Link",
            "X-Request-Id",
            "X-RateLimit-Remaining",
        ] {
            assert_eq!(list["200"]["headers"][header]["required"], true, "{header}");
        }
        for status in ["401", "422", "429", "503"] {
            assert_eq!(
                list[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody"
            );
        }
        assert!(list["403"].is_null(), "every role may read");
        let delete = &doc["paths"]["/api/v1/users/{id}"]["delete"];
        for status in ["204", "401", "403", "404", "409", "429"] {
            assert!(delete["responses"][status].is_object(), "{status}");
        }
        assert_eq!(delete["security"][0]["bearer"], json!([]));
        let add = &doc["paths"]["/api/v1/queue"]["post"];
        assert_eq!(
            add["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/QueueRequest"
        );
        for status in ["201", "400", "413", "422"] {
            assert!(add["responses"][status].is_object(), "{status}");
        }
        let health = &doc["paths"]["/api/v1/health"]["get"];
        assert!(health["security"].is_null());
        assert!(health["responses"]["200"]["headers"]["X-RateLimit-Limit"].is_null());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
            "JWT"
        );
        let links = &add["responses"]["201"]["links"];
        assert_eq!(
            links["delete_queue__id_"]["parameters"]["id"],
            "$response.body#/id"
        );
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().unwrap())
            .collect();
        for (_, _, method, path, _) in LINKS {
            let target = operation_id(method, path);
            assert!(
                ids.contains(&target.as_str()),
                "{target} is not an operation"
            );
        }
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_path() {
        assert_eq!(allowed_methods("/api/v1/downloads"), "GET");
        assert_eq!(allowed_methods("/api/v1/queue/17"), "GET, PATCH, DELETE");
        assert_eq!(allowed_methods("/api/v1/queue/stats"), "GET");
        assert_eq!(allowed_methods("/api/v1/settings"), "GET, PATCH");
        assert_eq!(allowed_methods("/api/v1/openapi.json"), "GET");
        assert_eq!(allowed_methods("/"), "GET, HEAD");
    }

    #[test]
    fn derived_schemas_follow_serde() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["QueueStatus"]["enum"],
            json!(["pending", "downloading", "paused", "completed", "failed"])
        );
        assert_eq!(
            schemas["LogLevel"]["enum"],
            json!(["DEBUG", "INFO", "WARNING", "ERROR"])
        );
        // Internal to exactly-once firing: in no part of the job's schema.
        assert!(!schemas["Job"].to_string().contains("last_slot"));
        assert!(schemas["Job"].to_string().contains("next_run"));
        assert_eq!(schemas["LoginRequest"]["additionalProperties"], false);
    }
}
