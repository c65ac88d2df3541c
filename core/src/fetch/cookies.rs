//! Netscape `cookies.txt` (what browser extensions export, what yt-dlp and
//! gallery-dl read) into a reqwest cookie jar.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::cookie::Jar;

/// A line of a cookies file that is not a cookie.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cookies file line {line}: {reason}")]
pub struct CookieError {
    /// 1-based line of the file.
    pub line: usize,
    /// What is wrong with the line.
    pub reason: String,
}

/// What a parsed cookies file holds.
#[derive(Debug, Clone)]
pub struct ParsedCookies {
    /// The cookies, ready for a client ([`HttpClientBuilder::cookies`](super::HttpClientBuilder::cookies)).
    pub jar: Arc<Jar>,
    /// Cookies added to the jar.
    pub count: usize,
    /// The earliest expiry among the cookies that have one.
    pub earliest_expiry: Option<DateTime<Utc>>,
}

/// The lines of a Netscape cookies file that a request to `host` would
/// send: a cookie of `example.com` or `.example.com` goes to `example.com`
/// and its subdomains, never to another site. One cookies file uploaded
/// for a general platform (`video`, `gallery`) holds many sites' cookies;
/// each run hands its program only the site's own.
pub fn cookies_for_host(text: &str, host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut kept = String::from("# Netscape HTTP Cookie File\n");
    for line in text.lines() {
        let cookie = line.trim_end_matches('\r');
        let bare = cookie.strip_prefix("#HttpOnly_").unwrap_or(cookie);
        if bare.trim().is_empty() || bare.starts_with('#') {
            continue;
        }
        let Some(domain) = bare.split('\t').next() else {
            continue;
        };
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        let matches = !domain.is_empty()
            && (host == domain
                || host
                    .strip_suffix(&domain)
                    .is_some_and(|rest| rest.ends_with('.')));
        if matches {
            kept.push_str(cookie);
            kept.push('\n');
        }
    }
    kept
}

/// Parses a Netscape cookies file: tab-separated `domain, include
/// subdomains, path, secure, expiry, name, value`; `#HttpOnly_` prefixes
/// kept; comments and blank lines skipped.
///
/// # Errors
///
/// [`CookieError`] naming the first line that is not a cookie.
pub fn parse_netscape_cookies(text: &str) -> Result<ParsedCookies, CookieError> {
    let jar = Arc::new(Jar::default());
    let mut count = 0;
    let mut earliest_expiry: Option<DateTime<Utc>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end_matches('\r');
        let line = line.strip_prefix("#HttpOnly_").unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 7 {
            return Err(CookieError {
                line: line_no,
                reason: format!("expected 7 tab-separated fields, found {}", fields.len()),
            });
        }
        let [domain, _subdomains, path, secure, expiry, name, value] = [
            fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6],
        ];
        if domain.is_empty() || name.is_empty() {
            return Err(CookieError {
                line: line_no,
                reason: "empty domain or cookie name".into(),
            });
        }
        let expiry: i64 = expiry.parse().map_err(|_| CookieError {
            line: line_no,
            reason: format!("expiry {expiry:?} is not a number"),
        })?;
        if expiry > 0
            && let Some(at) = DateTime::from_timestamp(expiry, 0)
        {
            earliest_expiry = Some(earliest_expiry.map_or(at, |e| e.min(at)));
        }
        let host = domain.trim_start_matches('.');
        let scheme = if secure.eq_ignore_ascii_case("TRUE") {
            "https"
        } else {
            "http"
        };
        let url: url::Url =
            format!("{scheme}://{host}{path}")
                .parse()
                .map_err(|err| CookieError {
                    line: line_no,
                    reason: format!("domain {domain:?}: {err}"),
                })?;
        let mut cookie = format!("{name}={value}; Path={path}");
        if domain.starts_with('.') {
            cookie.push_str(&format!("; Domain={host}"));
        }
        if scheme == "https" {
            cookie.push_str("; Secure");
        }
        jar.add_cookie_str(&cookie, &url);
        count += 1;
    }
    Ok(ParsedCookies {
        jar,
        count,
        earliest_expiry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::cookie::CookieStore;

    #[test]
    fn parses_exported_files() {
        let text = "# Netscape HTTP Cookie File\n\n.instagram.com\tTRUE\t/\tTRUE\t1900000000\tsessionid\tabc%3A123\n#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t0\tcsrftoken\txyz\n";
        let parsed = parse_netscape_cookies(text).unwrap();
        assert_eq!(parsed.count, 2);
        assert_eq!(parsed.earliest_expiry.unwrap().timestamp(), 1_900_000_000);
        let header = parsed
            .jar
            .cookies(&"https://www.instagram.com/api/".parse().unwrap())
            .unwrap();
        let header = header.to_str().unwrap();
        assert!(
            header.contains("sessionid=abc%3A123") && header.contains("csrftoken=xyz"),
            "{header}"
        );
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = parse_netscape_cookies("# c\nnot a cookie line\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_netscape_cookies(".a.com\tTRUE\t/\tFALSE\tsoon\tn\tv\n").unwrap_err();
        assert!(err.reason.contains("expiry"));
    }

    #[test]
    fn each_site_gets_only_its_own_cookies() {
        let text = "# Netscape HTTP Cookie File\n\
            .youtube.com\tTRUE\t/\tTRUE\t0\tSID\tyt\n\
            #HttpOnly_www.vimeo.com\tFALSE\t/\tTRUE\t0\tvuid\tvm\n\
            notyoutube.com\tTRUE\t/\tTRUE\t0\tX\tbad\n";
        let youtube = cookies_for_host(text, "www.youtube.com");
        assert!(youtube.contains("\tSID\tyt"), "{youtube}");
        assert!(
            !youtube.contains("vuid") && !youtube.contains("bad"),
            "{youtube}"
        );
        assert!(cookies_for_host(text, "youtube.com").contains("SID"));
        let vimeo = cookies_for_host(text, "www.vimeo.com");
        assert!(vimeo.contains("#HttpOnly_www.vimeo.com"), "{vimeo}");
        assert!(!cookies_for_host(text, "vimeo.com").contains("vuid"));
        assert!(parse_netscape_cookies(&youtube).is_ok());
    }
}
