//! The two archive formats: yt-dlp's text file and gallery-dl's SQLite
//! database.

use std::path::Path;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::keys::{gallerydl_key, split_ytdlp_entry, ytdlp_key};
use super::{BATCH, ImportError, ImportService, ImportSource, ImportSummary, Reporter};
use crate::model::{Metadata, NewDownload};

/// The longest line a yt-dlp archive entry may be: longer ones are not
/// entries (a binary file has few newlines), and no line is ever held
/// whole beyond this.
const MAX_LINE: u64 = 4096;
/// Lines read without one entry among them before the file is taken to be
/// something else.
const GIVE_UP_AFTER: u64 = 20;

/// Opens gallery-dl archive databases. Core holds no SQL: `mediadl-store`
/// implements this (`GalleryDlArchiveReader`, read-only SQLite).
#[async_trait]
pub trait ArchiveDatabaseReader: Send + Sync + std::fmt::Debug {
    /// The database at `path`, opened read-only.
    ///
    /// # Errors
    ///
    /// A sentence saying why it cannot be read (not a database, no
    /// `archive` table).
    async fn open(&self, path: &Path) -> Result<Box<dyn ArchivePages>, String>;
}

/// An open archive database, read in pages in `entry` order.
#[async_trait]
pub trait ArchivePages: Send {
    /// Entries in all.
    ///
    /// # Errors
    ///
    /// A sentence saying why the database cannot be read.
    async fn count(&mut self) -> Result<u64, String>;

    /// Up to `limit` entries after `after` (from the first when `None`),
    /// ascending; fewer than `limit` only at the end.
    ///
    /// # Errors
    ///
    /// A sentence saying why the database cannot be read.
    async fn next_page(&mut self, after: Option<&str>, limit: usize)
    -> Result<Vec<String>, String>;
}

/// What the first bytes of a file say it is.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    Empty,
    Sqlite,
    Text,
    Binary,
}

async fn sniff(path: &Path) -> Result<Sniffed, ImportError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|err| ImportError::Input(format!("cannot open {}: {err}", path.display())))?;
    let mut head = Vec::with_capacity(512);
    (&mut file)
        .take(512)
        .read_to_end(&mut head)
        .await
        .map_err(|err| ImportError::Input(format!("cannot read {}: {err}", path.display())))?;
    Ok(if head.iter().all(u8::is_ascii_whitespace) {
        Sniffed::Empty
    } else if head.starts_with(b"SQLite format 3\0") {
        Sniffed::Sqlite
    } else if head.contains(&0) || std::str::from_utf8(cut_at_char(&head)).is_err() {
        Sniffed::Binary
    } else {
        Sniffed::Text
    })
}

/// `head` without a UTF-8 sequence cut off at its end.
fn cut_at_char(head: &[u8]) -> &[u8] {
    match std::str::from_utf8(head) {
        Err(err) if err.error_len().is_none() => &head[..err.valid_up_to()],
        _ => head,
    }
}

/// Refuses a file whose first bytes are not `wanted` (a yt-dlp archive is
/// text, a gallery-dl archive SQLite), saying what it looks like instead.
async fn expect_format(path: &Path, wanted: Sniffed) -> Result<(), ImportError> {
    let found = sniff(path).await?;
    let what = match (&wanted, &found) {
        (_, Sniffed::Empty) => return Err(empty(path)),
        _ if found == wanted => return Ok(()),
        (Sniffed::Text, Sniffed::Sqlite) => {
            "is an SQLite database, not a yt-dlp download archive \
             (a gallery-dl archive? import it as one)"
        }
        (Sniffed::Text, _) => "is not a text file, so not a yt-dlp download archive",
        (_, Sniffed::Text) => {
            "is a text file, not a gallery-dl archive database \
             (a yt-dlp archive? import it as one)"
        }
        _ => "is not an SQLite database, so not a gallery-dl archive",
    };
    Err(ImportError::Input(format!("{} {what}", path.display())))
}

fn empty(path: &Path) -> ImportError {
    ImportError::Input(format!("{} is empty: nothing to import", path.display()))
}

/// Reads a yt-dlp archive line by line, writing a batch every [`BATCH`]
/// entries.
pub(super) async fn import_ytdlp_file(
    service: &ImportService,
    path: &Path,
    report: &Reporter,
) -> Result<ImportSummary, ImportError> {
    expect_format(path, Sniffed::Text).await?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|err| ImportError::Input(format!("cannot open {}: {err}", path.display())))?;
    let total = file.metadata().await.ok().map(|meta| meta.len());
    let source = ImportSource::YtDlpArchive(path.to_path_buf());
    let mut reader = BufReader::new(file);
    let mut summary = ImportSummary::default();
    let mut batch = Vec::with_capacity(BATCH);
    let (mut line_no, mut read, mut entries) = (0u64, 0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = match (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) => break,
            Ok(got) => got,
            Err(err) => {
                summary.stopped = Some(format!("reading {} failed: {err}", path.display()));
                break;
            }
        };
        read += got as u64;
        line_no += 1;
        if line.len() as u64 > MAX_LINE && line.last() != Some(&b'\n') {
            // Not an entry: skip the rest of the line without keeping it.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut reader)
                    .take(64 * 1024)
                    .read_until(b'\n', &mut rest)
                    .await
                {
                    Ok(0) => break,
                    Ok(n) => {
                        read += n as u64;
                        if rest.last() == Some(&b'\n') {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            summary.skip(format!("line {line_no}: longer than {MAX_LINE} bytes"));
        } else {
            match std::str::from_utf8(&line).map(str::trim) {
                Ok("") => {}
                Ok(text) => match ytdlp_record(service, &source, text) {
                    Some(record) => {
                        entries += 1;
                        batch.push(record);
                    }
                    // The line itself is not repeated: the file may be
                    // anything, a secret among them.
                    None => summary.skip(format!(
                        "line {line_no} is not an archive entry (\"<extractor> <id>\")"
                    )),
                },
                Err(_) => summary.skip(format!("line {line_no}: not UTF-8 text")),
            }
        }
        if entries == 0 && summary.skipped >= GIVE_UP_AFTER {
            return Err(ImportError::Input(format!(
                "{} is not a yt-dlp download archive: {}",
                path.display(),
                summary.problems.first().cloned().unwrap_or_default()
            )));
        }
        if batch.len() >= BATCH {
            if let Err(err) = service
                .record_batch(std::mem::take(&mut batch), &mut summary)
                .await
            {
                summary.stopped = Some(format!("recording failed: {err}"));
                return Ok(summary);
            }
            report.report(read, total, &summary);
        }
    }
    if entries == 0 && summary.stopped.is_none() {
        return Err(match summary.problems.first() {
            None => empty(path),
            Some(problem) => ImportError::Input(format!(
                "{} is not a yt-dlp download archive: {problem}",
                path.display()
            )),
        });
    }
    if let Err(err) = service.record_batch(batch, &mut summary).await {
        summary.stopped = Some(format!("recording failed: {err}"));
    }
    report.report(read, total, &summary);
    Ok(summary)
}

/// At most 60 characters of `text`, for a message.
fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The record of one yt-dlp archive entry; `None` when it is not one.
fn ytdlp_record(
    service: &ImportService,
    source: &ImportSource,
    entry: &str,
) -> Option<NewDownload> {
    let key = ytdlp_key(entry)?;
    let (extractor, id) = split_ytdlp_entry(entry)?;
    let platform = if key.starts_with("tiktok:") {
        "tiktok"
    } else {
        "video"
    };
    let url = match extractor {
        "youtube" => format!("https://www.youtube.com/watch?v={id}"),
        _ => format!("yt-dlp:{entry}"),
    };
    let mut metadata = Metadata::new();
    metadata.insert("media_id".into(), id.into());
    metadata.insert("extractor".into(), extractor.into());
    Some(service.archive_record(source, key, url, platform, extractor, metadata))
}

/// Reads a gallery-dl archive database page by page.
pub(super) async fn import_gallerydl_db(
    service: &ImportService,
    reader: &dyn ArchiveDatabaseReader,
    path: &Path,
    report: &Reporter,
) -> Result<ImportSummary, ImportError> {
    expect_format(path, Sniffed::Sqlite).await?;
    let invalid = |reason: String| {
        ImportError::Input(format!(
            "{} cannot be read as a gallery-dl archive: {reason}",
            path.display()
        ))
    };
    let mut pages = reader.open(path).await.map_err(invalid)?;
    let total = pages.count().await.map_err(invalid)?;
    if total == 0 {
        return Err(ImportError::Input(format!(
            "{} holds no entries: nothing to import",
            path.display()
        )));
    }
    let source = ImportSource::GalleryDlArchive(path.to_path_buf());
    let mut summary = ImportSummary::default();
    let mut after: Option<String> = None;
    let mut done = 0u64;
    loop {
        let page = match pages.next_page(after.as_deref(), BATCH).await {
            Ok(page) => page,
            Err(err) => {
                summary.stopped = Some(format!("reading {} failed: {err}", path.display()));
                break;
            }
        };
        let last_page = page.len() < BATCH;
        after = page.last().cloned();
        done += page.len() as u64;
        let mut batch = Vec::with_capacity(page.len());
        for entry in page {
            match gallerydl_record(service, &source, &entry) {
                Some(record) => batch.push(record),
                None => summary.skip(format!(
                    "entry {:?} is not an archive entry",
                    excerpt(&entry)
                )),
            }
        }
        if let Err(err) = service.record_batch(batch, &mut summary).await {
            summary.stopped = Some(format!("recording failed: {err}"));
            break;
        }
        report.report(done, Some(total), &summary);
        if last_page {
            break;
        }
    }
    Ok(summary)
}

/// The record of one gallery-dl archive entry; `None` when it is empty.
fn gallerydl_record(
    service: &ImportService,
    source: &ImportSource,
    entry: &str,
) -> Option<NewDownload> {
    let key = gallerydl_key(entry)?;
    let (platform, record_source) = if key.starts_with("instagram:") {
        ("instagram", "instagram")
    } else {
        ("gallery", "gallery-dl")
    };
    let mut metadata = Metadata::new();
    metadata.insert("archive_entry".into(), entry.into());
    if let Some(id) = super::keys::instagram_media_id(entry) {
        metadata.insert("media_id".into(), id.into());
    }
    Some(service.archive_record(
        source,
        key,
        format!("gallery-dl:{entry}"),
        platform,
        record_source,
        metadata,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::import::{ImportScope, ImportSource};
    use crate::store::{DownloadRepo, MemoryStore};

    fn service() -> (ImportService, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        (
            ImportService::new(store.clone(), Arc::new(SystemClock)),
            store,
        )
    }

    async fn import_text(
        service: &ImportService,
        contents: &[u8],
    ) -> Result<ImportSummary, ImportError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("archive.txt");
        std::fs::write(&file, contents).unwrap();
        service
            .import(
                &ImportSource::YtDlpArchive(file),
                &ImportScope::unrestricted(),
                None,
            )
            .await
    }

    #[tokio::test]
    async fn entries_are_recorded_once_and_keys_known() {
        let (service, store) = service();
        let archive = b"youtube dQw4w9WgXcQ\n\ntiktok 7301\nyoutube dQw4w9WgXcQ\nyoutube abc";
        let first = import_text(&service, archive).await.unwrap();
        assert_eq!(
            (first.imported, first.already_known, first.skipped),
            (3, 1, 0)
        );
        let again = import_text(&service, archive).await.unwrap();
        assert_eq!((again.imported, again.already_known), (0, 4));
        let keys = [
            "video:youtube dQw4w9WgXcQ".to_owned(),
            "tiktok:7301".into(),
            "video:youtube abc".into(),
        ];
        assert_eq!(
            store.known_archive_keys(&keys).await.unwrap(),
            keys.to_vec()
        );
        let record = store
            .download_by_archive_key("tiktok:7301")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.platform, "tiktok");
        assert_eq!(record.file_path, None);
        assert_eq!(record.metadata["imported_from"], "yt-dlp-archive");
    }

    #[tokio::test]
    async fn a_failed_record_of_an_imported_key_is_replaced() {
        let (service, store) = service();
        let mut failed = service.archive_record(
            &ImportSource::YtDlpArchive("x".into()),
            "video:youtube abc".into(),
            "https://example.invalid/abc".into(),
            "video",
            "youtube",
            Metadata::new(),
        );
        failed.status = crate::model::DownloadStatus::Failed;
        failed.metadata.clear();
        let before = store.insert_download(failed).await.unwrap();
        let summary = import_text(&service, b"youtube abc\n").await.unwrap();
        assert_eq!(summary.imported, 1);
        let after = store.get_download(before.id).await.unwrap();
        assert_eq!(after.status, crate::model::DownloadStatus::Completed);
    }

    #[tokio::test]
    async fn bad_archives_are_refused_with_a_reason_and_record_nothing() {
        let (service, store) = service();
        let cases: [(&[u8], &str); 5] = [
            (b"", "is empty"),
            (b"\n  \n", "is empty"),
            (b"SQLite format 3\0\x10\x00rest", "is an SQLite database"),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "not a text file"),
            (
                b"<html>\n<head>\n<title>x</title>\n</head>\n",
                "not a yt-dlp download archive",
            ),
        ];
        for (contents, want) in cases {
            let err = import_text(&service, contents).await.unwrap_err();
            assert!(
                matches!(&err, ImportError::Input(reason) if reason.contains(want)),
                "{want}: {err}"
            );
        }
        let missing = service
            .import(
                &ImportSource::YtDlpArchive("/nonexistent/archive.txt".into()),
                &ImportScope::unrestricted(),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/archive.txt"),
            "{missing}"
        );
        assert_eq!(
            store
                .download_totals(crate::model::Window::default())
                .await
                .unwrap()
                .total,
            0
        );
    }

    #[tokio::test]
    async fn a_truncated_last_line_is_skipped_and_the_rest_kept() {
        let (service, _store) = service();
        let summary = import_text(&service, b"youtube aaa\nyoutube bbb\nyoutu")
            .await
            .unwrap();
        assert_eq!((summary.imported, summary.skipped), (2, 1));
        assert!(summary.problems[0].starts_with("line 3 "), "{summary}");
    }

    #[tokio::test]
    async fn a_huge_archive_streams_and_an_overlong_line_is_skipped() {
        let (service, store) = service();
        let mut contents = Vec::new();
        for n in 0..(BATCH * 3 + 7) {
            contents.extend_from_slice(format!("youtube id{n:06}\n").as_bytes());
        }
        contents.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE as usize));
        contents.extend_from_slice(b"\nyoutube last\n");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("archive.txt");
        std::fs::write(&file, &contents).unwrap();
        let progress: crate::import::ProgressFn = {
            let seen = seen.clone();
            Arc::new(move |p| seen.lock().unwrap().push((p.done, p.total)))
        };
        let summary = service
            .import(
                &ImportSource::YtDlpArchive(file),
                &ImportScope::unrestricted(),
                Some(progress),
            )
            .await
            .unwrap();
        assert_eq!(summary.imported, (BATCH * 3 + 8) as u64);
        assert_eq!(summary.skipped, 1);
        assert!(summary.problems[0].contains("longer than"), "{summary}");
        assert!(
            store
                .known_archive_keys(&["video:youtube last".into()])
                .await
                .unwrap()
                .len()
                == 1
        );
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 4, "progress after every batch: {seen:?}");
        assert_eq!(
            seen.last().unwrap(),
            &(contents.len() as u64, Some(contents.len() as u64))
        );
    }
}
