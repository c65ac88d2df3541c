//! The shapes of TikTok's profile data and `item_list` responses mediadl
//! reads, its status codes, and how one post becomes [`MediaItem`]s.

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::downloader::MediaItem;
use crate::error::DownloadError;
use crate::model::Metadata;

static UNIVERSAL_DATA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)<script[^>]*\bid="__UNIVERSAL_DATA_FOR_REHYDRATION__"[^>]*>(.*?)</script>"#)
        .expect("valid regex")
});

/// `__DEFAULT_SCOPE__."webapp.user-detail"` of the profile page.
#[derive(Debug, Deserialize)]
pub struct UserDetail {
    #[serde(rename = "statusCode", default)]
    pub status_code: i64,
    #[serde(rename = "statusMsg", default)]
    pub status_msg: Option<String>,
    #[serde(rename = "userInfo", default)]
    pub user_info: Option<UserInfo>,
}

#[derive(Debug, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub user: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct User {
    #[serde(rename = "secUid", default)]
    pub sec_uid: Option<String>,
    #[serde(rename = "privateAccount", default)]
    pub private_account: bool,
}

/// The user detail inside a profile page's HTML.
pub fn user_detail(html: &str) -> Result<UserDetail, String> {
    let script = UNIVERSAL_DATA
        .captures(html)
        .and_then(|captures| captures.get(1))
        .ok_or("no __UNIVERSAL_DATA_FOR_REHYDRATION__ data (a captcha or verification page?)")?;
    let data: Value = serde_json::from_str(script.as_str().trim())
        .map_err(|err| format!("__UNIVERSAL_DATA_FOR_REHYDRATION__ is not JSON: {err}"))?;
    let detail = data
        .pointer("/__DEFAULT_SCOPE__/webapp.user-detail")
        .cloned()
        .ok_or(
            "__UNIVERSAL_DATA_FOR_REHYDRATION__ has no `__DEFAULT_SCOPE__.webapp.user-detail`",
        )?;
    serde_path_to_error::deserialize(detail)
        .map_err(|err| format!("webapp.user-detail.{}: {}", err.path(), err.inner()))
}

/// `GET /api/post/item_list/?secUid=…&cursor=…&count=…`
#[derive(Debug, Deserialize)]
pub struct ItemListPage {
    #[serde(rename = "statusCode", default)]
    pub status_code: i64,
    #[serde(rename = "statusMsg", alias = "status_msg", default)]
    pub status_msg: Option<String>,
    /// Absent (not empty) when the account has no posts.
    #[serde(rename = "itemList", default)]
    pub item_list: Vec<Post>,
    /// A string or a number, depending on the endpoint's mood.
    #[serde(default)]
    pub cursor: Option<Value>,
    #[serde(rename = "hasMore", default)]
    pub has_more: bool,
}

/// One post of the list.
#[derive(Debug, Deserialize)]
pub struct Post {
    pub id: Value,
    #[serde(default)]
    pub desc: Option<String>,
    #[serde(rename = "createTime", default)]
    pub create_time: Option<Value>,
    #[serde(rename = "isPinnedItem", default)]
    pub is_pinned_item: bool,
    #[serde(default)]
    pub author: Option<Author>,
    #[serde(default)]
    pub video: Option<Video>,
    #[serde(rename = "imagePost", default)]
    pub image_post: Option<ImagePost>,
}

#[derive(Debug, Deserialize)]
pub struct Author {
    #[serde(rename = "uniqueId", default)]
    pub unique_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Video {
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub duration: Option<Value>,
    /// A URL string, or a list of `{src}` objects.
    #[serde(rename = "playAddr", default)]
    pub play_addr: Option<Value>,
    #[serde(rename = "downloadAddr", default)]
    pub download_addr: Option<Value>,
    #[serde(rename = "bitrateInfo", default)]
    pub bitrate_info: Vec<BitrateInfo>,
}

#[derive(Debug, Deserialize)]
pub struct BitrateInfo {
    #[serde(rename = "Bitrate", default)]
    pub bitrate: u64,
    #[serde(rename = "GearName", default)]
    pub gear_name: Option<String>,
    #[serde(rename = "CodecType", default)]
    pub codec_type: Option<String>,
    #[serde(rename = "PlayAddr", default)]
    pub play_addr: Option<PlayAddr>,
}

#[derive(Debug, Deserialize)]
pub struct PlayAddr {
    #[serde(rename = "UrlList", default)]
    pub url_list: Vec<String>,
    #[serde(rename = "Width", default)]
    pub width: Option<u32>,
    #[serde(rename = "Height", default)]
    pub height: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct ImagePost {
    #[serde(default)]
    pub images: Vec<Image>,
}

#[derive(Debug, Deserialize)]
pub struct Image {
    #[serde(rename = "imageURL", default)]
    pub image_url: Option<UrlList>,
    #[serde(rename = "imageWidth", default)]
    pub image_width: Option<u32>,
    #[serde(rename = "imageHeight", default)]
    pub image_height: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct UrlList {
    #[serde(rename = "urlList", default)]
    pub url_list: Vec<String>,
}

/// Which play address a video takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// The highest bitrate.
    Best,
    /// The lowest bitrate (smaller files).
    Smallest,
}

impl Quality {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "hd" | "best" | "high" => Ok(Self::Best),
            "sd" | "low" | "smallest" => Ok(Self::Smallest),
            other => Err(format!(
                "platforms.tiktok.quality: {other:?} is not a quality (hd or sd)"
            )),
        }
    }
}

/// A value that is an id or a cursor: a string or a number, as text.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The error a TikTok `statusCode` stands for, `None` when it is 0.
pub fn status_error(code: i64, message: Option<&str>, who: &str) -> Option<DownloadError> {
    let message = message.unwrap_or_default();
    Some(match code {
        0 => return None,
        10202 | 10221 | 10223 => DownloadError::permanent(format!(
            "the TikTok account {who:?} does not exist or was banned (status {code})"
        )),
        10222 | 10216 => DownloadError::permanent(format!(
            "the TikTok account {who:?} is private (status {code}): upload cookies of an account that follows it"
        )),
        10204 => blocked(&format!("status {code}")),
        10000 => DownloadError::AuthRequired(format!(
            "TikTok asks to prove you are not a bot (status {code}): upload cookies of a logged-in browser"
        )),
        _ => DownloadError::retryable(format!("TikTok answered status {code} {message}")),
    })
}

/// TikTok refuses this server's address.
pub fn blocked(detail: &str) -> DownloadError {
    DownloadError::permanent(format!(
        "TikTok blocks this server's IP address ({detail}): set a proxy for TikTok (network.platform_proxies.tiktok)"
    ))
}

/// A post as items: the chosen video, or one item per photo.
pub fn post_items(post: &Post, quality: Quality, site: &Url) -> Result<Vec<MediaItem>, String> {
    let id = id_text(&post.id).ok_or("a post without an id")?;
    let posted_at = post
        .create_time
        .as_ref()
        .and_then(id_text)
        .and_then(|seconds| seconds.parse::<i64>().ok())
        .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single());
    let mut metadata = Metadata::new();
    metadata.insert("media_id".into(), Value::String(id.clone()));
    metadata.insert("downloader".into(), Value::String("native".into()));
    if let Some(desc) = post.desc.as_deref().filter(|d| !d.is_empty()) {
        metadata.insert("description".into(), Value::String(desc.into()));
    }
    if let Some(author) = post.author.as_ref().and_then(|a| a.unique_id.as_deref()) {
        metadata.insert("username".into(), Value::String(author.into()));
        metadata.insert(
            "post_url".into(),
            Value::String(format!("https://www.tiktok.com/@{author}/video/{id}")),
        );
    }

    if let Some(images) = post.image_post.as_ref().filter(|p| !p.images.is_empty()) {
        let mut items = Vec::new();
        for (index, image) in images.images.iter().enumerate() {
            let Some(url) = image
                .image_url
                .as_ref()
                .and_then(|list| first_url(&list.url_list))
            else {
                continue;
            };
            let number = index + 1;
            let mut item = MediaItem::new(format!("tiktok:{id}:{number}"), url, "image");
            item.referer = Some(site.clone());
            item.posted_at = posted_at;
            item.media_id = Some(format!("{id}_{number}"));
            item.suggested_name = Some(format!("{id}_{number}.jpg"));
            item.resolution = image
                .image_width
                .zip(image.image_height)
                .filter(|(w, h)| *w > 0 && *h > 0);
            let mut metadata = metadata.clone();
            metadata.insert("image_index".into(), Value::from(number));
            if let Some((w, h)) = item.resolution {
                metadata.insert("resolution".into(), Value::String(format!("{w}x{h}")));
            }
            item.metadata = metadata;
            items.push(item);
        }
        if items.is_empty() {
            return Err(format!("photo post {id} has no image URL"));
        }
        return Ok(items);
    }

    let video = post
        .video
        .as_ref()
        .ok_or_else(|| format!("post {id} has neither a video nor images"))?;
    let mut choices: Vec<(&BitrateInfo, Url)> = video
        .bitrate_info
        .iter()
        .filter(|info| info.codec_type.as_deref() != Some("bytevc2"))
        .filter_map(|info| {
            let url = first_url(&info.play_addr.as_ref()?.url_list)?;
            Some((info, url))
        })
        .collect();
    choices.sort_by_key(|(info, _)| info.bitrate);
    let chosen = match quality {
        Quality::Best => choices.pop(),
        Quality::Smallest => (!choices.is_empty()).then(|| choices.remove(0)),
    };
    let (url, resolution, bitrate) = match chosen {
        Some((info, url)) => {
            let play = info.play_addr.as_ref();
            let resolution = play
                .and_then(|p| p.width.zip(p.height))
                .or_else(|| video.width.zip(video.height));
            if let Some(gear) = &info.gear_name {
                metadata.insert("gear".into(), Value::String(gear.clone()));
            }
            (url, resolution, Some(info.bitrate))
        }
        None => {
            let url = [&video.play_addr, &video.download_addr]
                .into_iter()
                .flatten()
                .find_map(address_url)
                .ok_or_else(|| format!("video {id} has no play address"))?;
            (url, video.width.zip(video.height), None)
        }
    };
    let mut item = MediaItem::new(format!("tiktok:{id}"), url, "video");
    item.referer = Some(site.clone());
    item.posted_at = posted_at;
    item.media_id = Some(id.clone());
    item.suggested_name = Some(format!("{id}.mp4"));
    item.resolution = resolution.filter(|(w, h)| *w > 0 && *h > 0);
    if let Some((w, h)) = item.resolution {
        metadata.insert("resolution".into(), Value::String(format!("{w}x{h}")));
    }
    if let Some(bitrate) = bitrate {
        metadata.insert("bitrate".into(), Value::from(bitrate));
    }
    if let Some(duration) = &video.duration {
        metadata.insert("duration".into(), duration.clone());
    }
    item.metadata = metadata;
    Ok(vec![item])
}

/// The first usable URL of a mirror list; TikTok's own `www` play
/// redirector is a last resort (it refuses most clients).
fn first_url(list: &[String]) -> Option<Url> {
    let urls: Vec<Url> = list
        .iter()
        .filter_map(|text| Url::parse(text).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .collect();
    urls.iter()
        .find(|url| url.host_str() != Some("www.tiktok.com"))
        .or_else(|| urls.first())
        .cloned()
}

/// `playAddr` as a string or a list of `{src}`.
fn address_url(value: &Value) -> Option<Url> {
    match value {
        Value::String(text) => first_url(std::slice::from_ref(text)),
        Value::Array(entries) => {
            let list: Vec<String> = entries
                .iter()
                .filter_map(|entry| entry.get("src").and_then(Value::as_str).map(str::to_owned))
                .collect();
            first_url(&list)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Url {
        Url::parse("https://www.tiktok.com/").unwrap()
    }

    fn post(value: Value) -> Post {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_highest_bitrate_wins_unless_sd_is_asked() {
        let video = post(serde_json::json!({
            "id": "7301", "createTime": "1700000000", "author": {"uniqueId": "someone"},
            "video": {"width": 576, "height": 1024, "playAddr": "https://v16.example/play.mp4",
              "bitrateInfo": [
                {"Bitrate": 800000, "GearName": "normal_540_0", "CodecType": "h264",
                 "PlayAddr": {"UrlList": ["https://www.tiktok.com/aweme/v1/play/?x=1", "https://v16.example/540.mp4"], "Width": 576, "Height": 1024}},
                {"Bitrate": 2400000, "GearName": "normal_1080_0", "CodecType": "h264",
                 "PlayAddr": {"UrlList": ["https://v16.example/1080.mp4"], "Width": 1080, "Height": 1920}},
                {"Bitrate": 9000000, "CodecType": "bytevc2",
                 "PlayAddr": {"UrlList": ["https://v16.example/unplayable.mp4"], "Width": 1080, "Height": 1920}}
              ]}
        }));
        let best = post_items(&video, Quality::Best, &site()).unwrap();
        assert_eq!(best[0].archive_key, "tiktok:7301");
        assert_eq!(best[0].url.as_str(), "https://v16.example/1080.mp4");
        assert_eq!(best[0].resolution, Some((1080, 1920)));
        assert_eq!(best[0].posted_at.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(
            best[0].metadata["post_url"],
            "https://www.tiktok.com/@someone/video/7301"
        );
        let small = post_items(&video, Quality::Smallest, &site()).unwrap();
        assert_eq!(
            small[0].url.as_str(),
            "https://v16.example/540.mp4",
            "the www redirector is skipped"
        );
    }

    #[test]
    fn play_addresses_without_bitrates_still_work() {
        let video = post(serde_json::json!({
            "id": 7302, "createTime": 1_700_000_000,
            "video": {"width": 720, "height": 1280, "playAddr": [{"src": "https://v16.example/p.mp4"}]}
        }));
        let items = post_items(&video, Quality::Best, &site()).unwrap();
        assert_eq!(items[0].url.as_str(), "https://v16.example/p.mp4");
        assert_eq!(items[0].resolution, Some((720, 1280)));
        let empty = post(serde_json::json!({"id": "7303", "video": {}}));
        assert!(
            post_items(&empty, Quality::Best, &site())
                .unwrap_err()
                .contains("no play address")
        );
    }

    #[test]
    fn photo_posts_give_one_item_per_image() {
        let photos = post(serde_json::json!({
            "id": "7304", "createTime": 1_700_000_000,
            "imagePost": {"images": [
                {"imageURL": {"urlList": ["https://p16.example/1.jpeg"]}, "imageWidth": 1080, "imageHeight": 1440},
                {"imageURL": {"urlList": ["https://p16.example/2.jpeg"]}, "imageWidth": 1080, "imageHeight": 1350}
            ]}
        }));
        let items = post_items(&photos, Quality::Best, &site()).unwrap();
        let keys: Vec<&str> = items.iter().map(|i| i.archive_key.as_str()).collect();
        assert_eq!(keys, ["tiktok:7304:1", "tiktok:7304:2"]);
        assert_eq!(items[1].resolution, Some((1080, 1350)));
        assert_eq!(items[1].content_type, "image");
    }

    #[test]
    fn profile_pages_yield_the_user_detail() {
        let html = r#"<html><script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{"__DEFAULT_SCOPE__":{"webapp.user-detail":{"statusCode":0,"userInfo":{"user":{"id":"1","uniqueId":"someone","secUid":"MS4wLjABAAAA_x","privateAccount":false}}}}}</script></html>"#;
        let detail = user_detail(html).unwrap();
        assert_eq!(
            detail.user_info.unwrap().user.unwrap().sec_uid.as_deref(),
            Some("MS4wLjABAAAA_x")
        );
        assert!(
            user_detail("<html>captcha</html>")
                .unwrap_err()
                .contains("no __UNIVERSAL_DATA")
        );
        let broken = r#"<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">{not json</script>"#;
        assert!(user_detail(broken).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn status_codes_map_to_typed_errors() {
        assert!(status_error(0, None, "x").is_none());
        assert_eq!(
            status_error(10222, None, "x").unwrap().code(),
            "DOWNLOAD_FAILED"
        );
        assert!(
            status_error(10222, None, "x")
                .unwrap()
                .to_string()
                .contains("private")
        );
        assert!(
            status_error(10204, None, "x")
                .unwrap()
                .to_string()
                .contains("proxy")
        );
        assert!(
            status_error(10202, None, "x")
                .unwrap()
                .to_string()
                .contains("does not exist")
        );
        assert_eq!(
            status_error(10000, None, "x").unwrap().code(),
            "AUTH_REQUIRED"
        );
        assert_eq!(
            status_error(5, Some("busy"), "x").unwrap().code(),
            "DOWNLOAD_RETRYABLE"
        );
    }
}
