//! Backup archives: one tar file holding a consistent snapshot of the
//! database (taken by the store itself, see
//! [`StateRepo::snapshot`](crate::store::StateRepo::snapshot)), the data
//! directory's secrets (the JWT signing key, …) and a manifest naming the
//! format version, the database backend and schema version, when it was
//! made and a SHA-256 per file.
//!
//! Archives are written to a temporary name beside the target and renamed
//! when complete, mode 0600 (they hold password hashes and secrets), so a
//! failed backup never leaves a half archive under its final name.
//! [`open`] checks an archive completely (every file present, sizes and
//! hashes right, nothing unexpected) before anything is restored from it.
//!
//! ```
//! use chrono::Utc;
//! use mediadl::backup::{self, BackupError};
//! use mediadl::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! // The in-memory store keeps nothing on disk, so it has nothing to back up.
//! let err = backup::create(&MemoryStore::new(), &[], &dir.path().join("b.tar"), Utc::now())
//!     .await
//!     .unwrap_err();
//! assert!(matches!(err, BackupError::Store(_)));
//! assert!(!dir.path().join("b.tar").exists());
//! # }
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::settings::InvalidSetting;
use crate::store::Store;

/// The archive format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// What the manifest's `format` field says.
pub const FORMAT_NAME: &str = "mediadl-backup";
/// The manifest's name inside the archive (always its first entry).
pub const MANIFEST_NAME: &str = "manifest.json";
/// Folder of the database snapshot inside the archive.
const DATABASE_DIR: &str = "database";
/// Folder of the data directory's secrets inside the archive.
const SECRETS_DIR: &str = "secrets";
/// Name prefix and extension of the archives the scheduled job writes
/// (the retention only ever removes files named like this).
const SCHEDULED_PREFIX: &str = "mediadl-backup-";
const SCHEDULED_EXTENSION: &str = ".tar";

/// A database snapshot a store wrote into a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSnapshot {
    /// The snapshot file (a SQLite database, a `pg_dump` archive).
    pub file: PathBuf,
    /// `sqlite` or `postgres`: which store can restore it.
    pub backend: String,
    /// The newest migration applied to the database.
    pub schema_version: i64,
}

/// One file in an archive, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the archive: `database/<file>` or `secrets/<file>`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents, lower-case hex.
    pub sha256: String,
}

/// What an archive holds (its `manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The archive layout's version ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The mediadl version that wrote it.
    pub mediadl_version: String,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The newest migration applied to the database in the archive.
    pub schema_version: i64,
    /// The files after the manifest, database first.
    pub files: Vec<ManifestFile>,
}

/// An archive checked by [`open`] and unpacked into a private temporary
/// directory, removed when this is dropped.
#[derive(Debug)]
pub struct Unpacked {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// The unpacked database snapshot.
    pub database: PathBuf,
    /// The unpacked secrets: (file name in the data directory, unpacked file).
    pub secrets: Vec<(String, PathBuf)>,
    _work: WorkDir,
}

/// What a process gives the scheduled backup job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSources {
    /// Secret files of the data directory put in every archive (missing
    /// ones are left out: a secret given by environment has no file).
    pub secrets: Vec<PathBuf>,
    /// Where archives go when `backup.directory` is empty.
    pub default_directory: PathBuf,
}

/// The settings document's `backup` section: the scheduled backup job
/// (its schedule is the job's own, changed like any job's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Whether the built-in backup job exists and runs.
    pub enabled: bool,
    /// Where archives go; empty means `<data dir>/backups`.
    pub directory: String,
    /// Archives kept; older ones the job wrote are removed after each backup (1–1000).
    pub keep: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            directory: String::new(),
            keep: 7,
        }
    }
}

impl BackupSettings {
    /// Checks the ranges.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming `backup.keep` when it is outside 1–1000.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(1..=1000).contains(&self.keep) {
            return Err(InvalidSetting {
                field: "backup.keep".into(),
                reason: "must be between 1 and 1000".into(),
            });
        }
        Ok(())
    }
}

/// Why a backup could not be written or an archive cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file operation failed; `context` names what and where.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The store could not take its snapshot.
    #[error("database snapshot: {0}")]
    Store(#[from] StoreError),
    /// The file is not a complete, intact mediadl backup (truncated,
    /// altered, or something else entirely).
    #[error("{path} is not a usable mediadl backup: {reason}")]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong, for a person to read.
        reason: String,
    },
    /// The archive was written in a layout newer than this build reads.
    #[error(
        "{path} was written by a newer mediadl (backup format {found}, this build reads up to {supported}); upgrade mediadl to restore it"
    )]
    NewerFormat {
        /// The archive.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// [`FORMAT_VERSION`].
        supported: u32,
    },
}

impl From<BackupError> for crate::Error {
    fn from(err: BackupError) -> Self {
        match err {
            BackupError::Io { context, source } => Self::Io { context, source },
            BackupError::Store(err) => Self::Store(err),
            other => Self::invalid("backup", other.to_string()),
        }
    }
}

fn io_error(context: impl std::fmt::Display, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let context = format!("{context} {}", path.display());
    move |source| BackupError::Io { context, source }
}

/// Creates `dir` (and missing parents) readable by its owner only.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A new file (never an existing one) only its owner may read.
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A private directory for temporary files, removed when dropped.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(parent: &Path, purpose: &str) -> Result<Self, BackupError> {
        let dir = parent.join(format!(
            ".mediadl-{purpose}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        create_private_dir(&dir).map_err(io_error("cannot write in", parent))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %err, "could not remove a temporary backup directory");
        }
    }
}

/// The directory a path's file lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Takes a consistent snapshot of `store` while it is in use and writes it,
/// with the existing files among `secrets`, to the archive `output`
/// (replacing a file of that name only once the new archive is complete).
///
/// # Errors
///
/// [`BackupError::Io`] when `output`'s directory is missing or not
/// writable, or a secret cannot be read; [`BackupError::Store`] when the
/// store cannot take a snapshot (for PostgreSQL: `pg_dump` missing).
pub async fn create(
    store: &dyn Store,
    secrets: &[PathBuf],
    output: &Path,
    now: DateTime<Utc>,
) -> Result<Manifest, BackupError> {
    let parent = parent_of(output);
    let metadata = std::fs::metadata(parent).map_err(io_error("cannot write to", parent))?;
    if !metadata.is_dir() {
        return Err(BackupError::Io {
            context: format!("cannot write to {}", parent.display()),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let work = WorkDir::new(parent, "backup")?;
    let snapshot = store.snapshot(&work.0).await?;
    let secrets = secrets.to_vec();
    let output = output.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let manifest = write_archive(&snapshot, &secrets, &output, now);
        drop(work);
        manifest
    })
    .await
    .map_err(|err| BackupError::Io {
        context: "writing the backup".into(),
        source: io::Error::other(err),
    })?
}

fn file_entry(name: String, path: &Path) -> Result<ManifestFile, BackupError> {
    let mut file = File::open(path).map_err(io_error("reading", path))?;
    let (size, sha256) =
        hash_copy(&mut file, &mut io::sink()).map_err(io_error("reading", path))?;
    Ok(ManifestFile { name, size, sha256 })
}

fn file_name_of(path: &Path) -> Result<String, BackupError> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .ok_or_else(|| BackupError::Io {
            context: format!("backing up {}", path.display()),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a plain file name"),
        })
}

fn write_archive(
    snapshot: &DatabaseSnapshot,
    secrets: &[PathBuf],
    output: &Path,
    now: DateTime<Utc>,
) -> Result<Manifest, BackupError> {
    let mut sources = vec![(
        format!("{DATABASE_DIR}/{}", file_name_of(&snapshot.file)?),
        snapshot.file.clone(),
    )];
    for secret in secrets {
        match std::fs::metadata(secret) {
            Ok(_) => sources.push((
                format!("{SECRETS_DIR}/{}", file_name_of(secret)?),
                secret.clone(),
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("reading", secret)(err)),
        }
    }
    let files = sources
        .iter()
        .map(|(name, path)| file_entry(name.clone(), path))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        mediadl_version: env!("CARGO_PKG_VERSION").into(),
        created_at: now,
        backend: snapshot.backend.clone(),
        schema_version: snapshot.schema_version,
        files,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|err| BackupError::Io {
        context: "writing the manifest".into(),
        source: io::Error::other(err),
    })?;

    let partial = parent_of(output).join(format!(
        ".{}.partial-{}",
        file_name_of(output)?,
        uuid::Uuid::new_v4().simple()
    ));
    let write = || -> io::Result<()> {
        let file = create_private_file(&partial)?;
        let mut tar = tar::Builder::new(BufWriter::new(file));
        tar.mode(tar::HeaderMode::Deterministic);
        append(
            &mut tar,
            MANIFEST_NAME,
            &mut manifest_json.as_slice(),
            manifest_json.len() as u64,
            now,
        )?;
        for ((name, path), entry) in sources.iter().zip(&manifest.files) {
            let mut source = File::open(path)?;
            append(&mut tar, name, &mut source, entry.size, now)?;
        }
        let mut writer = tar.into_inner()?;
        writer.flush()?;
        let file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&partial, output)
    };
    if let Err(err) = write() {
        let _ = std::fs::remove_file(&partial);
        return Err(io_error("writing", output)(err));
    }
    Ok(manifest)
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    data: &mut impl Read,
    size: u64,
    now: DateTime<Utc>,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(now.timestamp()).unwrap_or(0));
    header.set_entry_type(tar::EntryType::Regular);
    // A file that changed size since it was hashed fails here, not silently.
    tar.append_data(&mut header, name, data.take(size))
}

/// Checks the archive at `archive` completely and unpacks it into a
/// private temporary directory made in `near` (on the data's file system,
/// so a restore can rename from it).
///
/// # Errors
///
/// [`BackupError::Corrupt`] when the archive is truncated, altered, lacks
/// a file its manifest lists or holds one it does not;
/// [`BackupError::NewerFormat`] for a layout newer than this build;
/// [`BackupError::Io`] when it cannot be read, or `near` is not writable.
pub fn open(archive: &Path, near: &Path) -> Result<Unpacked, BackupError> {
    let work = WorkDir::new(near, "restore")?;
    let into = work.0.clone();
    let corrupt = |reason: String| BackupError::Corrupt {
        path: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(io_error("reading", archive))?;
    let mut tar = tar::Archive::new(BufReader::new(file));
    let mut entries = tar
        .entries()
        .map_err(|err| corrupt(format!("unreadable: {err}")))?;
    let manifest: Manifest = {
        let mut first = entries
            .next()
            .ok_or_else(|| corrupt("it is empty".into()))?
            .map_err(|err| corrupt(format!("unreadable: {err}")))?;
        let name = entry_name(&first).map_err(&corrupt)?;
        if name != MANIFEST_NAME {
            return Err(corrupt(format!(
                "it starts with {name:?}, not {MANIFEST_NAME}"
            )));
        }
        let mut text = Vec::new();
        first
            .read_to_end(&mut text)
            .map_err(|err| corrupt(format!("the manifest is cut short: {err}")))?;
        serde_json::from_slice(&text)
            .map_err(|err| corrupt(format!("the manifest is not valid: {err}")))?
    };
    if manifest.format != FORMAT_NAME {
        return Err(corrupt(format!("its format is {:?}", manifest.format)));
    }
    if manifest.format_version > FORMAT_VERSION {
        return Err(BackupError::NewerFormat {
            path: archive.to_path_buf(),
            found: manifest.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let mut database = None;
    let mut secrets = Vec::new();
    let mut seen = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|err| corrupt(format!("unreadable: {err}")))?;
        let name = entry_name(&entry).map_err(&corrupt)?;
        let listed = manifest
            .files
            .iter()
            .find(|file| file.name == name)
            .ok_or_else(|| {
                corrupt(format!(
                    "it holds {name:?}, which its manifest does not list"
                ))
            })?;
        let (folder, file_name) = name
            .split_once('/')
            .filter(|(_, file)| is_plain_name(file))
            .ok_or_else(|| corrupt(format!("unexpected entry {name:?}")))?;
        let target = into.join(file_name);
        let mut out = create_private_file(&target).map_err(io_error("unpacking into", &target))?;
        let (size, sha256) = hash_copy(&mut entry, &mut out)
            .map_err(|err| corrupt(format!("{name} is cut short: {err}")))?;
        out.sync_all()
            .map_err(io_error("unpacking into", &target))?;
        if size != listed.size || sha256 != listed.sha256 {
            return Err(corrupt(format!(
                "{name} does not match its manifest ({size} bytes, expected {}; checksum {})",
                listed.size,
                if sha256 == listed.sha256 {
                    "right"
                } else {
                    "wrong"
                }
            )));
        }
        match folder {
            DATABASE_DIR if database.is_none() => database = Some(target),
            SECRETS_DIR => secrets.push((file_name.to_owned(), target)),
            _ => return Err(corrupt(format!("unexpected entry {name:?}"))),
        }
        seen += 1;
    }
    if seen != manifest.files.len() {
        return Err(corrupt(format!(
            "it is cut short: {seen} of the {} files its manifest lists are there",
            manifest.files.len()
        )));
    }
    let database = database.ok_or_else(|| corrupt("it holds no database".into()))?;
    Ok(Unpacked {
        manifest,
        database,
        secrets,
        _work: work,
    })
}

fn entry_name(entry: &tar::Entry<'_, impl Read>) -> Result<String, String> {
    let path = entry
        .path()
        .map_err(|err| format!("an entry has an unreadable name: {err}"))?;
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("an entry's name is not UTF-8: {}", path.display()))
}

/// One path component that cannot leave the directory it is joined to.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn hash_copy(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok((size, hex::encode(hasher.finalize())));
        }
        hasher.update(&buffer[..read]);
        writer.write_all(&buffer[..read])?;
        size += read as u64;
    }
}

impl Unpacked {
    /// Writes the archive's secrets into `data_dir` (0600), each to a
    /// temporary name first and then renamed over the old file.
    ///
    /// # Errors
    ///
    /// [`BackupError::Io`] when a file cannot be written.
    pub fn install_secrets(&self, data_dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
        let mut installed = Vec::new();
        for (name, unpacked) in &self.secrets {
            let target = data_dir.join(name);
            let temporary =
                data_dir.join(format!(".{name}.restore-{}", uuid::Uuid::new_v4().simple()));
            let copy = || -> io::Result<()> {
                let mut out = create_private_file(&temporary)?;
                io::copy(&mut File::open(unpacked)?, &mut out)?;
                out.sync_all()?;
                std::fs::rename(&temporary, &target)
            };
            if let Err(err) = copy() {
                let _ = std::fs::remove_file(&temporary);
                return Err(io_error("restoring", &target)(err));
            }
            installed.push(target);
        }
        Ok(installed)
    }
}

/// The scheduled job: writes `mediadl-backup-<UTC time>.tar` into the
/// configured directory, then removes the oldest such archives beyond
/// `keep`. Returns the archive written and how many old ones were removed.
///
/// # Errors
///
/// As [`create`]; [`BackupError::Io`] when the directory cannot be made
/// or an old archive cannot be removed.
pub async fn run_scheduled(
    store: &dyn Store,
    sources: &BackupSources,
    settings: &BackupSettings,
    now: DateTime<Utc>,
) -> Result<(PathBuf, usize), BackupError> {
    let directory = if settings.directory.trim().is_empty() {
        sources.default_directory.clone()
    } else {
        PathBuf::from(settings.directory.trim())
    };
    create_private_dir(&directory).map_err(io_error("creating", &directory))?;
    let output = directory.join(format!(
        "{SCHEDULED_PREFIX}{}{SCHEDULED_EXTENSION}",
        now.format("%Y%m%dT%H%M%SZ")
    ));
    create(store, &sources.secrets, &output, now).await?;
    let removed = prune(&directory, settings.keep as usize)?;
    Ok((output, removed))
}

/// Removes the oldest scheduled archives in `directory` beyond the newest
/// `keep` (their names sort by time); other files are never touched.
fn prune(directory: &Path, keep: usize) -> Result<usize, BackupError> {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(io_error("listing", directory))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with(SCHEDULED_PREFIX) && name.ends_with(SCHEDULED_EXTENSION)
                })
        })
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(keep);
    for old in &archives[..excess] {
        std::fs::remove_file(old).map_err(io_error("removing the old backup", old))?;
    }
    Ok(excess)
}
