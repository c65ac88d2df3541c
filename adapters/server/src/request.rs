//! Per-request plumbing shared by every route: the request id, the client
//! address, and reading JSON bodies and query strings into typed values
//! with errors that name the offending field.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use crate::error::ApiError;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `future` with `id` as the current request id (read by error bodies).
pub(crate) async fn with_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// The id of the request being handled, or a fresh one outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// What the connection layer knows about a request, stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The `X-Request-Id` the client sent, or a fresh UUID; echoed in the
    /// response and the error body.
    pub request_id: String,
    /// The peer address of the TCP connection.
    pub client_addr: Option<SocketAddr>,
}

/// Extracts the [`RequestInfo`] the connection layer attached.
pub fn request_info()
-> impl Filter<Extract = (RequestInfo,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<RequestInfo>().map(|info: Option<RequestInfo>| {
        info.unwrap_or_else(|| RequestInfo {
            request_id: current_request_id(),
            client_addr: None,
        })
    })
}

/// The largest JSON body accepted (cookies uploads included).
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The body as bytes, refusing more than [`MAX_BODY_BYTES`] with 413.
pub fn body_bytes() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::bytes()
}

/// Parses a JSON body: not JSON → 400, not an object, wrong type or
/// missing field → 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body must be a JSON document",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("malformed JSON: {err}")))?;
    // Every body of the API is an object; serde would otherwise read a
    // struct from an array (`[null, null]`) by position.
    if !value.is_object() {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    from_value(value)
}

/// A JSON value into `T`, 422 naming the field on mismatch.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::validation(field, err.into_inner())
    })
}

/// A JSON body parsed into `T` (see [`parse_json`]).
pub fn json_body<T: DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    body_bytes()
        .and_then(|bytes: Bytes| async move { parse_json::<T>(&bytes).map_err(Rejection::from) })
}

/// The query string parsed into `T`: a value of the wrong type → 422 naming
/// the parameter. A missing query string is an empty one.
pub fn query<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move { parse_query::<T>(&raw).map_err(Rejection::from) })
}

/// Parses a raw query string into `T`.
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "query".to_string()
        } else {
            path
        };
        ApiError::validation(field, err.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[derive(Debug, serde::Deserialize)]
    struct Paging {
        page: Option<u32>,
    }

    #[test]
    fn bad_json_is_400_and_wrong_types_are_422_with_field() {
        let err = parse_json::<Paging>(b"{not json").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let err = parse_json::<Paging>(br#"{"page": "two"}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.field.as_deref(), Some("page"));
        for not_an_object in [&b"[null]"[..], b"[3]", b"7", b"null", b"\"x\""] {
            let err = parse_json::<Paging>(not_an_object).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(err.field.as_deref(), Some("body"));
        }
    }

    #[test]
    fn queries_name_the_bad_parameter() {
        assert_eq!(parse_query::<Paging>("page=3").unwrap().page, Some(3));
        assert_eq!(parse_query::<Paging>("").unwrap().page, None);
        let err = parse_query::<Paging>("page=-1").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("page"));
        let err = parse_query::<Paging>("page=99999999999999999999").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
