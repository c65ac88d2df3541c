//! The host and path rules by which the named platforms recognise a
//! pasted URL ([`Downloader::recognise`](crate::Downloader::recognise)).
//! Only the pages a platform can subscribe to are claimed: a profile, its
//! reels, its stories. A single post is left to the general platforms.

use url::Url;

use super::accounts;
use crate::recognise::{Recognition, host_is};

/// First path segments of instagram.com that are not accounts.
const INSTAGRAM_RESERVED: &[&str] = &[
    "about",
    "accounts",
    "api",
    "developer",
    "direct",
    "explore",
    "legal",
    "p",
    "reel",
    "reels",
    "tv",
    "web",
];

/// The URL's non-empty path segments.
fn segments(url: &Url) -> Vec<&str> {
    url.path_segments()
        .map(|segments| segments.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// `instagram.com/NAME/` (posts), `/NAME/posts/`, `/NAME/reels/`,
/// `/stories/NAME/[ID/]`.
pub fn instagram(url: &Url) -> Option<Recognition> {
    if !host_is(url.host_str()?, "instagram.com") {
        return None;
    }
    let (name, content_type) = match segments(url).as_slice() {
        ["stories", name] | ["stories", name, _] => (*name, "stories"),
        [name] | [name, "posts"] => (*name, "posts"),
        [name, "reels"] => (*name, "reels"),
        _ => return None,
    };
    if INSTAGRAM_RESERVED.contains(&name) {
        return None;
    }
    let username = accounts::username("instagram", name).ok()?;
    Some(Recognition::by_rules(
        url,
        "instagram",
        username,
        content_type,
    ))
}

/// `tiktok.com/@NAME` (videos).
pub fn tiktok(url: &Url) -> Option<Recognition> {
    if !host_is(url.host_str()?, "tiktok.com") {
        return None;
    }
    let segments = segments(url);
    let [name] = segments.as_slice() else {
        return None;
    };
    let username = accounts::username("tiktok", name.strip_prefix('@')?).ok()?;
    Some(Recognition::by_rules(url, "tiktok", username, "videos"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(rule: fn(&Url) -> Option<Recognition>, url: &str) -> Option<(String, String)> {
        rule(&Url::parse(url).unwrap()).map(|r| (r.source, r.content_type))
    }

    #[test]
    fn instagram_profiles_reels_and_stories() {
        let cases = [
            (
                "https://www.instagram.com/evalongoria/",
                Some(("evalongoria", "posts")),
            ),
            (
                "https://instagram.com/evalongoria",
                Some(("evalongoria", "posts")),
            ),
            (
                "https://www.instagram.com/evalongoria/posts/",
                Some(("evalongoria", "posts")),
            ),
            (
                "https://www.instagram.com/evalongoria/reels/",
                Some(("evalongoria", "reels")),
            ),
            (
                "https://www.instagram.com/stories/evalongoria/",
                Some(("evalongoria", "stories")),
            ),
            (
                "https://www.instagram.com/stories/evalongoria/3141592653/",
                Some(("evalongoria", "stories")),
            ),
            (
                "https://m.instagram.com/eva.longoria_/?hl=en",
                Some(("eva.longoria_", "posts")),
            ),
            ("https://www.instagram.com/p/C1a2b3c4d5/", None),
            ("https://www.instagram.com/reel/C1a2b3c4d5/", None),
            ("https://www.instagram.com/explore/", None),
            ("https://www.instagram.com/", None),
            ("https://www.instagram.com/evalongoria/tagged/", None),
            ("https://notinstagram.com/evalongoria/", None),
        ];
        for (url, expected) in cases {
            let expected = expected.map(|(s, c)| (s.to_owned(), c.to_owned()));
            assert_eq!(claim(instagram, url), expected, "{url}");
        }
    }

    #[test]
    fn tiktok_accounts_only() {
        assert_eq!(
            claim(tiktok, "https://www.tiktok.com/@some.user"),
            Some(("some.user".into(), "videos".into()))
        );
        assert_eq!(
            claim(tiktok, "https://m.tiktok.com/@some_user/?lang=en"),
            Some(("some_user".into(), "videos".into()))
        );
        assert_eq!(
            claim(
                tiktok,
                "https://www.tiktok.com/@u1/video/7301234567890123456"
            ),
            None
        );
        assert_eq!(claim(tiktok, "https://www.tiktok.com/foryou"), None);
    }
}
