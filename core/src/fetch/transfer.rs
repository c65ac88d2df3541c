//! Streaming a response body to a temporary file while hashing it, then
//! moving the file into place.
//!
//! The network side stays on the async runtime; a blocking thread hashes
//! (SHA-256, using the CPU's SHA instructions where present) and writes.
//! A body of up to 256 KiB (by its Content-Length) is kept as the network
//! chunks it arrived in, and one trip to a blocking thread writes it,
//! hashes it and links it under its final name: one hand-over per small
//! file, and no copy. A larger body, or one of unknown length, is gathered
//! into 128 KiB buffers that a writer thread hashes and appends while the
//! next one fills, so the two overlap on two cores and the network chunks,
//! which can be as large as the HTTP client's read buffer, are released as
//! soon as they are copied: a transfer holds two buffers whatever the
//! file's size. A partial temporary file is resumed with an HTTP Range
//! request, its bytes hashed first.

use std::fs::File;
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, RANGE, REFERER,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{HttpClient, map_reqwest_error};
use crate::downloader::TransferProgress;
use crate::error::DownloadError;

/// A body up to this size (by its Content-Length) is written, hashed and
/// placed in one hand-over, as it arrived.
const WHOLE_BODY_MAX: u64 = 256 * 1024;
/// A larger body, or one of unknown length, goes in pieces of this size.
const PIECE_SIZE: usize = 128 * 1024;
/// Buffers per transfer: one filling while the other is written.
const BUFFERS: usize = 2;

/// Where a transfer writes, and where its file goes when it is complete.
pub struct Target<'a> {
    /// The temporary file, in the final file's directory.
    pub path: &'a Path,
    /// The temporary file opened for reading and appending (the caller
    /// holds its lock for the whole transfer).
    pub file: Arc<File>,
    /// Bytes an earlier attempt left in the file, to resume after.
    pub partial_len: u64,
    /// The final file's name, from what the response says about itself;
    /// `None` leaves the file under its temporary name for the caller.
    pub final_name: Option<&'a FinalName<'a>>,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("path", &self.path)
            .field("partial_len", &self.partial_len)
            .field("final_name", &self.final_name.is_some())
            .finish_non_exhaustive()
    }
}

/// Names a finished file from the response: its media type (`image/jpeg`)
/// and its `Content-Disposition` name (unsanitised).
pub type FinalName<'a> = dyn Fn(Option<&str>, Option<&str>) -> String + Sync + 'a;

/// A finished transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Where the file is: under its final name when the target named one
    /// (see [`Fetched::placed`]), else the temporary file.
    pub path: PathBuf,
    /// Whether [`Fetched::path`] is the final name.
    pub placed: bool,
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

/// Downloads `url` into the target's temporary file, resuming after the
/// bytes already there when the server supports ranges, and moves the
/// complete file under its final name. On any error the partial file stays
/// for the next attempt; nothing is ever left half-written under a final name.
pub async fn fetch_to_file(
    http: &HttpClient,
    url: &Url,
    referer: Option<&Url>,
    target: Target<'_>,
    progress: &TransferProgress,
    cancel: &CancellationToken,
) -> Result<Fetched, DownloadError> {
    let _slot = http.host_permit(url).await;
    let mut resume_from = target.partial_len;
    let mut response = loop {
        // The file's own bytes: its length, hash and Range offsets are the
        // server's (pages and API calls are sent compressed, files never).
        let mut request = http
            .request(reqwest::Method::GET, url.clone())
            .header(ACCEPT_ENCODING, "identity");
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
            // The partial file is as long as the whole, or the server forgot
            // it: start over (the writer empties the file).
            Err(DownloadError::Permanent(_)) if resume_from > 0 => resume_from = 0,
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
    let final_name = target
        .final_name
        .map(|name| name(content_type.as_deref(), disposition_name.as_deref()));

    progress.set(resume_from, expected);
    let job = WriteJob {
        file: target.file,
        path: target.path.to_path_buf(),
        resume_from,
        // An earlier attempt's bytes the body does not continue are dropped.
        truncate: resume_from == 0 && target.partial_len > 0,
        expected,
        final_name,
    };
    let whole = expected
        .map(|total| total.saturating_sub(resume_from))
        .is_some_and(|remaining| remaining <= WHOLE_BODY_MAX);
    let streamed = if whole {
        receive_whole(&mut response, url, job, progress, cancel).await
    } else {
        receive_in_pieces(&mut response, url, job, progress, cancel).await
    };
    let written = streamed?;

    if let Some(expected) = expected
        && written.size < expected
    {
        return Err(DownloadError::retryable(format!(
            "{url}: connection closed after {} of {expected} bytes",
            written.size
        )));
    }
    progress.set(written.size, Some(written.size));
    Ok(Fetched {
        placed: written.path != target.path,
        path: written.path,
        size: written.size,
        sha256: written.sha256,
        content_type,
        disposition_name,
        final_url,
    })
}

/// Reads a small body as the chunks it arrives in, then writes, hashes and
/// places it in one trip to a blocking thread.
async fn receive_whole(
    response: &mut reqwest::Response,
    url: &Url,
    job: WriteJob,
    progress: &TransferProgress,
    cancel: &CancellationToken,
) -> Result<Written, DownloadError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let received: Result<(), DownloadError> = async {
        loop {
            let Some(chunk) = next_chunk(response, url, cancel).await? else {
                return Ok(());
            };
            progress.add(chunk.len() as u64);
            chunks.push(chunk);
        }
    }
    .await;
    // What arrived before an error is kept for resuming, unplaced.
    let complete = received.is_ok();
    let written = blocking(move || {
        let mut open = job.open()?;
        open.append(&chunks)?;
        job.finish(open, complete)
    })
    .await;
    received?;
    written
}

/// Gathers a large body into buffers that a writer thread hashes and
/// appends while the next one fills.
async fn receive_in_pieces(
    response: &mut reqwest::Response,
    url: &Url,
    job: WriteJob,
    progress: &TransferProgress,
    cancel: &CancellationToken,
) -> Result<Written, DownloadError> {
    let (full, mut full_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let (empty_tx, mut empty) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let (placing_tx, placing) = tokio::sync::oneshot::channel::<bool>();
    let writer = blocking(move || {
        let mut open = job.open()?;
        while let Some(mut buffer) = full_rx.blocking_recv() {
            open.append(std::slice::from_ref(&buffer))?;
            buffer.clear();
            // Fails only once the network side is done and needs no more buffers.
            let _ = empty_tx.try_send(buffer);
        }
        // The network side says whether the body arrived whole.
        let complete = placing.blocking_recv().unwrap_or(false);
        job.finish(open, complete)
    });
    let mut allocated = 1;
    let mut buffer = Vec::with_capacity(PIECE_SIZE);
    let received: Result<(), DownloadError> = async {
        loop {
            let Some(chunk) = next_chunk(response, url, cancel).await? else {
                return Ok(());
            };
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let take = rest.len().min(PIECE_SIZE - buffer.len());
                buffer.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buffer.len() == PIECE_SIZE {
                    // A send fails only when the writer stopped; its result says why.
                    if full.send(std::mem::take(&mut buffer)).await.is_err() {
                        return Ok(());
                    }
                    buffer = if allocated < BUFFERS {
                        allocated += 1;
                        Vec::with_capacity(PIECE_SIZE)
                    } else {
                        match empty.recv().await {
                            Some(empty) => empty,
                            None => return Ok(()),
                        }
                    };
                }
            }
            progress.add(chunk.len() as u64);
        }
    }
    .await;
    let _ = full.send(buffer).await;
    drop(full);
    drop(empty);
    let _ = placing_tx.send(received.is_ok());
    let written = writer.await;
    received?;
    written
}

/// The body's next chunk, `None` at its end.
async fn next_chunk(
    response: &mut reqwest::Response,
    url: &Url,
    cancel: &CancellationToken,
) -> Result<Option<Bytes>, DownloadError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(DownloadError::Cancelled),
        chunk = response.chunk() => chunk.map_err(|err| map_reqwest_error(url, err)),
    }
}

/// Starts blocking file work off the async runtime at once (not when the
/// returned future is first polled: the writer must run while the body
/// arrives).
fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DownloadError> + Send + 'static,
) -> impl Future<Output = Result<T, DownloadError>> {
    let thread = tokio::task::spawn_blocking(work);
    async move {
        thread
            .await
            .map_err(|err| DownloadError::Storage(format!("writer thread failed: {err}")))?
    }
}

/// What the blocking side of a transfer needs.
struct WriteJob {
    file: Arc<File>,
    path: PathBuf,
    resume_from: u64,
    truncate: bool,
    /// The whole file's length, when the response says.
    expected: Option<u64>,
    final_name: Option<String>,
}

/// The file being written, and the hash of everything in it so far.
struct OpenFile<'a> {
    file: &'a File,
    path: &'a Path,
    hasher: Sha256,
    size: u64,
}

/// The written file: where it is, how long, and its hash.
struct Written {
    path: PathBuf,
    size: u64,
    sha256: String,
}

impl WriteJob {
    /// Hashes the bytes kept from an earlier attempt (dropping any past
    /// `resume_from`), ready to append.
    fn open(&self) -> Result<OpenFile<'_>, DownloadError> {
        let mut open = OpenFile {
            file: &self.file,
            path: &self.path,
            hasher: Sha256::new(),
            size: 0,
        };
        if self.resume_from > 0 {
            let mut file = open.file;
            file.seek(SeekFrom::Start(0)).map_err(|e| open.error(e))?;
            let mut buffer = vec![0u8; PIECE_SIZE];
            let mut remaining = self.resume_from;
            while remaining > 0 {
                let want = remaining.min(buffer.len() as u64) as usize;
                let read = file.read(&mut buffer[..want]).map_err(|e| open.error(e))?;
                if read == 0 {
                    break;
                }
                open.hasher.update(&buffer[..read]);
                remaining -= read as u64;
                open.size += read as u64;
            }
            open.file.set_len(open.size).map_err(|e| open.error(e))?;
        } else if self.truncate {
            open.file.set_len(0).map_err(|e| open.error(e))?;
        }
        Ok(open)
    }

    /// The file's hash, and the file moved under its final name if it has
    /// one, the body arrived without error (`received`) and nothing is missing.
    fn finish(&self, open: OpenFile<'_>, received: bool) -> Result<Written, DownloadError> {
        let complete = received && self.expected.is_none_or(|expected| open.size >= expected);
        let (size, sha256) = (open.size, hex::encode(open.hasher.finalize()));
        let path = match &self.final_name {
            Some(name) if complete => {
                // The local storage's placement, on this writer thread:
                // one hand-over per file (see `MediaStorage::staging`).
                let dir = self.path.parent().unwrap_or(Path::new("."));
                crate::storage::local::link_into_place(&self.path, dir, name)?
            }
            _ => self.path.clone(),
        };
        Ok(Written { path, size, sha256 })
    }
}

impl OpenFile<'_> {
    fn error(&self, err: std::io::Error) -> DownloadError {
        DownloadError::Storage(format!("{}: {err}", self.path.display()))
    }

    /// Hashes and appends buffers, in as few writes as the system allows.
    fn append<B: AsRef<[u8]>>(&mut self, buffers: &[B]) -> Result<(), DownloadError> {
        for buffer in buffers {
            self.hasher.update(buffer);
            self.size += buffer.as_ref().len() as u64;
        }
        // An empty buffer (a body ending on a piece boundary) would make
        // the write return 0, which means "the disk takes no more".
        let mut slices: Vec<IoSlice<'_>> = buffers
            .iter()
            .map(AsRef::as_ref)
            .filter(|bytes| !bytes.is_empty())
            .map(IoSlice::new)
            .collect();
        let mut slices = &mut slices[..];
        let mut file = self.file;
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(self.error(std::io::ErrorKind::WriteZero.into())),
                Ok(written) => IoSlice::advance_slices(&mut slices, written),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.error(err)),
            }
        }
        Ok(())
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
    fn appending_writes_every_buffer_and_skips_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.part");
        let file = File::create(&path).unwrap();
        let mut open = OpenFile {
            file: &file,
            path: &path,
            hasher: Sha256::new(),
            size: 0,
        };
        open.append(&[b"ab".to_vec(), Vec::new(), b"c".to_vec()])
            .unwrap();
        open.append(&[Vec::<u8>::new()]).unwrap();
        assert_eq!(open.size, 3);
        assert_eq!(
            hex::encode(open.hasher.finalize()),
            hex::encode(Sha256::digest(b"abc"))
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }

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
