//! The `gallery-dl` program as a downloader (Instagram's `gallery-dl`).
//!
//! Listing: `--print` (`-N`, which lists without downloading) with a JSON
//! template of ours, one line per file, and `url-metadata` so each line
//! carries the file's URL. Transfer: that URL, through gallery-dl again,
//! into a private work directory; progress is the size of what it has
//! written so far (gallery-dl reports none in machine-readable form).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
pub const NAME: &str = "gallery-dl";
/// Oldest release with `--print` and `url-metadata`.
const MINIMUM_VERSION: &[u32] = &[1, 26, 0];
const ITEM_MARKER: &str = "mediadl-item ";
/// The metadata key gallery-dl puts each file's URL under.
const URL_KEY: &str = "mediadl_url";
/// How often the work directory is measured for progress.
const PROGRESS_POLL: Duration = Duration::from_millis(250);

/// One JSON object per file; `{x!j}` is `null` when a field is missing.
fn item_template() -> String {
    let fields = [
        ("url", URL_KEY),
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
    format!("prepare:{ITEM_MARKER}{{{{{}}}}}", body.join(","))
}

/// gallery-dl for one platform.
#[derive(Debug, Clone)]
pub struct GalleryDl {
    platform: &'static str,
    platform_display_name: &'static str,
    /// Content type → default source URL template and the item's content type.
    sources: &'static [(&'static str, &'static str, &'static str)],
    versions: Arc<VersionCache>,
}

impl GalleryDl {
    /// Instagram accounts: posts, stories and reels.
    pub fn instagram() -> Self {
        Self {
            platform: "instagram",
            platform_display_name: "Instagram",
            sources: &[
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
            ],
            versions: Arc::new(VersionCache::default()),
        }
    }

    /// The general platform `gallery` as recognition sees it, for this
    /// crate's tests until `GalleryDl::gallery()` (the general platforms'
    /// work) is merged; replace its uses with that constructor then.
    #[cfg(test)]
    pub(crate) fn general_for_tests() -> Self {
        Self {
            platform: "gallery",
            platform_display_name: "Gallery sites",
            sources: &[("media", "{username}", "media")],
            ..Self::instagram()
        }
    }

    fn source(&self, content_type: &str) -> Option<(&'static str, &'static str)> {
        self.sources
            .iter()
            .find(|(name, _, _)| *name == content_type)
            .map(|(_, url, item_type)| (*url, *item_type))
    }

    fn settings(&self, settings: &Settings) -> Result<ProgramSettings, DownloadError> {
        ProgramSettings::read(settings, self.platform, NAME).map_err(DownloadError::Permanent)
    }

    fn program(&self, settings: &ProgramSettings) -> Result<PathBuf, DownloadError> {
        super::locate(&settings.path, NAME).map_err(|err| DownloadError::permanent(err.reason))
    }

    fn common_args(
        &self,
        cx: &Context,
        work: &WorkDir,
        program: &ProgramSettings,
    ) -> Result<Vec<String>, DownloadError> {
        let mut args: Vec<String> = ["--config-ignore", "--no-colors", "--no-input"]
            .map(String::from)
            .to_vec();
        args.push("-o".into());
        args.push(format!(
            "timeout={}",
            cx.settings.network.read_timeout_seconds
        ));
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
impl Downloader for GalleryDl {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: self.platform.into(),
            platform_display_name: self.platform_display_name.into(),
            name: NAME.into(),
            display_name: "gallery-dl".into(),
            aliases: vec!["gallerydl".into()],
            content_types: self
                .sources
                .iter()
                .map(|(name, _, _)| (*name).into())
                .collect(),
            features: vec![
                "quality_upgrade".into(),
                "date_filtering".into(),
                "limit_downloads".into(),
            ],
            listing_order: ListingOrder::NewestFirst,
            accepts_cookies: true,
            is_default: false,
        }
    }

    /// Only the general platform (`gallery`) claims URLs, by the
    /// program's extractor patterns ([`super::extractors`]).
    async fn recognise(&self, url: &Url, settings: &Settings) -> Option<Recognition> {
        super::extractors::recognise(Program::GalleryDl, &self.info(), url, settings).await
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
        if self.source(&request.content_type).is_none() {
            let known: Vec<&str> = self.sources.iter().map(|(name, _, _)| *name).collect();
            return Err(Error::invalid(
                "content_type",
                format!(
                    "{} has no content type {:?} (known: {})",
                    self.platform,
                    request.content_type,
                    known.join(", ")
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
            let (default_url, item_type) = this.source(&request.content_type).ok_or_else(|| {
                DownloadError::permanent(format!("unknown content type {:?}", request.content_type))
            })?;
            let program = this.settings(&cx.settings)?;
            let path = this.program(&program)?;
            let source_url = program.source_url(default_url, &username, &request.content_type);
            let work = WorkDir::new(None)?;
            let mut args = this.common_args(&cx, &work, &program)?;
            args.extend(["-o".to_owned(), format!("url-metadata={URL_KEY}")]);
            args.extend(["--print".to_owned(), item_template(), "--".to_owned()]);
            args.push(source_url.clone());
            let invocation = program.invocation(NAME, path).args(args);
            let mut run = RunningProgram::spawn(&invocation)?;
            let mut listed = 0usize;
            let mut unreadable = Vec::new();
            loop {
                match run.next_event(&cx.cancel, None).await? {
                    ProgramEvent::Line(line) => {
                        let Some(json) = line.strip_prefix(ITEM_MARKER) else {
                            unreadable.push(line);
                            continue;
                        };
                        let value: Value = serde_json::from_str(json).map_err(|err| {
                            DownloadError::permanent(format!(
                                "gallery-dl printed an unreadable item ({err}): {}",
                                excerpt(json)
                            ))
                        })?;
                        match item_from_listing(this.platform, item_type, &value) {
                            Ok(item) => {
                                listed += 1;
                                yield item;
                            }
                            Err(reason) => tracing::warn!(
                                platform = this.platform,
                                source = %username,
                                "gallery-dl listed a file mediadl cannot use: {reason}"
                            ),
                        }
                    }
                    ProgramEvent::Eof => break,
                    ProgramEvent::Tick => {}
                }
            }
            let finished = run.finish(&cx.cancel).await?;
            // gallery-dl logs errors without always failing: an error line
            // on stderr is a failure too.
            let logged_error = finished.stderr.to_ascii_lowercase().contains("][error]");
            if !finished.status.success() || (listed == 0 && logged_error) {
                Err(classify_failure(NAME, &finished.stderr, finished.status.code()))?;
            }
            if listed == 0 && !unreadable.is_empty() {
                Err(DownloadError::permanent(format!(
                    "gallery-dl printed no readable entries for {source_url}: {}",
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

impl GalleryDl {
    async fn transfer_one(
        &self,
        item: &MediaItem,
        staging: &Staging,
        cx: &Context,
    ) -> Result<PathBuf, DownloadError> {
        let program = self.settings(&cx.settings)?;
        let path = self.program(&program)?;
        let work = WorkDir::new(Some(staging))?;
        let mut args = self.common_args(cx, &work, &program)?;
        args.extend(["--no-mtime", "--no-skip", "-D"].map(String::from));
        args.push(work.path().to_string_lossy().into_owned());
        args.extend(["-f", "media.{extension}", "--"].map(String::from));
        args.push(item.url.to_string());
        let invocation = program.invocation(NAME, path).args(args);
        let mut run = RunningProgram::spawn(&invocation)?;
        cx.progress.set(0, None);
        let mut written = 0;
        loop {
            match run.next_event(&cx.cancel, Some(PROGRESS_POLL)).await? {
                ProgramEvent::Line(_) => {}
                ProgramEvent::Eof => break,
                ProgramEvent::Tick => {
                    let now = work.bytes_written();
                    if now != written {
                        // A growing file is progress: the run is not stalled.
                        run.touch();
                        written = now;
                        cx.progress.set(written, None);
                    }
                }
            }
        }
        let finished = run.finish(&cx.cancel).await?;
        let logged_error = finished.stderr.to_ascii_lowercase().contains("][error]");
        if !finished.status.success() || logged_error {
            return Err(classify_failure(
                NAME,
                &finished.stderr,
                finished.status.code(),
            ));
        }
        let produced = single_file(work.path()).ok_or_else(|| {
            DownloadError::permanent(format!(
                "gallery-dl exited without writing a file: {}",
                excerpt(&finished.stderr)
            ))
        })?;
        let kept = work.keep(&produced)?;
        let size = std::fs::metadata(&kept).map(|meta| meta.len()).unwrap_or(0);
        cx.progress.set(size, Some(size));
        Ok(kept)
    }
}

/// The one finished file gallery-dl wrote (not a `.part`, not our cookies).
fn single_file(dir: &Path) -> Option<PathBuf> {
    let mut files = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name != "cookies.txt" && !name.ends_with(".part")
        });
    let first = files.next()?;
    files.next().is_none().then_some(first)
}

/// A listed file as a media item. Instagram files carry `media_id` (the
/// same pk the native client keys on, so the two downloaders agree on
/// what is archived); others fall back to their URL without its query.
pub fn item_from_listing(
    platform: &str,
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
    let archive_key = match &media_id {
        Some(id) => format!("{platform}:{id}"),
        None => {
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
    item.referer = Url::parse("https://www.instagram.com/")
        .ok()
        .filter(|_| platform == "instagram");
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
            template.starts_with("prepare:mediadl-item {{\"url\":{mediadl_url!j},"),
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
        let item = item_from_listing("instagram", "post", &value).unwrap();
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
        let item = item_from_listing("instagram", "post", &value).unwrap();
        assert_eq!(item.archive_key, "instagram:url:http://127.0.0.1:9/a.jpg");
        assert!(item_from_listing("instagram", "post", &serde_json::json!({"url": null})).is_err());
    }
}
