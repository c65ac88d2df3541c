//! The web dashboard, embedded in the binary and served at `/`.
//!
//! The dashboard is plain ES modules and CSS under `web/src`; `web/build.sh`
//! copies them to `web/dist`, names the asset directory after a hash of the
//! sources (`/assets/<hash>/…`) and precompresses every file with gzip and
//! brotli. This module embeds `web/dist` at compile time, so neither Node nor
//! the source tree is needed at run time, and serves it:
//!
//! - `/assets/<hash>/…`: the file, `Cache-Control: immutable` for a year (a
//!   new build is a new URL);
//! - page URLs (`/`, `/queue`, `/downloads?…`: any path whose last segment has
//!   no dot): `index.html` with `no-cache` and an ETag, so the single-page app
//!   routes in the browser and a reload of any page works;
//! - brotli or gzip bytes when the client's `Accept-Encoding` takes them;
//! - nothing under `/api` or `/ws`: those paths are rejected so the API's
//!   own 404 answers them.
//!
//! Mount it last: `api.or(websocket).or(web::routes())`.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use include_dir::{Dir, include_dir};
use warp::{Filter, Rejection, Reply, filters::path::FullPath};

/// The built dashboard (`web/dist`, produced by `web/build.sh`).
static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web/dist");

/// A year: hashed assets never change under their URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page shell is revalidated on every load so a new build is picked up.
const NO_CACHE: &str = "no-cache";
/// Scripts only from our own origin (no inline script or handler), images
/// and media only from our own origin (signed media links), no plugins, no
/// `<base>`, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; media-src 'self'; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The warp filter serving the dashboard (GET and HEAD).
///
/// Rejects with `not_found` for API and WebSocket paths and for unknown
/// files, so it can be combined with `.or()` after the API routes.
pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(|path: FullPath, headers: HeaderMap| async move {
            serve(path.as_str(), &headers)
                .map(Reply::into_response)
                .ok_or_else(warp::reject::not_found)
        })
}

/// The asset version: the name of the one directory under `assets/`.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        DIST.get_dir("assets")
            .and_then(|assets| assets.dirs().next())
            .and_then(|dir| dir.path().file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// The response for `path`, or `None` when the dashboard has nothing there.
fn serve(path: &str, request: &HeaderMap) -> Option<Response<&'static [u8]>> {
    let relative = path.trim_start_matches('/');
    if is_reserved(relative) {
        return None;
    }
    if relative.starts_with("assets/") {
        // Decoded paths never contain `..` here: include_dir only holds the
        // files of dist, so a lookup can only find one of them.
        return respond(relative, request, IMMUTABLE, false);
    }
    let last_segment = relative.rsplit('/').next().unwrap_or("");
    if last_segment.contains('.') {
        return None;
    }
    respond("index.html", request, NO_CACHE, true)
}

/// API and WebSocket paths belong to other routes, even when unknown.
fn is_reserved(relative: &str) -> bool {
    ["api", "ws"]
        .iter()
        .any(|prefix| relative == *prefix || relative.starts_with(&format!("{prefix}/")))
}

fn respond(
    file: &str,
    request: &HeaderMap,
    cache_control: &'static str,
    is_page: bool,
) -> Option<Response<&'static [u8]>> {
    let plain = DIST.get_file(file)?;
    let etag = format!("\"{}\"", asset_version());
    if is_page && if_none_match(request, &etag) {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, cache_control)
            .body(&b""[..])
            .ok();
    }

    let accepted = accepted_encodings(request);
    let (body, encoding) = [("br", ".br"), ("gzip", ".gz")]
        .into_iter()
        .filter(|(name, _)| accepted.iter().any(|a| a == name))
        .find_map(|(name, suffix)| {
            DIST.get_file(format!("{file}{suffix}"))
                .map(|f| (f.contents(), Some(name)))
        })
        .unwrap_or((plain.contents(), None));

    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type(file))
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::VARY, "Accept-Encoding")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(encoding) = encoding {
        response = response.header(header::CONTENT_ENCODING, encoding);
    }
    if is_page {
        response = response
            .header(header::ETAG, etag)
            .header(header::CONTENT_SECURITY_POLICY, CSP)
            .header(header::REFERRER_POLICY, "same-origin");
    }
    response.body(body).ok()
}

/// Codings the client accepts (`q=0` means refused), lower-cased.
fn accepted_encodings(request: &HeaderMap) -> Vec<String> {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let name = parts.next()?.trim().to_ascii_lowercase();
            let refused = parts.any(|param| {
                param
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!name.is_empty() && !refused).then_some(name)
        })
        .collect()
}

fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        })
}

fn content_type(file: &str) -> HeaderValue {
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let value = match (mime.type_(), mime.subtype().as_str()) {
        // Module scripts must carry a JavaScript type.
        (_, "javascript") => "text/javascript; charset=utf-8".to_owned(),
        (mime_guess::mime::TEXT, _) | (_, "json") => format!("{mime}; charset=utf-8"),
        _ => mime.to_string(),
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use sha2::{Digest, Sha256};

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn get(path: &str, pairs: &[(header::HeaderName, &str)]) -> Option<Response<&'static [u8]>> {
        serve(path, &headers(pairs))
    }

    fn header_of<'a>(response: &'a Response<&'static [u8]>, name: header::HeaderName) -> &'a str {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[test]
    fn page_urls_get_the_shell_uncached_with_a_policy() {
        for path in [
            "/",
            "/dashboard",
            "/downloads",
            "/history",
            "/queue",
            "/settings/",
            "/users",
        ] {
            let response = get(path, &[]).unwrap_or_else(|| panic!("{path} served"));
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header_of(&response, header::CACHE_CONTROL), NO_CACHE);
            assert!(
                header_of(&response, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'")
            );
            let body = std::str::from_utf8(response.body()).unwrap();
            assert!(body.contains(&format!("/assets/{}/js/app.js", asset_version())));
        }
    }

    #[test]
    fn api_websocket_and_unknown_files_are_left_to_other_routes() {
        for path in [
            "/api",
            "/api/v1/nope",
            "/ws/downloads",
            "/favicon.ico",
            "/assets/none.js",
            "/assets/../index.html",
        ] {
            assert!(get(path, &[]).is_none(), "{path} must be rejected");
        }
        // A page whose name merely starts like a reserved prefix is a page.
        assert!(get("/wsx", &[]).is_some());
    }

    #[test]
    fn hashed_assets_are_immutable_with_the_right_type() {
        let version = asset_version();
        assert_eq!(version.len(), 12, "asset directory named by a 12-hex hash");
        let js = get(&format!("/assets/{version}/js/app.js"), &[]).unwrap();
        assert_eq!(
            header_of(&js, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header_of(&js, header::CACHE_CONTROL), IMMUTABLE);
        assert_eq!(header_of(&js, header::CONTENT_ENCODING), "");
        let css = get(&format!("/assets/{version}/app.css"), &[]).unwrap();
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        let svg = get(&format!("/assets/{version}/icon.svg"), &[]).unwrap();
        assert_eq!(header_of(&svg, header::CONTENT_TYPE), "image/svg+xml");
    }

    #[test]
    fn precompressed_bytes_follow_accept_encoding() {
        let path = format!("/assets/{}/js/app.js", asset_version());
        let plain = get(&path, &[]).unwrap();
        let cases = [
            ("gzip, deflate, br", "br"),
            ("gzip", "gzip"),
            ("br;q=0, gzip;q=0.5", "gzip"),
            ("identity", ""),
            ("br;q=0,gzip;q=0", ""),
        ];
        for (accept, expected) in cases {
            let response = get(&path, &[(header::ACCEPT_ENCODING, accept)]).unwrap();
            assert_eq!(
                header_of(&response, header::CONTENT_ENCODING),
                expected,
                "{accept}"
            );
            assert_eq!(header_of(&response, header::VARY), "Accept-Encoding");
            if expected.is_empty() {
                assert_eq!(response.body(), plain.body());
            } else {
                assert!(response.body().len() < plain.body().len(), "{accept}");
            }
        }
        let gz = get(&path, &[(header::ACCEPT_ENCODING, "gzip")]).unwrap();
        assert_eq!(&gz.body()[..2], &[0x1f, 0x8b], "gzip magic");
    }

    #[test]
    fn the_shell_revalidates_with_its_etag() {
        let first = get("/queue", &[]).unwrap();
        let etag = header_of(&first, header::ETAG).to_owned();
        assert!(etag.contains(asset_version()));
        let again = get("/queue", &[(header::IF_NONE_MATCH, &etag)]).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.body().is_empty());
        let stale = get("/queue", &[(header::IF_NONE_MATCH, "\"old\"")]).unwrap();
        assert_eq!(stale.status(), StatusCode::OK);
    }

    fn source_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("web/src")
    }

    fn source_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                source_files(&path, base, out);
            } else {
                let relative = path.strip_prefix(base).unwrap();
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    /// The committed dist must be the build of the committed sources: the
    /// same hash as `web/build.sh` computes, and the same file contents.
    #[test]
    fn dist_matches_sources() {
        let base = source_dir();
        let mut files = Vec::new();
        source_files(&base, &base, &mut files);
        files.sort();
        let mut listing = String::new();
        for file in &files {
            let bytes = std::fs::read(base.join(file)).unwrap();
            listing.push_str(&format!(
                "{}  {file}\n",
                hex::encode(Sha256::digest(&bytes))
            ));
            if file != "index.html" {
                let embedded = DIST
                    .get_file(format!("assets/{}/{file}", asset_version()))
                    .unwrap_or_else(|| panic!("{file} missing from dist: run web/build.sh"));
                assert_eq!(
                    embedded.contents(),
                    &bytes[..],
                    "{file} is stale: run web/build.sh"
                );
                for suffix in [".gz", ".br"] {
                    assert!(
                        DIST.get_file(format!("assets/{}/{file}{suffix}", asset_version()))
                            .is_some(),
                        "{file}{suffix} missing: run web/build.sh"
                    );
                }
            }
        }
        let hash = hex::encode(Sha256::digest(listing.as_bytes()));
        assert_eq!(
            &hash[..12],
            asset_version(),
            "web/dist was built from other sources: run adapters/server/web/build.sh and commit dist"
        );
    }

    /// The shell runs no inline script: every `<script>` has a `src`, and no
    /// element carries an `on…=` handler or a `javascript:` URL, so the
    /// policy's `script-src 'self'` holds without `'unsafe-inline'`.
    #[test]
    fn the_shell_has_no_inline_script() {
        let shell = std::str::from_utf8(DIST.get_file("index.html").unwrap().contents()).unwrap();
        let lower = shell.to_ascii_lowercase();
        let mut scripts = 0;
        for (start, _) in lower.match_indices("<script") {
            let tag_end = start + lower[start..].find('>').unwrap();
            assert!(
                lower[start..tag_end].contains(" src="),
                "inline script: {}",
                &shell[start..tag_end]
            );
            assert!(
                lower[tag_end + 1..].starts_with("</script>"),
                "a script with a src has no body"
            );
            scripts += 1;
        }
        assert!(scripts >= 1);
        for (at, _) in lower.match_indices(" on") {
            let rest = &lower[at + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            assert!(
                name == 0 || !rest[name..].starts_with('='),
                "an inline handler: {}",
                &shell[at..at + 3 + name]
            );
        }
        assert!(!lower.contains("javascript:"));
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
    }

    /// Every `/assets/…` URL in the shell points at an embedded file.
    #[test]
    fn the_shell_references_only_embedded_assets() {
        let shell = std::str::from_utf8(DIST.get_file("index.html").unwrap().contents()).unwrap();
        let mut count = 0;
        for (start, _) in shell.match_indices("/assets/") {
            let rest = &shell[start + 1..];
            let end = rest.find('"').unwrap();
            assert!(
                DIST.get_file(&rest[..end]).is_some(),
                "{} not embedded",
                &rest[..end]
            );
            count += 1;
        }
        assert!(count >= 4, "the shell loads its styles and scripts");
    }
}
