//! The `gallery-dl` program as a downloader: Instagram's `gallery-dl`, and
//! platform `gallery` (any site gallery-dl supports; the source is a
//! profile, board, gallery or post URL).
//!
//! Listing: `--print` (which lists without downloading) with a JSON
//! template of ours, one line per file, `url-metadata` so each line carries
//! the file's URL, and a throw-away `--download-archive` so gallery-dl
//! computes each file's archive entry itself: the template is printed at
//! `prepare-after`, after gallery-dl's archive check has stored the entry
//! as `_archive_key` (`{category}` + the extractor's `archive_fmt`, exactly
//! what its archive database holds, e.g. `twitter1234567890_1`). Platform
//! `gallery` keys its items `gallery:<that entry>` (see
//! [`archive_key`]); Instagram keeps the media id the
//! native client keys on. Transfer: that URL, through gallery-dl again,
//! into a private work directory; progress is the size of what it has
//! written so far (gallery-dl reports none in machine-readable form).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;
use url::Url;

use super::driver::{Binding, Program, Run, Sources, Target};
use super::{archive_key, excerpt, id_text, parse_timestamp};
use crate::downloader::{Context, Downloader, MediaItem, Request, Staging, Unavailable};
use crate::error::{DownloadError, Error};
use crate::model::general_platforms::GallerySettings;
use crate::model::{DownloaderInfo, Metadata, Settings};
use crate::recognise::Recognition;

/// The downloader's name within its platform.
pub const NAME: &str = "gallery-dl";
const ITEM_MARKER: &str = "mediadl-item ";
/// The metadata key gallery-dl puts each file's URL under.
const URL_KEY: &str = "mediadl_url";

static PROGRAM: Program = Program {
    name: NAME,
    display_name: "gallery-dl",
    alias: "gallerydl",
    // `--print` at `prepare-after`, `url-metadata` and `_archive_key`
    // (checked with 1.32).
    minimum_version: &[1, 28, 0],
    base_args: &["--config-ignore", "--no-colors", "--no-input"],
    timeout_args: |seconds| vec!["-o".into(), format!("timeout={seconds}")],
    logs_errors: true,
};

/// One JSON object per file; `{x!j}` is `null` when a field is missing.
fn item_template() -> String {
    let fields = [
        ("url", URL_KEY),
        ("archive_entry", "_archive_key"),
        ("category", "category"),
        ("subcategory", "subcategory"),
        ("media_id", "media_id"),
        ("id", "id"),
        ("post_id", "post_id"),
        ("shortcode", "shortcode"),
        ("post_shortcode", "post_shortcode"),
        ("post_url", "post_url"),
        ("date", "date"),
        ("width", "width"),
        ("height", "height"),
        ("extension", "extension"),
        ("filename", "filename"),
        ("num", "num"),
        ("username", "username"),
        ("description", "description"),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(name, key)| format!("\"{name}\":{{{key}!j}}"))
        .collect();
    format!("prepare-after:{ITEM_MARKER}{{{{{}}}}}", body.join(","))
}

/// gallery-dl for one platform.
#[derive(Debug, Clone)]
pub struct GalleryDl {
    binding: Binding,
}

impl GalleryDl {
    /// Instagram accounts: posts, stories and reels.
    pub fn instagram() -> Self {
        Self {
            binding: Binding::new(
                &PROGRAM,
                "instagram",
                "Instagram",
                Sources::Accounts(&[
                    (
                        "posts",
                        "https://www.instagram.com/{username}/posts/",
                        "post",
                    ),
                    (
                        "stories",
                        "https://www.instagram.com/stories/{username}/",
                        "story",
                    ),
                    (
                        "reels",
                        "https://www.instagram.com/{username}/reels/",
                        "reel",
                    ),
                ]),
            ),
        }
    }

    /// Platform `gallery`: any URL gallery-dl accepts, content type `media`.
    pub fn gallery() -> Self {
        Self {
            binding: Binding::new(
                &PROGRAM,
                "gallery",
                "Galleries",
                Sources::Urls {
                    content_type: "media",
                    item_type: "media",
                },
            ),
        }
    }

    /// `platforms.gallery` for the general platform; `None` for Instagram.
    fn gallery_settings(
        &self,
        settings: &Settings,
    ) -> Result<Option<GallerySettings>, DownloadError> {
        if !self.binding.is_general() {
            return Ok(None);
        }
        GallerySettings::read(settings)
            .map(Some)
            .map_err(|err| DownloadError::permanent(err.to_string()))
    }
}

/// gallery-dl's options from `platforms.gallery`.
fn gallery_args(gallery: Option<&GallerySettings>) -> Vec<String> {
    let Some(gallery) = gallery else {
        return Vec::new();
    };
    let mut args = Vec::new();
    if gallery.generic {
        args.extend(["-o".into(), "extractor.generic.enabled=true".into()]);
    }
    if gallery.sleep_request_seconds > 0.0 {
        args.extend([
            "-o".into(),
            format!("sleep-request={}", gallery.sleep_request_seconds),
        ]);
    }
    args
}

#[async_trait]
impl Downloader for GalleryDl {
    fn info(&self) -> DownloaderInfo {
        self.binding
            .info(&["quality_upgrade", "date_filtering", "limit_downloads"])
    }

    /// Only the general platform (`gallery`) claims URLs, by the
    /// program's extractor patterns ([`super::extractors`]).
    async fn recognise(&self, url: &Url, settings: &Settings) -> Option<Recognition> {
        super::extractors::recognise(
            super::extractors::Program::GalleryDl,
            &self.info(),
            url,
            settings,
        )
        .await
    }

    async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
        self.binding.check(settings).await
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        self.binding.validate(request)
    }

    fn discover(
        &self,
        request: &Request,
        cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        let platform = self.binding.platform;
        let general = self.binding.is_general();
        let gallery = self.gallery_settings(&cx.settings).ok().flatten();
        self.binding.list(
            request,
            cx,
            ITEM_MARKER,
            move |run: &Run, _target: &Target| {
                let work = run.work.path();
                let mut args = vec![
                    "-D".to_owned(),
                    work.to_string_lossy().into_owned(),
                    "--download-archive".to_owned(),
                    work.join("archive.sqlite3").to_string_lossy().into_owned(),
                    "-o".to_owned(),
                    format!("url-metadata={URL_KEY}"),
                    "--print".to_owned(),
                    item_template(),
                    // `--print` turns skipping off, and with it the
                    // archive check that computes `_archive_key`.
                    "-o".to_owned(),
                    "skip=true".to_owned(),
                ];
                args.extend(gallery_args(gallery.as_ref()));
                args
            },
            move |value: &Value, target: &Target| {
                item_from_listing(platform, general, target.item_type, value)
            },
        )
    }

    async fn transfer(
        &self,
        item: &MediaItem,
        staging: &Staging,
        cx: &Context,
    ) -> Option<Result<PathBuf, DownloadError>> {
        Some(self.transfer_one(item, staging, cx).await)
    }
}

impl GalleryDl {
    async fn transfer_one(
        &self,
        item: &MediaItem,
        staging: &Staging,
        cx: &Context,
    ) -> Result<PathBuf, DownloadError> {
        let gallery = self.gallery_settings(&cx.settings)?;
        let mut run = self.binding.start(cx, Some(staging), &item.url)?;
        run.args
            .extend(["--no-mtime", "--no-skip", "-D"].map(String::from));
        run.args
            .push(run.work.path().to_string_lossy().into_owned());
        run.args
            .extend(["-f", "media.{extension}"].map(String::from));
        run.args.extend(gallery_args(gallery.as_ref()));
        let metadata_json = gallery.as_ref().is_some_and(|g| g.metadata_json);
        if metadata_json {
            run.args.push("--write-metadata".into());
        }
        run.args.push("--".into());
        run.args.push(item.url.to_string());
        let finished = run.transfer(cx, |_| None).await?;
        let mut companions = Vec::new();
        if metadata_json {
            // gallery-dl writes `media.<ext>.json`; beside the file it is
            // `<name>.info.json`, apart from mediadl's own `<file>.json`.
            if let Some(json) = files(run.work.path(), |name| name.ends_with(".json")).pop() {
                let renamed = run.work.path().join("media.info.json");
                std::fs::rename(&json, &renamed)
                    .map_err(|err| DownloadError::Storage(format!("{}: {err}", json.display())))?;
                companions.push(renamed);
            }
        }
        let mut produced = files(run.work.path(), |name| !name.ends_with(".json"));
        let produced = match (produced.pop(), produced.is_empty()) {
            (Some(file), true) => file,
            _ => {
                return Err(DownloadError::permanent(format!(
                    "gallery-dl exited without writing a file: {}",
                    excerpt(&finished.stderr)
                )));
            }
        };
        run.keep(cx, &produced, &companions)
    }
}

/// The finished files gallery-dl wrote whose names pass `wanted` (not a
/// `.part`, not our cookies or archive).
fn files(dir: &Path, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .filter(|path| {
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    name != "cookies.txt" && !name.ends_with(".part") && wanted(name)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A listed file as a media item. Platform `gallery` (`general`) keys it
/// by gallery-dl's own archive entry. Instagram files carry `media_id`
/// (the same pk the native client keys on, so the two downloaders agree on
/// what is archived); others fall back to their URL without its query.
pub(crate) fn item_from_listing(
    platform: &str,
    general: bool,
    item_type: &str,
    value: &Value,
) -> Result<MediaItem, String> {
    let url = value
        .get("url")
        .and_then(Value::as_str)
        .and_then(|text| Url::parse(text).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or("the entry has no http(s) file URL")?;
    let media_id = value.get("media_id").and_then(id_text);
    let entry = value
        .get("archive_entry")
        .and_then(Value::as_str)
        .filter(|entry| !entry.trim().is_empty());
    let archive_key = match (general, entry, &media_id) {
        (true, Some(entry), _) => archive_key(platform, entry),
        (true, None, _) => {
            return Err(format!(
                "gallery-dl gave no archive entry for {url} (is it older than 1.28?)"
            ));
        }
        (false, _, Some(id)) => format!("{platform}:{id}"),
        (false, _, None) => {
            let mut bare = url.clone();
            bare.set_query(None);
            bare.set_fragment(None);
            format!("{platform}:url:{bare}")
        }
    };
    let mut item = MediaItem::new(archive_key, url, item_type);
    item.media_id = media_id
        .clone()
        .or_else(|| value.get("id").and_then(id_text));
    item.posted_at = value.get("date").and_then(parse_timestamp);
    let dimension = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    item.resolution = dimension("width")
        .zip(dimension("height"))
        .filter(|(w, h)| *w > 0 && *h > 0);
    let extension = value
        .get("extension")
        .and_then(Value::as_str)
        .filter(|ext| {
            !ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if let (Some(id), Some(ext)) = (&item.media_id, extension) {
        item.suggested_name = Some(format!("{id}.{ext}"));
    }
    item.referer = match platform {
        "instagram" => Url::parse("https://www.instagram.com/").ok(),
        _ => None,
    };
    let mut metadata = Metadata::new();
    metadata.insert("downloader".into(), Value::String(NAME.into()));
    if let Some(id) = &item.media_id {
        metadata.insert("media_id".into(), Value::String(id.clone()));
    }
    if let Some((width, height)) = item.resolution {
        metadata.insert(
            "resolution".into(),
            Value::String(format!("{width}x{height}")),
        );
    }
    let shortcode = ["post_shortcode", "shortcode"]
        .iter()
        .find_map(|key| value.get(*key).and_then(Value::as_str));
    if let Some(code) = shortcode {
        metadata.insert("shortcode".into(), Value::String(code.to_owned()));
    }
    for key in [
        "post_id",
        "post_url",
        "username",
        "description",
        "num",
        "category",
        "subcategory",
    ] {
        if let Some(found) = value.get(key).filter(|v| !v.is_null()) {
            metadata.insert(key.into(), found.clone());
        }
    }
    item.metadata = metadata;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_one_json_object() {
        let template = item_template();
        assert!(
            template.starts_with("prepare-after:mediadl-item {{\"url\":{mediadl_url!j},\"archive_entry\":{_archive_key!j},"),
            "{template}"
        );
        assert!(
            template.ends_with("\"description\":{description!j}}}"),
            "{template}"
        );
    }

    #[test]
    fn instagram_files_are_keyed_by_media_id() {
        let value = serde_json::json!({
            "url": "https://scontent.cdninstagram.com/v/t51/123_n.jpg?stp=dst-jpg",
            "category": "instagram", "subcategory": "posts",
            "media_id": 3_141_592_653_589_793_238u64, "post_shortcode": "CxYz",
            "date": "2025-10-12 14:15:23", "width": 1440, "height": 1800,
            "extension": "jpg", "username": "someone", "num": 2
        });
        let item = item_from_listing("instagram", false, "post", &value).unwrap();
        assert_eq!(item.archive_key, "instagram:3141592653589793238");
        assert_eq!(item.media_id.as_deref(), Some("3141592653589793238"));
        assert_eq!(item.resolution, Some((1440, 1800)));
        assert_eq!(item.metadata["resolution"], "1440x1800");
        assert_eq!(item.metadata["shortcode"], "CxYz");
        assert_eq!(
            item.suggested_name.as_deref(),
            Some("3141592653589793238.jpg")
        );
        assert_eq!(
            item.posted_at.unwrap().to_rfc3339(),
            "2025-10-12T14:15:23+00:00"
        );
    }

    #[test]
    fn files_without_ids_fall_back_to_their_url() {
        let value = serde_json::json!({"url": "http://127.0.0.1:9/a.jpg?x=1", "media_id": null});
        let item = item_from_listing("instagram", false, "post", &value).unwrap();
        assert_eq!(item.archive_key, "instagram:url:http://127.0.0.1:9/a.jpg");
        assert!(
            item_from_listing(
                "instagram",
                false,
                "post",
                &serde_json::json!({"url": null})
            )
            .is_err()
        );
    }

    #[test]
    fn general_files_are_keyed_by_gallery_dls_archive_entry() {
        let value = serde_json::json!({
            "url": "https://pbs.twimg.com/media/Abc.jpg?name=orig",
            "archive_entry": "twitter1234567890_1", "category": "twitter", "id": 1234567890u64,
            "date": "2025-01-02 03:04:05", "extension": "jpg", "num": 1
        });
        let item = item_from_listing("gallery", true, "media", &value).unwrap();
        assert_eq!(item.archive_key, "gallery:twitter1234567890_1");
        assert_eq!(item.content_type, "media");
        assert!(item.referer.is_none());
        let unkeyed = serde_json::json!({"url": "https://x.example/a.jpg", "archive_entry": null});
        assert!(item_from_listing("gallery", true, "media", &unkeyed).is_err());
    }
}
