//! `mediadl storage check|migrate`: is the media storage usable, and
//! moving the media between the download directory and an S3 bucket.

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mediadl::SettingsHandle;
use mediadl::storage::{Backend, StorageError};

use crate::cli::{StorageAction, StorageArgs};
use crate::serve::CliResult;

/// The longest a check may take before it counts as no answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn storage(args: StorageArgs) -> CliResult {
    let config = args.data.load(args.download_dir)?.server;
    let store = mediadl_server::open_store(&config).await?;
    let settings =
        SettingsHandle::load(store.as_ref(), &config.effective_settings_layers()).await?;
    let root = std::path::PathBuf::from(&settings.current().general.download_directory);
    let staging = config.data_dir.join("staging");
    let open = |backend: Backend| {
        mediadl::storage::open_backend(backend, &settings, root.clone(), staging.clone())
    };
    let current = settings.current().storage.backend;
    match args.action {
        StorageAction::Check => {
            let storage = open(current)?;
            let shown = describe(&settings, current);
            match tokio::time::timeout(CHECK_TIMEOUT, storage.check()).await {
                Ok(Ok(())) => {
                    println!("storage ok: {shown} takes, returns and deletes an object");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Err(err)) => {
                    eprintln!("storage check failed for {shown}: {err}");
                    eprintln!("{}", advice(&err));
                    Ok(ExitCode::FAILURE)
                }
                Err(_) => {
                    eprintln!(
                        "storage check failed for {shown}: no answer within {} s; is the endpoint right and reachable?",
                        CHECK_TIMEOUT.as_secs()
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        StorageAction::Migrate { to } => {
            let target = if to == "s3" {
                Backend::S3
            } else {
                Backend::Local
            };
            let source = if target == Backend::S3 {
                Backend::Local
            } else {
                Backend::S3
            };
            let (from, into) = (open(source)?, open(target)?);
            if let Err(err) = into.check().await {
                eprintln!(
                    "cannot migrate: {} does not work: {err}\n{}",
                    describe(&settings, target),
                    advice(&err)
                );
                return Ok(ExitCode::FAILURE);
            }
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "migrating [{bar:30}] {pos}/{len} records {elapsed_precise}",
                )
                .expect("valid template"),
            );
            let report = mediadl::storage::migrate(
                store.as_ref(),
                from.as_ref(),
                into.as_ref(),
                &|done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish();
            println!(
                "moved {} files to {}; {} were there already; {} records have no media of their own",
                report.moved,
                describe(&settings, target),
                report.already_there,
                report.without_media
            );
            for (id, why) in &report.failed {
                eprintln!("download {id} not moved: {why}");
            }
            if report.failed.is_empty() {
                println!(
                    "set storage.backend = \"{}\" for every process; the source files were kept (delete them once the new storage serves everything)",
                    target.as_str()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{} records were not moved; run the migration again to retry them",
                    report.failed.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// The storage in words: the download directory, or the bucket and endpoint.
fn describe(settings: &SettingsHandle, backend: Backend) -> String {
    let current = settings.current();
    match backend {
        Backend::Local => format!("download directory {}", current.general.download_directory),
        Backend::S3 => {
            let s3 = &current.storage.s3;
            let endpoint = if s3.endpoint.is_empty() {
                "AWS"
            } else {
                s3.endpoint.as_str()
            };
            format!("bucket {:?} at {endpoint}", s3.bucket)
        }
    }
}

/// What to do about a failed check.
fn advice(err: &StorageError) -> &'static str {
    match err {
        StorageError::Unavailable(_) => {
            "the storage did not answer or was overloaded: check storage.s3.endpoint (MEDIADL_STORAGE_S3_ENDPOINT) and that the server runs"
        }
        StorageError::Denied(_) => {
            "the credentials were refused or may not write: check storage.s3.access_key_id / secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket's policy, or the directory's permissions"
        }
        StorageError::MissingLocation(_) => {
            "create the bucket (or the download directory), or fix storage.s3.bucket"
        }
        StorageError::NotFound { .. }
        | StorageError::InvalidKey { .. }
        | StorageError::Failed(_) => {
            "see the error above; `mediadl storage check` repeats the test"
        }
    }
}
