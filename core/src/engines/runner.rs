//! Running an external program as a child process: its own process group
//! (so cancelling kills every helper it started, such as ffmpeg), stdout
//! read line by line, the tail of stderr kept for error messages, and two
//! time limits: a total one and a stall one (no output, no progress).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::DownloadError;

/// How much of stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 16 * 1024;
/// Longest stdout line accepted; a longer one is garbage, not JSON we asked for.
const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// A program and its arguments, with the limits of one run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Shown in errors: `yt-dlp`, `gallery-dl`.
    pub name: String,
    /// The program's path (or a name looked up on `PATH`).
    pub program: PathBuf,
    /// Arguments, in order.
    pub args: Vec<OsString>,
    /// Working directory; the current one when `None`.
    pub cwd: Option<PathBuf>,
    /// The whole run may take at most this long.
    pub timeout: Duration,
    /// The run is considered hung after this long without output or progress.
    pub stall_timeout: Duration,
}

impl Invocation {
    /// Runs `program`, shown as `name` in errors, with no arguments yet.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            timeout: Duration::from_secs(3600),
            stall_timeout: Duration::from_secs(300),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several arguments, in order.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// What [`RunningProgram::next_event`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramEvent {
    /// One line of stdout, without its line ending.
    Line(String),
    /// Nothing printed during the tick interval: time to poll for progress.
    Tick,
    /// stdout closed: the program is about to exit.
    Eof,
}

/// How a finished program ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The program's exit status.
    pub status: ExitStatus,
    /// The last lines of stderr.
    pub stderr: String,
}

/// A started program. Dropping it kills the whole process group, so a
/// stream that owns one stops the program when the engine stops pulling.
#[derive(Debug)]
pub struct RunningProgram {
    name: String,
    child: Child,
    pgid: Option<Pid>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<Tail>>,
    deadline: Instant,
    stall_timeout: Duration,
    last_activity: Arc<Mutex<Instant>>,
    timeout: Duration,
}

impl RunningProgram {
    /// Starts `invocation` in a process group of its own.
    pub fn spawn(invocation: &Invocation) -> Result<Self, DownloadError> {
        let mut command = Command::new(&invocation.program);
        command
            .args(&invocation.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            // Python buffers stdout when it is a pipe; progress must flow now.
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONIOENCODING", "utf-8");
        if let Some(cwd) = &invocation.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|err| {
            DownloadError::permanent(format!(
                "cannot start {} ({}): {err}",
                invocation.name,
                invocation.program.display()
            ))
        })?;
        let pgid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        let stdout = child.stdout.take().ok_or_else(|| {
            DownloadError::permanent(format!("{}: no stdout pipe", invocation.name))
        })?;
        let now = Instant::now();
        let last_activity = Arc::new(Mutex::new(now));
        let stderr_tail = Arc::new(Mutex::new(Tail::default()));
        let stderr = child.stderr.take().map(|stderr| {
            tokio::spawn(collect_stderr(
                stderr,
                Arc::clone(&stderr_tail),
                Arc::clone(&last_activity),
            ))
        });
        Ok(Self {
            name: invocation.name.clone(),
            child,
            pgid,
            stdout: BufReader::new(stdout).lines(),
            stderr,
            stderr_tail,
            deadline: now + invocation.timeout,
            stall_timeout: invocation.stall_timeout,
            last_activity,
            timeout: invocation.timeout,
        })
    }

    /// Counts as activity for the stall limit (a file growing on disk).
    pub fn touch(&self) {
        *self.last_activity.lock().expect("activity lock") = Instant::now();
    }

    /// The next line of stdout, or a [`ProgramEvent::Tick`] after `tick`
    /// of silence. Kills the program and fails on cancellation, on the
    /// total time limit and when it stalls.
    pub async fn next_event(
        &mut self,
        cancel: &CancellationToken,
        tick: Option<Duration>,
    ) -> Result<ProgramEvent, DownloadError> {
        loop {
            let stall_at = *self.last_activity.lock().expect("activity lock") + self.stall_timeout;
            let limit = stall_at.min(self.deadline);
            let wake = match tick {
                Some(tick) => limit.min(Instant::now() + tick),
                None => limit,
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.kill_group();
                    return Err(DownloadError::Cancelled);
                }
                line = self.stdout.next_line() => {
                    return match line {
                        Ok(Some(line)) => {
                            self.touch();
                            if line.len() > MAX_LINE_BYTES {
                                self.kill_group();
                                return Err(DownloadError::permanent(format!(
                                    "{} printed a line of {} bytes, not the output asked for",
                                    self.name,
                                    line.len()
                                )));
                            }
                            Ok(ProgramEvent::Line(line))
                        }
                        Ok(None) => Ok(ProgramEvent::Eof),
                        Err(err) => {
                            self.kill_group();
                            Err(DownloadError::permanent(format!(
                                "{} printed unreadable output: {err}",
                                self.name
                            )))
                        }
                    };
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= self.deadline {
                        self.kill_group();
                        return Err(DownloadError::retryable(format!(
                            "{} did not finish within {}s and was stopped",
                            self.name,
                            self.timeout.as_secs()
                        )));
                    }
                    let stall_at =
                        *self.last_activity.lock().expect("activity lock") + self.stall_timeout;
                    if now >= stall_at {
                        self.kill_group();
                        return Err(DownloadError::retryable(format!(
                            "{} made no progress for {}s and was stopped",
                            self.name,
                            self.stall_timeout.as_secs()
                        )));
                    }
                    if tick.is_some() {
                        return Ok(ProgramEvent::Tick);
                    }
                }
            }
        }
    }

    /// Waits for the exit after stdout closed, within the same limits.
    pub async fn finish(mut self, cancel: &CancellationToken) -> Result<Finished, DownloadError> {
        let status = tokio::select! {
            _ = cancel.cancelled() => {
                self.kill_group();
                return Err(DownloadError::Cancelled);
            }
            _ = tokio::time::sleep_until(self.deadline) => {
                self.kill_group();
                return Err(DownloadError::retryable(format!(
                    "{} did not exit within {}s and was stopped",
                    self.name,
                    self.timeout.as_secs()
                )));
            }
            status = self.child.wait() => status.map_err(|err| {
                DownloadError::permanent(format!("{}: cannot wait for the process: {err}", self.name))
            })?,
        };
        // Helpers the program left behind in its group go with it.
        self.kill_group();
        if let Some(stderr) = self.stderr.take() {
            // stderr closes once every process holding it is gone.
            let _ = tokio::time::timeout(Duration::from_secs(5), stderr).await;
        }
        Ok(Finished {
            status,
            stderr: self.stderr_text(),
        })
    }

    /// What stderr said so far (its tail).
    pub fn stderr_text(&self) -> String {
        self.stderr_tail.lock().expect("stderr lock").text()
    }

    /// SIGKILL to every process of the group; harmless when already gone.
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (nothing left) is the normal case after an exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for RunningProgram {
    fn drop(&mut self) {
        self.kill_group();
        if let Some(stderr) = self.stderr.take() {
            stderr.abort();
        }
    }
}

/// The last bytes of a stream, cut at line boundaries.
#[derive(Debug, Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL_BYTES && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn collect_stderr(
    stderr: impl AsyncRead + Unpin,
    tail: Arc<Mutex<Tail>>,
    last_activity: Arc<Mutex<Instant>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        *last_activity.lock().expect("activity lock") = Instant::now();
        let line: String = line.chars().take(2000).collect();
        tail.lock().expect("stderr lock").push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Invocation {
        Invocation::new("sh", "/bin/sh").arg("-c").arg(script)
    }

    #[tokio::test]
    async fn reads_lines_and_the_exit_status() {
        let mut run =
            RunningProgram::spawn(&shell("echo one; echo two; echo oops >&2; exit 3")).unwrap();
        let cancel = CancellationToken::new();
        let mut lines = Vec::new();
        loop {
            match run.next_event(&cancel, None).await.unwrap() {
                ProgramEvent::Line(line) => lines.push(line),
                ProgramEvent::Eof => break,
                ProgramEvent::Tick => {}
            }
        }
        let finished = run.finish(&cancel).await.unwrap();
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.stderr, "oops");
    }

    #[tokio::test]
    async fn a_silent_program_is_stopped_as_stalled() {
        let mut invocation = shell("sleep 30");
        invocation.stall_timeout = Duration::from_millis(200);
        let mut run = RunningProgram::spawn(&invocation).unwrap();
        let err = run
            .next_event(&CancellationToken::new(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DownloadError::Retryable { reason, .. } if reason.contains("no progress")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The grandchild writes its pid, then sleeps: it must die with the group.
        let script = format!(
            "sleep 60 & echo $! > {}; echo started; wait",
            pidfile.display()
        );
        let mut run = RunningProgram::spawn(&shell(&script)).unwrap();
        let cancel = CancellationToken::new();
        assert_eq!(
            run.next_event(&cancel, None).await.unwrap(),
            ProgramEvent::Line("started".into())
        );
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        cancel.cancel();
        assert_eq!(
            run.next_event(&cancel, None).await.unwrap_err(),
            DownloadError::Cancelled
        );
        drop(run);
        // The killed grandchild is reaped by init; poll until it is gone.
        let mut gone = false;
        for _ in 0..100 {
            let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
            // Missing, or a zombie waiting for its reaper: either way, dead.
            if state.map_or(true, |stat| stat.contains(") Z ")) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "grandchild {grandchild} survived the cancel");
    }
}
