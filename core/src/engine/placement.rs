//! Where a file goes: directory and file name templates, sanitising every
//! name that came from a remote source, and the check that the final path
//! stays under the download root.
//!
//! ```
//! use std::path::Path;
//!
//! use chrono::{TimeZone, Utc};
//! use mediadl::MediaItem;
//! use mediadl::engine::placement::{NameParts, contained_path, relative_location};
//!
//! let item = MediaItem {
//!     posted_at: Utc.with_ymd_and_hms(2025, 10, 12, 14, 15, 23).single(),
//!     media_id: Some("3141592653".into()),
//!     ..MediaItem::new(
//!         "instagram:3141592653",
//!         "https://cdn.example/p/3141592653.jpg".parse().unwrap(),
//!         "post",
//!     )
//! };
//! let parts = NameParts {
//!     platform: "instagram",
//!     // Remote names are sanitised: no separators, no `..`.
//!     source: "../evalongoria",
//!     content_type: "posts",
//!     item: &item,
//!     original_name: None,
//!     media_type: Some("image/jpeg"),
//!     now: Utc::now(),
//! };
//! // The default templates of `downloads.directory_template` and `filename_template`.
//! let (dir, name) = relative_location(
//!     "{platform}/{source}",
//!     "{source}_{date:%Y%m%d_%H%M%S}_{media_id}.{ext}",
//!     &parts,
//! );
//! assert_eq!(dir, Path::new("instagram/_evalongoria"));
//! assert_eq!(name, "_evalongoria_20251012_141523_3141592653.jpg");
//!
//! let root = Path::new("/data/downloads");
//! assert!(contained_path(root, &dir.join(&name)).is_ok());
//! assert!(contained_path(root, Path::new("../etc/passwd")).is_err());
//! ```

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::downloader::MediaItem;
use crate::error::DownloadError;

/// Longest file name written, in bytes (file systems allow 255).
const MAX_NAME_BYTES: usize = 200;

/// Names Windows refuses, refused everywhere so archives can be copied.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Makes one path component safe: no separators, no control characters,
/// no `.`/`..`, no leading dots or trailing dots/spaces, no reserved names,
/// at most 200 bytes (cut on a character boundary).
pub fn sanitize_component(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    name = name
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .to_owned();
    if name.is_empty() {
        name = "_".into();
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        name.insert(0, '_');
    }
    truncate_keeping_extension(&name, MAX_NAME_BYTES)
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => (stem, Some(ext)),
        _ => (name, None),
    };
    let room = max - ext.map_or(0, |e| e.len() + 1);
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    match ext {
        Some(ext) => format!("{}.{ext}", &stem[..cut]),
        None => stem[..cut].to_owned(),
    }
}

/// Joins `relative` (already sanitised components) under `root` and checks
/// that the result stays inside it, lexically (no `..`, no absolute parts).
///
/// # Errors
///
/// [`DownloadError::Permanent`] when `relative` would leave `root`.
pub fn contained_path(root: &Path, relative: &Path) -> Result<PathBuf, DownloadError> {
    let mut path = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => {
                return Err(DownloadError::permanent(format!(
                    "refused path {}: it would leave the download root",
                    relative.display()
                )));
            }
        }
    }
    if !path.starts_with(root) {
        return Err(DownloadError::permanent(format!(
            "refused path {}",
            path.display()
        )));
    }
    Ok(path)
}

/// The keys of a queue item's `metadata` (and a job's `config`) that
/// replace the global `downloads.directory_template` and
/// `downloads.filename_template` for that source.
pub const TEMPLATE_OVERRIDES: [&str; 2] = ["directory_template", "filename_template"];

/// The directory and filename templates of an item whose `metadata` may
/// override the settings' (see [`TEMPLATE_OVERRIDES`]).
pub fn templates<'a>(
    metadata: &'a crate::model::Metadata,
    settings: &'a crate::model::Settings,
) -> (&'a str, &'a str) {
    let given = |key: &str| {
        metadata
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|text| !text.trim().is_empty())
    };
    (
        given(TEMPLATE_OVERRIDES[0]).unwrap_or(&settings.downloads.directory_template),
        given(TEMPLATE_OVERRIDES[1]).unwrap_or(&settings.downloads.filename_template),
    )
}

/// Refuses template overrides that are not non-empty strings, are
/// absolute, or climb out with `..` (the rendered path is checked again
/// by [`contained_path`]). `prefix` names the field (`metadata`, `config`).
pub fn check_template_overrides(
    metadata: &crate::model::Metadata,
    prefix: &str,
) -> Result<(), crate::Error> {
    for key in TEMPLATE_OVERRIDES {
        let Some(value) = metadata.get(key) else {
            continue;
        };
        let field = format!("{prefix}.{key}");
        let text = value
            .as_str()
            .filter(|text| !text.trim().is_empty() && text.len() <= 512)
            .ok_or_else(|| {
                crate::Error::invalid(&field, "must be a template of 1 to 512 characters")
            })?;
        let path = Path::new(text);
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(crate::Error::invalid(
                &field,
                format!("{text:?} must stay inside the download root (no leading '/', no '..')"),
            ));
        }
    }
    Ok(())
}

/// Values the templates can use.
#[derive(Debug, Clone)]
pub struct NameParts<'a> {
    /// `{platform}`: the platform name.
    pub platform: &'a str,
    /// `{source}`: the account, thread or URL host the item came from.
    pub source: &'a str,
    /// `{content_type}`: what the queue item asked for (`posts`, `thread`, …).
    pub content_type: &'a str,
    /// The item: `{media_id}`, the post date of `{date}`, and its metadata
    /// keys as placeholders of their own.
    pub item: &'a MediaItem,
    /// The file's own name (Content-Disposition, URL, or the program's output), unsanitised.
    pub original_name: Option<&'a str>,
    /// The response's media type, for the extension when the name has none.
    pub media_type: Option<&'a str>,
    /// When the download happened (`{date}` when the item has no post date).
    pub now: DateTime<Utc>,
}

impl NameParts<'_> {
    /// The file's extension (lower case, without the dot): from the original
    /// name, else from the URL's path, else from the media type, else `bin`.
    pub fn extension(&self) -> String {
        let from_name = |name: &str| {
            let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
            base.rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase())
                .filter(|ext| {
                    !ext.is_empty()
                        && ext.len() <= 8
                        && ext.chars().all(|c| c.is_ascii_alphanumeric())
                })
        };
        self.original_name
            .and_then(from_name)
            .or_else(|| {
                let segment = self
                    .item
                    .url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or_default();
                from_name(&percent_encoding::percent_decode_str(segment).decode_utf8_lossy())
            })
            .or_else(|| self.media_type.and_then(extension_for_media_type))
            .unwrap_or_else(|| "bin".into())
    }

    /// The original file name without its extension, for `{filename}`.
    pub fn original_stem(&self) -> String {
        let name = self
            .original_name
            .map(str::to_owned)
            .or_else(|| {
                self.item
                    .url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .map(|segment| {
                        percent_encoding::percent_decode_str(segment)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
            })
            .unwrap_or_default();
        let base = name.rsplit(['/', '\\']).next().unwrap_or(&name).to_owned();
        let stem = match base.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_owned(),
            _ => base,
        };
        if stem.trim().is_empty() {
            "download".into()
        } else {
            stem
        }
    }

    fn lookup(&self, key: &str) -> Option<String> {
        let date = self.item.posted_at.unwrap_or(self.now);
        if let Some(format) = key.strip_prefix("date:") {
            return Some(format_date(date, format));
        }
        Some(match key {
            "platform" => self.platform.to_owned(),
            "source" => self.source.to_owned(),
            "content_type" => self.content_type.to_owned(),
            "media_id" => {
                self.item.media_id.clone().unwrap_or_else(|| {
                    crate::model::url_hash(&self.item.archive_key)[..12].to_owned()
                })
            }
            "ext" => self.extension(),
            "filename" => self.original_stem(),
            "date" => format_date(date, "%Y%m%d_%H%M%S"),
            "year" => format_date(date, "%Y"),
            "month" => format_date(date, "%m"),
            "day" => format_date(date, "%d"),
            other => match self.item.metadata.get(other)? {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => return None,
                value => value.to_string(),
            },
        })
    }
}

fn format_date(date: DateTime<Utc>, format: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    // An invalid strftime pattern makes chrono's Display fail: fall back to the default.
    if write!(out, "{}", date.format(format)).is_err() {
        out.clear();
        let _ = write!(out, "{}", date.format("%Y%m%d_%H%M%S"));
    }
    out
}

/// The usual extension of a media type.
pub fn extension_for_media_type(media_type: &str) -> Option<String> {
    let known = match media_type {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/avif" => "avif",
        "image/heic" => "heic",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "text/plain" => "txt",
        "text/html" => "html",
        "application/json" => "json",
        "application/octet-stream" => return None,
        other => {
            return mime_guess::get_mime_extensions_str(other)
                .and_then(|exts| exts.first())
                .map(|e| (*e).to_owned());
        }
    };
    Some(known.to_owned())
}

/// Renders a template: `{key}` placeholders (see [`NameParts`]), `{{`/`}}`
/// for literal braces. Unknown keys render empty. Each `/`-separated part
/// of the result is sanitised separately.
pub fn render(template: &str, parts: &NameParts<'_>) -> PathBuf {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let key: String = chars.by_ref().take_while(|&c| c != '}').collect();
                if let Some(value) = parts.lookup(key.trim()) {
                    // Values never introduce directories.
                    out.push_str(&value.replace(['/', '\\'], "_"));
                }
            }
            c => out.push(c),
        }
    }
    out.split(['/', '\\'])
        .filter(|part| !part.trim().is_empty())
        .map(sanitize_component)
        .collect()
}

/// The relative directory and file name for an item: the directory
/// template, then the file name template for items with a media id, or the
/// file's own name (Content-Disposition, URL) for plain files.
pub fn relative_location(
    directory_template: &str,
    filename_template: &str,
    parts: &NameParts<'_>,
) -> (PathBuf, String) {
    let dir = render(directory_template, parts);
    let name = if parts.item.media_id.is_some() || parts.item.posted_at.is_some() {
        let rendered = render(filename_template, parts);
        rendered.to_string_lossy().replace(['/', '\\'], "_")
    } else {
        sanitize_component(&format!("{}.{}", parts.original_stem(), parts.extension()))
    };
    (dir, sanitize_component(&name))
}

/// `name`, or `name_1.ext`, `name_2.ext`, … for the `attempt`-th try.
pub fn numbered(name: &str, attempt: u32) -> String {
    if attempt == 0 {
        return name.to_owned();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}_{attempt}.{ext}"),
        _ => format!("{name}_{attempt}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sources_may_bring_their_own_templates_inside_the_root() {
        let settings = crate::model::Settings::default();
        let mut metadata = crate::model::Metadata::new();
        assert_eq!(
            templates(&metadata, &settings),
            (
                settings.downloads.directory_template.as_str(),
                settings.downloads.filename_template.as_str()
            )
        );
        metadata.insert("directory_template".into(), "channels/{source}".into());
        assert_eq!(templates(&metadata, &settings).0, "channels/{source}");
        check_template_overrides(&metadata, "metadata").unwrap();
        for (key, bad) in [
            ("directory_template", serde_json::json!("../outside")),
            ("directory_template", serde_json::json!("/etc")),
            ("filename_template", serde_json::json!("")),
            ("filename_template", serde_json::json!(7)),
        ] {
            let mut metadata = crate::model::Metadata::new();
            metadata.insert(key.into(), bad.clone());
            let err = check_template_overrides(&metadata, "config").unwrap_err();
            assert!(
                matches!(&err, crate::Error::Invalid { field, .. } if *field == format!("config.{key}")),
                "{bad}: {err:?}"
            );
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn item(url: &str) -> MediaItem {
        MediaItem::new("k", url::Url::parse(url).unwrap(), "file")
    }

    fn parts<'a>(
        item: &'a MediaItem,
        original: Option<&'a str>,
        media_type: Option<&'a str>,
    ) -> NameParts<'a> {
        NameParts {
            platform: "direct",
            source: "example.com",
            content_type: "file",
            item,
            original_name: original,
            media_type,
            now: DateTime::parse_from_rfc3339("2025-10-12T14:15:23Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn plain_files_keep_their_names() {
        let it = item("https://e.com/files/photo%20one.JPG?x=1");
        let (dir, name) = relative_location(
            "{platform}/{source}",
            "{source}_{media_id}.{ext}",
            &parts(&it, None, None),
        );
        assert_eq!(dir, PathBuf::from("direct/example.com"));
        assert_eq!(name, "photo one.jpg");

        let it = item("https://e.com/download?id=3");
        let (_, name) = relative_location("x", "y", &parts(&it, Some("../../etc/passwd"), None));
        assert_eq!(name, "passwd.bin");
        let (_, name) = relative_location("x", "y", &parts(&it, None, Some("image/png")));
        assert_eq!(name, "download.png");
    }

    #[test]
    fn media_items_use_the_template() {
        let mut it = item("https://cdn.e.com/v/abc.jpg");
        it.media_id = Some("123456789".into());
        it.posted_at = Some(
            DateTime::parse_from_rfc3339("2025-10-12T14:15:23Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let p = NameParts {
            source: "evalongoria",
            platform: "instagram",
            ..parts(&it, None, None)
        };
        let (dir, name) = relative_location(
            "{platform}/{source}",
            "{source}_{date:%Y%m%d_%H%M%S}_{media_id}.{ext}",
            &p,
        );
        assert_eq!(dir, PathBuf::from("instagram/evalongoria"));
        assert_eq!(name, "evalongoria_20251012_141523_123456789.jpg");
    }

    #[test]
    fn templates_cannot_escape_and_reserved_names_are_changed() {
        let mut it = item("https://e.com/a.jpg");
        it.metadata.insert("title".into(), "../../x".into());
        let rendered = render("{title}/../{source}", &parts(&it, None, None));
        assert!(
            rendered
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "{rendered:?}"
        );
        assert_eq!(sanitize_component("CON.txt"), "_CON.txt");
        assert_eq!(sanitize_component(".."), "_");
        assert_eq!(sanitize_component("a\0b"), "a_b");
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let cut = sanitize_component(&long);
        assert!(
            cut.len() <= MAX_NAME_BYTES && cut.ends_with(".jpeg"),
            "{cut}"
        );
    }

    #[test]
    fn numbering() {
        assert_eq!(numbered("a.jpg", 0), "a.jpg");
        assert_eq!(numbered("a.jpg", 2), "a_2.jpg");
        assert_eq!(numbered("noext", 1), "noext_1");
    }

    proptest! {
        #[test]
        fn sanitized_components_are_single_safe_names(raw in "\\PC{0,400}") {
            let name = sanitize_component(&raw);
            prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
            prop_assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0'));
            prop_assert!(name != "." && name != ".." && !name.starts_with('.'));
            let path = Path::new(&name);
            prop_assert_eq!(path.components().count(), 1);
            prop_assert!(matches!(path.components().next(), Some(Component::Normal(_))));
        }

        #[test]
        fn contained_paths_stay_under_the_root(parts in proptest::collection::vec("\\PC{0,40}", 0..6)) {
            let root = Path::new("/srv/media");
            let relative: PathBuf = parts.iter().map(|p| sanitize_component(p)).collect();
            let joined = contained_path(root, &relative).unwrap();
            prop_assert!(joined.starts_with(root));
            let raw: PathBuf = parts.iter().collect();
            if let Ok(joined) = contained_path(root, &raw) {
                prop_assert!(joined.starts_with(root));
                prop_assert!(!joined.components().any(|c| matches!(c, Component::ParentDir)));
            }
        }
    }
}
