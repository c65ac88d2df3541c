//! The `yt-dlp` program as a downloader (TikTok's `yt-dlp`).
//!
//! Listing: `--flat-playlist --lazy-playlist --print` with a JSON template
//! of ours, one line per video, newest first as the site lists them; the
//! program is killed when the engine stops pulling. Transfer: one video
//! into a private work directory, byte progress from our
//! `--progress-template`, the result's path from `--print-to-file
//! after_move:%()j`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use serde_json::Value;
use url::Url;

use super::extractors::Program;
use super::runner::{ProgramEvent, RunningProgram};
use super::{
    ProgramSettings, VersionCache, WorkDir, check_program, classify_failure, excerpt, id_text,
    parse_timestamp, platform_cookies, proxy_for,
};
use crate::downloader::{Context, Downloader, MediaItem, Request, Staging, Unavailable};
use crate::error::{DownloadError, Error};
use crate::model::{DownloaderInfo, ListingOrder, Metadata, Settings};
use crate::platforms::accounts;
use crate::recognise::Recognition;

/// The downloader's name within its platform.
pub const NAME: &str = "yt-dlp";
/// Oldest release with every option used here (`--lazy-playlist`,
/// `%(.{…})j` templates, `--progress-template`, `--print-to-file`).
const MINIMUM_VERSION: &[u32] = &[2023, 1, 1];
const ITEM_MARKER: &str = "mediadl-item ";
const PROGRESS_MARKER: &str = "mediadl-progress ";
const ITEM_TEMPLATE: &str = "mediadl-item %(.{id,url,webpage_url,timestamp,upload_date,title,description,uploader,uploader_id,channel_id,width,height,duration,ext})j";
const PROGRESS_TEMPLATE: &str = "download:mediadl-progress %(progress.{status,downloaded_bytes,total_bytes,total_bytes_estimate})j";

/// yt-dlp for one platform.
#[derive(Debug, Clone)]
pub struct YtDlp {
    platform: &'static str,
    platform_display_name: &'static str,
    content_types: &'static [&'static str],
    default_url: &'static str,
    versions: Arc<VersionCache>,
}

impl YtDlp {
    /// TikTok accounts (`https://www.tiktok.com/@{username}`), content type `videos`.
    pub fn tiktok() -> Self {
        Self {
            platform: "tiktok",
            platform_display_name: "TikTok",
            content_types: &["videos"],
            default_url: "https://www.tiktok.com/@{username}",
            versions: Arc::new(VersionCache::default()),
        }
    }

    /// The general platform `video` as recognition sees it, for this
    /// crate's tests until `YtDlp::video()` (the general platforms' work)
    /// is merged; replace its uses with that constructor then.
    #[cfg(test)]
    pub(crate) fn general_for_tests() -> Self {
        Self {
            platform: "video",
            platform_display_name: "Video sites",
            content_types: &["videos"],
            ..Self::tiktok()
        }
    }

    fn settings(&self, settings: &Settings) -> Result<ProgramSettings, DownloadError> {
        ProgramSettings::read(settings, self.platform, NAME).map_err(DownloadError::Permanent)
    }

    fn program(&self, settings: &ProgramSettings) -> Result<PathBuf, DownloadError> {
        super::locate(&settings.path, NAME).map_err(|err| DownloadError::permanent(err.reason))
    }

    /// Options every run gets: no user configuration, no colours, the
    /// platform's proxy and cookies.
    fn common_args(
        &self,
        cx: &Context,
        work: &WorkDir,
        program: &ProgramSettings,
    ) -> Result<Vec<String>, DownloadError> {
        let mut args: Vec<String> = ["--ignore-config", "--color", "never", "--no-cache-dir"]
            .map(String::from)
            .to_vec();
        args.push("--socket-timeout".into());
        args.push(cx.settings.network.read_timeout_seconds.to_string());
        if let Some(proxy) = proxy_for(cx, self.platform) {
            args.push("--proxy".into());
            args.push(proxy);
        }
        if let Some(cookies) = platform_cookies(&cx.settings, self.platform) {
            let path = work.write_cookies(&cookies)?;
            args.push("--cookies".into());
            args.push(path.to_string_lossy().into_owned());
        }
        args.extend(program.extra_args.iter().cloned());
        Ok(args)
    }
}

#[async_trait]
impl Downloader for YtDlp {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: self.platform.into(),
            platform_display_name: self.platform_display_name.into(),
            name: NAME.into(),
            display_name: "yt-dlp".into(),
            aliases: vec!["ytdlp".into()],
            content_types: self.content_types.iter().map(|t| (*t).into()).collect(),
            features: vec!["date_filtering".into(), "limit_downloads".into()],
            listing_order: ListingOrder::NewestFirst,
            accepts_cookies: true,
            is_default: false,
        }
    }

    /// Only the general platform (`video`) claims URLs, by the
    /// program's extractor patterns ([`super::extractors`]).
    async fn recognise(&self, url: &Url, settings: &Settings) -> Option<Recognition> {
        super::extractors::recognise(Program::YtDlp, &self.info(), url, settings).await
    }

    async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
        check_program(
            settings,
            self.platform,
            NAME,
            NAME,
            MINIMUM_VERSION,
            &self.versions,
        )
        .await
        .map(|_| ())
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        accounts::username(self.platform, &request.source)?;
        if !self.content_types.contains(&request.content_type.as_str()) {
            return Err(Error::invalid(
                "content_type",
                format!(
                    "{} has no content type {:?} (known: {})",
                    self.platform,
                    request.content_type,
                    self.content_types.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn discover(
        &self,
        request: &Request,
        cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        let this = self.clone();
        let request = request.clone();
        let cx = cx.clone();
        async_stream::try_stream! {
            let username = accounts::username(this.platform, &request.source)
                .map_err(|err| DownloadError::permanent(err.to_string()))?;
            let program = this.settings(&cx.settings)?;
            let path = this.program(&program)?;
            let source_url = program.source_url(this.default_url, &username, &request.content_type);
            let work = WorkDir::new(None)?;
            let mut args = this.common_args(&cx, &work, &program)?;
            args.extend(
                ["--flat-playlist", "--lazy-playlist", "--print", ITEM_TEMPLATE, "--"]
                    .map(String::from),
            );
            args.push(source_url.clone());
            let invocation = program.invocation(NAME, path).args(args);
            let mut run = RunningProgram::spawn(&invocation)?;
            let mut listed = 0usize;
            let mut unreadable = Vec::new();
            loop {
                match run.next_event(&cx.cancel, None).await? {
                    ProgramEvent::Line(line) => {
                        let Some(json) = line.strip_prefix(ITEM_MARKER) else {
                            // yt-dlp's own chatter on stdout; not ours to read.
                            unreadable.push(line);
                            continue;
                        };
                        let value: Value = serde_json::from_str(json).map_err(|err| {
                            DownloadError::permanent(format!(
                                "yt-dlp printed an unreadable item ({err}): {}",
                                excerpt(json)
                            ))
                        })?;
                        match item_from_listing(this.platform, &value) {
                            Ok(item) => {
                                listed += 1;
                                yield item;
                            }
                            Err(reason) => tracing::warn!(
                                platform = this.platform,
                                source = %username,
                                "yt-dlp listed an entry mediadl cannot use: {reason}"
                            ),
                        }
                    }
                    ProgramEvent::Eof => break,
                    ProgramEvent::Tick => {}
                }
            }
            let finished = run.finish(&cx.cancel).await?;
            if !finished.status.success() {
                Err(classify_failure(NAME, &finished.stderr, finished.status.code()))?;
            }
            if listed == 0 && !unreadable.is_empty() {
                Err(DownloadError::permanent(format!(
                    "yt-dlp printed no readable entries for {source_url}: {}",
                    excerpt(&unreadable.join(" | "))
                )))?;
            }
            drop(work);
        }
        .boxed()
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
        let program = self.settings(&cx.settings)?;
        let path = self.program(&program)?;
        let work = WorkDir::new(Some(staging))?;
        let info_file = work.path().join("info.jsonl");
        let output = work.path().join("media.%(ext)s");
        let mut args = self.common_args(cx, &work, &program)?;
        args.extend(
            [
                "--no-playlist",
                "--newline",
                "--no-mtime",
                "--progress-template",
                PROGRESS_TEMPLATE,
                "--print-to-file",
                "after_move:%()j",
            ]
            .map(String::from),
        );
        args.push(info_file.to_string_lossy().into_owned());
        args.push("--output".into());
        args.push(output.to_string_lossy().into_owned());
        args.push("--".into());
        args.push(item.url.to_string());
        let invocation = program.invocation(NAME, path).args(args);
        let mut run = RunningProgram::spawn(&invocation)?;
        cx.progress.set(0, None);
        loop {
            match run.next_event(&cx.cancel, None).await? {
                ProgramEvent::Line(line) => {
                    if let Some(json) = line.strip_prefix(PROGRESS_MARKER)
                        && let Some((done, total)) = parse_progress(json)
                    {
                        cx.progress.set(done, total);
                    }
                }
                ProgramEvent::Eof => break,
                ProgramEvent::Tick => {}
            }
        }
        let finished = run.finish(&cx.cancel).await?;
        if !finished.status.success() {
            return Err(classify_failure(
                NAME,
                &finished.stderr,
                finished.status.code(),
            ));
        }
        let info = std::fs::read_to_string(&info_file).map_err(|_| {
            DownloadError::permanent(format!(
                "yt-dlp exited without reporting a file: {}",
                excerpt(&finished.stderr)
            ))
        })?;
        let produced = produced_path(&info).ok_or_else(|| {
            DownloadError::permanent(format!("yt-dlp reported no file path: {}", excerpt(&info)))
        })?;
        let kept = work.keep(&produced)?;
        let size = std::fs::metadata(&kept).map(|meta| meta.len()).unwrap_or(0);
        cx.progress.set(size, Some(size));
        Ok(kept)
    }
}

/// A listed entry as a media item: `<platform>:<id>`, the entry's URL
/// (a video page, which yt-dlp downloads from later; the page of the whole
/// listing only when the entry has none), the post time and the rest.
pub fn item_from_listing(platform: &str, value: &Value) -> Result<MediaItem, String> {
    let id = value
        .get("id")
        .and_then(id_text)
        .ok_or("the entry has no id")?;
    let url = ["url", "webpage_url"]
        .iter()
        .filter_map(|key| value.get(*key).and_then(Value::as_str))
        .find_map(|text| {
            Url::parse(text)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
        })
        .ok_or_else(|| format!("entry {id} has no http(s) URL"))?;
    let mut item = MediaItem::new(format!("{platform}:{id}"), url, "video");
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
    for key in [
        "title",
        "description",
        "uploader",
        "uploader_id",
        "channel_id",
        "duration",
    ] {
        if let Some(found) = value.get(key).filter(|v| !v.is_null()) {
            metadata.insert(key.into(), found.clone());
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

/// The final path from `after_move:%()j` output (the last line wins).
fn produced_path(info: &str) -> Option<PathBuf> {
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
        Some(PathBuf::from(path))
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
        let item = item_from_listing("tiktok", &value).unwrap();
        assert_eq!(item.archive_key, "tiktok:7301234567890123456");
        assert_eq!(
            item.url.as_str(),
            "https://www.tiktok.com/@someone/video/7301234567890123456"
        );
        assert_eq!(item.posted_at.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(item.resolution, Some((1080, 1920)));
        assert_eq!(item.metadata["resolution"], "1080x1920");
        assert!(item_from_listing("tiktok", &serde_json::json!({"url": "https://x/"})).is_err());
        assert!(
            item_from_listing(
                "tiktok",
                &serde_json::json!({"id": "1", "url": "file:///etc"})
            )
            .is_err()
        );
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
            produced_path("{\"id\":\"1\",\"filepath\":\"/tmp/x/media.mp4\"}\n"),
            Some(PathBuf::from("/tmp/x/media.mp4"))
        );
        assert_eq!(produced_path("not json"), None);
    }
}
