//! Moving in from other tools: `ImportService` records what yt-dlp,
//! gallery-dl or an existing media tree already holds, so a subscription
//! to the same sources downloads only what is new.
//!
//! Three sources:
//! - a yt-dlp `--download-archive` text file (streamed line by line);
//! - a gallery-dl archive database (SQLite, read page by page through an
//!   [`ArchiveDatabaseReader`]: core holds no SQL, `mediadl-store`
//!   implements it);
//! - a directory tree of media (each file hashed with SHA-256 as the
//!   engine hashes what it downloads, so content dedupe knows it).
//!
//! How the records look:
//! - an archive entry becomes a `completed` download with no file
//!   (`file_path` null) and `metadata.imported_from` (`"yt-dlp-archive"`,
//!   `"gallery-dl-archive"`): the archive-key check
//!   ([`known_archive_keys`](crate::store::DownloadRepo::known_archive_keys))
//!   knows it, and the download list and the stats show it as completed,
//!   dated when it was imported.
//! - a media file becomes a `completed` download with its absolute path
//!   (never copied or moved) and `metadata.imported_from = "directory"`.
//!   A file inside the download root is served by `/downloads/{id}/file`
//!   like any other; one outside is known to the archive and to content
//!   dedupe but neither served nor ever deleted by mediadl. A file whose
//!   bytes are already stored is recorded as a duplicate of that record.
//!   A file that replaces an archive entry imported before (same archive
//!   key, no file) fills that record in.
//!
//! Every import is idempotent: an archive key already recorded as
//! completed is counted as known and left alone; a failed record of the
//! same key is replaced (the item is done after all). Writes go in
//! batches as the input is read, so an import that stops half way keeps
//! what it recorded and a second run adds only the rest.

mod archives;
pub mod keys;
mod tree;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::StoreError;
use crate::model::{DownloadStatus, Metadata, NewDownload};
use crate::store::Store;

pub use archives::{ArchiveDatabaseReader, ArchivePages};

/// Most problems a summary keeps word for word (the rest are counted).
pub const MAX_PROBLEMS: usize = 20;
/// Archive entries written per batch.
pub const BATCH: usize = 500;

/// What to import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    /// A yt-dlp `--download-archive` file.
    YtDlpArchive(PathBuf),
    /// A gallery-dl archive database (`--download-archive`, SQLite).
    GalleryDlArchive(PathBuf),
    /// A directory tree of media files.
    Directory(DirectoryImport),
}

impl ImportSource {
    /// The file or directory read.
    pub fn path(&self) -> &Path {
        match self {
            Self::YtDlpArchive(path) | Self::GalleryDlArchive(path) => path,
            Self::Directory(dir) => &dir.path,
        }
    }

    /// The value of `metadata.imported_from` on the records it makes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::YtDlpArchive(_) => "yt-dlp-archive",
            Self::GalleryDlArchive(_) => "gallery-dl-archive",
            Self::Directory(_) => "directory",
        }
    }
}

/// A directory tree to import, with what to record its files under when
/// nothing about a file says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryImport {
    /// The root of the tree.
    pub path: PathBuf,
    /// The platform of files whose origin cannot be inferred (`direct`
    /// when `None`). Files with a yt-dlp `.info.json` beside them, or
    /// named `… [<YouTube id>].ext`, are `video` items whatever this says.
    pub platform: Option<String>,
    /// The source of every file (its parent directory's name when `None`).
    pub source: Option<String>,
}

/// Where an import may read. The CLI reads what its user can; the server
/// confines an admin's request to its own directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportScope {
    /// When set, every file read (the archive, each media file, after
    /// symbolic links are resolved) must lie inside one of these.
    pub allowed_roots: Option<Vec<PathBuf>>,
}

impl ImportScope {
    /// No restriction beyond the file system's own.
    pub fn unrestricted() -> Self {
        Self::default()
    }

    /// Only files inside `roots`.
    pub fn within(roots: Vec<PathBuf>) -> Self {
        Self {
            allowed_roots: Some(roots),
        }
    }

    /// `path` resolved (links followed) when the scope allows reading it.
    ///
    /// # Errors
    ///
    /// A sentence naming the path: it does not exist, or lies outside
    /// the allowed directories.
    pub fn check(&self, path: &Path) -> Result<PathBuf, String> {
        let resolved = std::fs::canonicalize(path);
        let Some(roots) = &self.allowed_roots else {
            return resolved.map_err(|err| format!("{}: {err}", path.display()));
        };
        let inside = |candidate: &Path| {
            roots.iter().any(|root| {
                candidate.starts_with(root)
                    || std::fs::canonicalize(root).is_ok_and(|root| candidate.starts_with(root))
            })
        };
        match resolved {
            Ok(resolved) if inside(&resolved) => Ok(resolved),
            // Missing inside the roots: say so. Missing outside them is
            // "outside", as an existing file there would be, so the answer
            // tells nothing of what exists elsewhere.
            Err(err) if inside(path) => Err(format!("{}: {err}", path.display())),
            _ => Err(format!(
                "{} is outside the directories imports may read ({})",
                path.display(),
                roots
                    .iter()
                    .map(|root| root.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Why an import could not start.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input cannot be imported: missing, unreadable, empty, of
    /// another format, outside the allowed directories.
    #[error("{0}")]
    Input(String),
    /// This build cannot read the input (no gallery-dl archive reader).
    #[error("{0}")]
    Unsupported(String),
    /// The store failed before anything was recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportSummary {
    /// New records written (and failed or file-less records filled in).
    pub imported: u64,
    /// Entries whose archive key was already recorded as completed.
    pub already_known: u64,
    /// Files recorded as duplicates of a record holding the same bytes.
    pub duplicates: u64,
    /// Entries or files that could not be imported (see `problems`).
    pub skipped: u64,
    /// Files left out because they are not media (sidecars, text).
    pub not_media: u64,
    /// Why entries were skipped, the first [`MAX_PROBLEMS`] of them.
    pub problems: Vec<String>,
    /// Set when the import stopped before the end of its input, saying
    /// why; what it recorded until then stays.
    pub stopped: Option<String>,
}

impl ImportSummary {
    /// Counts a skipped entry and keeps its reason while there is room.
    pub fn skip(&mut self, problem: impl Into<String>) {
        self.skipped += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem.into());
        }
    }

    /// Entries read in all.
    pub fn seen(&self) -> u64 {
        self.imported + self.already_known + self.duplicates + self.skipped
    }
}

/// `1204` as `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for ImportSummary {
    /// `imported 1,204 entries, 37 already known, 2 skipped: line 3: …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "imported {} {}, {} already known",
            thousands(self.imported),
            if self.imported == 1 {
                "entry"
            } else {
                "entries"
            },
            thousands(self.already_known)
        )?;
        if self.duplicates > 0 {
            write!(f, ", {} duplicate files", thousands(self.duplicates))?;
        }
        if self.not_media > 0 {
            write!(f, ", {} not media", thousands(self.not_media))?;
        }
        write!(f, ", {} skipped", thousands(self.skipped))?;
        if !self.problems.is_empty() {
            write!(f, ": {}", self.problems.join("; "))?;
            let unnamed = self.skipped.saturating_sub(self.problems.len() as u64);
            if unnamed > 0 {
                write!(f, " (and {unnamed} more)")?;
            }
        }
        if let Some(reason) = &self.stopped {
            write!(f, "; stopped early: {reason}")?;
        }
        Ok(())
    }
}

/// How far an import is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProgress {
    /// Units done: bytes of an archive file, entries of a database, files
    /// of a directory.
    pub done: u64,
    /// Units in all, when known beforehand.
    pub total: Option<u64>,
    /// The counts so far.
    pub summary: ImportSummary,
}

/// Told of progress after every batch (and every file of a directory).
pub type ProgressFn = Arc<dyn Fn(&ImportProgress) + Send + Sync>;

/// Imports archives and media trees into the store.
#[derive(Clone)]
pub struct ImportService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    databases: Option<Arc<dyn ArchiveDatabaseReader>>,
}

impl fmt::Debug for ImportService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportService")
            .field("databases", &self.databases)
            .finish_non_exhaustive()
    }
}

impl ImportService {
    /// A service writing to `store`; gallery-dl archives need
    /// [`with_database_reader`](Self::with_database_reader).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            databases: None,
        }
    }

    /// Reads gallery-dl archive databases with `reader`.
    pub fn with_database_reader(mut self, reader: Arc<dyn ArchiveDatabaseReader>) -> Self {
        self.databases = Some(reader);
        self
    }

    /// Imports `source`, reading only what `scope` allows, and tells
    /// `progress` (when given) how far it is.
    ///
    /// # Errors
    ///
    /// [`ImportError::Input`] when the input cannot be read at all (missing,
    /// empty, another format, outside the scope), before anything is
    /// recorded; [`ImportError::Unsupported`] for a gallery-dl archive
    /// without a reader. A failure part way (a read error, the store going
    /// away) ends the import with [`ImportSummary::stopped`] set instead,
    /// keeping what was recorded.
    pub async fn import(
        &self,
        source: &ImportSource,
        scope: &ImportScope,
        progress: Option<ProgressFn>,
    ) -> Result<ImportSummary, ImportError> {
        let report = Reporter(progress);
        match source {
            ImportSource::YtDlpArchive(path) => {
                let path = scope.check(path).map_err(ImportError::Input)?;
                archives::import_ytdlp_file(self, &path, &report).await
            }
            ImportSource::GalleryDlArchive(path) => {
                let path = scope.check(path).map_err(ImportError::Input)?;
                let reader = self.databases.as_ref().ok_or_else(|| {
                    ImportError::Unsupported(
                        "this build cannot read gallery-dl archive databases".into(),
                    )
                })?;
                archives::import_gallerydl_db(self, reader.as_ref(), &path, &report).await
            }
            ImportSource::Directory(dir) => tree::import_directory(self, dir, scope, &report).await,
        }
    }

    /// Writes one batch of entries: keys known as completed are counted
    /// and left alone, the rest inserted (a failed record of the same key
    /// is replaced).
    async fn record_batch(
        &self,
        batch: Vec<NewDownload>,
        summary: &mut ImportSummary,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = batch.iter().map(|new| new.archive_key.clone()).collect();
        let known: std::collections::HashSet<String> = self
            .store
            .known_archive_keys(&keys)
            .await?
            .into_iter()
            .collect();
        let mut in_batch = std::collections::HashSet::new();
        let mut fresh = Vec::with_capacity(batch.len());
        for new in batch {
            if known.contains(&new.archive_key) || !in_batch.insert(new.archive_key.clone()) {
                summary.already_known += 1;
            } else {
                fresh.push(new);
            }
        }
        let results = self.store.insert_downloads(fresh.clone()).await?;
        for (new, result) in fresh.into_iter().zip(results) {
            match result {
                Ok(_) => summary.imported += 1,
                // A failed record of the key, or another writer: decide one by one.
                Err(StoreError::Conflict(_)) => match self.record(new).await? {
                    Recorded::New => summary.imported += 1,
                    Recorded::Known => summary.already_known += 1,
                },
                Err(err) => summary.skip(format!("{}: {err}", new.archive_key)),
            }
        }
        Ok(())
    }

    /// Inserts `new`; over a failed record of its key, or a file-less
    /// imported one when `new` has a file, replaces it.
    async fn record(&self, new: NewDownload) -> Result<Recorded, StoreError> {
        match self.store.insert_download(new.clone()).await {
            Ok(_) => Ok(Recorded::New),
            Err(StoreError::Conflict(_)) => {
                let Some(existing) = self.store.download_by_archive_key(&new.archive_key).await?
                else {
                    return Ok(Recorded::Known);
                };
                let fills_in = existing.file_path.is_none()
                    && new.file_path.is_some()
                    && existing.metadata.contains_key("imported_from");
                if existing.status == DownloadStatus::Failed || fills_in {
                    self.store.replace_download(existing.id, new).await?;
                    Ok(Recorded::New)
                } else {
                    Ok(Recorded::Known)
                }
            }
            Err(err) => Err(err),
        }
    }

    /// A completed record with no file for an archive entry.
    fn archive_record(
        &self,
        source: &ImportSource,
        archive_key: String,
        url: String,
        platform: &str,
        record_source: &str,
        mut metadata: Metadata,
    ) -> NewDownload {
        metadata.insert("imported_from".into(), source.kind().into());
        metadata.insert(
            "import_path".into(),
            source.path().display().to_string().into(),
        );
        NewDownload {
            url,
            archive_key,
            platform: platform.to_owned(),
            source: record_source.to_owned(),
            content_type: content_type_of(platform).to_owned(),
            filename: None,
            file_path: None,
            file_size: None,
            file_hash: None,
            post_date: None,
            download_date: self.clock.now(),
            status: DownloadStatus::Completed,
            attempts: 0,
            error_message: None,
            duplicate_of: None,
            queue_id: None,
            metadata,
        }
    }
}

/// Whether a record was written.
enum Recorded {
    New,
    Known,
}

/// The content type imported records of `platform` are listed under.
fn content_type_of(platform: &str) -> &'static str {
    match platform {
        "video" | "tiktok" => "video",
        "instagram" => "posts",
        "gallery" => "images",
        _ => "file",
    }
}

/// Calls the progress function, when there is one.
struct Reporter(Option<ProgressFn>);

impl Reporter {
    fn report(&self, done: u64, total: Option<u64>, summary: &ImportSummary) {
        if let Some(progress) = &self.0 {
            progress(&ImportProgress {
                done,
                total,
                summary: summary.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_a_sentence() {
        let mut summary = ImportSummary {
            imported: 1204,
            already_known: 37,
            ..ImportSummary::default()
        };
        summary.skip("line 3: not an archive entry");
        assert_eq!(
            summary.to_string(),
            "imported 1,204 entries, 37 already known, 1 skipped: line 3: not an archive entry"
        );
        summary.stopped = Some("the store went away".into());
        assert!(
            summary
                .to_string()
                .ends_with("; stopped early: the store went away")
        );
    }

    #[test]
    fn problems_beyond_the_limit_are_counted() {
        let mut summary = ImportSummary::default();
        for n in 0..(MAX_PROBLEMS + 5) {
            summary.skip(format!("problem {n}"));
        }
        assert_eq!(summary.problems.len(), MAX_PROBLEMS);
        assert!(summary.to_string().ends_with("(and 5 more)"));
    }

    #[test]
    fn a_scope_refuses_paths_outside_its_roots_after_resolving_links() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "x").unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let inside = root.path().join("ok");
        std::fs::write(&inside, "x").unwrap();
        let scope = ImportScope::within(vec![root.path().to_path_buf()]);
        assert!(scope.check(&inside).is_ok());
        let refused = scope.check(&link).unwrap_err();
        assert!(refused.contains("outside"), "{refused}");
        assert!(scope.check(&secret).is_err());
        assert!(scope.check(Path::new("/etc/shadow")).is_err());
        assert!(ImportScope::unrestricted().check(&secret).is_ok());
    }
}
