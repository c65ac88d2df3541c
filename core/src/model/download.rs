use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Metadata;

/// Outcome of one media item: the spec's `completed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DownloadStatus {
    /// The file was saved (or found as a duplicate).
    Completed,
    /// Every attempt failed; `error_message` says why.
    Failed,
}

spellings! {
    DownloadStatus, field "status", unknown "download status";
    Completed => "completed",
    Failed => "failed",
}

/// One archived media item (a row of the download history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Download {
    /// Store-assigned id.
    pub id: i64,
    /// The URL the media was fetched from.
    pub url: String,
    /// Hex SHA-256 of `archive_key`: the identity used for "downloaded once".
    pub url_hash: String,
    /// Stable key of the media item across runs (`direct:https://…`, `instagram:3141…`).
    pub archive_key: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the media came from.
    pub source: String,
    /// Kind of content it was listed under (`posts`, `stories`, `thread`, …).
    pub content_type: String,
    /// File name within the placement directory, when a file was written.
    pub filename: Option<String>,
    /// Absolute path of the file, when there is one.
    pub file_path: Option<String>,
    /// Size of the file in bytes.
    pub file_size: Option<u64>,
    /// `sha256:<hex>` of the file's bytes.
    pub file_hash: Option<String>,
    /// When the platform says the media was posted.
    pub post_date: Option<DateTime<Utc>>,
    /// When the download finished (or failed for good).
    pub download_date: DateTime<Utc>,
    /// Saved or failed.
    pub status: DownloadStatus,
    /// Transfer attempts made for this media item.
    pub attempts: u32,
    /// Why it failed, for failed records.
    pub error_message: Option<String>,
    /// Set when the bytes were already stored under another record: this
    /// record points at that file instead of storing a second copy.
    pub duplicate_of: Option<i64>,
    /// The queue item that produced this record.
    pub queue_id: Option<i64>,
    /// Platform data about the media (caption, dimensions, post id, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
}

/// A download record before the store has given it an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDownload {
    /// The URL the media was fetched from.
    pub url: String,
    /// Stable key of the media item across runs; its hash becomes `url_hash`.
    pub archive_key: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the media came from.
    pub source: String,
    /// Kind of content it was listed under.
    pub content_type: String,
    /// File name within the placement directory, when a file was written.
    pub filename: Option<String>,
    /// Absolute path of the file, when there is one.
    pub file_path: Option<String>,
    /// Size of the file in bytes.
    pub file_size: Option<u64>,
    /// `sha256:<hex>` of the file's bytes.
    pub file_hash: Option<String>,
    /// When the platform says the media was posted.
    pub post_date: Option<DateTime<Utc>>,
    /// When the download finished (or failed for good).
    pub download_date: DateTime<Utc>,
    /// Saved or failed.
    pub status: DownloadStatus,
    /// Transfer attempts made for this media item.
    pub attempts: u32,
    /// Why it failed, for failed records.
    pub error_message: Option<String>,
    /// The record whose file holds the same bytes, when this one stored none.
    pub duplicate_of: Option<i64>,
    /// The queue item that produced this record.
    pub queue_id: Option<i64>,
    /// Platform data about the media.
    pub metadata: Metadata,
}

impl NewDownload {
    /// The record this becomes once stored under `id`.
    pub fn into_download(self, id: i64) -> Download {
        Download {
            id,
            url_hash: url_hash(&self.archive_key),
            url: self.url,
            archive_key: self.archive_key,
            platform: self.platform,
            source: self.source,
            content_type: self.content_type,
            filename: self.filename,
            file_path: self.file_path,
            file_size: self.file_size,
            file_hash: self.file_hash,
            post_date: self.post_date,
            download_date: self.download_date,
            status: self.status,
            attempts: self.attempts,
            error_message: self.error_message,
            duplicate_of: self.duplicate_of,
            queue_id: self.queue_id,
            metadata: self.metadata,
        }
    }
}

/// Hex SHA-256 of an archive key, the spec's `url_hash`.
pub fn url_hash(archive_key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(archive_key.as_bytes()))
}

/// Filters of `GET /downloads`. Every field narrows the result; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DownloadFilter {
    /// Only records of this platform.
    pub platform: Option<String>,
    /// Only records of this source.
    pub source: Option<String>,
    /// Only completed or only failed records.
    pub status: Option<DownloadStatus>,
    /// Inclusive, by `download_date` (UTC day).
    pub date_from: Option<NaiveDate>,
    /// Inclusive, by `download_date` (UTC day).
    pub date_to: Option<NaiveDate>,
    /// Case-insensitive substring of the URL or the filename.
    pub search: Option<String>,
}

/// What a bulk operation on downloads did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkResult {
    /// Records the operation applied to.
    pub success: u32,
    /// Records it could not apply to.
    pub failed: u32,
    /// One message per failed record, saying which and why.
    pub errors: Vec<String>,
}
