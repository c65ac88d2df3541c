//! Account names of the platforms mediadl knows, and their content types,
//! checked the same way by the native clients and the external engines
//! before anything is queued.

use crate::downloader::Request;
use crate::error::{DownloadError, Error};

/// The account a request names, checked the way every account platform's
/// `validate` checks it: the username (see [`username`]) and a content type
/// the platform lists in `known`.
///
/// # Errors
///
/// [`Error::Invalid`] on field `source` or `content_type`, saying what is wrong.
pub fn requested_account(
    platform: &str,
    known: &[&str],
    request: &Request,
) -> Result<String, Error> {
    let name = username(platform, &request.source)?;
    content_type(display_name(platform), known, &request.content_type)?;
    Ok(name)
}

/// [`requested_account`] while listing: a request that passed `validate` but
/// no longer does (settings changed in between) fails for good.
///
/// # Errors
///
/// [`DownloadError::Permanent`] saying what is wrong.
pub fn listed_account(
    platform: &str,
    known: &[&str],
    request: &Request,
) -> Result<String, DownloadError> {
    requested_account(platform, known, request)
        .map_err(|err| DownloadError::permanent(err.to_string()))
}

fn display_name(platform: &str) -> &str {
    match platform {
        "instagram" => "Instagram",
        "tiktok" => "TikTok",
        other => other,
    }
}

/// The username `source` names on `platform`, without a leading `@`, or
/// an [`Error::Invalid`] on field `source` saying what is wrong.
///
/// Instagram: 1–30 letters, digits, `.` and `_`, no `.` first or last and
/// no `..`. TikTok: 2–24 letters, digits, `.` and `_`, no `.` last.
pub fn username(platform: &str, source: &str) -> Result<String, Error> {
    let name = source.trim();
    let name = name.strip_prefix('@').unwrap_or(name);
    let (max, min) = match platform {
        "instagram" => (30, 1),
        "tiktok" => (24, 2),
        _ => (64, 1),
    };
    let platform_name = display_name(platform);
    let invalid = |reason: String| Err(Error::invalid("source", reason));
    if name.is_empty() {
        return invalid(format!("a {platform_name} username is required"));
    }
    let length = name.chars().count();
    if length < min || length > max {
        return invalid(format!(
            "{name:?} is not a {platform_name} username: {min}–{max} characters allowed, found {length}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_'))
    {
        return invalid(format!(
            "{name:?} is not a {platform_name} username: {bad:?} is not allowed (letters, digits, '.' and '_' only)"
        ));
    }
    if name.ends_with('.')
        || (platform == "instagram" && (name.starts_with('.') || name.contains("..")))
    {
        return invalid(format!(
            "{name:?} is not a {platform_name} username: misplaced '.'"
        ));
    }
    Ok(name.to_owned())
}

/// `Ok` when `requested` is one of the platform's content types, else an
/// [`Error::Invalid`] on field `content_type` listing the known ones.
pub fn content_type(platform_name: &str, known: &[&str], requested: &str) -> Result<(), Error> {
    if known.contains(&requested) {
        return Ok(());
    }
    Err(Error::invalid(
        "content_type",
        format!(
            "{platform_name} has no content type {requested:?} (known: {})",
            known.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names_and_strips_the_at_sign() {
        assert_eq!(username("instagram", "evalongoria").unwrap(), "evalongoria");
        assert_eq!(
            username("instagram", " @eva.longoria_ ").unwrap(),
            "eva.longoria_"
        );
        assert_eq!(username("tiktok", "@some.one_1").unwrap(), "some.one_1");
    }

    #[test]
    fn refuses_malformed_names_with_a_reason() {
        for (platform, bad) in [
            ("instagram", ""),
            ("instagram", "@"),
            ("instagram", "has space"),
            ("instagram", "../../etc"),
            ("instagram", ".dot"),
            ("instagram", "dot."),
            ("instagram", "a..b"),
            ("instagram", "https://instagram.com/x"),
            ("instagram", "a234567890123456789012345678901"),
            ("tiktok", "a"),
            ("tiktok", "name-with-dash"),
            ("tiktok", "a2345678901234567890123456"),
            ("tiktok", "ünïcode"),
        ] {
            let err = username(platform, bad).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "source"),
                "{platform} {bad:?}: {err}"
            );
        }
    }
}
