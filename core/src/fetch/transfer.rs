//! Streaming a response body to a temporary file while hashing it.
//!
//! The network side stays on the async runtime; a blocking thread hashes
//! (SHA-256, using the CPU's SHA instructions where present) and writes, so
//! the two overlap on two cores. Memory is bounded by a small channel of
//! chunks, never the file. A partial temporary file is resumed with an HTTP
//! Range request, its bytes hashed first.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, RANGE, REFERER};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{HttpClient, map_reqwest_error};
use crate::downloader::TransferProgress;
use crate::error::DownloadError;

/// Chunks in flight between the network and the writer thread.
const PIPELINE_DEPTH: usize = 4;
/// Writes are batched to this size.
const WRITE_BUFFER: usize = 128 * 1024;

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

/// Downloads `url` into `temp`, resuming a partial `temp` when the server
/// supports ranges. On any error the partial file stays for the next
/// attempt; nothing is ever written under a final name here.
pub async fn fetch_to_file(
    http: &HttpClient,
    url: &Url,
    referer: Option<&Url>,
    temp: &Path,
    progress: &TransferProgress,
    cancel: &CancellationToken,
) -> Result<Fetched, DownloadError> {
    let _slot = http.host_permit(url).await;
    let mut resume_from = partial_len(temp).await;
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
    let (sender, receiver) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
    let path = temp.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || write_and_hash(&path, resume_from, receiver));

    let streamed: Result<(), DownloadError> = async {
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Err(DownloadError::Cancelled),
                chunk = response.chunk() => chunk.map_err(|err| map_reqwest_error(url, err))?,
            };
            let Some(chunk) = chunk else { return Ok(()) };
            let len = chunk.len() as u64;
            if sender.send(chunk).await.is_err() {
                // The writer stopped; its error is reported below.
                return Ok(());
            }
            progress.add(len);
        }
    }
    .await;
    drop(sender);
    let written = writer
        .await
        .map_err(|err| DownloadError::Storage(format!("writer thread failed: {err}")))?;
    let (size, sha256) = written?;
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

/// The blocking half: hashes any bytes already in the file, then appends
/// and hashes each chunk as it arrives.
fn write_and_hash(
    path: &Path,
    resume_from: u64,
    mut chunks: mpsc::Receiver<Bytes>,
) -> Result<(u64, String), DownloadError> {
    let storage =
        |err: std::io::Error| DownloadError::Storage(format!("{}: {err}", path.display()));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let file = if resume_from > 0 {
        let mut existing = std::fs::File::open(path).map_err(storage)?;
        let mut buffer = vec![0u8; WRITE_BUFFER];
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
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(storage)?;
        file.set_len(size).map_err(storage)?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(size)).map_err(storage)?;
        file
    } else {
        std::fs::File::create(path).map_err(storage)?
    };
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
        out.write_all(&chunk).map_err(storage)?;
        size += chunk.len() as u64;
    }
    out.flush().map_err(storage)?;
    Ok((size, hex::encode(hasher.finalize())))
}

async fn partial_len(path: &Path) -> u64 {
    tokio::fs::metadata(path)
        .await
        .map(|meta| meta.len())
        .unwrap_or(0)
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
