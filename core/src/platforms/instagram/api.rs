//! The shapes of Instagram's web JSON API responses mediadl reads, and how
//! one media object becomes [`MediaItem`]s.
//!
//! Only the fields used are declared; everything else is ignored, so new
//! fields on Instagram's side change nothing. A field that must be there
//! (a media's `pk`, a page's `items`) makes the page fail with its path.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use crate::downloader::MediaItem;
use crate::model::Metadata;

/// An id Instagram sends as a number in one place and a string in another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) if !text.trim().is_empty() => Ok(Id(text.trim().to_owned())),
            Value::Number(number) => Ok(Id(number.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected an id (string or number), found {other}"
            ))),
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `GET /api/v1/users/web_profile_info/?username=…`
#[derive(Debug, Deserialize)]
pub struct ProfileResponse {
    pub data: Option<ProfileData>,
}

#[derive(Debug, Deserialize)]
pub struct ProfileData {
    pub user: Option<ProfileUser>,
}

#[derive(Debug, Deserialize)]
pub struct ProfileUser {
    pub id: Id,
    pub username: String,
    #[serde(default)]
    pub is_private: bool,
    /// Present when logged in: whether the session's account follows this one.
    #[serde(default)]
    pub followed_by_viewer: Option<bool>,
}

/// `GET /api/v1/feed/user/{id}/?count=…&max_id=…`
#[derive(Debug, Deserialize)]
pub struct FeedPage {
    pub items: Vec<Media>,
    #[serde(default)]
    pub more_available: bool,
    #[serde(default)]
    pub next_max_id: Option<Id>,
}

/// `POST /api/v1/clips/user/` (form `target_user_id`, `page_size`, `max_id`)
#[derive(Debug, Deserialize)]
pub struct ClipsPage {
    pub items: Vec<ClipItem>,
    #[serde(default)]
    pub paging_info: Option<PagingInfo>,
}

#[derive(Debug, Deserialize)]
pub struct ClipItem {
    pub media: Media,
}

#[derive(Debug, Deserialize)]
pub struct PagingInfo {
    #[serde(default)]
    pub max_id: Option<Id>,
    #[serde(default)]
    pub more_available: bool,
}

/// `GET /api/v1/feed/reels_media/?reel_ids={id}`: the user's current stories.
#[derive(Debug, Deserialize)]
pub struct ReelsMedia {
    #[serde(default)]
    pub reels: HashMap<String, Reel>,
    #[serde(default)]
    pub reels_media: Vec<Reel>,
}

#[derive(Debug, Deserialize)]
pub struct Reel {
    #[serde(default)]
    pub items: Vec<Media>,
}

/// One post, reel, story or carousel child.
#[derive(Debug, Clone, Deserialize)]
pub struct Media {
    pub pk: Id,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub taken_at: Option<i64>,
    #[serde(default)]
    pub image_versions2: Option<ImageVersions>,
    #[serde(default)]
    pub video_versions: Option<Vec<VideoVersion>>,
    #[serde(default)]
    pub carousel_media: Option<Vec<Media>>,
    #[serde(default)]
    pub caption: Option<Caption>,
    #[serde(default)]
    pub user: Option<MediaUser>,
    #[serde(default)]
    pub original_width: Option<u32>,
    #[serde(default)]
    pub original_height: Option<u32>,
    /// Non-empty when the post is pinned to the top of the profile grid.
    #[serde(default)]
    pub timeline_pinned_user_ids: Option<Vec<Value>>,
    #[serde(default)]
    pub clips_tab_pinned_user_ids: Option<Vec<Value>>,
    #[serde(default)]
    pub expiring_at: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageVersions {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Candidate {
    pub url: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VideoVersion {
    pub url: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    #[serde(default)]
    pub bandwidth: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Caption {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MediaUser {
    #[serde(default)]
    pub username: Option<String>,
}

impl Media {
    /// Pinned to the top of the grid: listed first whatever its age.
    pub fn is_pinned(&self) -> bool {
        let pinned = |ids: &Option<Vec<Value>>| ids.as_ref().is_some_and(|ids| !ids.is_empty());
        pinned(&self.timeline_pinned_user_ids) || pinned(&self.clips_tab_pinned_user_ids)
    }

    pub fn posted_at(&self) -> Option<DateTime<Utc>> {
        self.taken_at
            .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single())
    }
}

/// The largest picture (by pixels; the first of equals, which Instagram lists best first).
pub fn best_image(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().reduce(|best, candidate| {
        if area(candidate.width, candidate.height) > area(best.width, best.height) {
            candidate
        } else {
            best
        }
    })
}

/// The best video: most pixels, then the highest bandwidth.
pub fn best_video(versions: &[VideoVersion]) -> Option<&VideoVersion> {
    versions.iter().reduce(|best, version| {
        let better = (
            area(version.width, version.height),
            version.bandwidth.unwrap_or(0),
        ) > (area(best.width, best.height), best.bandwidth.unwrap_or(0));
        if better { version } else { best }
    })
}

fn area(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height)
}

/// What a listing is of, and how its items are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Posts,
    Reels,
    Stories,
}

impl Section {
    pub fn parse(content_type: &str) -> Option<Self> {
        match content_type {
            "posts" => Some(Self::Posts),
            "reels" => Some(Self::Reels),
            "stories" => Some(Self::Stories),
            _ => None,
        }
    }

    /// The item content type recorded on each download.
    pub fn item_type(self) -> &'static str {
        match self {
            Self::Posts => "post",
            Self::Reels => "reel",
            Self::Stories => "story",
        }
    }
}

/// A media object as items: one per carousel child, else one. A child
/// without any usable file is left out and named in `skipped`.
pub fn media_items(
    media: &Media,
    section: Section,
    site: &Url,
    skipped: &mut Vec<String>,
) -> Vec<MediaItem> {
    let children: Vec<(Option<usize>, &Media)> = match &media.carousel_media {
        Some(children) if !children.is_empty() => children
            .iter()
            .enumerate()
            .map(|(index, child)| (Some(index + 1), child))
            .collect(),
        _ => vec![(None, media)],
    };
    children
        .into_iter()
        .filter_map(|(index, child)| {
            let item = file_item(media, child, index, section, site);
            if item.is_none() {
                skipped.push(format!("media {} has no image or video URL", child.pk));
            }
            item
        })
        .collect()
}

fn file_item(
    parent: &Media,
    media: &Media,
    carousel_index: Option<usize>,
    section: Section,
    site: &Url,
) -> Option<MediaItem> {
    let video = media.video_versions.as_deref().and_then(best_video);
    let image = media
        .image_versions2
        .as_ref()
        .and_then(|versions| best_image(&versions.candidates));
    let (url, width, height, kind) = match (video, image) {
        (Some(video), _) => (video.url.as_str(), video.width, video.height, "video"),
        (None, Some(image)) => (image.url.as_str(), image.width, image.height, "image"),
        (None, None) => return None,
    };
    let url = Url::parse(url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))?;
    let pk = media.pk.0.clone();
    let mut item = MediaItem::new(format!("instagram:{pk}"), url, section.item_type());
    item.referer = Some(site.clone());
    item.posted_at = media.posted_at().or_else(|| parent.posted_at());
    item.media_id = Some(pk.clone());
    let extension = item
        .url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| {
            matches!(
                ext.as_str(),
                "jpg" | "jpeg" | "png" | "webp" | "heic" | "mp4" | "mov"
            )
        })
        .unwrap_or_else(|| {
            if kind == "video" {
                "mp4".into()
            } else {
                "jpg".into()
            }
        });
    item.suggested_name = Some(format!("{pk}.{extension}"));
    if width > 0 && height > 0 {
        item.resolution = Some((width, height));
    }

    let mut metadata = Metadata::new();
    metadata.insert("media_id".into(), Value::String(pk));
    metadata.insert("media_type".into(), Value::String(kind.into()));
    metadata.insert("downloader".into(), Value::String("native".into()));
    if let Some((width, height)) = item.resolution {
        metadata.insert(
            "resolution".into(),
            Value::String(format!("{width}x{height}")),
        );
    }
    if let (Some(width), Some(height)) = (media.original_width, media.original_height) {
        metadata.insert(
            "original_resolution".into(),
            Value::String(format!("{width}x{height}")),
        );
    }
    if let Some(code) = parent.code.as_deref().filter(|code| !code.is_empty()) {
        metadata.insert("shortcode".into(), Value::String(code.into()));
        let kind = if section == Section::Reels {
            "reel"
        } else {
            "p"
        };
        metadata.insert(
            "post_url".into(),
            Value::String(format!("https://www.instagram.com/{kind}/{code}/")),
        );
    }
    if let Some(index) = carousel_index {
        metadata.insert("carousel_index".into(), Value::from(index));
        metadata.insert(
            "carousel_parent_id".into(),
            Value::String(parent.pk.0.clone()),
        );
    }
    if let Some(text) = parent.caption.as_ref().and_then(|c| c.text.as_deref()) {
        metadata.insert("caption".into(), Value::String(text.into()));
    }
    if let Some(name) = parent.user.as_ref().and_then(|u| u.username.as_deref()) {
        metadata.insert("username".into(), Value::String(name.into()));
    }
    if let Some(expiring) = parent.expiring_at {
        metadata.insert("expiring_at".into(), Value::from(expiring));
    }
    item.metadata = metadata;
    Some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Url {
        Url::parse("https://www.instagram.com/").unwrap()
    }

    fn media(value: serde_json::Value) -> Media {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn picks_the_largest_image_and_the_best_video() {
        let image = media(serde_json::json!({
            "pk": 1, "taken_at": 1_700_000_000, "media_type": 1, "code": "AbC",
            "image_versions2": {"candidates": [
                {"url": "https://cdn.example/s640.jpg", "width": 640, "height": 800},
                {"url": "https://cdn.example/full.jpg", "width": 1440, "height": 1800},
                {"url": "https://cdn.example/s150.jpg", "width": 150, "height": 150}
            ]}
        }));
        let items = media_items(&image, Section::Posts, &site(), &mut Vec::new());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].url.as_str(), "https://cdn.example/full.jpg");
        assert_eq!(items[0].resolution, Some((1440, 1800)));
        assert_eq!(
            items[0].metadata["post_url"],
            "https://www.instagram.com/p/AbC/"
        );

        let video = media(serde_json::json!({
            "pk": "2", "media_type": 2,
            "image_versions2": {"candidates": [{"url": "https://cdn.example/cover.jpg", "width": 1080, "height": 1920}]},
            "video_versions": [
                {"type": 102, "url": "https://cdn.example/480.mp4", "width": 480, "height": 854},
                {"type": 101, "url": "https://cdn.example/720.mp4", "width": 720, "height": 1280, "bandwidth": 100},
                {"type": 103, "url": "https://cdn.example/720b.mp4", "width": 720, "height": 1280, "bandwidth": 900}
            ]
        }));
        let items = media_items(&video, Section::Reels, &site(), &mut Vec::new());
        assert_eq!(items[0].url.as_str(), "https://cdn.example/720b.mp4");
        assert_eq!(items[0].suggested_name.as_deref(), Some("2.mp4"));
        assert_eq!(items[0].content_type, "reel");
    }

    #[test]
    fn carousels_become_one_item_per_child() {
        let post = media(serde_json::json!({
            "pk": 10, "taken_at": 1_700_000_000, "media_type": 8, "code": "Car",
            "caption": {"text": "hello"},
            "carousel_media": [
                {"pk": 11, "media_type": 1, "image_versions2": {"candidates": [{"url": "https://cdn.example/11.jpg", "width": 1080, "height": 1080}]}},
                {"pk": 12, "media_type": 2, "video_versions": [{"url": "https://cdn.example/12.mp4", "width": 720, "height": 720}]},
                {"pk": 13, "media_type": 1}
            ]
        }));
        let mut skipped = Vec::new();
        let items = media_items(&post, Section::Posts, &site(), &mut skipped);
        let keys: Vec<&str> = items.iter().map(|i| i.archive_key.as_str()).collect();
        assert_eq!(keys, ["instagram:11", "instagram:12"]);
        assert_eq!(items[1].metadata["carousel_index"], 2);
        assert_eq!(items[1].metadata["carousel_parent_id"], "10");
        assert_eq!(items[1].metadata["caption"], "hello");
        assert_eq!(
            items[1].posted_at.unwrap().timestamp(),
            1_700_000_000,
            "inherits the post's time"
        );
        assert_eq!(skipped, ["media 13 has no image or video URL"]);
    }

    #[test]
    fn ids_may_be_numbers_or_strings_but_must_be_there() {
        let page: FeedPage = serde_json::from_value(serde_json::json!({
            "items": [{"pk": 3_141_592_653_589_793_238u64}, {"pk": "42"}],
            "more_available": true, "next_max_id": "42_1"
        }))
        .unwrap();
        assert_eq!(page.items[0].pk.0, "3141592653589793238");
        assert_eq!(page.next_max_id.unwrap().0, "42_1");
        let missing =
            serde_json::from_value::<FeedPage>(serde_json::json!({"items": [{"code": "x"}]}));
        assert!(missing.unwrap_err().to_string().contains("pk"));
    }
}
