//! The OpenAPI 3.1 document (`/api/v1/openapi.json`) and Swagger UI at
//! `/api/docs` from assets compiled into the binary (nothing is fetched at
//! build or run time).
//!
//! The document is generated: every operation is the `#[utoipa::path]` of
//! its handler in [`crate::routes`] (whose method and path also build the
//! warp filter), and every body is a `Serialize + ToSchema` type, so a
//! body and its schema cannot drift apart. What all operations share is
//! added here once by `Shared`: the error responses each kind of
//! operation can answer with (from its security, parameters and body), the
//! headers every response carries, the pagination and media headers, the
//! bearer scheme, operation ids and the links schemathesis' stateful phase
//! follows. An operation's security names the role it needs: `bearer: []`
//! any signed-in user, `["user"]` or `["admin"]` that role or higher.
//! `.ci/schemathesis` checks the running server against this document (see
//! docs/API.md).

use std::sync::{Arc, LazyLock};

use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::Value;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::Link;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::response::{Response as ResponseObject, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ErrorBody;
use crate::routes::health::PROBE_PATHS;
use crate::routes::{
    auth, downloads, health, import, logs, method_name, notifications, platforms, queue, scheduler,
    settings, stats, users,
};

/// The API: every operation of [`crate::routes`], and what they share.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mediadl API",
        description = "Media archiver API. Errors share one body (detail, error_code, \
            timestamp, request_id); every response carries X-Request-Id and, under /api/v1 \
            except /health, X-RateLimit-* headers. The WebSocket is at \
            /ws/downloads?token=… (see docs/API.md)."
    ),
    paths(
        health::live,
        health::readiness,
        auth::login,
        auth::refresh,
        auth::me,
        auth::change_password,
        auth::logout,
        users::list,
        users::create,
        users::update,
        users::delete,
        downloads::list,
        downloads::stats,
        downloads::bulk,
        downloads::links,
        downloads::get,
        downloads::delete,
        downloads::file,
        downloads::thumbnail,
        queue::list,
        queue::add,
        queue::stats,
        queue::clear,
        queue::get,
        queue::update,
        queue::remove,
        queue::retry,
        scheduler::list_jobs,
        scheduler::create_job,
        scheduler::get_job,
        scheduler::update_job,
        scheduler::delete_job,
        scheduler::run_job,
        scheduler::history,
        platforms::list,
        platforms::recognise,
        platforms::instagram,
        platforms::tiktok,
        scheduler::monitor_forum,
        platforms::put_cookies,
        platforms::delete_cookies,
        settings::get,
        settings::patch,
        logs::list,
        logs::download,
        logs::delete,
        stats::overview,
        stats::timeline,
        stats::platforms,
        notifications::test,
        notifications::deliveries,
        import::import,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Shared)
)]
struct ApiDoc;

/// Adds what every operation shares (see the module docs).
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations_mut(item) {
                share(path, &method, operation);
            }
        }
        for link in links() {
            add_link(doc, &link);
        }
    }
}

/// The operations of a path item with their methods, in the order an
/// `Allow` header lists them.
fn operations_mut(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Options, item.options.as_mut()),
        (HttpMethod::Trace, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
    .collect()
}

/// `get_queue__id_`: stable ids clients and [`links`] refer to.
fn operation_id(method: &str, path: &str) -> String {
    format!(
        "{method}_{}",
        path.trim_start_matches("/api/v1/")
            .replace(['/', '{', '}'], "_")
    )
}

/// A schema of `kind` with one allowed value (an `enum` of one).
fn constant(value: impl Into<Value>, kind: Type) -> Object {
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some([value.into()]))
        .build()
}

/// A string schema allowing `values` (query parameters the handlers read
/// as text and check themselves).
pub(crate) fn choice(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// The schema of a boolean that is always `true`.
pub(crate) fn always_true() -> Object {
    constant(true, Type::Boolean)
}

fn count_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .build()
}

fn text_schema() -> Object {
    Object::with_type(Type::String)
}

/// A header every response of its kind carries ([`share`] marks it required).
fn header(schema: Object, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// The headers of every response of an operation.
fn common_headers(rate_limited: bool) -> Vec<(&'static str, Header)> {
    let mut headers = vec![(
        "X-Request-Id",
        header(
            text_schema(),
            "The request's id (also `request_id` in error bodies)",
        ),
    )];
    if rate_limited {
        headers.extend([
            (
                "X-RateLimit-Limit",
                header(count_schema(), "Requests allowed per hour"),
            ),
            (
                "X-RateLimit-Remaining",
                header(count_schema(), "Requests left now"),
            ),
            (
                "X-RateLimit-Reset",
                header(
                    count_schema(),
                    "Unix seconds when the full allowance is back",
                ),
            ),
        ]);
    }
    headers
}

/// Sent with every page of a paginated list.
fn pagination_headers() -> Vec<(&'static str, Header)> {
    vec![
        (
            "X-Total-Count",
            header(count_schema(), "Items matching the filters"),
        ),
        ("X-Page", header(count_schema(), "This page, from 1")),
        ("X-Per-Page", header(count_schema(), "Page size")),
        (
            "X-Total-Pages",
            header(count_schema(), "Pages (at least 1)"),
        ),
        (
            "Link",
            header(
                text_schema(),
                "`first`, `prev`, `next`, `last` links keeping the filters",
            ),
        ),
    ]
}

/// The headers that keep served media from running in our origin.
fn inert_headers() -> Vec<(&'static str, Header)> {
    vec![
        (
            "X-Content-Type-Options",
            header(constant("nosniff", Type::String), "The type is not sniffed"),
        ),
        (
            "Content-Security-Policy",
            header(
                constant("sandbox; default-src 'none'", Type::String),
                "Opened as a document, the media runs nothing",
            ),
        ),
    ]
}

/// The headers of a stored file (`*/*`), whole (200) or one range (206).
fn file_headers(partial: bool) -> Vec<(&'static str, Header)> {
    let mut headers = vec![
        (
            "Content-Length",
            header(count_schema(), "Bytes in this body"),
        ),
        (
            "Accept-Ranges",
            header(constant("bytes", Type::String), "Ranges are supported"),
        ),
        (
            "Content-Disposition",
            header(
                text_schema(),
                "inline for raster images, audio and video; attachment for anything else",
            ),
        ),
    ];
    headers.extend(inert_headers());
    if partial {
        headers.push((
            "Content-Range",
            header(text_schema(), "bytes START-END/LENGTH"),
        ));
    }
    headers
}

/// What each shared error status means.
fn error_description(status: &str) -> &'static str {
    match status {
        "400" => "Malformed request: the body is not JSON (BAD_REQUEST)",
        "401" => {
            "Not authenticated, bad or expired token, media link not valid here or expired (MEDIA_LINK_INVALID, MEDIA_LINK_EXPIRED), wrong credentials, disabled account"
        }
        "403" => "The role does not allow this (FORBIDDEN)",
        "404" => "No such resource (NOT_FOUND) or no such path (ROUTE_NOT_FOUND)",
        "409" => "The change conflicts with the current state (CONFLICT)",
        "413" => "Body over 1 MiB (PAYLOAD_TOO_LARGE)",
        "416" => "Range outside the file (RANGE_NOT_SATISFIABLE; Content-Range: bytes */LEN)",
        "422" => {
            "A value has the wrong type or is out of range; `field` names it (VALIDATION_ERROR)"
        }
        "429" => "Rate limited (RATE_LIMITED) or login locked (ACCOUNT_LOCKED); see Retry-After",
        "503" => "The database is unavailable (SERVICE_UNAVAILABLE); see Retry-After",
        _ => "Error",
    }
}

/// The error body response of `status`.
fn error_response(status: &str) -> ResponseObject {
    ResponseBuilder::new()
        .description(error_description(status))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The error statuses an operation can answer with because of what it is:
/// rate limited and database-backed, signed-in, role-limited, with a body,
/// with query or path parameters.
fn shared_errors(path: &str, operation: &Operation) -> Vec<&'static str> {
    let mut errors = Vec::new();
    if !PROBE_PATHS.contains(&path) {
        errors.extend(["429", "503"]);
    }
    let anyone = SecurityRequirement::default();
    let signed_in = SecurityRequirement::new("bearer", Vec::<String>::new());
    let security = operation.security.as_deref().unwrap_or_default();
    if security.iter().any(|requirement| *requirement != anyone) {
        errors.push("401");
    }
    if security
        .iter()
        .any(|requirement| *requirement != anyone && *requirement != signed_in)
    {
        errors.push("403");
    }
    if operation.request_body.is_some() {
        errors.extend(["400", "413", "422"]);
    }
    for parameter in operation.parameters.iter().flatten() {
        if let RefOr::T(parameter) = parameter {
            match parameter.parameter_in {
                ParameterIn::Query => errors.push("422"),
                ParameterIn::Path => errors.push("404"),
                _ => {}
            }
        }
    }
    errors
}

/// An optional body is absent or an object, never JSON `null`: utoipa
/// writes `Option<T>` as `oneOf: [T, null]`, the handlers take an empty
/// body instead.
fn absent_not_null(body: &mut RequestBody) {
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
            && let [inner, RefOr::T(Schema::Object(null))] = one_of.items.as_slice()
            && null.schema_type == SchemaType::Type(Type::Null)
        {
            content.schema = Some(inner.clone());
        }
    }
}

/// Adds to one operation what it shares with the others.
fn share(path: &str, method: &HttpMethod, operation: &mut Operation) {
    operation.operation_id = Some(operation_id(&method_name(method), path));
    if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
        absent_not_null(body);
    }
    for status in shared_errors(path, operation) {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(status).into());
    }
    let rate_limited = !PROBE_PATHS.contains(&path);
    let paginated = operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| matches!(parameter, RefOr::T(parameter) if parameter.name == "page"));
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if response.description.is_empty() {
            response.description = error_description(status).to_owned();
        }
        let mut headers = common_headers(rate_limited);
        match status.as_str() {
            "200" if paginated => headers.extend(pagination_headers()),
            "429" | "503" => {
                headers.push(("Retry-After", header(count_schema(), "Seconds to wait")))
            }
            "416" => headers.push(("Content-Range", header(text_schema(), "bytes */LENGTH"))),
            _ => {}
        }
        if response.content.contains_key("*/*") {
            headers.extend(file_headers(status == "206"));
        } else if response
            .content
            .keys()
            .any(|kind| kind.starts_with("image/"))
        {
            headers.extend(inert_headers());
        }
        for (name, header) in headers {
            response
                .headers
                .entry(name.to_owned())
                .or_insert(header.into());
        }
        // utoipa's Header has no `required`; every documented header is sent.
        for header in response.headers.values_mut() {
            if let RefOr::T(header) = header {
                header
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("required".into(), true.into());
            }
        }
    }
}

/// A link from the answer of one operation to another operation on the
/// resource it names.
struct LinkSpec {
    from: (String, String),
    to: (String, String),
    /// Where the id is in the answer (a runtime expression).
    id: &'static str,
}

/// The link from operation `F`'s success to operation `T`.
fn link<F: utoipa::Path, T: utoipa::Path>(id: &'static str) -> LinkSpec {
    fn first<P: utoipa::Path>() -> (String, String) {
        let method = P::methods().first().map(method_name).unwrap_or_default();
        (method, P::path())
    }
    LinkSpec {
        from: first::<F>(),
        to: first::<T>(),
        id,
    }
}

/// Links from an answer that names a resource to the operations on it.
/// Schemathesis' stateful phase follows them with real ids.
fn links() -> Vec<LinkSpec> {
    const ID: &str = "$response.body#/id";
    const FIRST_ITEM: &str = "$response.body#/items/0/id";
    vec![
        link::<queue::__path_add, queue::__path_get>(ID),
        link::<queue::__path_add, queue::__path_update>(ID),
        link::<queue::__path_add, queue::__path_remove>(ID),
        link::<queue::__path_add, queue::__path_retry>(ID),
        link::<queue::__path_list, queue::__path_get>(FIRST_ITEM),
        link::<queue::__path_list, queue::__path_retry>(FIRST_ITEM),
        link::<downloads::__path_list, downloads::__path_get>(FIRST_ITEM),
        link::<downloads::__path_list, downloads::__path_file>(FIRST_ITEM),
        link::<downloads::__path_list, downloads::__path_thumbnail>(FIRST_ITEM),
        link::<downloads::__path_list, downloads::__path_delete>(FIRST_ITEM),
        link::<users::__path_create, users::__path_update>(ID),
        link::<users::__path_create, users::__path_delete>(ID),
        link::<scheduler::__path_create_job, scheduler::__path_get_job>(ID),
        link::<scheduler::__path_create_job, scheduler::__path_update_job>(ID),
        link::<scheduler::__path_create_job, scheduler::__path_delete_job>(ID),
        link::<scheduler::__path_create_job, scheduler::__path_run_job>(ID),
    ]
}

/// Adds `link` to every success response of its source operation.
fn add_link(doc: &mut utoipa::openapi::OpenApi, link: &LinkSpec) {
    let (from_method, from_path) = &link.from;
    let (to_method, to_path) = &link.to;
    let target = operation_id(to_method, to_path);
    let Some(item) = doc.paths.paths.get_mut(from_path) else {
        return;
    };
    for (method, operation) in operations_mut(item) {
        if method_name(&method) != *from_method {
            continue;
        }
        for (status, response) in operation.responses.responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                response.links.insert(
                    target.clone(),
                    Link::builder()
                        .operation_id(target.clone())
                        .parameter("id", link.id)
                        .build()
                        .into(),
                );
            }
        }
    }
}

/// The API description as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// A documented path template, its segments (`None` for a `{parameter}`)
/// and the methods it answers, as an `Allow` header value.
type PathMethods = (String, Vec<Option<String>>, String);

static ALLOWED: LazyLock<Vec<PathMethods>> = LazyLock::new(|| {
    ApiDoc::openapi()
        .paths
        .paths
        .into_iter()
        .map(|(path, mut item)| {
            let segments = path
                .split('/')
                .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
                .collect();
            let methods: Vec<String> = operations_mut(&mut item)
                .into_iter()
                .map(|(method, _)| method_name(&method).to_ascii_uppercase())
                .collect();
            (path, segments, methods.join(", "))
        })
        .collect()
});

/// The documented path `path` matches (the most literal match wins:
/// `/queue/stats` over `/queue/{id}`).
fn documented(path: &str) -> Option<&'static PathMethods> {
    let segments: Vec<&str> = path.split('/').collect();
    ALLOWED
        .iter()
        .filter(|(_, pattern, _)| {
            pattern.len() == segments.len()
                && pattern.iter().zip(&segments).all(|(expected, actual)| {
                    expected.as_ref().is_none_or(|literal| literal == actual)
                })
        })
        .max_by_key(|(_, pattern, _)| pattern.iter().filter(|segment| segment.is_some()).count())
}

/// The `Allow` header of a 405 for `path`: the methods the document lists
/// for it; the dashboard's files answer GET and HEAD, the docs and WebSocket GET.
pub fn allowed_methods(path: &str) -> &'static str {
    documented(path)
        .map(|(_, _, methods)| methods.as_str())
        .unwrap_or(if path.starts_with("/api/") || path.starts_with("/ws/") {
            "GET"
        } else {
            "GET, HEAD"
        })
}

/// The documented template `path` matches (`/api/v1/queue/{id}` for
/// `/api/v1/queue/42`), if any.
pub fn path_template(path: &str) -> Option<&'static str> {
    documented(path).map(|(template, _, _)| template.as_str())
}

/// Every documented path template, once each.
pub fn path_templates() -> impl Iterator<Item = &'static str> {
    ALLOWED.iter().map(|(template, _, _)| template.as_str())
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
    use serde_json::json;

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
            assert_eq!(
                list[status]["headers"]["X-Request-Id"]["required"], true,
                "{status}"
            );
        }
        assert!(list["403"].is_null(), "every role may read");
        assert!(list["429"]["headers"]["Retry-After"].is_object());
        let delete = &doc["paths"]["/api/v1/users/{id}"]["delete"];
        for status in ["204", "401", "403", "404", "409", "429"] {
            assert!(delete["responses"][status].is_object(), "{status}");
        }
        assert_eq!(delete["security"][0]["bearer"], json!(["admin"]));
        assert_eq!(delete["operationId"], "delete_users__id_");
        let add = &doc["paths"]["/api/v1/queue"]["post"];
        assert_eq!(
            add["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/QueueRequest"
        );
        for status in ["201", "400", "401", "403", "413", "422"] {
            assert!(add["responses"][status].is_object(), "{status}");
        }
        let health = &doc["paths"]["/api/v1/health"]["get"];
        assert!(health["security"].is_null());
        assert!(health["responses"]["200"]["headers"]["X-RateLimit-Limit"].is_null());
        assert!(health["responses"]["429"].is_null());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
            "JWT"
        );
        let file = &doc["paths"]["/api/v1/downloads/{id}/file"]["get"]["responses"];
        assert_eq!(file["206"]["headers"]["Content-Range"]["required"], true);
        assert_eq!(
            file["200"]["headers"]["X-Content-Type-Options"]["schema"]["enum"],
            json!(["nosniff"])
        );
        assert_eq!(file["416"]["headers"]["Content-Range"]["required"], true);
    }

    #[test]
    fn links_name_operations_of_the_document() {
        let doc = document();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().unwrap())
            .collect();
        let mut count = 0;
        for link in links() {
            let (method, path) = &link.from;
            let target = operation_id(&link.to.0, &link.to.1);
            assert!(
                ids.contains(&target.as_str()),
                "{target} is not an operation"
            );
            let responses = &doc["paths"][path][method]["responses"];
            let success = responses
                .as_object()
                .unwrap()
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .map(|(_, response)| response)
                .unwrap();
            assert_eq!(success["links"][&target]["parameters"]["id"], link.id);
            count += 1;
        }
        assert_eq!(count, 16);
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
    fn schemas_follow_serde() {
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
        // Always present, possibly null.
        let view = schemas["DownloadView"].to_string();
        assert!(view.contains("file_url"), "{view}");
        assert_eq!(schemas["Healthy"]["enum"], json!(["ok"]));
    }
}
