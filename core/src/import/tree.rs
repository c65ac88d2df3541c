//! Importing a directory tree of media files: walked on a blocking thread
//! (symbolic links followed, loops detected), each new file hashed
//! (SHA-256, streamed) and recorded with its path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::keys::ytdlp_key;
use super::{DirectoryImport, ImportError, ImportScope, ImportService, ImportSummary, Reporter};
use crate::model::{DownloadStatus, Metadata, NewDownload};

/// Largest `.info.json` sidecar read (they hold format lists, so they are
/// big, but never this big).
const MAX_INFO_JSON: u64 = 16 * 1024 * 1024;

/// What the walker found.
enum Found {
    /// A media file, with what its name and sidecar say about it.
    Media {
        path: PathBuf,
        size: u64,
        origin: Option<Origin>,
    },
    /// A file that is not media (a sidecar, a text file, a FIFO).
    NotMedia,
    /// Something that cannot be imported, and why.
    Problem(String),
}

/// Where a file came from, when its name or sidecar says.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    archive_key: String,
    platform: &'static str,
    url: String,
    source: Option<String>,
    post_date: Option<DateTime<Utc>>,
    metadata: Metadata,
}

pub(super) async fn import_directory(
    service: &ImportService,
    dir: &DirectoryImport,
    scope: &ImportScope,
    report: &Reporter,
) -> Result<ImportSummary, ImportError> {
    let root = scope.check(&dir.path).map_err(ImportError::Input)?;
    if !root.is_dir() {
        return Err(ImportError::Input(format!(
            "{} is not a directory",
            dir.path.display()
        )));
    }
    if let Some(platform) = &dir.platform {
        let valid = !platform.is_empty()
            && platform.len() <= 32
            && platform
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(ImportError::Input(format!(
                "{platform:?} is not a platform name"
            )));
        }
    }
    let infer_youtube = matches!(dir.platform.as_deref(), None | Some("video"));
    let (tx, mut rx) = mpsc::channel(64);
    let walker = {
        let (root, scope) = (root.clone(), scope.clone());
        tokio::task::spawn_blocking(move || walk(&root, &scope, infer_youtube, &tx))
    };
    let mut summary = ImportSummary::default();
    let mut files = 0u64;
    while let Some(found) = rx.recv().await {
        files += 1;
        match found {
            Found::NotMedia => summary.not_media += 1,
            Found::Problem(problem) => summary.skip(problem),
            Found::Media { path, size, origin } => {
                if let Err(err) = import_file(service, dir, &path, size, origin, &mut summary).await
                {
                    summary.stopped = Some(format!("recording failed: {err}"));
                    break;
                }
            }
        }
        report.report(files, None, &summary);
    }
    drop(rx);
    // The walker stops at its next send once the receiver is gone.
    let _ = walker.await;
    Ok(summary)
}

/// Records one media file: known paths are not hashed again; bytes
/// already stored make a duplicate record.
async fn import_file(
    service: &ImportService,
    dir: &DirectoryImport,
    path: &Path,
    size: u64,
    origin: Option<Origin>,
    summary: &mut ImportSummary,
) -> Result<(), crate::error::StoreError> {
    let file_url = url::Url::from_file_path(path).map_or_else(
        |()| format!("file://{}", path.display()),
        |url| url.to_string(),
    );
    let origin = origin.unwrap_or_else(|| Origin {
        archive_key: format!("direct:{file_url}"),
        platform: "direct",
        url: file_url,
        source: None,
        post_date: None,
        metadata: Metadata::new(),
    });
    if let Some(existing) = service
        .store
        .download_by_archive_key(&origin.archive_key)
        .await?
        && existing.status == DownloadStatus::Completed
        && existing.file_path.is_some()
    {
        summary.already_known += 1;
        return Ok(());
    }
    let hashed = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || hash_file(&path)).await
    };
    let file_hash = match hashed {
        Ok(Ok(hash)) => hash,
        Ok(Err(err)) => {
            summary.skip(format!("cannot read {}: {err}", path.display()));
            return Ok(());
        }
        Err(err) => {
            summary.skip(format!("hashing {} failed: {err}", path.display()));
            return Ok(());
        }
    };
    let platform = if origin.platform == "direct" {
        dir.platform.clone().unwrap_or_else(|| "direct".into())
    } else {
        origin.platform.to_owned()
    };
    let source = dir
        .source
        .clone()
        .or(origin.source)
        .unwrap_or_else(|| parent_name(path));
    let mut metadata = origin.metadata;
    metadata.insert("imported_from".into(), "directory".into());
    metadata.insert("import_path".into(), dir.path.display().to_string().into());
    let own_path = path.display().to_string();
    let filename = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let owner = service.store.download_by_file_hash(&file_hash).await?;
    let (file_path, filename, duplicate_of) = match owner {
        Some(owner)
            if owner.file_path.is_some() && owner.file_path.as_deref() != Some(&own_path) =>
        {
            metadata.insert("imported_path".into(), own_path.into());
            (owner.file_path, owner.filename, Some(owner.id))
        }
        _ => (Some(own_path), filename, None),
    };
    let content_type = super::content_type_of(&platform).to_owned();
    let new = NewDownload {
        url: origin.url,
        archive_key: origin.archive_key,
        platform,
        source,
        content_type,
        filename,
        file_path,
        file_size: Some(size),
        file_hash: Some(file_hash),
        post_date: origin.post_date,
        download_date: service.clock.now(),
        status: DownloadStatus::Completed,
        attempts: 0,
        error_message: None,
        duplicate_of,
        queue_id: None,
        metadata,
    };
    match service.record(new).await? {
        super::Recorded::New if duplicate_of.is_some() => summary.duplicates += 1,
        super::Recorded::New => summary.imported += 1,
        super::Recorded::Known => summary.already_known += 1,
    }
    Ok(())
}

/// The name of `path`'s directory (the source of a file nothing else names).
fn parent_name(path: &Path) -> String {
    path.parent().and_then(Path::file_name).map_or_else(
        || "imported".into(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// `sha256:<hex>` of the file, read in 128 KiB pieces.
fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 128 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Walks `root` (on a blocking thread) and sends what it finds; stops
/// when the receiver is gone.
fn walk(root: &Path, scope: &ImportScope, infer_youtube: bool, tx: &mpsc::Sender<Found>) {
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walker {
        let found = match entry {
            Err(err) => Found::Problem(walk_problem(&err)),
            Ok(entry) if entry.file_type().is_dir() => continue,
            Ok(entry) => classify(
                entry.path(),
                entry.file_type().is_file(),
                scope,
                infer_youtube,
            ),
        };
        if tx.blocking_send(found).is_err() {
            return;
        }
    }
}

/// A walk error as a sentence: symbolic link loops name both ends.
fn walk_problem(err: &walkdir::Error) -> String {
    let path = err
        .path()
        .map_or_else(String::new, |path| path.display().to_string());
    match err.loop_ancestor() {
        Some(ancestor) => format!(
            "{path}: a symbolic link loop (back to {}), not followed",
            ancestor.display()
        ),
        None => match err.io_error() {
            Some(io) => format!("{path}: {io}"),
            None => format!("{path}: {err}"),
        },
    }
}

/// What one walked entry is.
fn classify(path: &Path, regular: bool, scope: &ImportScope, infer_youtube: bool) -> Found {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden files (our own `.mediadl-*.part` among them), FIFOs, devices
    // and sockets are never media to import.
    if !regular || name.starts_with('.') || !is_media(path) {
        return Found::NotMedia;
    }
    let resolved = match scope.check(path) {
        Ok(resolved) => resolved,
        Err(problem) => return Found::Problem(problem),
    };
    let size = match std::fs::metadata(&resolved) {
        Ok(meta) => meta.len(),
        Err(err) => return Found::Problem(format!("{}: {err}", path.display())),
    };
    let origin = info_json_origin(path).or_else(|| {
        infer_youtube
            .then(|| youtube_id_from_name(path))
            .flatten()
            .map(youtube_origin)
    });
    Found::Media {
        path: resolved,
        size,
        origin,
    }
}

/// Images, video and audio, by file name.
fn is_media(path: &Path) -> bool {
    mime_guess::from_path(path).iter().any(|mime| {
        matches!(
            mime.type_(),
            mime_guess::mime::IMAGE | mime_guess::mime::VIDEO | mime_guess::mime::AUDIO
        )
    })
}

/// The YouTube id in a file's name: yt-dlp's and Pinchflat's
/// `… [<id>].ext`, or Tube Archivist's `<channel id>/<id>.ext`.
fn youtube_id_from_name(path: &Path) -> Option<String> {
    static BRACKETED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\[([A-Za-z0-9_-]{11})\]$").expect("valid pattern"));
    static BARE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_-]{11}$").expect("valid pattern"));
    static CHANNEL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^UC[A-Za-z0-9_-]{22}$").expect("valid pattern"));
    let stem = path.file_stem()?.to_str()?;
    if let Some(found) = BRACKETED.captures(stem) {
        return Some(found[1].to_owned());
    }
    let parent = path.parent()?.file_name()?.to_str()?;
    (BARE.is_match(stem) && CHANNEL.is_match(parent)).then(|| stem.to_owned())
}

fn youtube_origin(id: String) -> Origin {
    let mut metadata = Metadata::new();
    metadata.insert("media_id".into(), id.clone().into());
    metadata.insert("extractor".into(), "youtube".into());
    Origin {
        archive_key: format!("video:youtube {id}"),
        platform: "video",
        url: format!("https://www.youtube.com/watch?v={id}"),
        source: None,
        post_date: None,
        metadata,
    }
}

/// What a yt-dlp `<stem>.info.json` beside the file says.
fn info_json_origin(path: &Path) -> Option<Origin> {
    let stem = path.file_stem()?.to_str()?;
    let sidecar = path.with_file_name(format!("{stem}.info.json"));
    let file = std::fs::File::open(sidecar).ok()?;
    let mut text = String::new();
    file.take(MAX_INFO_JSON).read_to_string(&mut text).ok()?;
    let info: Value = serde_json::from_str(&text).ok()?;
    let text_of = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_owned);
    let extractor = text_of("extractor_key")?.to_lowercase();
    let id = match info.get("id")? {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let archive_key = ytdlp_key(&format!("{extractor} {id}"))?;
    let platform = if archive_key.starts_with("tiktok:") {
        "tiktok"
    } else {
        "video"
    };
    let mut metadata = Metadata::new();
    metadata.insert("media_id".into(), id.clone().into());
    metadata.insert("extractor".into(), extractor.into());
    for key in ["title", "uploader", "channel", "duration"] {
        if let Some(found) = info.get(key).filter(|v| !v.is_null()) {
            metadata.insert(key.into(), found.clone());
        }
    }
    let post_date = text_of("upload_date")
        .and_then(|day| NaiveDate::parse_from_str(&day, "%Y%m%d").ok())
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc());
    Some(Origin {
        archive_key,
        platform,
        url: text_of("webpage_url").unwrap_or_else(|| format!("yt-dlp:{id}")),
        source: text_of("channel_url").or_else(|| text_of("uploader_url")),
        post_date,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn youtube_ids_are_read_from_the_usual_names() {
        let cases = [
            ("/m/Never Gonna [dQw4w9WgXcQ].mp4", Some("dQw4w9WgXcQ")),
            ("/m/20091025 Song [dQw4w9WgXcQ].webm", Some("dQw4w9WgXcQ")),
            (
                "/m/UCuAXFkgsw1L7xaCfnd5JJOw/dQw4w9WgXcQ.mp4",
                Some("dQw4w9WgXcQ"),
            ),
            ("/m/holiday/dQw4w9WgXcQ.mp4", None),
            ("/m/holiday [2019].jpg", None),
            ("/m/photo.jpg", None),
        ];
        for (path, want) in cases {
            assert_eq!(
                youtube_id_from_name(Path::new(path)).as_deref(),
                want,
                "{path}"
            );
        }
    }

    #[test]
    fn media_is_told_by_its_name() {
        for media in ["a.jpg", "b.MP4", "c.webm", "d.mp3", "e.png"] {
            assert!(is_media(Path::new(media)), "{media}");
        }
        for other in ["a.info.json", "b.nfo", "c.txt", "d.part", "e"] {
            assert!(!is_media(Path::new(other)), "{other}");
        }
    }

    #[test]
    fn an_info_json_sidecar_names_the_item() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("clip.mp4");
        std::fs::write(&video, b"video").unwrap();
        std::fs::write(
            dir.path().join("clip.info.json"),
            r#"{"id": "abc123", "extractor_key": "Vimeo", "webpage_url": "https://vimeo.com/abc123",
                "upload_date": "20240102", "channel_url": "https://vimeo.com/someone", "title": "Clip"}"#,
        )
        .unwrap();
        let origin = info_json_origin(&video).unwrap();
        assert_eq!(origin.archive_key, "video:vimeo abc123");
        assert_eq!(origin.url, "https://vimeo.com/abc123");
        assert_eq!(origin.source.as_deref(), Some("https://vimeo.com/someone"));
        assert_eq!(
            origin.post_date.unwrap().to_rfc3339(),
            "2024-01-02T00:00:00+00:00"
        );
        assert_eq!(origin.metadata["title"], "Clip");
        // A sidecar that is not JSON says nothing.
        std::fs::write(dir.path().join("clip.info.json"), "not json").unwrap();
        assert_eq!(info_json_origin(&video), None);
    }

    #[test]
    fn hashes_are_the_engines_form() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(
            hash_file(&file).unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

#[cfg(test)]
mod import_tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::import::ImportSource;
    use crate::store::{DownloadRepo, MemoryStore};

    /// An import service over a fresh in-memory store, and that store.
    fn memory_service() -> (Arc<MemoryStore>, ImportService) {
        let store = Arc::new(MemoryStore::new());
        let service = ImportService::new(store.clone(), Arc::new(SystemClock));
        (store, service)
    }

    fn directory(path: &Path) -> ImportSource {
        ImportSource::Directory(DirectoryImport {
            path: path.to_path_buf(),
            platform: None,
            source: None,
        })
    }

    #[tokio::test]
    async fn a_tree_is_recorded_once_with_duplicates_loops_and_broken_links_reported() {
        let (store, service) = memory_service();
        let tree = tempfile::tempdir().unwrap();
        let album = tree.path().join("holiday");
        std::fs::create_dir(&album).unwrap();
        std::fs::write(album.join("a.jpg"), b"picture a").unwrap();
        std::fs::write(album.join("copy of a.jpg"), b"picture a").unwrap();
        std::fs::write(album.join("b.png"), b"picture b").unwrap();
        std::fs::write(album.join("notes.txt"), b"not media").unwrap();
        std::fs::write(album.join(".hidden.jpg"), b"hidden").unwrap();
        std::os::unix::fs::symlink(tree.path(), album.join("loop")).unwrap();
        std::os::unix::fs::symlink(album.join("gone.jpg"), album.join("dangling.jpg")).unwrap();
        let scope = ImportScope::unrestricted();
        let first = service
            .import(&directory(tree.path()), &scope, None)
            .await
            .unwrap();
        assert_eq!((first.imported, first.duplicates), (2, 1), "{first}");
        assert_eq!(first.not_media, 2, "{first}");
        assert_eq!(first.skipped, 2, "{first}");
        let problems = first.problems.join("\n");
        assert!(problems.contains("symbolic link loop"), "{problems}");
        assert!(problems.contains("dangling.jpg"), "{problems}");
        assert_eq!(first.stopped, None);

        let root = std::fs::canonicalize(&album).unwrap();
        let original = store
            .download_by_file_hash(&hash_file(&root.join("a.jpg")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(original.platform, "direct");
        assert_eq!(original.source, "holiday");
        assert_eq!(original.file_size, Some(9));
        let copy_url = url::Url::from_file_path(root.join("copy of a.jpg")).unwrap();
        let copy = store
            .download_by_archive_key(&format!("direct:{copy_url}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copy.duplicate_of, Some(original.id));
        assert_eq!(copy.file_path, original.file_path);

        let again = service
            .import(&directory(tree.path()), &scope, None)
            .await
            .unwrap();
        assert_eq!(
            (again.imported, again.duplicates, again.already_known),
            (0, 0, 3)
        );
    }

    #[tokio::test]
    async fn a_video_file_fills_in_its_archive_entry_and_scope_is_kept() {
        let (store, service) = memory_service();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive.txt");
        std::fs::write(&archive, "youtube dQw4w9WgXcQ\n").unwrap();
        let scope = ImportScope::unrestricted();
        service
            .import(&ImportSource::YtDlpArchive(archive), &scope, None)
            .await
            .unwrap();
        let videos = dir.path().join("videos");
        std::fs::create_dir(&videos).unwrap();
        std::fs::write(videos.join("Song [dQw4w9WgXcQ].mp4"), b"video").unwrap();
        let summary = service
            .import(&directory(&videos), &scope, None)
            .await
            .unwrap();
        assert_eq!(summary.imported, 1, "{summary}");
        let record = store
            .download_by_archive_key("video:youtube dQw4w9WgXcQ")
            .await
            .unwrap()
            .unwrap();
        assert!(
            record
                .file_path
                .unwrap()
                .ends_with("Song [dQw4w9WgXcQ].mp4")
        );
        assert_eq!(record.platform, "video");

        // A link out of the allowed root is not read.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.jpg"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.jpg"), videos.join("s.jpg"))
            .unwrap();
        let confined = ImportScope::within(vec![dir.path().to_path_buf()]);
        let summary = service
            .import(&directory(&videos), &confined, None)
            .await
            .unwrap();
        assert_eq!((summary.imported, summary.skipped), (0, 1), "{summary}");
        assert!(summary.problems[0].contains("outside"), "{summary}");
        let err = service
            .import(&directory(outside.path()), &confined, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
