//! API errors: one type, [`ApiError`], with a stable `error_code`, turned
//! into the spec's error body (`detail`, `error_code`, `timestamp`,
//! `request_id`) for every failure, including warp's own rejections.

use std::convert::Infallible;

use chrono::{SecondsFormat, Utc};
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use mediadl::storage::StorageError;
use mediadl::{Error as CoreError, StoreError};
use serde::Serialize;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::request::current_request_id;

/// Stable machine-readable error codes (listed in docs/API.md).
pub mod codes {
    /// The body is not valid JSON, or a query string cannot be read.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// A value is of the wrong type or out of range; `field` names it.
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    /// A setting that is read-only over HTTP (a program path or its
    /// arguments, or a key the config file, the environment or a flag
    /// sets); `field` names it, `message` says where it is set.
    pub const READ_ONLY_SETTING: &str = "READ_ONLY_SETTING";
    /// No or unusable credentials.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// Wrong username or password.
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    /// The access token's `exp` has passed.
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    /// A token that is malformed, signed with another key or algorithm, or
    /// a refresh token that was used or revoked.
    pub const TOKEN_INVALID: &str = "TOKEN_INVALID";
    /// Too many failed logins for this username.
    pub const ACCOUNT_LOCKED: &str = "ACCOUNT_LOCKED";
    /// The account is disabled.
    pub const ACCOUNT_DISABLED: &str = "ACCOUNT_DISABLED";
    /// The role does not allow the operation.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The addressed resource does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// No route matches the path.
    pub const ROUTE_NOT_FOUND: &str = "ROUTE_NOT_FOUND";
    /// The path exists but not with this HTTP method.
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    /// A duplicate (username, job id) or a state that does not allow the change.
    pub const CONFLICT: &str = "CONFLICT";
    /// The request body is larger than the route accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    /// The body's `Content-Type` is not one the route reads.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    /// A `Range` header lies outside the file.
    pub const RANGE_NOT_SATISFIABLE: &str = "RANGE_NOT_SATISFIABLE";
    /// A signed media link whose time has passed (401): ask for a new one.
    pub const MEDIA_LINK_EXPIRED: &str = "MEDIA_LINK_EXPIRED";
    /// A signed media link that was altered or made for another download
    /// or kind of media (403).
    pub const MEDIA_LINK_INVALID: &str = "MEDIA_LINK_INVALID";
    /// The request rate limit is exhausted; see `Retry-After`.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// Too many WebSocket connections for this user, or the server is at
    /// its cap on open connections (503).
    pub const TOO_MANY_CONNECTIONS: &str = "TOO_MANY_CONNECTIONS";
    /// The database or another dependency is unavailable; retry later.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// A bug; the log has the details under the request id.
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
}

/// A failed request: status, stable code and a message for people.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct ApiError {
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// One of [`codes`], sent as `error_code`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub detail: String,
    /// The offending field of a validation error.
    pub field: Option<String>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

/// The spec's error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub detail: String,
    /// Stable machine-readable code.
    pub error_code: String,
    /// When the error happened (RFC 3339, UTC).
    pub timestamp: String,
    /// Also sent as the `X-Request-Id` header.
    pub request_id: String,
    /// The offending field of a validation error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with `status`, `code` and `detail`, no field and no retry hint.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400 `BAD_REQUEST`: the request cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, detail)
    }

    /// 422 naming the field.
    pub fn validation(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self {
            field: Some(field.clone()),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::VALIDATION_ERROR,
                format!("{field}: {reason}"),
            )
        }
    }

    /// 401 with `code` (`UNAUTHORIZED`, `TOKEN_EXPIRED`, …).
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403 `FORBIDDEN`: the role does not allow the operation.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, detail)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, detail)
    }

    /// 409 `CONFLICT`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, codes::CONFLICT, detail)
    }

    /// 429 with `code`, telling the client to retry after `retry_after` seconds (at least 1).
    pub fn too_many(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail)
        }
    }

    /// 500 `INTERNAL_ERROR`: `detail` goes to the log only, the client gets
    /// a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(target: "mediadl_server", error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "internal server error",
        )
    }

    /// The response with the error body and `Retry-After` when set.
    /// `X-Request-Id` is added for every response by the request layer.
    pub fn to_response(&self) -> Response {
        let body = ErrorBody {
            detail: self.detail.clone(),
            error_code: self.code.to_string(),
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            request_id: current_request_id(),
            field: self.field.clone(),
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => Self::not_found(err.to_string()),
            StoreError::Conflict(detail) => Self::conflict(detail),
            StoreError::Invalid(detail) => Self::conflict(detail),
            StoreError::LeaseLost { .. } => Self::conflict(err.to_string()),
            StoreError::Unavailable(detail) => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::SERVICE_UNAVAILABLE,
                    format!("database unavailable: {detail}"),
                )
            },
            StoreError::Internal(detail) => Self::internal(detail),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound { .. } => Self::not_found("the file is missing"),
            StorageError::Unavailable(detail) => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::SERVICE_UNAVAILABLE,
                    format!("media storage unavailable: {detail}"),
                )
            },
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Invalid { field, reason } => Self::validation(field, reason),
            CoreError::ReadOnlySetting { field, reason } => ApiError {
                code: codes::READ_ONLY_SETTING,
                ..Self::validation(field, reason)
            },
            CoreError::Store(store) => store.into(),
            CoreError::Download(download) => Self::validation("url", download),
            CoreError::Storage(storage) => storage.into(),
            CoreError::Io { context, source } => Self::internal(format!("{context}: {source}")),
        }
    }
}

/// Result of a handler: a reply or an error that becomes the error body.
pub type ApiResult<T = Response> = Result<T, ApiError>;

/// Runs a handler's future and turns an [`ApiError`] into a rejection warp
/// carries to [`recover`].
pub async fn handle<F>(future: F) -> Result<Response, Rejection>
where
    F: std::future::Future<Output = ApiResult>,
{
    future.await.map_err(Rejection::from)
}

/// Turns every rejection into the error body, so no request ever sees
/// warp's plain-text rejections.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(rejection_to_error(&rejection).to_response())
}

fn rejection_to_error(rejection: &Rejection) -> ApiError {
    use warp::reject;
    if let Some(err) = rejection.find::<ApiError>() {
        return err.clone();
    }
    if rejection.is_not_found() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            codes::ROUTE_NOT_FOUND,
            "no such route",
        );
    }
    if rejection.find::<reject::PayloadTooLarge>().is_some() {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            "request body too large",
        );
    }
    if rejection.find::<reject::MethodNotAllowed>().is_some() {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
        );
    }
    if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
        );
    }
    if rejection.find::<reject::InvalidQuery>().is_some() {
        return ApiError::bad_request("invalid query string");
    }
    if let Some(missing) = rejection.find::<reject::MissingHeader>() {
        return ApiError::bad_request(format!("missing header {}", missing.name()));
    }
    if let Some(invalid) = rejection.find::<reject::InvalidHeader>() {
        return ApiError::bad_request(format!("invalid header {}", invalid.name()));
    }
    if rejection.find::<reject::LengthRequired>().is_some() {
        return ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            codes::BAD_REQUEST,
            "a content-length header is required",
        );
    }
    if rejection
        .find::<warp::ws::MissingConnectionUpgrade>()
        .is_some()
    {
        return ApiError::bad_request("WebSocket upgrade expected");
    }
    // Other warp rejections are about the request (a body that could not be
    // read, a missing extension): answer 400 with the error body.
    ApiError::bad_request(format!("bad request: {rejection:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn warp_rejections_become_error_bodies() {
        let response = recover(warp::reject::not_found()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error_code"], "ROUTE_NOT_FOUND");
        assert!(value["timestamp"].is_string() && value["request_id"].is_string());
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let err: ApiError = StoreError::not_found("download", 7).into();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        let err: ApiError = StoreError::Conflict("taken".into()).into();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::CONFLICT, codes::CONFLICT)
        );
        let err: ApiError = CoreError::invalid("priority", "too big").into();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.field.as_deref(), Some("priority"));
    }
}
