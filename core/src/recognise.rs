//! Which platform a pasted URL belongs to ([`Registry::recognise`]).
//!
//! Every downloader may claim URLs ([`Downloader::recognise`]). The
//! registry asks in three rounds, and the first round with a claim wins:
//!
//! 1. the named platforms (Instagram, TikTok, forum threads, …) by their
//!    host and path rules, in registration order: they know a site
//!    better than a general program does (a profile URL becomes the
//!    account's username and a content type);
//! 2. the external programs by their extractor patterns — yt-dlp
//!    (platform `video`) and gallery-dl (platform `gallery`), their
//!    catch-all generic extractors excluded. When both claim a URL,
//!    gallery-dl wins, except on the hosts of [`VIDEO_FIRST_HOSTS`]:
//!    where both know a site (X/Twitter, Reddit, Imgur, Bluesky,
//!    Tumblr, Pinterest, …) gallery-dl lists a whole profile or board,
//!    images *and* videos (it hands videos to yt-dlp's code itself),
//!    while yt-dlp's extractor for such a site usually fetches the video
//!    of one post; on sites that are video sites first, yt-dlp's
//!    formats, subtitles and channel tabs are what people want;
//! 3. nobody: the URL is a plain file, platform `direct`.
//!
//! [`Downloader::recognise`]: crate::Downloader::recognise

use serde::{Deserialize, Serialize};
use url::Url;

use crate::downloader::Registry;
use crate::error::Error;
use crate::model::Settings;

/// The platform name that asks for recognition (`"platform": "auto"`);
/// an empty platform means the same.
pub const AUTO_PLATFORM: &str = "auto";

/// The platform a URL nobody claims goes to.
pub const DIRECT_PLATFORM: &str = "direct";

/// Hosts (and their subdomains) where yt-dlp wins over gallery-dl when
/// both claim a URL: sites that are video or audio sites first.
pub const VIDEO_FIRST_HOSTS: &[&str] = &[
    "youtube.com",
    "youtu.be",
    "vimeo.com",
    "twitch.tv",
    "dailymotion.com",
    "soundcloud.com",
    "bandcamp.com",
    "bilibili.com",
    "nicovideo.jp",
    "rumble.com",
    "odysee.com",
    "streamable.com",
    "kick.com",
    "tiktok.com",
];

/// Whether `platform` asks for recognition (empty or `auto`).
pub fn is_auto(platform: &str) -> bool {
    let platform = platform.trim();
    platform.is_empty() || platform.eq_ignore_ascii_case(AUTO_PLATFORM)
}

/// Who claimed a URL, and so how sure the answer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MatchedBy {
    /// A named platform's host and path rules.
    Rules,
    /// One of yt-dlp's extractors (by its URL pattern).
    YtDlp {
        /// The extractor's name (`youtube:tab`, `Vimeo`).
        extractor: String,
    },
    /// One of gallery-dl's extractors (by its URL pattern).
    GalleryDl {
        /// `category:subcategory` (`twitter:user`, `pixiv:artworks`).
        extractor: String,
    },
    /// Nobody claimed the URL: it is fetched as a plain file.
    Nobody,
}

impl MatchedBy {
    /// The round of [`Registry::recognise`] this claim belongs to (lower wins).
    fn round(&self) -> u8 {
        match self {
            Self::Rules => 0,
            Self::YtDlp { .. } | Self::GalleryDl { .. } => 1,
            Self::Nobody => 2,
        }
    }
}

/// What a URL is: the queue request it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recognition {
    /// The URL, normalised (parsed and printed again).
    pub url: String,
    /// The platform chosen.
    pub platform: String,
    /// The source on that platform: a username, a label, or the URL.
    pub source: String,
    /// The content type the URL shows (`posts`, `reels`, `videos`, `images`, `file`).
    pub content_type: String,
    /// Who claimed it.
    pub matched_by: MatchedBy,
}

impl Recognition {
    /// A claim by a named platform's rules.
    pub fn by_rules(
        url: &Url,
        platform: impl Into<String>,
        source: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        Self {
            url: url.to_string(),
            platform: platform.into(),
            source: source.into(),
            content_type: content_type.into(),
            matched_by: MatchedBy::Rules,
        }
    }

    /// Nobody's claim: a plain file, labelled by its host.
    pub fn direct(url: &Url) -> Self {
        Self {
            url: url.to_string(),
            platform: DIRECT_PLATFORM.into(),
            source: url.host_str().unwrap_or_default().to_owned(),
            content_type: "file".into(),
            matched_by: MatchedBy::Nobody,
        }
    }
}

/// `text` as an http(s) URL with a host, or an [`Error::Invalid`] on `field`.
pub fn parse_http_url(field: &str, text: &str) -> Result<Url, Error> {
    let url = Url::parse(text.trim())
        .map_err(|err| Error::invalid(field, format!("not a URL ({err}): {text:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            field,
            format!("must be an http(s) URL with a host, not {text:?}"),
        ));
    }
    Ok(url)
}

/// Whether `host` is `domain` or one of its subdomains.
pub fn host_is(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

impl Registry {
    /// The platform, source and content type `url` stands for: the
    /// named platforms' rules first, then yt-dlp's and gallery-dl's
    /// extractor patterns, else `direct` (see the [module
    /// docs](crate::recognise) for the order and the tie rule). Never
    /// touches the network; the first call per program may run it once
    /// to read its extractor patterns.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] on field `url` when `url` is not an http(s) URL.
    pub async fn recognise(&self, url: &str, settings: &Settings) -> Result<Recognition, Error> {
        let url = parse_http_url("url", url)?;
        let mut claims = Vec::new();
        for downloader in self.all() {
            if let Some(claim) = downloader.recognise(&url, settings).await {
                if claim.matched_by == MatchedBy::Rules {
                    // Round 1 is decided by registration order alone.
                    return Ok(claim);
                }
                claims.push(claim);
            }
        }
        Ok(choose(&url, claims).unwrap_or_else(|| Recognition::direct(&url)))
    }
}

impl Registry {
    /// Reads ahead what recognition needs (yt-dlp's and gallery-dl's
    /// extractor patterns), so the first pasted URL is answered at once;
    /// a server calls it in the background at start.
    pub async fn warm_up_recognition(&self, settings: &Settings) {
        // `.invalid` is reserved: no extractor claims it, every catalog is read.
        let _ = self.recognise("https://warm-up.invalid/", settings).await;
    }
}

/// The winner among the program claims (round 2), by the tie rule.
fn choose(url: &Url, mut claims: Vec<Recognition>) -> Option<Recognition> {
    let video_first = url
        .host_str()
        .is_some_and(|host| VIDEO_FIRST_HOSTS.iter().any(|domain| host_is(host, domain)));
    claims.sort_by_key(|claim| {
        let program_rank = match (&claim.matched_by, video_first) {
            (MatchedBy::YtDlp { .. }, true) | (MatchedBy::GalleryDl { .. }, false) => 0,
            _ => 1,
        };
        (claim.matched_by.round(), program_rank)
    });
    claims.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(url: &Url, matched_by: MatchedBy) -> Recognition {
        let platform = match matched_by {
            MatchedBy::YtDlp { .. } => "video",
            _ => "gallery",
        };
        Recognition {
            matched_by,
            ..Recognition::by_rules(url, platform, url.as_str(), "media")
        }
    }

    #[test]
    fn gallery_dl_wins_a_tie_except_on_video_sites() {
        let both = |url: &str| {
            let url = Url::parse(url).unwrap();
            let claims = vec![
                claim(
                    &url,
                    MatchedBy::YtDlp {
                        extractor: "x".into(),
                    },
                ),
                claim(
                    &url,
                    MatchedBy::GalleryDl {
                        extractor: "y".into(),
                    },
                ),
            ];
            choose(&url, claims).unwrap().platform
        };
        assert_eq!(both("https://x.com/someone/status/1"), "gallery");
        assert_eq!(both("https://www.youtube.com/@someone"), "video");
        assert_eq!(both("https://music.youtube.com/playlist?list=x"), "video");
        assert_eq!(both("https://notyoutube.com/x"), "gallery");
    }

    #[test]
    fn auto_is_empty_or_the_word() {
        assert!(is_auto(""));
        assert!(is_auto(" Auto "));
        assert!(!is_auto("direct"));
    }

    #[test]
    fn only_http_urls_with_a_host_are_recognised() {
        for bad in [
            "",
            "evalongoria",
            "ftp://host/file",
            "file:///etc/passwd",
            "http://",
        ] {
            let err = parse_http_url("url", bad).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "url"),
                "{bad:?}: {err}"
            );
        }
        assert!(parse_http_url("url", " https://example.com/a.jpg ").is_ok());
    }
}
