//! The one driver both programs run through: which platform a program
//! serves and how its sources are named ([`Binding`]), the options every
//! run gets, a listing as a stream of items ([`Binding::list`]) and one
//! transfer from start to the kept file ([`Binding::start`], [`Run`]).
//!
//! `yt-dlp` and `gallery-dl` differ only in their arguments, in how a
//! printed line becomes a [`MediaItem`] and in how the produced file is
//! found; everything else (settings, executable, work directory, proxy,
//! cookies, the event loop, the time limits, how a failure is read, what is
//! kept) lives here once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use serde_json::Value;
use url::Url;

use super::runner::{Finished, Invocation, ProgramEvent, RunningProgram};
use super::{
    ProgramSettings, VersionCache, WorkDir, check_program, classify_failure, excerpt, proxy_for,
};
use crate::downloader::{Context, MediaItem, Request, Staging, Unavailable};
use crate::error::{DownloadError, Error};
use crate::model::{DownloaderInfo, ListingOrder, Settings};
use crate::platforms::{accounts, platform_cookies};

/// How often a program that reports no progress has its work directory measured.
const PROGRESS_POLL: Duration = Duration::from_millis(250);

/// What is fixed about one external program.
#[derive(Debug)]
pub(crate) struct Program {
    /// Its name on `PATH`, in settings and in errors: `yt-dlp`, `gallery-dl`.
    pub name: &'static str,
    /// Shown by `GET /platforms`.
    pub display_name: &'static str,
    /// The name without the dash, accepted as a downloader alias.
    pub alias: &'static str,
    /// Oldest release with every option the engine uses.
    pub minimum_version: &'static [u32],
    /// Options every run starts with: no user configuration, no colours.
    pub base_args: &'static [&'static str],
    /// The options setting the network timeout, in seconds.
    pub timeout_args: fn(u64) -> Vec<String>,
    /// gallery-dl logs some failures as `[…][error]` lines and exits 0.
    pub logs_errors: bool,
}

/// What a source of a platform is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sources {
    /// An account name; per content type the default listing URL (with
    /// `{username}`) and the content type of its items.
    Accounts(&'static [(&'static str, &'static str, &'static str)]),
    /// The source is a URL the program accepts (a channel, a playlist, a
    /// board, a single post): one content type, and its items' type.
    Urls {
        content_type: &'static str,
        item_type: &'static str,
    },
}

/// One program serving one platform.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub program: &'static Program,
    pub platform: &'static str,
    pub platform_display_name: &'static str,
    pub sources: Sources,
    pub versions: Arc<VersionCache>,
}

/// What one listing lists: the URL given to the program and the content
/// type of its items.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub url: Url,
    pub item_type: &'static str,
    /// The account name, for log lines (the URL for general platforms).
    pub label: String,
}

impl Binding {
    /// A binding with a fresh version cache.
    pub fn new(
        program: &'static Program,
        platform: &'static str,
        platform_display_name: &'static str,
        sources: Sources,
    ) -> Self {
        Self {
            program,
            platform,
            platform_display_name,
            sources,
            versions: Arc::new(VersionCache::default()),
        }
    }

    /// Whether the source is a URL of any site (platforms `video`, `gallery`).
    pub fn is_general(&self) -> bool {
        matches!(self.sources, Sources::Urls { .. })
    }

    fn content_types(&self) -> Vec<&'static str> {
        match self.sources {
            Sources::Accounts(sources) => sources.iter().map(|(name, _, _)| *name).collect(),
            Sources::Urls { content_type, .. } => vec![content_type],
        }
    }

    /// The downloader's description, with the platform-specific `features`.
    pub fn info(&self, features: &[&str]) -> DownloaderInfo {
        DownloaderInfo {
            platform: self.platform.into(),
            platform_display_name: self.platform_display_name.into(),
            name: self.program.name.into(),
            display_name: self.program.display_name.into(),
            aliases: vec![self.program.alias.into()],
            content_types: self.content_types().into_iter().map(Into::into).collect(),
            features: features.iter().map(|f| (*f).into()).collect(),
            listing_order: ListingOrder::NewestFirst,
            accepts_cookies: true,
            // The general platforms have no other downloader.
            is_default: self.is_general(),
        }
    }

    /// Platform and downloader switched on, the program found and recent enough.
    pub async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
        check_program(
            settings,
            self.platform,
            self.program.name,
            self.program.name,
            self.program.minimum_version,
            &self.versions,
        )
        .await
        .map(|_| ())
    }

    /// Refuses a source that is not an account name (named platforms) or
    /// not an http(s) URL (general platforms), and an unknown content type.
    pub fn validate(&self, request: &Request) -> Result<(), Error> {
        match self.sources {
            Sources::Accounts(_) => {
                accounts::username(self.platform, &request.source)?;
            }
            Sources::Urls { .. } => {
                source_url(request)?;
            }
        }
        accounts::content_type(
            self.platform_display_name,
            &self.content_types(),
            &request.content_type,
        )
    }

    /// What `request` lists, with the listing URL from the settings'
    /// templates for account sources.
    pub fn target(
        &self,
        request: &Request,
        program: &ProgramSettings,
    ) -> Result<Target, DownloadError> {
        let permanent = |err: Error| DownloadError::permanent(err.to_string());
        self.validate(request).map_err(permanent)?;
        match self.sources {
            Sources::Urls { item_type, .. } => {
                let url = source_url(request).map_err(permanent)?;
                Ok(Target {
                    label: url.to_string(),
                    url,
                    item_type,
                })
            }
            Sources::Accounts(sources) => {
                let username =
                    accounts::username(self.platform, &request.source).map_err(permanent)?;
                let (_, default, item_type) = sources
                    .iter()
                    .find(|(name, _, _)| *name == request.content_type)
                    .ok_or_else(|| {
                        DownloadError::permanent(format!(
                            "unknown content type {:?}",
                            request.content_type
                        ))
                    })?;
                let text = program.source_url(default, &username, &request.content_type);
                let url = Url::parse(&text).map_err(|err| {
                    DownloadError::permanent(format!("listing URL {text:?}: {err}"))
                })?;
                Ok(Target {
                    url,
                    item_type,
                    label: username,
                })
            }
        }
    }

    /// `platforms.<platform>.<program>` of the settings.
    pub fn settings(&self, settings: &Settings) -> Result<ProgramSettings, DownloadError> {
        ProgramSettings::read(settings, self.platform, self.program.name)
            .map_err(DownloadError::Permanent)
    }

    /// Everything a run needs before its own arguments: the program's
    /// settings and path, a work directory (inside `staging` for a
    /// transfer), the options every run gets (network timeout, proxy, the
    /// cookies for `url`'s site) and the configured extra arguments.
    pub fn start(
        &self,
        cx: &Context,
        staging: Option<&Staging>,
        url: &Url,
    ) -> Result<Run, DownloadError> {
        let program = self.settings(&cx.settings)?;
        let path = super::locate(&program.path, self.program.name)
            .map_err(|err| DownloadError::permanent(err.reason))?;
        let work = WorkDir::new(staging)?;
        let mut args: Vec<String> = self.program.base_args.iter().map(|a| (*a).into()).collect();
        args.extend((self.program.timeout_args)(u64::from(
            cx.settings.network.read_timeout_seconds,
        )));
        if let Some(proxy) = proxy_for(cx, self.platform) {
            args.push("--proxy".into());
            args.push(proxy);
        }
        if let Some(cookies) = platform_cookies(&cx.settings, self.platform) {
            // A general platform's cookies file holds many sites' cookies:
            // the program sees only those of the site it is sent to.
            let cookies = match (self.is_general(), url.host_str()) {
                (true, Some(host)) => crate::fetch::cookies_for_host(&cookies, host),
                _ => cookies,
            };
            let path = work.write_cookies(&cookies)?;
            args.push("--cookies".into());
            args.push(path.to_string_lossy().into_owned());
        }
        args.extend(program.extra_args.iter().cloned());
        Ok(Run {
            program: self.program,
            settings: program,
            path,
            work,
            args,
        })
    }

    /// Lists `request` as a stream: the program runs with `listing_args`
    /// (given the work directory) and the target URL; every stdout line
    /// starting with `marker` is one JSON entry for `parse`. The program is
    /// killed when the engine stops pulling (the stream owns it).
    pub fn list<A, P>(
        &self,
        request: &Request,
        cx: &Context,
        marker: &'static str,
        listing_args: A,
        parse: P,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>>
    where
        A: FnOnce(&Run, &Target) -> Vec<String> + Send + 'static,
        P: Fn(&Value, &Target) -> Result<MediaItem, String> + Send + 'static,
    {
        let this = self.clone();
        let request = request.clone();
        let cx = cx.clone();
        async_stream::try_stream! {
            let target = this.target(&request, &this.settings(&cx.settings)?)?;
            let mut run = this.start(&cx, None, &target.url)?;
            let extra = listing_args(&run, &target);
            run.args.extend(extra);
            run.args.push("--".into());
            run.args.push(target.url.to_string());
            let name = this.program.name;
            let mut running = RunningProgram::spawn(&run.invocation())?;
            let mut listed = 0usize;
            let mut unreadable = Vec::new();
            loop {
                match running.next_event(&cx.cancel, None).await? {
                    ProgramEvent::Line(line) => {
                        let Some(json) = line.strip_prefix(marker) else {
                            // The program's own chatter on stdout; not ours to read.
                            unreadable.push(line);
                            continue;
                        };
                        let value: Value = serde_json::from_str(json).map_err(|err| {
                            DownloadError::permanent(format!(
                                "{name} printed an unreadable item ({err}): {}",
                                excerpt(json)
                            ))
                        })?;
                        match parse(&value, &target) {
                            Ok(item) => {
                                listed += 1;
                                yield item;
                            }
                            Err(reason) => tracing::warn!(
                                platform = this.platform,
                                source = %target.label,
                                "{name} listed an entry mediadl cannot use: {reason}"
                            ),
                        }
                    }
                    ProgramEvent::Eof => break,
                    ProgramEvent::Tick => {}
                }
            }
            let finished = running.finish(&cx.cancel).await?;
            run.check_finished(&finished, listed == 0)?;
            if listed == 0 && !unreadable.is_empty() {
                Err(DownloadError::permanent(format!(
                    "{name} printed no readable entries for {}: {}",
                    target.url,
                    excerpt(&unreadable.join(" | "))
                )))?;
            }
            drop(run);
        }
        .boxed()
    }
}

/// The URL a general platform's request lists: its `url` when that is an
/// http(s) URL, else its `source` (the source *is* the URL).
pub(crate) fn source_url(request: &Request) -> Result<Url, Error> {
    let parsed = |text: &str| {
        Url::parse(text.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
    };
    parsed(&request.url)
        .or_else(|| parsed(&request.source))
        .ok_or_else(|| {
            Error::invalid(
                "source",
                format!(
                    "{:?} is not an http(s) URL; the source of a general platform is the \
                     page to download from (a channel, playlist, profile or post)",
                    request.source
                ),
            )
        })
}

/// One run of a program, prepared by [`Binding::start`].
#[derive(Debug)]
pub(crate) struct Run {
    program: &'static Program,
    settings: ProgramSettings,
    path: PathBuf,
    /// The run's private directory (removed with the run).
    pub work: WorkDir,
    /// The arguments so far; the caller adds its own and the URL.
    pub args: Vec<String>,
}

impl Run {
    fn invocation(&self) -> Invocation {
        self.settings
            .invocation(self.program.name, self.path.clone())
            .args(self.args.iter())
    }

    /// A failure when the program exited non-zero, or (gallery-dl) logged
    /// an error line and `nothing_produced`.
    fn check_finished(
        &self,
        finished: &Finished,
        nothing_produced: bool,
    ) -> Result<(), DownloadError> {
        let logged_error =
            self.program.logs_errors && finished.stderr.to_ascii_lowercase().contains("][error]");
        if !finished.status.success() || (logged_error && nothing_produced) {
            return Err(classify_failure(
                self.program.name,
                &finished.stderr,
                finished.status.code(),
            ));
        }
        Ok(())
    }

    /// Runs the program to its end, handing each stdout line to `on_line`.
    /// A program that reports no progress (`on_line` returns nothing) has
    /// its work directory measured instead; a growing file counts as
    /// activity, so a long transfer is not taken for a stalled one. Any
    /// error logged fails the run.
    pub async fn transfer(
        &self,
        cx: &Context,
        mut on_line: impl FnMut(&str) -> Option<(u64, Option<u64>)>,
    ) -> Result<Finished, DownloadError> {
        let mut running = RunningProgram::spawn(&self.invocation())?;
        cx.progress.set(0, None);
        let mut reported = false;
        let mut written = 0;
        loop {
            match running.next_event(&cx.cancel, Some(PROGRESS_POLL)).await? {
                ProgramEvent::Line(line) => {
                    if let Some((done, total)) = on_line(&line) {
                        reported = true;
                        cx.progress.set(done, total);
                    }
                }
                ProgramEvent::Eof => break,
                ProgramEvent::Tick if !reported => {
                    let now = self.work.bytes_written();
                    if now != written {
                        running.touch();
                        written = now;
                        cx.progress.set(written, None);
                    }
                }
                ProgramEvent::Tick => {}
            }
        }
        let finished = running.finish(&cx.cancel).await?;
        self.check_finished(&finished, true)?;
        Ok(finished)
    }

    /// Moves the produced file (and its companions) out of the work
    /// directory next to it and reports its full size as the progress.
    pub fn keep(
        &self,
        cx: &Context,
        produced: &Path,
        companions: &[PathBuf],
    ) -> Result<PathBuf, DownloadError> {
        let kept = self.work.keep(produced)?;
        for companion in companions {
            self.work.keep_companion(&kept, produced, companion)?;
        }
        let size = std::fs::metadata(&kept).map(|meta| meta.len()).unwrap_or(0);
        cx.progress.set(size, Some(size));
        Ok(kept)
    }
}
