//! `mediadl import`: moving in from yt-dlp, gallery-dl and existing media
//! trees (the work is `mediadl::ImportService`'s).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mediadl::import::{DirectoryImport, ImportProgress, ImportScope, ImportSource, ProgressFn};
use mediadl::{ImportService, SystemClock};
use mediadl_store::GalleryDlArchiveReader;

use crate::cli::ImportArgs;
use crate::serve::CliResult;

pub async fn import(args: ImportArgs) -> CliResult {
    let source = args.source();
    let config = args.data.load(None)?.server;
    let store = mediadl_server::open_store(&config).await?;
    let service = ImportService::new(store, Arc::new(SystemClock))
        .with_database_reader(Arc::new(GalleryDlArchiveReader));
    let bar = progress_bar(std::io::stderr().is_terminal() && !args.quiet, &source);
    let progress: ProgressFn = {
        let bar = bar.clone();
        Arc::new(move |p: &ImportProgress| {
            if let Some(total) = p.total {
                bar.set_length(total);
            }
            bar.set_position(p.done);
            bar.set_message(format!(
                "{} imported, {} known, {} skipped",
                p.summary.imported, p.summary.already_known, p.summary.skipped
            ));
        })
    };
    // Reading what the user can is the point of the command: no scope.
    let summary = service
        .import(&source, &ImportScope::unrestricted(), Some(progress))
        .await;
    bar.finish_and_clear();
    let summary = summary?;
    println!("{summary}");
    Ok(if summary.stopped.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A bar over the archive's bytes or entries, a spinner over a tree's
/// files; hidden when standard error is not a terminal.
fn progress_bar(interactive: bool, source: &ImportSource) -> ProgressBar {
    let target = if interactive {
        ProgressDrawTarget::stderr_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    };
    let (bar, template) = match source {
        ImportSource::YtDlpArchive(_) => (
            ProgressBar::with_draw_target(Some(0), target),
            "[{bar:30}] {bytes}/{total_bytes}  {wide_msg}",
        ),
        ImportSource::GalleryDlArchive(_) => (
            ProgressBar::with_draw_target(Some(0), target),
            "[{bar:30}] {pos}/{len} entries  {wide_msg}",
        ),
        ImportSource::Directory(_) => (
            ProgressBar::with_draw_target(None, target),
            "{spinner} {pos} files  {wide_msg}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

impl ImportArgs {
    /// The one source the flags name (clap makes sure there is exactly one).
    fn source(&self) -> ImportSource {
        match (
            &self.yt_dlp_archive,
            &self.gallery_dl_archive,
            &self.directory,
        ) {
            (Some(file), _, _) => ImportSource::YtDlpArchive(file.clone()),
            (None, Some(file), _) => ImportSource::GalleryDlArchive(file.clone()),
            (None, None, dir) => ImportSource::Directory(DirectoryImport {
                path: dir.clone().unwrap_or_default(),
                platform: self.platform.clone(),
                source: self.source.clone(),
            }),
        }
    }
}
