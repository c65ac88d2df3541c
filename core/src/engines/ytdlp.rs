//! The `yt-dlp` program as a downloader: TikTok's `yt-dlp`, and platform
//! `video` (any site yt-dlp supports; the source is a channel, playlist or
//! video URL).
//!
//! Listing: `--lazy-playlist --print` with a JSON template of ours, one
//! line per video, newest first as the site lists them; the program is
//! killed when the engine stops pulling. TikTok lists flat
//! (`--flat-playlist`); `video` opens each entry (so every site gives its
//! upload date and the extractor that will download it) unless
//! `platforms.video.fast_listing` is on. Transfer: one video into a private
//! work directory, byte progress from our `--progress-template`, the
//! result's path (and its metadata) from `--print-to-file after_move:%()j`.
//!
//! Archive keys of `video` are yt-dlp's own `--download-archive` lines:
//! `video:{extractor} {id}`, where `{extractor}` is the entry's `ie_key`
//! (the extractor that downloads a flat entry) or its `extractor_key`,
//! lowercased as yt-dlp writes it (`video:youtube dQw4w9WgXcQ`); see
//! [`archive_key`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::Value;
use url::Url;

use super::driver::{Binding, Program, Run, Sources, Target};
use super::{archive_key, excerpt, id_text, parse_timestamp};
use crate::downloader::{Context, Downloader, MediaItem, Request, Staging, Unavailable};
use crate::error::{DownloadError, Error};
use crate::model::general_platforms::{Quality, VideoSettings};
use crate::model::{DownloaderInfo, Metadata, Settings};
use crate::recognise::Recognition;

/// The downloader's name within its platform.
pub const NAME: &str = "yt-dlp";
const ITEM_MARKER: &str = "mediadl-item ";
const PROGRESS_MARKER: &str = "mediadl-progress ";
const ITEM_TEMPLATE: &str = "mediadl-item %(.{id,ie_key,extractor_key,url,webpage_url,timestamp,upload_date,title,description,uploader,uploader_id,channel_id,width,height,duration,ext})j";
const PROGRESS_TEMPLATE: &str = "download:mediadl-progress %(progress.{status,downloaded_bytes,total_bytes,total_bytes_estimate})j";
/// What a listing says about a video that the download record keeps.
const DESCRIPTIVE_KEYS: [&str; 5] = [
    "title",
    "description",
    "uploader",
    "uploader_id",
    "channel_id",
];
/// The stem of every file of a transfer in its work directory.
const STEM: &str = "media";

static PROGRAM: Program = Program {
    name: NAME,
    display_name: "yt-dlp",
    alias: "ytdlp",
    // Oldest release with every option used here (`--lazy-playlist`,
    // `%(.{…})j` templates, `--progress-template`, `--print-to-file`).
    minimum_version: &[2023, 1, 1],
    base_args: &["--ignore-config", "--color", "never", "--no-cache-dir"],
    timeout_args: |seconds| vec!["--socket-timeout".into(), seconds.to_string()],
    logs_errors: false,
};

/// yt-dlp for one platform.
#[derive(Debug, Clone)]
pub struct YtDlp {
    binding: Binding,
}

impl YtDlp {
    /// TikTok accounts (`https://www.tiktok.com/@{username}`), content type `videos`.
    pub fn tiktok() -> Self {
        Self {
            binding: Binding::new(
                &PROGRAM,
                "tiktok",
                "TikTok",
                Sources::Accounts(&[("videos", "https://www.tiktok.com/@{username}", "video")]),
            ),
        }
    }

    /// Platform `video`: any URL yt-dlp accepts (a channel, a playlist, one
    /// video), content type `videos`.
    pub fn video() -> Self {
        Self {
            binding: Binding::new(
                &PROGRAM,
                "video",
                "Video sites",
                Sources::Urls {
                    content_type: "videos",
                    item_type: "video",
                },
            ),
        }
    }

    /// `platforms.video` for the general platform; `None` for TikTok.
    fn video_settings(&self, settings: &Settings) -> Result<Option<VideoSettings>, DownloadError> {
        if !self.binding.is_general() {
            return Ok(None);
        }
        VideoSettings::read(settings)
            .map(Some)
            .map_err(|err| DownloadError::permanent(err.to_string()))
    }
}

#[async_trait]
impl Downloader for YtDlp {
    fn info(&self) -> DownloaderInfo {
        self.binding.info(&["date_filtering", "limit_downloads"])
    }

    /// Only the general platform (`video`) claims URLs, by the
    /// program's extractor patterns ([`super::extractors`]).
    async fn recognise(&self, url: &Url, settings: &Settings) -> Option<Recognition> {
        super::extractors::recognise(
            super::extractors::Program::YtDlp,
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
        let video = self.video_settings(&cx.settings);
        self.binding.list(
            request,
            cx,
            ITEM_MARKER,
            move |_run: &Run, _target: &Target| {
                let video = video.ok().flatten();
                let mut args = Vec::new();
                if video.as_ref().is_none_or(|video| video.fast_listing) {
                    args.push("--flat-playlist".to_owned());
                }
                if let Some(video) = &video {
                    args.extend(pacing_args(video));
                }
                args.extend(["--lazy-playlist", "--print", ITEM_TEMPLATE].map(String::from));
                args
            },
            move |value: &Value, target: &Target| {
                item_from_listing(platform, general, value, target)
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

impl YtDlp {
    async fn transfer_one(
        &self,
        item: &MediaItem,
        staging: &Staging,
        cx: &Context,
    ) -> Result<PathBuf, DownloadError> {
        let video = self.video_settings(&cx.settings)?;
        let mut run = self.binding.start(cx, Some(staging), &item.url)?;
        let info_file = run.work.path().join("info.jsonl");
        let output = run.work.path().join(format!("{STEM}.%(ext)s"));
        run.args.extend(
            [
                "--no-playlist",
                "--newline",
                // The engine sets the upload date itself (when asked).
                "--no-mtime",
                "--progress-template",
                PROGRESS_TEMPLATE,
                "--print-to-file",
                "after_move:%()j",
            ]
            .map(String::from),
        );
        run.args.push(info_file.to_string_lossy().into_owned());
        run.args.push("--output".into());
        run.args.push(output.to_string_lossy().into_owned());
        if let Some(video) = &video {
            run.args
                .extend(output_args(video).map_err(DownloadError::permanent)?);
            run.args.extend(pacing_args(video));
        }
        run.args.push("--".into());
        run.args.push(item.url.to_string());
        let finished = run
            .transfer(cx, |line| {
                line.strip_prefix(PROGRESS_MARKER).and_then(parse_progress)
            })
            .await?;
        let info = std::fs::read_to_string(&info_file).map_err(|_| {
            DownloadError::permanent(format!(
                "yt-dlp exited without reporting a file: {}",
                excerpt(&finished.stderr)
            ))
        })?;
        let (produced, mut metadata) = produced_path(&info).ok_or_else(|| {
            DownloadError::permanent(format!("yt-dlp reported no file path: {}", excerpt(&info)))
        })?;
        listing_knows_better(&mut metadata, item);
        let mut companions = Vec::new();
        if let Some(video) = &video {
            if video.nfo {
                let nfo = run.work.path().join(format!("{STEM}.nfo"));
                std::fs::write(&nfo, super::nfo::document(&metadata, &video.nfo_kind))
                    .map_err(|err| DownloadError::Storage(format!("{}: {err}", nfo.display())))?;
            }
            companions = companion_files(run.work.path(), &produced, &info_file);
            if video.mtime_from_upload_date
                && let Some(at) = upload_time(&metadata)
            {
                for path in std::iter::once(&produced).chain(&companions) {
                    set_modified(path, at)?;
                }
            }
        }
        run.keep(cx, &produced, &companions)
    }
}

/// What the listing said about the video wins over what the transfer
/// alone saw: a feed's entry has its title and date, while the file it
/// points to has only a name and a `Last-Modified`.
fn listing_knows_better(metadata: &mut Value, item: &MediaItem) {
    let Some(fields) = metadata.as_object_mut() else {
        return;
    };
    for key in DESCRIPTIVE_KEYS {
        if let Some(value) = item.metadata.get(key).filter(|v| !v.is_null()) {
            fields.insert(key.into(), value.clone());
        }
    }
    if let Some(at) = item.posted_at {
        fields.insert("timestamp".into(), at.timestamp().into());
        fields.insert("upload_date".into(), at.format("%Y%m%d").to_string().into());
    }
}

/// yt-dlp's pacing options from the settings.
fn pacing_args(video: &VideoSettings) -> Vec<String> {
    let mut args = Vec::new();
    if video.sleep_requests_seconds > 0.0 {
        args.push("--sleep-requests".into());
        args.push(video.sleep_requests_seconds.to_string());
    }
    if !video.limit_rate.trim().is_empty() {
        args.push("--limit-rate".into());
        args.push(video.limit_rate.trim().to_owned());
    }
    args
}

/// yt-dlp's format and companion-file options from `platforms.video`.
pub fn output_args(video: &VideoSettings) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    match video.quality().map_err(|err| err.to_string())? {
        Quality::Best => {}
        Quality::UpTo(height) => {
            // Best video no taller than `height`; a smaller one when none is.
            args.push("-S".into());
            args.push(format!("res:{height}"));
        }
        Quality::Audio => {
            args.extend(["-f", "bestaudio/best", "-x", "--audio-format"].map(String::from));
            args.push(video.audio_format.clone());
        }
    }
    if !video.subtitles.is_empty() {
        args.push("--write-subs".into());
        args.push("--sub-langs".into());
        args.push(video.subtitles.join(","));
        if video.embed_subtitles {
            args.push("--embed-subs".into());
        }
    }
    if video.thumbnail || video.nfo {
        // The .nfo names the thumbnail as its poster.
        args.push("--write-thumbnail".into());
    }
    if video.info_json {
        args.push("--write-info-json".into());
    }
    Ok(args)
}

/// The files of a transfer beside the video (`media.info.json`,
/// `media.en.vtt`, `media.webp`, `media.nfo`): every finished file of the
/// work directory named after the video's stem, but the video itself and
/// our own bookkeeping.
fn companion_files(dir: &Path, produced: &Path, info_file: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.is_file() && path != produced && path != info_file)
                .filter(|path| {
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    name.starts_with(&format!("{STEM}."))
                        && !name.ends_with(".part")
                        && !name.ends_with(".ytdl")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// When the video was uploaded: its `timestamp`, else its `upload_date`.
fn upload_time(metadata: &Value) -> Option<DateTime<Utc>> {
    metadata
        .get("timestamp")
        .and_then(parse_timestamp)
        .or_else(|| metadata.get("upload_date").and_then(parse_timestamp))
}

/// Sets a file's modification time (media servers sort by it).
fn set_modified(path: &Path, at: DateTime<Utc>) -> Result<(), DownloadError> {
    let storage =
        |err: std::io::Error| DownloadError::Storage(format!("{}: {err}", path.display()));
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(storage)?;
    file.set_modified(at.into()).map_err(storage)
}

/// A listed entry as a media item.
///
/// TikTok: key `tiktok:<id>`, the entry's `url` (a video page, which
/// yt-dlp downloads from later). `video` (`general`): key
/// `video:<extractor> <id>` as yt-dlp's archive writes it, and the entry's
/// own page (`webpage_url`); an entry whose page is the listed page itself
/// (videos embedded in one page) has no page of its own, so its media
/// `url` is used.
pub(crate) fn item_from_listing(
    platform: &str,
    general: bool,
    value: &Value,
    target: &Target,
) -> Result<MediaItem, String> {
    let id = value
        .get("id")
        .and_then(id_text)
        .ok_or("the entry has no id")?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let http = |text: &str| {
        Url::parse(text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
    };
    let own_page = text("webpage_url")
        .and_then(http)
        .filter(|page| general && *page != target.url);
    let url = own_page
        .or_else(|| text("url").and_then(http))
        .or_else(|| text("webpage_url").and_then(http))
        .ok_or_else(|| format!("entry {id} has no http(s) URL"))?;
    let key = if general {
        let extractor = text("ie_key")
            .or_else(|| text("extractor_key"))
            .ok_or_else(|| format!("entry {id} names no extractor"))?;
        archive_key(platform, &format!("{} {id}", extractor.to_lowercase()))
    } else {
        format!("{platform}:{id}")
    };
    let mut item = MediaItem::new(key, url, target.item_type);
    item.media_id = Some(id.clone());
    item.posted_at = value
        .get("timestamp")
        .and_then(parse_timestamp)
        .or_else(|| value.get("upload_date").and_then(parse_timestamp));
    let dimension = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    item.resolution = dimension("width").zip(dimension("height"));
    let mut metadata = Metadata::new();
    metadata.insert("media_id".into(), Value::String(id));
    metadata.insert("downloader".into(), Value::String(NAME.into()));
    if let Some((width, height)) = item.resolution {
        metadata.insert(
            "resolution".into(),
            Value::String(format!("{width}x{height}")),
        );
    }
    for key in DESCRIPTIVE_KEYS
        .iter()
        .chain(&["duration", "extractor_key"])
    {
        if let Some(found) = value.get(key).filter(|v| !v.is_null()) {
            metadata.insert((*key).into(), found.clone());
        }
    }
    item.metadata = metadata;
    Ok(item)
}

/// `{"status":…,"downloaded_bytes":…,"total_bytes":…,"total_bytes_estimate":…}`
/// → bytes done and the total when known.
pub fn parse_progress(json: &str) -> Option<(u64, Option<u64>)> {
    let value: Value = serde_json::from_str(json).ok()?;
    let number = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_f64)
            .map(|n| n.max(0.0) as u64)
    };
    let done = number("downloaded_bytes")?;
    Some((
        done,
        number("total_bytes").or_else(|| number("total_bytes_estimate")),
    ))
}

/// The final path and the video's metadata from `after_move:%()j`
/// output (the last line wins).
fn produced_path(info: &str) -> Option<(PathBuf, Value)> {
    info.lines().rev().find_map(|line| {
        let value: Value = serde_json::from_str(line).ok()?;
        let path = value
            .get("filepath")
            .and_then(Value::as_str)
            .or_else(|| {
                value
                    .pointer("/requested_downloads/0/filepath")
                    .and_then(Value::as_str)
            })
            .or_else(|| value.get("_filename").and_then(Value::as_str))?;
        Some((PathBuf::from(path), value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_entries_become_items() {
        let value = serde_json::json!({
            "id": "7301234567890123456",
            "url": "https://www.tiktok.com/@someone/video/7301234567890123456",
            "webpage_url": null,
            "timestamp": 1_700_000_000,
            "title": "a clip",
            "width": 1080, "height": 1920
        });
        let item = item_from_listing("tiktok", false, &value, &target()).unwrap();
        assert_eq!(item.archive_key, "tiktok:7301234567890123456");
        assert_eq!(
            item.url.as_str(),
            "https://www.tiktok.com/@someone/video/7301234567890123456"
        );
        assert_eq!(item.posted_at.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(item.resolution, Some((1080, 1920)));
        assert_eq!(item.metadata["resolution"], "1080x1920");
        let listed = |value: Value| item_from_listing("tiktok", false, &value, &target());
        assert!(listed(serde_json::json!({"url": "https://x/"})).is_err());
        assert!(listed(serde_json::json!({"id": "1", "url": "file:///etc"})).is_err());
    }

    fn target() -> Target {
        Target {
            url: Url::parse("https://www.youtube.com/@someone/videos").unwrap(),
            item_type: "video",
            label: "someone".into(),
        }
    }

    #[test]
    fn general_entries_are_keyed_as_ytdlp_archives_them() {
        // A flat entry: `ie_key` names the extractor that downloads it.
        let flat = serde_json::json!({
            "id": "dQw4w9WgXcQ", "ie_key": "Youtube", "extractor_key": "YoutubeTab",
            "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "webpage_url": null
        });
        let item = item_from_listing("video", true, &flat, &target()).unwrap();
        assert_eq!(item.archive_key, "video:youtube dQw4w9WgXcQ");
        assert_eq!(
            item.url.as_str(),
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
        );
        // An opened entry has its own page, which yt-dlp downloads from.
        let opened = serde_json::json!({
            "id": "76979871", "extractor_key": "Vimeo", "upload_date": "20130828",
            "url": "https://vod.example/76979871.mp4", "webpage_url": "https://vimeo.com/76979871"
        });
        let item = item_from_listing("video", true, &opened, &target()).unwrap();
        assert_eq!(item.archive_key, "video:vimeo 76979871");
        assert_eq!(item.url.as_str(), "https://vimeo.com/76979871");
        assert_eq!(
            item.posted_at.unwrap().to_rfc3339(),
            "2013-08-28T00:00:00+00:00"
        );
        // Videos embedded in the listed page: their media URL.
        let embedded = serde_json::json!({
            "id": "someone-1", "extractor_key": "HTML5MediaEmbed",
            "url": "https://www.youtube.com/media/a.mp4",
            "webpage_url": "https://www.youtube.com/@someone/videos"
        });
        let item = item_from_listing("video", true, &embedded, &target()).unwrap();
        assert_eq!(item.archive_key, "video:html5mediaembed someone-1");
        assert_eq!(item.url.path(), "/media/a.mp4");
        let nameless = serde_json::json!({"id": "1", "url": "https://x.example/1"});
        assert!(item_from_listing("video", true, &nameless, &target()).is_err());
    }

    #[test]
    fn progress_lines_give_bytes() {
        assert_eq!(
            parse_progress(
                r#"{"status":"downloading","downloaded_bytes":1024,"total_bytes":4096}"#
            ),
            Some((1024, Some(4096)))
        );
        assert_eq!(
            parse_progress(
                r#"{"downloaded_bytes":10,"total_bytes":null,"total_bytes_estimate":99.5}"#
            ),
            Some((10, Some(99)))
        );
        assert_eq!(parse_progress("garbage"), None);
    }

    #[test]
    fn the_moved_file_is_read_from_the_info_line() {
        assert_eq!(
            produced_path("{\"id\":\"1\",\"filepath\":\"/tmp/x/media.mp4\"}\n").map(|p| p.0),
            Some(PathBuf::from("/tmp/x/media.mp4"))
        );
        assert_eq!(produced_path("not json"), None);
    }
}
