//! Streaming a response body to a temporary file while hashing it.
//!
//! The network side stays on the async runtime and gathers the body into
//! buffers; a blocking thread hashes each full buffer (SHA-256, using the
//! CPU's SHA instructions where present) and writes it, so the two overlap
//! on two cores. Gathering matters twice over: the writer thread is woken
//! once per buffer rather than once per network chunk (a body of up to
//! 256 KiB is handed over once, at its end), and the network chunks, which
//! can be as large as the HTTP client's read buffer, are released as soon
//! as they are copied. A transfer holds two 128 KiB buffers (or one small
//! body), whatever the file's size. A partial temporary file is resumed
//! with an HTTP Range request, its bytes hashed first.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, RANGE, REFERER};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{HttpClient, map_reqwest_error};
use crate::downloader::TransferProgress;
use crate::error::DownloadError;

/// A body up to this size (by its Content-Length) goes to the writer
/// thread whole, in one hand-over.
const WHOLE_BODY_MAX: u64 = 256 * 1024;
/// A larger body, or one of unknown length, goes in pieces of this size.
const PIECE_SIZE: usize = 128 * 1024;
/// Buffers per transfer: one filling while the other is written.
const BUFFERS: usize = 2;

/// A finished transfer, still under its temporary name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The temporary file the bytes were written to (the caller's `temp`).
    pub path: PathBuf,
    /// Bytes in the file.
    pub size: u64,
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
    /// The response's media type (`image/jpeg`), without parameters.
    pub content_type: Option<String>,
    /// The name in `Content-Disposition`, unsanitised.
    pub disposition_name: Option<String>,
    /// Where the last redirect led.
    pub final_url: Url,
}

/// Downloads `url` into `temp`, resuming after the `partial_len` bytes
/// already there (the file's length) when the server supports ranges. On
/// any error the partial file stays for the next attempt; nothing is ever
/// written under a final name here.
pub async fn fetch_to_file(
    http: &HttpClient,
    url: &Url,
    referer: Option<&Url>,
    temp: &Path,
    partial_len: u64,
    progress: &TransferProgress,
    cancel: &CancellationToken,
) -> Result<Fetched, DownloadError> {
    let _slot = http.host_permit(url).await;
    let mut resume_from = partial_len;
    let mut response = loop {
        let mut request = http.request(reqwest::Method::GET, url.clone());
        if let Some(referer) = referer {
            request = request.header(REFERER, referer.as_str());
        }
        if resume_from > 0 {
            request = request.header(RANGE, format!("bytes={resume_from}-"));
        }
        let sent = tokio::select! {
            _ = cancel.cancelled() => return Err(DownloadError::Cancelled),
            sent = http.send(request) => sent,
        };
        match sent {
            // The partial file is as long as the whole, or the server forgot it: start over.
            Err(DownloadError::Permanent(_)) if resume_from > 0 => {
                remove_partial(temp).await?;
                resume_from = 0;
            }
            other => break other?,
        }
    };

    let status = response.status();
    let mut expected = response.content_length();
    if resume_from > 0 {
        match (status, content_range_start(&response)) {
            (StatusCode::PARTIAL_CONTENT, Some((start, total))) if start == resume_from => {
                expected = total.or(expected.map(|len| len + resume_from));
            }
            _ => {
                // A 200 (or a range we did not ask for): the body is the whole file.
                resume_from = 0;
            }
        }
    }
    let content_type = header_text(&response, CONTENT_TYPE)
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|value| !value.is_empty());
    let disposition_name =
        header_text(&response, CONTENT_DISPOSITION).and_then(|v| disposition_filename(&v));
    let final_url = response.url().clone();

    progress.set(resume_from, expected);
    let buffer_size = match expected.map(|total| total.saturating_sub(resume_from)) {
        Some(remaining) if remaining <= WHOLE_BODY_MAX => remaining.max(1) as usize,
        _ => PIECE_SIZE,
    };
    let mut writer = Writer::new(temp, resume_from, buffer_size);
    let mut buffer = Vec::with_capacity(buffer_size);
    let streamed: Result<(), DownloadError> = async {
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Err(DownloadError::Cancelled),
                chunk = response.chunk() => chunk.map_err(|err| map_reqwest_error(url, err))?,
            };
            let Some(chunk) = chunk else { return Ok(()) };
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let take = rest.len().min(buffer_size - buffer.len());
                buffer.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buffer.len() == buffer_size {
                    buffer = match writer.hand_over(std::mem::take(&mut buffer)).await {
                        Some(empty) => empty,
                        // The writer stopped; its error is reported below.
                        None => return Ok(()),
                    };
                }
            }
            progress.add(chunk.len() as u64);
        }
    }
    .await;
    let (size, sha256) = writer.finish(buffer).await?;
    streamed?;

    if let Some(expected) = expected
        && size < expected
    {
        return Err(DownloadError::retryable(format!(
            "{url}: connection closed after {size} of {expected} bytes"
        )));
    }
    progress.set(size, Some(size));
    Ok(Fetched {
        path: temp.to_path_buf(),
        size,
        sha256,
        content_type,
        disposition_name,
        final_url,
    })
}

/// The writer thread of one transfer, started when the first buffer is
/// full (or at the end of a body smaller than one buffer), with the
/// buffers it hands back for reuse.
struct Writer {
    path: PathBuf,
    resume_from: u64,
    buffer_size: usize,
    running: Option<RunningWriter>,
    /// Buffers allocated so far, at most [`BUFFERS`].
    allocated: usize,
}

struct RunningWriter {
    full: mpsc::Sender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
    thread: tokio::task::JoinHandle<Result<(u64, String), DownloadError>>,
}

impl Writer {
    /// A writer for a transfer that has allocated its first buffer.
    fn new(path: &Path, resume_from: u64, buffer_size: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            resume_from,
            buffer_size,
            running: None,
            allocated: 1,
        }
    }

    fn running(&mut self) -> &mut RunningWriter {
        let (path, resume_from) = (&self.path, self.resume_from);
        self.running
            .get_or_insert_with(|| RunningWriter::start(path, resume_from))
    }

    /// Passes a full buffer to the thread and returns an empty one, waiting
    /// while all are in use; `None` when the thread has stopped.
    async fn hand_over(&mut self, buffer: Vec<u8>) -> Option<Vec<u8>> {
        let may_allocate = self.allocated < BUFFERS;
        let running = self.running();
        running.full.send(buffer).await.ok()?;
        if may_allocate {
            self.allocated += 1;
            return Some(Vec::with_capacity(self.buffer_size));
        }
        running.empty.recv().await
    }

    /// Writes the last, partly filled buffer and returns the file's size and hash.
    async fn finish(mut self, last: Vec<u8>) -> Result<(u64, String), DownloadError> {
        let RunningWriter {
            full,
            empty,
            thread,
        } = match self.running.take() {
            Some(running) => running,
            None => RunningWriter::start(&self.path, self.resume_from),
        };
        // A send fails only when the thread stopped early; its result says why.
        let _ = full.send(last).await;
        drop(full);
        drop(empty);
        thread
            .await
            .map_err(|err| DownloadError::Storage(format!("writer thread failed: {err}")))?
    }
}

impl RunningWriter {
    fn start(path: &Path, resume_from: u64) -> Self {
        let (full, full_rx) = mpsc::channel(BUFFERS);
        let (empty_tx, empty) = mpsc::channel(BUFFERS);
        let path = path.to_path_buf();
        let thread = tokio::task::spawn_blocking(move || {
            write_and_hash(&path, resume_from, full_rx, empty_tx)
        });
        Self {
            full,
            empty,
            thread,
        }
    }
}

/// The blocking half: hashes any bytes already in the file, then hashes
/// and appends each buffer as it arrives, handing it back emptied.
fn write_and_hash(
    path: &Path,
    resume_from: u64,
    mut full: mpsc::Receiver<Vec<u8>>,
    empty: mpsc::Sender<Vec<u8>>,
) -> Result<(u64, String), DownloadError> {
    let storage =
        |err: std::io::Error| DownloadError::Storage(format!("{}: {err}", path.display()));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut file = if resume_from > 0 {
        let mut existing = std::fs::File::open(path).map_err(storage)?;
        let mut buffer = vec![0u8; PIECE_SIZE];
        let mut remaining = resume_from;
        while remaining > 0 {
            let want = remaining.min(buffer.len() as u64) as usize;
            let read = existing.read(&mut buffer[..want]).map_err(storage)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            remaining -= read as u64;
            size += read as u64;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(storage)?;
        file.set_len(size).map_err(storage)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(size)).map_err(storage)?;
        file
    } else {
        std::fs::File::create(path).map_err(storage)?
    };
    while let Some(mut buffer) = full.blocking_recv() {
        hasher.update(&buffer);
        file.write_all(&buffer).map_err(storage)?;
        size += buffer.len() as u64;
        buffer.clear();
        // Fails only once the network side is done and needs no more buffers.
        let _ = empty.try_send(buffer);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

async fn remove_partial(path: &Path) -> Result<(), DownloadError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(DownloadError::Storage(format!("{}: {err}", path.display()))),
    }
}

fn header_text(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL when known).
fn content_range_start(response: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let value = header_text(response, CONTENT_RANGE)?;
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, _end) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// The file name of a `Content-Disposition` header: RFC 5987 `filename*`
/// preferred over `filename`.
pub fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    for part in value.split(';').map(str::trim) {
        let Some((key, raw)) = part.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                let encoded = raw.trim().trim_matches('"');
                let encoded = encoded
                    .split_once("''")
                    .map_or(encoded, |(_charset, rest)| rest);
                let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
                if !decoded.is_empty() {
                    return Some(decoded.into_owned());
                }
            }
            "filename" => {
                let name = raw.trim().trim_matches('"').replace("\\\"", "\"");
                if !name.is_empty() {
                    plain = Some(name);
                }
            }
            _ => {}
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names() {
        assert_eq!(
            disposition_filename("attachment; filename=\"a b.jpg\""),
            Some("a b.jpg".into())
        );
        assert_eq!(
            disposition_filename(
                "attachment; filename=\"x.jpg\"; filename*=UTF-8''%C3%A9t%C3%A9.jpg"
            ),
            Some("été.jpg".into())
        );
        assert_eq!(disposition_filename("inline"), None);
        assert_eq!(
            disposition_filename("attachment; filename=\"../../etc/passwd\""),
            Some("../../etc/passwd".into()),
            "returned raw; placement sanitises"
        );
    }
}
