//! The spec's pagination: `page`/`per_page` query parameters (validated,
//! `per_page` ≤ 200) and the `X-Total-Count`, `X-Page`, `X-Per-Page`,
//! `X-Total-Pages` and `Link` headers on every list.

use http::{HeaderName, HeaderValue};
use mediadl::model::Page;
use serde::Serialize;
use warp::Reply;
use warp::reply::Response;

use crate::error::ApiError;

static X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
static X_PAGE: HeaderName = HeaderName::from_static("x-page");
static X_PER_PAGE: HeaderName = HeaderName::from_static("x-per-page");
static X_TOTAL_PAGES: HeaderName = HeaderName::from_static("x-total-pages");

/// Default page size of lists.
pub const DEFAULT_PER_PAGE: u32 = 50;

/// A validated page request.
pub fn page(page: Option<u32>, per_page: Option<u32>) -> Result<Page, ApiError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page == 0 || page > 1_000_000 {
        return Err(ApiError::validation(
            "page",
            "must be between 1 and 1000000",
        ));
    }
    if per_page == 0 || per_page > Page::MAX_PER_PAGE {
        return Err(ApiError::validation(
            "per_page",
            format!("must be between 1 and {}", Page::MAX_PER_PAGE),
        ));
    }
    Ok(Page { page, per_page })
}

/// The page numbers of a list body, beside its `items`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PageInfo {
    /// Items matching the filters.
    pub total: u64,
    /// This page, from 1.
    #[schema(minimum = 1)]
    pub page: u32,
    /// Page size.
    #[schema(minimum = 1, maximum = 200)]
    pub per_page: u32,
    /// Pages (at least 1).
    #[schema(minimum = 1)]
    pub total_pages: u64,
}

impl PageInfo {
    /// The numbers of `page` of a list of `total` items.
    pub fn new(total: u64, page: Page) -> Self {
        Self {
            total,
            page: page.page,
            per_page: page.per_page,
            total_pages: total_pages(total, page),
        }
    }
}

/// Number of pages for `total` rows (at least 1).
pub fn total_pages(total: u64, page: Page) -> u64 {
    total.div_ceil(u64::from(page.per_page)).max(1)
}

/// `body` as JSON with the pagination headers. `path` is the list's full
/// path (`/api/v1/downloads`) and `raw_query` the request's query string,
/// whose other parameters the links keep.
pub fn paged_json<T: Serialize>(
    body: &T,
    total: u64,
    page: Page,
    path: &str,
    raw_query: &str,
) -> Response {
    let mut response = warp::reply::json(body).into_response();
    add_headers(&mut response, total, page, path, raw_query);
    response
}

/// Adds the pagination headers to a response.
pub fn add_headers(response: &mut Response, total: u64, page: Page, path: &str, raw_query: &str) {
    let pages = total_pages(total, page);
    let headers = response.headers_mut();
    // These, the rate-limit headers and the request id: room for them all
    // at once instead of growing the map twice.
    headers.reserve(12);
    headers.insert(&X_TOTAL_COUNT, HeaderValue::from(total));
    headers.insert(&X_PAGE, HeaderValue::from(page.page));
    headers.insert(&X_PER_PAGE, HeaderValue::from(page.per_page));
    headers.insert(&X_TOTAL_PAGES, HeaderValue::from(pages));
    let link = link_header(page, pages, path, raw_query);
    if let Ok(value) = HeaderValue::from_str(&link) {
        headers.insert(http::header::LINK, value);
    }
}

/// `<…?page=1>; rel="first", <…>; rel="prev", <…>; rel="next", <…>; rel="last"`.
pub fn link_header(page: Page, pages: u64, path: &str, raw_query: &str) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(key, _)| key != "page" && key != "per_page")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let url_for = |n: u64| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &kept {
            query.append_pair(key, value);
        }
        query.append_pair("page", &n.to_string());
        query.append_pair("per_page", &page.per_page.to_string());
        format!("<{path}?{}>", query.finish())
    };
    let current = u64::from(page.page);
    let mut links = vec![format!("{}; rel=\"first\"", url_for(1))];
    if current > 1 {
        links.push(format!(
            "{}; rel=\"prev\"",
            url_for((current - 1).min(pages))
        ));
    }
    if current < pages {
        links.push(format!("{}; rel=\"next\"", url_for(current + 1)));
    }
    links.push(format!("{}; rel=\"last\"", url_for(pages)));
    links.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_validated() {
        assert_eq!(
            page(None, None).unwrap(),
            Page {
                page: 1,
                per_page: 50
            }
        );
        assert!(page(Some(0), None).is_err());
        assert_eq!(
            page(None, Some(201)).unwrap_err().field.as_deref(),
            Some("per_page")
        );
        assert!(page(None, Some(0)).is_err());
    }

    #[test]
    fn links_keep_filters_and_name_neighbours() {
        let link = link_header(
            Page {
                page: 2,
                per_page: 10,
            },
            5,
            "/api/v1/downloads",
            "platform=direct&page=2&per_page=10",
        );
        assert_eq!(
            link,
            "</api/v1/downloads?platform=direct&page=1&per_page=10>; rel=\"first\", \
             </api/v1/downloads?platform=direct&page=1&per_page=10>; rel=\"prev\", \
             </api/v1/downloads?platform=direct&page=3&per_page=10>; rel=\"next\", \
             </api/v1/downloads?platform=direct&page=5&per_page=10>; rel=\"last\""
        );
        let only = link_header(
            Page {
                page: 1,
                per_page: 50,
            },
            1,
            "/x",
            "",
        );
        assert!(!only.contains("prev") && !only.contains("next"), "{only}");
    }
}
