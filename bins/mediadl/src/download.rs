//! `mediadl download`: the engine on the in-memory store, for one-off
//! downloads from the terminal. Progress bars on a terminal, plain lines
//! otherwise; the exit status says whether everything arrived.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mediadl::engine::{Engine, RetryPolicy};
use mediadl::fetch::parse_netscape_cookies;
use mediadl::format::human_bytes;
use mediadl::model::{EventKind, NewQueueItem, QueueStatus};
use mediadl::recognise::is_auto;
use mediadl::store::{MemoryStore, QueueRepo, Store};
use mediadl::{
    BroadcastBus, BusMessage, Clock, DownloadService, EventBus, QueueService, Registry, Settings,
    SettingsHandle, SystemClock,
};
use mediadl_store::SqliteStore;
use tokio_util::sync::CancellationToken;

use crate::cli::DownloadArgs;

/// Why a download run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DownloadCliError {
    #[error("no URLs given (pass them as arguments or with -i FILE)")]
    NoUrls,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Core(#[from] mediadl::Error),
    #[error("cookies file {path}: {reason}")]
    Cookies { path: String, reason: String },
    #[error("archive {path}: {source}")]
    Archive {
        path: String,
        #[source]
        source: mediadl::StoreError,
    },
}

pub async fn download(args: DownloadArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    init_tracing();
    // On a worker thread rather than the main one, so that the events it
    // waits for wake a thread that is usually awake already.
    let run = tokio::spawn(run(args, interactive))
        .await
        .map_err(|err| format!("the download task failed: {err}"))?;
    Ok(run?)
}

fn init_tracing() {
    // Failures are reported as lines of their own; only errors of the tool itself are logged.
    let default = "error";
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIADL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn collect_urls(args: &DownloadArgs) -> Result<Vec<String>, DownloadCliError> {
    let mut urls: Vec<String> = args
        .urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if let Some(path) = &args.input_file {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            let file = std::fs::File::open(path).map_err(|source| DownloadCliError::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            Box::new(std::io::BufReader::new(file))
        };
        for line in reader.lines() {
            let line = line.map_err(|source| DownloadCliError::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            let line = line.split('#').next().unwrap_or_default().trim();
            if !line.is_empty() {
                urls.push(line.to_owned());
            }
        }
    }
    if urls.is_empty() {
        return Err(DownloadCliError::NoUrls);
    }
    Ok(urls)
}

/// A source name for a platform argument: the argument itself, or the
/// last path segment of a profile URL.
fn source_of(argument: &str) -> String {
    match url::Url::parse(argument) {
        Ok(url) => url
            .path_segments()
            .and_then(|mut segments| segments.rfind(|s| !s.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned()),
        Err(_) => argument.trim_start_matches('@').to_owned(),
    }
}

/// The queue request for each URL: recognised from the URL (platform,
/// source and content type), unless `--platform` names one.
async fn requests_for(
    args: &DownloadArgs,
    urls: &[String],
    registry: &Registry,
) -> Vec<Result<NewQueueItem, mediadl::Error>> {
    let content_type = args.content_type.clone().unwrap_or_default();
    let mut requests = Vec::with_capacity(urls.len());
    for url in urls {
        let request = if is_auto(&args.platform) {
            registry
                .recognise(url, &Settings::default())
                .await
                .map(|found| {
                    let content_type = if content_type.is_empty() {
                        found.content_type
                    } else {
                        content_type.clone()
                    };
                    NewQueueItem::new(url.clone(), found.platform, found.source, content_type)
                })
        } else {
            let source = if args.platform == "direct" {
                String::new()
            } else {
                source_of(url)
            };
            Ok(NewQueueItem::new(
                url.clone(),
                args.platform.clone(),
                source,
                content_type.clone(),
            ))
        };
        requests.push(request);
    }
    requests
}

/// The cookies file's text, checked to be a Netscape cookies.txt.
fn read_cookies(path: &std::path::Path) -> Result<String, DownloadCliError> {
    let failed = |reason: String| DownloadCliError::Cookies {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| failed(err.to_string()))?;
    let parsed = parse_netscape_cookies(&text).map_err(|err| failed(err.to_string()))?;
    if parsed.count == 0 {
        return Err(failed(
            "holds no cookies (expected a Netscape cookies.txt)".into(),
        ));
    }
    Ok(text)
}

/// The store of this run: the archive file when given (queue items left by
/// an interrupted earlier run are dropped, its download records kept),
/// else memory.
async fn open_store(archive: Option<&std::path::Path>) -> Result<Arc<dyn Store>, DownloadCliError> {
    let Some(path) = archive else {
        return Ok(Arc::new(MemoryStore::new()));
    };
    let failed = |source| DownloadCliError::Archive {
        path: path.display().to_string(),
        source,
    };
    let store = SqliteStore::open(path).await.map_err(failed)?;
    store.clear_queue(&QueueStatus::ALL).await.map_err(failed)?;
    Ok(Arc::new(store))
}

async fn run(args: DownloadArgs, interactive: bool) -> Result<ExitCode, DownloadCliError> {
    let urls = collect_urls(&args)?;
    std::fs::create_dir_all(&args.output).map_err(|source| DownloadCliError::Io {
        context: format!("creating {}", args.output.display()),
        source,
    })?;
    let root = std::fs::canonicalize(&args.output).map_err(|source| DownloadCliError::Io {
        context: format!("opening {}", args.output.display()),
        source,
    })?;

    let registry = Arc::new(Registry::builtin());
    let requests = requests_for(&args, &urls, &registry).await;
    let mut settings = Settings::default();
    settings.general.concurrent_downloads = args.concurrency;
    settings.general.retry_attempts = args.retries;
    settings.general.storage_limit_gb = 0.0;
    // Plain files land in the directory itself, anything else in a
    // folder per source.
    let only_files = requests
        .iter()
        .all(|request| matches!(request, Ok(new) if new.platform == "direct"));
    settings.downloads.directory_template = if only_files {
        String::new()
    } else {
        "{source}".into()
    };
    let mut document = settings.to_value();
    if let Some(path) = &args.cookies {
        let cookies = read_cookies(path)?;
        let platforms: Vec<&str> = requests
            .iter()
            .filter_map(|request| request.as_ref().ok())
            .map(|new| new.platform.as_str())
            .collect();
        for platform in platforms {
            document["platforms"][platform]["cookies"] = cookies.clone().into();
        }
    }
    let settings = Settings::from_value(&document)
        .map_err(|err| mediadl::Error::invalid(err.field, err.reason))?;
    let settings = SettingsHandle::new(settings);

    let store = open_store(args.archive.as_deref()).await?;
    let bus = Arc::new(BroadcastBus::new(1 << 16));
    let events: Arc<dyn EventBus> = bus.clone();
    let engine = Engine::builder()
        .store(Arc::clone(&store))
        .events(Arc::clone(&events))
        .registry(Arc::clone(&registry))
        .settings(settings.clone())
        .download_root(&root)
        .retry_policy(RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        })
        .build()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let queue = QueueService::new(
        Arc::clone(&store),
        Arc::clone(&events),
        registry,
        settings.clone(),
        Arc::clone(&clock),
    );
    let downloads = DownloadService::new(Arc::clone(&store), queue.clone(), settings, &root, clock);
    // An archive keeps earlier runs' records: count only this run's.
    let before = downloads.totals().await.unwrap_or_default();

    let mut feed = events.subscribe();
    let mut failed = 0usize;
    let mut pending: HashMap<i64, String> = HashMap::new();
    for (url, request) in urls.iter().zip(requests) {
        match async { queue.submit(request?).await }.await {
            Ok(item) => {
                pending.insert(item.id, url.clone());
            }
            Err(err) => {
                failed += 1;
                eprintln!("mediadl: {url}: {err}");
            }
        }
    }

    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn({
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        async move { engine.run(shutdown).await }
    });
    let ui = Ui::new(interactive, args.quiet, pending.len());
    let mut interrupted = false;
    while !pending.is_empty() {
        let message = tokio::select! {
            message = feed.next() => message,
            _ = tokio::signal::ctrl_c() => {
                interrupted = true;
                break;
            }
        };
        let event = match message {
            Some(BusMessage::Event(event)) => event,
            // Completions may be among the events missed: ask the store.
            Some(BusMessage::Lagged(_)) => {
                failed += settle_from_store(store.as_ref(), &mut pending, &ui).await;
                continue;
            }
            None => break,
        };
        match &event.kind {
            EventKind::DownloadProgress(progress) if pending.contains_key(&progress.queue_id) => {
                ui.progress(progress)
            }
            EventKind::DownloadCompleted(done) => {
                if let Some(url) = pending.remove(&done.queue_id) {
                    let ok = done.status == QueueStatus::Completed && done.items_failed == 0;
                    if !ok {
                        failed += 1;
                    }
                    ui.finished(done.queue_id, &url, ok, done.error_message.as_deref());
                }
            }
            _ => {}
        }
    }
    shutdown.cancel();
    let _ = runner.await;
    ui.clear();

    let totals = downloads.totals().await.unwrap_or_default();
    let (files, bytes) = (
        totals.completed.saturating_sub(before.completed),
        totals.size_bytes.saturating_sub(before.size_bytes),
    );
    let elapsed = started.elapsed().as_secs_f64();
    if interrupted {
        eprintln!(
            "mediadl: interrupted; {files} file(s) complete, partial files kept for resuming"
        );
        return Ok(ExitCode::from(130));
    }
    eprintln!(
        "mediadl: {files} file(s), {} in {elapsed:.1}s ({}/s){}",
        human_bytes(bytes),
        human_bytes((bytes as f64 / elapsed.max(0.001)) as u64),
        if failed > 0 {
            format!("; {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Finishes the pending items the store already shows as ended, for when
/// the event feed lagged past their completion events. Returns how many failed.
async fn settle_from_store(
    store: &dyn Store,
    pending: &mut HashMap<i64, String>,
    ui: &Ui,
) -> usize {
    let mut failed = 0;
    let ids: Vec<i64> = pending.keys().copied().collect();
    for id in ids {
        let Ok(item) = store.get_queue_item(id).await else {
            continue;
        };
        if !matches!(item.status, QueueStatus::Completed | QueueStatus::Failed) {
            continue;
        }
        if let Some(url) = pending.remove(&id) {
            let ok = item.status == QueueStatus::Completed && item.error_message.is_none();
            if !ok {
                failed += 1;
            }
            ui.finished(id, &url, ok, item.error_message.as_deref());
        }
    }
    failed
}

/// Progress bars on a terminal, one line per finished URL otherwise.
struct Ui {
    interactive: bool,
    /// Only failures get a line.
    quiet: bool,
    bars: MultiProgress,
    overall: ProgressBar,
    items: std::sync::Mutex<HashMap<i64, ProgressBar>>,
}

impl Ui {
    fn new(interactive: bool, quiet: bool, total: usize) -> Self {
        let target = if interactive {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bars = MultiProgress::with_draw_target(target);
        let overall = bars.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>9} [{bar:30}] {pos}/{len} files  {elapsed_precise}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("total");
        Self {
            interactive,
            quiet,
            bars,
            overall,
            items: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn progress(&self, progress: &mediadl::model::ProgressEvent) {
        if !self.interactive {
            return;
        }
        let mut items = self.items.lock().expect("ui lock");
        let bar = items.entry(progress.queue_id).or_insert_with(|| {
            let bar = self.bars.insert_before(&self.overall, ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {wide_msg} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}")
                    .expect("valid template"),
            );
            bar
        });
        if let Some(total) = progress.bytes_total {
            bar.set_length(total);
        }
        bar.set_position(progress.bytes_downloaded);
        bar.set_message(
            progress
                .current_item
                .clone()
                .unwrap_or_else(|| progress.url.clone()),
        );
    }

    fn finished(&self, queue_id: i64, url: &str, ok: bool, error: Option<&str>) {
        if let Some(bar) = self.items.lock().expect("ui lock").remove(&queue_id) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        self.overall.inc(1);
        if ok && self.quiet {
            return;
        }
        let line = if ok {
            format!("done    {url}")
        } else {
            format!("failed  {url}: {}", error.unwrap_or("unknown error"))
        };
        if self.interactive {
            self.bars.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    }

    fn clear(&self) {
        self.overall.finish_and_clear();
        let _ = self.bars.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_from_profile_urls() {
        assert_eq!(
            source_of("https://www.instagram.com/evalongoria/"),
            "evalongoria"
        );
        assert_eq!(source_of("@evalongoria"), "evalongoria");
        assert_eq!(source_of("https://example.com"), "example.com");
    }
}
