//! The OpenAPI 3 document (`/api/v1/openapi.json`, built with utoipa from
//! the route table below) and Swagger UI at `/api/docs` from assets
//! compiled into the binary (nothing is fetched at build or run time).

use std::sync::{Arc, LazyLock};

use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use utoipa::PartialSchema;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, Required,
    ResponseBuilder,
};
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

/// A query or path parameter: name, where, required, JSON type, description.
type Param = (&'static str, ParameterIn, bool, Type, &'static str);

struct Op {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    success: u16,
    params: &'static [Param],
    /// Request body media type, if any.
    body: Option<&'static str>,
}

const ID: Param = ("id", ParameterIn::Path, true, Type::Integer, "numeric id");
const PAGE: Param = (
    "page",
    ParameterIn::Query,
    false,
    Type::Integer,
    "page number, from 1",
);
const PER_PAGE: Param = (
    "per_page",
    ParameterIn::Query,
    false,
    Type::Integer,
    "1 to 200, default 50",
);
const JSON: Option<&str> = Some("application/json");

fn ops() -> Vec<Op> {
    use Access::*;
    use HttpMethod::{Delete, Get, Patch, Post, Put};
    use ParameterIn::Query as Q;
    let op = |method, path, tag, summary, access, success, params: &'static [Param], body| Op {
        method,
        path,
        tag,
        summary,
        access,
        success,
        params,
        body,
    };
    vec![
        op(
            Get,
            "/api/v1/health",
            "health",
            "Liveness",
            Public,
            200,
            &[],
            None,
        ),
        op(
            Post,
            "/api/v1/auth/login",
            "auth",
            "Log in with username and password",
            Public,
            200,
            &[],
            JSON,
        ),
        op(
            Post,
            "/api/v1/auth/refresh",
            "auth",
            "Exchange a refresh token (single use) for new tokens",
            Public,
            200,
            &[],
            JSON,
        ),
        op(
            Get,
            "/api/v1/auth/me",
            "auth",
            "The current user",
            Viewer,
            200,
            &[],
            None,
        ),
        op(
            Post,
            "/api/v1/auth/password",
            "auth",
            "Change one's own password",
            Viewer,
            204,
            &[],
            JSON,
        ),
        op(
            Post,
            "/api/v1/auth/logout",
            "auth",
            "Revoke one's refresh tokens",
            Viewer,
            204,
            &[],
            None,
        ),
        op(
            Get,
            "/api/v1/users",
            "users",
            "List users",
            Admin,
            200,
            &[PAGE, PER_PAGE],
            None,
        ),
        op(
            Post,
            "/api/v1/users",
            "users",
            "Create a user",
            Admin,
            201,
            &[],
            JSON,
        ),
        op(
            Patch,
            "/api/v1/users/{id}",
            "users",
            "Change a user",
            Admin,
            200,
            &[ID],
            JSON,
        ),
        op(
            Delete,
            "/api/v1/users/{id}",
            "users",
            "Delete a user",
            Admin,
            204,
            &[ID],
            None,
        ),
        op(
            Get,
            "/api/v1/downloads",
            "downloads",
            "List downloads",
            Viewer,
            200,
            &[
                PAGE,
                PER_PAGE,
                ("platform", Q, false, Type::String, "platform name"),
                ("source", Q, false, Type::String, "username or forum name"),
                ("status", Q, false, Type::String, "completed or failed"),
                ("date_from", Q, false, Type::String, "YYYY-MM-DD, inclusive"),
                ("date_to", Q, false, Type::String, "YYYY-MM-DD, inclusive"),
                (
                    "search",
                    Q,
                    false,
                    Type::String,
                    "substring of URL or filename",
                ),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/downloads/stats",
            "downloads",
            "Download statistics",
            Viewer,
            200,
            &[
                (
                    "period",
                    Q,
                    false,
                    Type::String,
                    "today, week, month, year, all",
                ),
                (
                    "group_by",
                    Q,
                    false,
                    Type::String,
                    "platform, source, content_type",
                ),
            ],
            None,
        ),
        op(
            Post,
            "/api/v1/downloads/bulk",
            "downloads",
            "Bulk delete (admin), retry or mark_upgraded",
            User,
            200,
            &[],
            JSON,
        ),
        op(
            Get,
            "/api/v1/downloads/{id}",
            "downloads",
            "One download",
            Viewer,
            200,
            &[ID],
            None,
        ),
        op(
            Delete,
            "/api/v1/downloads/{id}",
            "downloads",
            "Delete a download record (and file)",
            Admin,
            204,
            &[
                ID,
                (
                    "delete_file",
                    Q,
                    false,
                    Type::Boolean,
                    "also delete the file",
                ),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/downloads/{id}/file",
            "downloads",
            "The file (Range supported; ?token= accepted)",
            Viewer,
            200,
            &[
                ID,
                (
                    "token",
                    Q,
                    false,
                    Type::String,
                    "access token, for <img>/<video> URLs",
                ),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/downloads/{id}/thumbnail",
            "downloads",
            "A small JPEG preview or a placeholder PNG",
            Viewer,
            200,
            &[
                ID,
                (
                    "token",
                    Q,
                    false,
                    Type::String,
                    "access token, for <img> URLs",
                ),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/queue",
            "queue",
            "List queue items",
            Viewer,
            200,
            &[
                PAGE,
                PER_PAGE,
                (
                    "status",
                    Q,
                    false,
                    Type::String,
                    "pending, downloading, paused, completed, failed",
                ),
                ("platform", Q, false, Type::String, "platform name"),
            ],
            None,
        ),
        op(
            Post,
            "/api/v1/queue",
            "queue",
            "Add an item",
            User,
            201,
            &[],
            JSON,
        ),
        op(
            Get,
            "/api/v1/queue/stats",
            "queue",
            "Queue statistics",
            Viewer,
            200,
            &[],
            None,
        ),
        op(
            Post,
            "/api/v1/queue/clear",
            "queue",
            "Remove completed/failed items",
            Admin,
            200,
            &[],
            JSON,
        ),
        op(
            Get,
            "/api/v1/queue/{id}",
            "queue",
            "One queue item",
            Viewer,
            200,
            &[ID],
            None,
        ),
        op(
            Patch,
            "/api/v1/queue/{id}",
            "queue",
            "Change priority, pause or resume",
            User,
            200,
            &[ID],
            JSON,
        ),
        op(
            Delete,
            "/api/v1/queue/{id}",
            "queue",
            "Remove an item (a running one is cancelled)",
            Admin,
            204,
            &[ID],
            None,
        ),
        op(
            Post,
            "/api/v1/queue/{id}/retry",
            "queue",
            "Retry a failed item",
            User,
            200,
            &[ID],
            None,
        ),
        op(
            Get,
            "/api/v1/scheduler/jobs",
            "scheduler",
            "List scheduled jobs",
            Viewer,
            200,
            &[],
            None,
        ),
        op(
            Post,
            "/api/v1/scheduler/jobs",
            "scheduler",
            "Create a job",
            Admin,
            201,
            &[],
            JSON,
        ),
        op(
            Patch,
            "/api/v1/scheduler/jobs/{id}",
            "scheduler",
            "Change a job",
            Admin,
            200,
            &[("id", ParameterIn::Path, true, Type::String, "job id")],
            JSON,
        ),
        op(
            Delete,
            "/api/v1/scheduler/jobs/{id}",
            "scheduler",
            "Delete a job",
            Admin,
            204,
            &[("id", ParameterIn::Path, true, Type::String, "job id")],
            None,
        ),
        op(
            Post,
            "/api/v1/scheduler/jobs/{id}/run",
            "scheduler",
            "Run a job now",
            User,
            202,
            &[("id", ParameterIn::Path, true, Type::String, "job id")],
            None,
        ),
        op(
            Get,
            "/api/v1/scheduler/history",
            "scheduler",
            "Job run history",
            Viewer,
            200,
            &[
                ("job_id", Q, false, Type::String, "job id"),
                (
                    "status",
                    Q,
                    false,
                    Type::String,
                    "success, failure, running, skipped",
                ),
                ("limit", Q, false, Type::Integer, "default 100"),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/platforms",
            "platforms",
            "Platforms, downloaders and their status",
            Viewer,
            200,
            &[],
            None,
        ),
        op(
            Post,
            "/api/v1/platforms/instagram/download",
            "platforms",
            "Queue an Instagram download",
            User,
            202,
            &[],
            JSON,
        ),
        op(
            Post,
            "/api/v1/platforms/tiktok/download",
            "platforms",
            "Queue a TikTok download",
            User,
            202,
            &[],
            JSON,
        ),
        op(
            Post,
            "/api/v1/platforms/forum/monitor",
            "platforms",
            "Monitor a forum thread",
            User,
            201,
            &[],
            JSON,
        ),
        op(
            Put,
            "/api/v1/platforms/{name}/cookies",
            "platforms",
            "Upload a Netscape cookies.txt",
            Admin,
            200,
            &[("name", ParameterIn::Path, true, Type::String, "platform")],
            Some("text/plain"),
        ),
        op(
            Delete,
            "/api/v1/platforms/{name}/cookies",
            "platforms",
            "Remove stored cookies",
            Admin,
            204,
            &[("name", ParameterIn::Path, true, Type::String, "platform")],
            None,
        ),
        op(
            Get,
            "/api/v1/settings",
            "settings",
            "All settings, secrets masked",
            Admin,
            200,
            &[],
            None,
        ),
        op(
            Patch,
            "/api/v1/settings",
            "settings",
            "Deep-merge settings",
            Admin,
            200,
            &[],
            JSON,
        ),
        op(
            Get,
            "/api/v1/logs",
            "logs",
            "Stored logs",
            Viewer,
            200,
            &[
                (
                    "level",
                    Q,
                    false,
                    Type::String,
                    "DEBUG, INFO, WARNING, ERROR",
                ),
                (
                    "module",
                    Q,
                    false,
                    Type::String,
                    "Instagram, TikTok, Scheduler, …",
                ),
                ("search", Q, false, Type::String, "substring of the message"),
                (
                    "date_from",
                    Q,
                    false,
                    Type::String,
                    "RFC 3339 or YYYY-MM-DD",
                ),
                ("date_to", Q, false, Type::String, "RFC 3339 or YYYY-MM-DD"),
                ("limit", Q, false, Type::Integer, "1 to 1000, default 100"),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/logs/download",
            "logs",
            "One day's logs as a file",
            Viewer,
            200,
            &[
                ("date", Q, false, Type::String, "YYYY-MM-DD, default today"),
                ("format", Q, false, Type::String, "text or json"),
            ],
            None,
        ),
        op(
            Delete,
            "/api/v1/logs",
            "logs",
            "Delete old logs",
            Admin,
            200,
            &[(
                "older_than_days",
                Q,
                false,
                Type::Integer,
                "default: logs.retention_days",
            )],
            None,
        ),
        op(
            Get,
            "/api/v1/stats/overview",
            "stats",
            "Dashboard overview",
            Viewer,
            200,
            &[],
            None,
        ),
        op(
            Get,
            "/api/v1/stats/timeline",
            "stats",
            "Downloads over time",
            Viewer,
            200,
            &[
                ("period", Q, false, Type::String, "day, week, month, year"),
                ("group_by", Q, false, Type::String, "hour, day, week, month"),
            ],
            None,
        ),
        op(
            Get,
            "/api/v1/stats/platforms",
            "stats",
            "Breakdown by platform",
            Viewer,
            200,
            &[],
            None,
        ),
    ]
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
        HttpMethod::Head => "head",
        HttpMethod::Options => "options",
        HttpMethod::Trace => "trace",
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn success_response(status: u16) -> utoipa::openapi::Response {
    let builder = ResponseBuilder::new().description(match status {
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        _ => "OK",
    });
    if status == 204 {
        builder.build()
    } else {
        builder
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object).build()))
                    .build(),
            )
            .build()
    }
}

/// The API description.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for op in ops() {
        let mut operation = OperationBuilder::new()
            .tag(op.tag)
            .summary(Some(op.summary))
            .operation_id(Some(format!(
                "{}_{}",
                method_name(&op.method),
                op.path
                    .trim_start_matches("/api/v1/")
                    .replace(['/', '{', '}'], "_")
            )))
            .response(op.success.to_string(), success_response(op.success))
            .response("400", error_response("Malformed request"))
            .response("422", error_response("Validation error naming the field"))
            .response("429", error_response("Rate limited (see Retry-After)"));
        for (name, location, required, kind, description) in op.params {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(location.clone())
                    .required(if *required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(kind.clone()).build())),
            );
        }
        if let Some(media) = op.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(media, ContentBuilder::new().build())
                    .build(),
            ));
        }
        if op.access != Access::Public {
            operation = operation
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .response("401", error_response("Not authenticated"))
                .response("403", error_response("Role does not allow this"));
        }
        if op.params.iter().any(|p| matches!(p.1, ParameterIn::Path)) {
            operation = operation.response("404", error_response("Not found"));
        }
        if op.access == Access::User || op.access == Access::Admin {
            operation = operation.response("409", error_response("Conflict"));
        }
        let item = PathItem::new(op.method, operation);
        match paths.paths.get_mut(op.path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                paths.paths.insert(op.path.to_string(), item);
            }
        }
    }
    let components = ComponentsBuilder::new()
        .schema("ErrorBody", ErrorBody::schema())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("mediadl API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Media archiver API. Errors share one body (detail, error_code, timestamp, \
                     request_id); every response carries X-Request-Id and, under /api/v1, \
                     X-RateLimit-* headers. The WebSocket is at /ws/downloads?token=…",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().unwrap_or_else(|_| "{}".into()));

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

    #[test]
    fn document_lists_every_area_and_the_error_body() {
        let value: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert!(value["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/api/v1/downloads",
            "/api/v1/queue/{id}",
            "/api/v1/settings",
            "/api/v1/logs",
        ] {
            assert!(value["paths"][path].is_object(), "{path} missing");
        }
        assert!(value["paths"]["/api/v1/queue/{id}"]["patch"].is_object());
        assert!(value["paths"]["/api/v1/queue/{id}"]["delete"].is_object());
        assert!(value["components"]["schemas"]["ErrorBody"].is_object());
    }
}
