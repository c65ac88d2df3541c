//! Files only their owner may read: the SQLite database holds password
//! hashes, cookies and notification secrets, so it (and its `-wal` and
//! `-shm` companions) is created 0600, and an existing one readable by
//! others is tightened with a log line saying so. The server uses the same
//! functions for its data directory and its secrets.

use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents, each readable by its owner only
/// (0700 on Unix). An existing directory is left as it is.
///
/// # Errors
///
/// The operating system's, as [`std::fs::create_dir_all`].
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `path` empty with mode 0600 unless it exists (then nothing
/// changes here; see [`restrict_to_owner`]).
///
/// # Errors
///
/// The operating system's, except that the file already exists.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Sets an existing file that its group or others may access to 0600 and
/// logs it; returns whether it did. A missing file is no error (`false`).
///
/// # Errors
///
/// The operating system's (the file belongs to someone else, a read-only
/// file system).
pub fn restrict_to_owner(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode() & 0o777,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        tracing::warn!(
            target: "mediadl_store",
            path = %path.display(),
            "{} was readable by other users (mode {mode:o}); it is now 0600",
            path.display()
        );
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_and_dirs_are_private_and_open_ones_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&dir)), (0o700, 0o700));
        let file = dir.join("db");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::write(&file, "kept").unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(restrict_to_owner(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert!(!restrict_to_owner(&file).unwrap(), "already private");
        assert!(!restrict_to_owner(&dir.join("missing")).unwrap());
    }
}
