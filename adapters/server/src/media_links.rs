//! Signed media links: URLs of one download's file or thumbnail that an
//! `<img>` or `<video>` can load without the access token.
//!
//! A browser element cannot send an `Authorization` header, and an access
//! token in a query string ends up in logs, history and `Referer`
//! headers. Instead an authenticated client asks for links
//! (`POST /api/v1/downloads/links`) and gets
//! `/api/v1/downloads/{id}/{file|thumbnail}?user=…&expires=…&signature=…`:
//! an HMAC-SHA256, under a key derived from the server's token secret, of
//! the download id, the kind of media, the user and the expiry. A link opens
//! only that media of that download, for minutes.
//!
//! Expiry times are rounded up to a whole [`LINK_GRANULARITY`], so links
//! minted for the same media within that window are the same URL and the
//! browser's cache serves repeats.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, codes};

/// Shortest life of a link.
pub const LINK_LIFETIME_SECONDS: i64 = 10 * 60;
/// Expiry times are multiples of this, so a link lives between
/// [`LINK_LIFETIME_SECONDS`] and that plus this.
pub const LINK_GRANULARITY: i64 = 5 * 60;

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `/downloads/{id}/file`.
    File,
    /// `/downloads/{id}/thumbnail`.
    Thumbnail,
}

impl MediaKind {
    /// The last path segment of the route.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// The signature part of a media URL's query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LinkQuery {
    /// The user the link was made for.
    pub user: Option<i64>,
    /// Unix seconds after which the link is refused.
    pub expires: Option<i64>,
    /// URL-safe base64 of the HMAC.
    pub signature: Option<String>,
}

impl LinkQuery {
    /// Whether the query carries any part of a signature.
    pub fn is_present(&self) -> bool {
        self.user.is_some() || self.expires.is_some() || self.signature.is_some()
    }
}

/// The links of one download, as `POST /downloads/links` returns them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DownloadLinks {
    /// The download.
    pub id: i64,
    /// Signed URL of `/downloads/{id}/file`.
    pub file_url: String,
    /// Signed URL of `/downloads/{id}/thumbnail`.
    pub thumbnail_url: String,
}

/// Makes and checks signed media links.
#[derive(Clone)]
pub struct MediaLinks {
    key: Hmac<Sha256>,
}

impl std::fmt::Debug for MediaLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLinks").finish_non_exhaustive()
    }
}

impl MediaLinks {
    /// Links keyed by `secret` (the token secret). The key is derived, so a
    /// link's MAC is never a valid token signature and the other way round.
    pub fn new(secret: &[u8]) -> Self {
        let mut derive =
            <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        derive.update(b"mediadl signed media links v1");
        let key = derive.finalize().into_bytes();
        Self {
            key: <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
                .expect("HMAC takes any key length"),
        }
    }

    /// When links made at `now` expire (unix seconds).
    pub fn expiry(now: DateTime<Utc>) -> i64 {
        let earliest = now.timestamp() + LINK_LIFETIME_SECONDS;
        (earliest + LINK_GRANULARITY - 1).div_euclid(LINK_GRANULARITY) * LINK_GRANULARITY
    }

    fn mac(&self, download: i64, kind: MediaKind, user: i64, expires: i64) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        mac.update(format!("{download}\n{}\n{user}\n{expires}", kind.as_str()).as_bytes());
        mac
    }

    /// The signed URL of `kind` of `download` for `user`, valid until `expires`.
    pub fn url(&self, download: i64, kind: MediaKind, user: i64, expires: i64) -> String {
        let signature = URL_SAFE_NO_PAD.encode(
            self.mac(download, kind, user, expires)
                .finalize()
                .into_bytes(),
        );
        format!(
            "/api/v1/downloads/{download}/{}?user={user}&expires={expires}&signature={signature}",
            kind.as_str()
        )
    }

    /// Both links of `download` for `user`, valid until `expires`.
    pub fn links(&self, download: i64, user: i64, expires: i64) -> DownloadLinks {
        DownloadLinks {
            id: download,
            file_url: self.url(download, MediaKind::File, user, expires),
            thumbnail_url: self.url(download, MediaKind::Thumbnail, user, expires),
        }
    }

    /// The user of a valid signed link to `path?query` (a media route),
    /// for counting the request against that user's rate limit.
    pub fn user_of_request(&self, path: &str, query: &str, now: DateTime<Utc>) -> Option<i64> {
        let rest = path.strip_prefix("/api/v1/downloads/")?;
        let (id, kind) = rest.split_once('/')?;
        let kind = match kind {
            "file" => MediaKind::File,
            "thumbnail" => MediaKind::Thumbnail,
            _ => return None,
        };
        let query: LinkQuery = serde_urlencoded::from_str(query).ok()?;
        if !query.is_present() {
            return None;
        }
        self.verify(id.parse().ok()?, kind, &query, now).ok()
    }

    /// The user a link was made for, when `query` signs `kind` of
    /// `download` and has not expired at `now`.
    ///
    /// # Errors
    ///
    /// 401 `MEDIA_LINK_INVALID` for a missing part, a signature that does
    /// not match (altered, or made for another download or kind), and 401
    /// `MEDIA_LINK_EXPIRED` for a genuine link whose time has passed: a link
    /// is the request's credential, so a bad one is "not authenticated".
    pub fn verify(
        &self,
        download: i64,
        kind: MediaKind,
        query: &LinkQuery,
        now: DateTime<Utc>,
    ) -> Result<i64, ApiError> {
        let invalid = || {
            ApiError::unauthorized(
                codes::MEDIA_LINK_INVALID,
                "this media link is not valid for this download; ask for a new one",
            )
        };
        let (Some(user), Some(expires), Some(signature)) =
            (query.user, query.expires, query.signature.as_deref())
        else {
            return Err(invalid());
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        self.mac(download, kind, user, expires)
            .verify_slice(&signature)
            .map_err(|_| invalid())?;
        if now.timestamp() >= expires {
            return Err(ApiError::unauthorized(
                codes::MEDIA_LINK_EXPIRED,
                "this media link has expired; ask for a new one (POST /api/v1/downloads/links)",
            ));
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_of(url: &str) -> LinkQuery {
        let query = url.split_once('?').unwrap().1;
        serde_urlencoded::from_str(query).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn expiry_is_rounded_up_to_the_granularity() {
        assert_eq!(MediaLinks::expiry(at(0)), 600);
        assert_eq!(MediaLinks::expiry(at(1)), 900);
        assert_eq!(MediaLinks::expiry(at(299)), 900);
        assert_eq!(MediaLinks::expiry(at(300)), 900);
    }

    #[test]
    fn a_link_opens_its_own_media_until_it_expires() {
        let links = MediaLinks::new(b"0123456789abcdef0123456789abcdef");
        let url = links.url(7, MediaKind::File, 3, 1000);
        assert!(url.starts_with("/api/v1/downloads/7/file?user=3&expires=1000&signature="));
        let query = query_of(&url);
        assert_eq!(
            links.verify(7, MediaKind::File, &query, at(999)).unwrap(),
            3
        );
        let expired = links
            .verify(7, MediaKind::File, &query, at(1000))
            .unwrap_err();
        assert_eq!(
            (expired.status.as_u16(), expired.code),
            (401, codes::MEDIA_LINK_EXPIRED)
        );
        for (download, kind) in [(8, MediaKind::File), (7, MediaKind::Thumbnail)] {
            let refused = links.verify(download, kind, &query, at(0)).unwrap_err();
            assert_eq!(
                (refused.status.as_u16(), refused.code),
                (401, codes::MEDIA_LINK_INVALID)
            );
        }
    }

    #[test]
    fn altered_links_and_other_keys_are_refused() {
        let links = MediaLinks::new(b"0123456789abcdef0123456789abcdef");
        let query = query_of(&links.url(7, MediaKind::Thumbnail, 3, 1000));
        let altered = [
            LinkQuery {
                user: Some(1),
                ..query.clone()
            },
            LinkQuery {
                expires: Some(99_999),
                ..query.clone()
            },
            LinkQuery {
                signature: Some("AAAA".into()),
                ..query.clone()
            },
            LinkQuery {
                signature: None,
                ..query.clone()
            },
        ];
        for query in altered {
            let refused = links
                .verify(7, MediaKind::Thumbnail, &query, at(0))
                .unwrap_err();
            assert_eq!(refused.code, codes::MEDIA_LINK_INVALID, "{query:?}");
        }
        let other = MediaLinks::new(b"another secret of sufficient len");
        assert!(
            other
                .verify(7, MediaKind::Thumbnail, &query, at(0))
                .is_err()
        );
    }
}
