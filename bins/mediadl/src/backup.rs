//! `mediadl backup` and `mediadl restore`.

use std::process::ExitCode;

use chrono::Utc;
use mediadl_store::SqliteStore;

use crate::cli::{BackupArgs, LogFormat, RestoreArgs};
use crate::logging;
use crate::serve::CliResult;

pub async fn backup(args: BackupArgs, log_format: LogFormat) -> CliResult {
    logging::init(log_format, None);
    let config = args.data.load(None)?.server;
    let url = config.database_url();
    if !mediadl_server::is_postgres(&url) {
        // Opening would create an empty database: say there is none instead.
        let path = SqliteStore::url_path(&url)?;
        if !path.exists() {
            return Err(format!("no database at {}: nothing to back up", path.display()).into());
        }
    }
    let store = mediadl_server::open_store(&config).await?;
    let sources = mediadl_server::backup_sources(&config);
    let manifest =
        mediadl::backup::create(store.as_ref(), &sources.secrets, &args.output, Utc::now()).await?;
    println!(
        "backup written to {} ({} database at schema version {}, {} file(s))",
        args.output.display(),
        manifest.backend,
        manifest.schema_version,
        manifest.files.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs, log_format: LogFormat) -> CliResult {
    logging::init(log_format, None);
    let config = args.data.load(None)?.server;
    let url = config.database_url();
    mediadl_store::private::create_private_dir(&config.data_dir)
        .map_err(|err| format!("creating {}: {err}", config.data_dir.display()))?;
    // Checked completely (every file, size and checksum) before anything changes.
    let unpacked = mediadl::backup::open(&args.file, &config.data_dir)?;
    let manifest = &unpacked.manifest;
    if mediadl_server::is_postgres(&url) {
        mediadl_store::restore_postgres(&unpacked.database, manifest, &url, args.force).await?;
    } else {
        let target = SqliteStore::url_path(&url)?;
        mediadl_store::restore_sqlite(&unpacked.database, manifest, target, args.force).await?;
    }
    let secrets = unpacked.install_secrets(&config.data_dir)?;
    println!(
        "restored the {} database of {} (schema version {}) into {}{}",
        manifest.backend,
        manifest.created_at.to_rfc3339(),
        manifest.schema_version,
        mediadl_server::config::redact_url(&url),
        if secrets.is_empty() {
            String::new()
        } else {
            format!(", and {} secret file(s)", secrets.len())
        }
    );
    Ok(ExitCode::SUCCESS)
}
