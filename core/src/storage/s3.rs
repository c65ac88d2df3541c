//! Media in an S3-compatible bucket, through `object_store`.
//!
//! A body up to [`PART_SIZE`] goes in one PUT; a larger one as a multipart
//! upload whose parts are read and sent one after another, so a transfer
//! holds one part in memory whatever the file's size. S3 makes an object
//! visible only when its single PUT or its `CompleteMultipartUpload`
//! succeeds, so nothing half-written ever appears under a key; a failed
//! upload is aborted. Each multipart upload is also written to a journal
//! in the local staging directory while it runs, so that after a crash
//! [`MediaStorage::recover`] aborts it at the next start and the bucket
//! keeps no unfinished (billable) parts.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

use super::local::remove_stale_temporaries;
use super::{
    Backend, ByteStream, Collision, MediaStorage, ObjectInfo, S3Settings, Staging, StorageError,
    StorageKey, Stored, TEMP_PREFIX, key_prefix,
};
use crate::engine::placement::numbered;

/// Bodies up to this size go in one PUT; larger ones in parts of this size
/// by default (see [`S3Config::part_size`]).
pub const PART_SIZE: usize = 6 * 1024 * 1024;
/// S3 asks at least this of every part but the last.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of one upload sent at once by default (the next is read while
/// these go).
const PARTS_IN_FLIGHT: usize = 2;
/// A staged file older than this is a crash's leftover.
const STALE_STAGED_AGE: Duration = Duration::from_secs(24 * 3600);
/// The journal of running multipart uploads, in the staging directory.
const UPLOADS_DIR: &str = ".mediadl-uploads";

/// How to reach a bucket: the `storage.s3` settings plus where this
/// process stages transfers on its own disk.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket settings.
    pub settings: S3Settings,
    /// A local directory for staged transfers and the upload journal (each
    /// process its own; `<data dir>/staging`).
    pub staging_dir: PathBuf,
    /// Requests that fail for a temporary reason (5xx, SlowDown, a dropped
    /// connection) are retried this many times before the error is returned.
    pub max_retries: usize,
    /// Bytes in each part of a multipart upload, and the most sent in one
    /// PUT (at least 5 MiB, S3's minimum).
    pub part_size: usize,
    /// Part buffers (of `part_size` each) this storage holds at once, over
    /// all its uploads; an upload waits for one before reading its next
    /// part, so memory stays bounded whatever the concurrency.
    pub part_buffers: usize,
    /// Parts of one upload sent at once (the next is read meanwhile).
    pub parts_in_flight: usize,
    /// Uploads under way at once; more wait their turn. Uploads beyond what
    /// the part buffers can feed only slow each other down and keep more
    /// unfinished uploads open in the bucket.
    pub concurrent_uploads: usize,
}

impl S3Config {
    /// `settings`, staging under `staging_dir`, with the default retries.
    pub fn new(settings: S3Settings, staging_dir: impl Into<PathBuf>) -> Self {
        Self {
            settings,
            staging_dir: staging_dir.into(),
            max_retries: 3,
            part_size: PART_SIZE,
            part_buffers: 6,
            parts_in_flight: PARTS_IN_FLIGHT,
            concurrent_uploads: 4,
        }
    }
}

/// Media in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Arc<AmazonS3>,
    bucket: String,
    /// `""` or `media/`: put before every key.
    prefix: String,
    staging_dir: PathBuf,
    presign_for: Option<Duration>,
    /// The part buffers (see [`S3Config::part_buffers`]).
    buffers: Arc<PartBuffers>,
    parts_in_flight: usize,
    /// One permit per upload under way (see [`S3Config::concurrent_uploads`]).
    uploads: Arc<tokio::sync::Semaphore>,
}

impl S3Storage {
    /// A client for the bucket; nothing is sent until the first operation
    /// (see [`MediaStorage::check`]).
    ///
    /// # Errors
    ///
    /// [`StorageError::Failed`] when the settings cannot make a client
    /// (no bucket, an unusable endpoint) or the part size is below 5 MiB.
    pub fn new(config: &S3Config) -> Result<Self, StorageError> {
        if config.part_size < MIN_PART_SIZE {
            return Err(StorageError::Failed(format!(
                "S3 part size {} bytes is below the 5 MiB S3 requires",
                config.part_size
            )));
        }
        let s3 = &config.settings;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(!s3.path_style)
            .with_retry(RetryConfig {
                max_retries: config.max_retries,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s3.endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(10))
                    // An idle connection keeps its write buffer, which grows
                    // to a part: keep as many as parts can be sent at once.
                    .with_pool_max_idle_per_host(config.part_buffers.max(1))
                    .with_timeout(Duration::from_secs(120)),
            );
        if !s3.endpoint.is_empty() {
            builder = builder.with_endpoint(&s3.endpoint);
        }
        if !s3.access_key_id.is_empty() {
            builder = builder.with_access_key_id(&s3.access_key_id);
        }
        if !s3.secret_access_key.is_empty() {
            builder = builder.with_secret_access_key(&s3.secret_access_key);
        }
        let client = builder
            .build()
            .map_err(|err| StorageError::Failed(format!("S3 settings: {err}")))?;
        let prefix = s3.prefix.trim_matches('/');
        Ok(Self {
            client: Arc::new(client),
            bucket: s3.bucket.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            staging_dir: config.staging_dir.clone(),
            parts_in_flight: config.parts_in_flight.max(1),
            uploads: Arc::new(tokio::sync::Semaphore::new(
                config.concurrent_uploads.max(1),
            )),
            buffers: Arc::new(PartBuffers::new(
                config.part_buffers.max(config.parts_in_flight.max(1)),
                config.part_size,
            )),
            presign_for: s3
                .presigned_redirect
                .then(|| Duration::from_secs(u64::from(s3.presigned_ttl_seconds))),
        })
    }

    fn path(&self, key: &StorageKey) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    fn error(&self, key: Option<&StorageKey>, err: object_store::Error) -> StorageError {
        classify(&self.bucket, key, err)
    }

    /// The first key from `key` on (`name`, `name_1`, …) with no object.
    async fn free_key(&self, key: &StorageKey) -> Result<StorageKey, StorageError> {
        for attempt in 0..10_000 {
            let candidate = key.sibling(&numbered(key.name(), attempt))?;
            if self.size(&candidate).await?.is_none() {
                return Ok(candidate);
            }
        }
        Err(StorageError::Failed(format!("no free key for {key}")))
    }

    /// Uploads `body` under `key`: one PUT when it fits in a part, else a
    /// journalled multipart upload (up to [`S3Config::parts_in_flight`] parts sent
    /// while the next is read), aborted on any failure.
    async fn upload(&self, key: &StorageKey, body: ByteStream) -> Result<Stored, StorageError> {
        let _turn = self
            .uploads
            .acquire()
            .await
            .map_err(|_| StorageError::Failed("the storage is shutting down".into()))?;
        let path = self.path(key);
        let mut source = Hashing {
            body,
            hasher: Sha256::new(),
            size: 0,
            pending: Bytes::new(),
            ended: false,
        };
        let mut part = PartBuffers::take(&self.buffers).await?;
        // The first part decides: it all fits, or it goes in parts.
        source.fill(&mut part.bytes, self.buffers.part_size).await?;
        if source.ended {
            let body = part.freeze();
            let put = self.client.put(&path, PutPayload::from(body.clone())).await;
            part.reclaim(body);
            put.map_err(|err| self.error(Some(key), err))?;
            return Ok(source.stored(key));
        }
        let id = self
            .client
            .create_multipart(&path)
            .await
            .map_err(|err| self.error(Some(key), err))?;
        let journal = self.journal(&path, &id).await?;
        let sent = async {
            let mut parts = Vec::new();
            let mut in_flight = std::collections::VecDeque::new();
            let mut index = 0;
            while !part.bytes.is_empty() {
                let (client, path, id) = (Arc::clone(&self.client), path.clone(), id.clone());
                let body = part.freeze();
                // The part's buffer goes back to the pool once sent.
                in_flight.push_back(tokio::spawn(async move {
                    let sent = client
                        .put_part(&path, &id, index, PutPayload::from(body.clone()))
                        .await;
                    part.reclaim(body);
                    sent
                }));
                index += 1;
                if in_flight.len() >= self.parts_in_flight
                    && let Some(oldest) = in_flight.pop_front()
                {
                    parts.push(self.joined(key, oldest).await?);
                }
                part = PartBuffers::take(&self.buffers).await?;
                source.fill(&mut part.bytes, self.buffers.part_size).await?;
            }
            drop(part);
            for task in in_flight {
                parts.push(self.joined(key, task).await?);
            }
            self.client
                .complete_multipart(&path, &id, parts)
                .await
                .map_err(|err| self.error(Some(key), err))?;
            Ok::<_, StorageError>(())
        }
        .await;
        if sent.is_err() {
            // Best effort: the journal keeps it for the next start otherwise.
            if self.client.abort_multipart(&path, &id).await.is_ok() {
                let _ = tokio::fs::remove_file(&journal).await;
            }
        } else {
            let _ = tokio::fs::remove_file(&journal).await;
        }
        sent?;
        Ok(source.stored(key))
    }

    /// The part id a part's upload task returned.
    async fn joined(
        &self,
        key: &StorageKey,
        task: tokio::task::JoinHandle<object_store::Result<object_store::multipart::PartId>>,
    ) -> Result<object_store::multipart::PartId, StorageError> {
        task.await
            .map_err(|err| StorageError::Failed(format!("part upload: {err}")))?
            .map_err(|err| self.error(Some(key), err))
    }

    /// Notes a running multipart upload (its object path and id) so a
    /// crash's leftover can be aborted at the next start.
    async fn journal(&self, path: &ObjectPath, id: &str) -> Result<PathBuf, StorageError> {
        let dir = self.staging_dir.join(UPLOADS_DIR);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|err| StorageError::io(&dir, None, &err))?;
        let entry = dir.join(format!("{}.json", uuid::Uuid::new_v4().simple()));
        let text = serde_json::json!({ "path": path.as_ref(), "id": id }).to_string();
        tokio::fs::write(&entry, text)
            .await
            .map_err(|err| StorageError::io(&entry, None, &err))?;
        Ok(entry)
    }

    /// Aborts every multipart upload in the journal (a crashed process's).
    async fn abort_journalled(&self) -> Result<usize, StorageError> {
        let dir = self.staging_dir.join(UPLOADS_DIR);
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return Ok(0);
        };
        let mut aborted = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let text = tokio::fs::read_to_string(entry.path())
                .await
                .unwrap_or_default();
            let noted: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let (Some(path), Some(id)) = (noted["path"].as_str(), noted["id"].as_str()) {
                let path = ObjectPath::from(path);
                match self.client.abort_multipart(&path, &id.to_owned()).await {
                    // Gone already (completed, or aborted by the server): fine.
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => aborted += 1,
                    Err(err) => return Err(self.error(None, err)),
                }
            }
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
        Ok(aborted)
    }
}

/// The part buffers of one storage, shared by its uploads: allocated once
/// and handed back after each part is sent. Allocating and freeing a 6 MiB
/// block per part left the allocator's arenas holding several times the
/// buffers themselves, so the process's memory grew with the number of
/// transfers; reused buffers keep it at what [`S3Config::part_buffers`] says.
#[derive(Debug)]
struct PartBuffers {
    /// One permit per buffer, taken or free.
    permits: Arc<tokio::sync::Semaphore>,
    /// Buffers allocated earlier and free now.
    free: std::sync::Mutex<Vec<BytesMut>>,
    /// Each buffer's capacity: one part.
    part_size: usize,
}

impl PartBuffers {
    fn new(count: usize, part_size: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(count)),
            free: std::sync::Mutex::new(Vec::with_capacity(count)),
            part_size,
        }
    }

    /// An empty buffer of one part's capacity, once one is free.
    async fn take(pool: &Arc<Self>) -> Result<PartBuffer, StorageError> {
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Failed("the storage is shutting down".into()))?;
        let bytes = pool
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(pool.part_size));
        Ok(PartBuffer {
            bytes,
            _permit: permit,
            pool: Arc::clone(pool),
        })
    }
}

/// A part buffer on loan; back to its pool when dropped.
struct PartBuffer {
    bytes: BytesMut,
    _permit: tokio::sync::OwnedSemaphorePermit,
    pool: Arc<PartBuffers>,
}

impl PartBuffer {
    /// The part read so far, to send; [`PartBuffer::reclaim`] takes it back.
    fn freeze(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes).freeze()
    }

    /// Takes the buffer back once the request no longer holds the part
    /// (should it still, the pool allocates another one later).
    fn reclaim(mut self, sent: Bytes) {
        if let Ok(bytes) = sent.try_into_mut() {
            self.bytes = bytes;
        }
    }
}

impl Drop for PartBuffer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        if bytes.capacity() >= self.pool.part_size {
            bytes.clear();
            self.pool
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(bytes);
        }
    }
}

/// A body being read into parts, hashed on the way.
struct Hashing {
    body: ByteStream,
    hasher: Sha256,
    size: u64,
    /// What the last chunk had beyond the part it filled.
    pending: Bytes,
    /// The body has no more chunks (`pending` may still hold bytes).
    ended: bool,
}

impl Hashing {
    /// Reads into `part` until it holds exactly `part_size` bytes or the
    /// body ends (the buffer never grows past its capacity).
    async fn fill(&mut self, part: &mut BytesMut, part_size: usize) -> Result<(), StorageError> {
        while part.len() < part_size {
            if self.pending.is_empty() {
                match self.body.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        self.hasher.update(&chunk);
                        self.size += chunk.len() as u64;
                        self.pending = chunk;
                    }
                    None => {
                        self.ended = true;
                        return Ok(());
                    }
                }
                continue;
            }
            let take = (part_size - part.len()).min(self.pending.len());
            part.extend_from_slice(&self.pending.split_to(take));
        }
        Ok(())
    }

    fn stored(self, key: &StorageKey) -> Stored {
        Stored {
            key: key.clone(),
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

/// An `object_store` error as what the caller should do.
fn classify(bucket: &str, key: Option<&StorageKey>, err: object_store::Error) -> StorageError {
    let text = err.to_string();
    match err {
        // A missing bucket answers 404 too.
        _ if text.contains("NoSuchBucket") => {
            StorageError::MissingLocation(format!("bucket {bucket} does not exist"))
        }
        object_store::Error::NotFound { .. } => StorageError::NotFound {
            key: key.map_or_else(|| text.clone(), ToString::to_string),
        },
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => StorageError::Denied(format!(
            "bucket {bucket}: the credentials were refused ({text})"
        )),
        _ if text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
            || text.contains("AccessDenied")
            || text.contains("403 Forbidden") =>
        {
            StorageError::Denied(format!(
                "bucket {bucket}: the credentials were refused ({text})"
            ))
        }
        _ if text.contains("error sending request")
            || text.contains("connect")
            || text.contains("timed out")
            || text.contains("SlowDown")
            || text.contains("InternalError")
            || text.contains("Server returned non-2xx status code: 5")
            || text.contains("500")
            || text.contains("503") =>
        {
            StorageError::Unavailable(format!("bucket {bucket}: {text}"))
        }
        _ => StorageError::Failed(format!("bucket {bucket}: {text}")),
    }
}

#[async_trait]
impl MediaStorage for S3Storage {
    fn backend(&self) -> Backend {
        Backend::S3
    }

    fn locator(&self, key: &StorageKey) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    fn key_of(&self, locator: &str) -> Option<StorageKey> {
        let rest = locator
            .strip_prefix("s3://")?
            .strip_prefix(self.bucket.as_str())?
            .strip_prefix('/')?
            .strip_prefix(self.prefix.as_str())?;
        StorageKey::new(rest).ok()
    }

    fn staging(&self, dir: &str) -> Result<Staging, StorageError> {
        let prefix = key_prefix(Path::new(dir))?;
        let mut path = self.staging_dir.clone();
        path.extend(prefix.split('/').filter(|s| !s.is_empty()));
        Ok(Staging {
            dir: path,
            links_into_place: false,
        })
    }

    async fn put(
        &self,
        key: &StorageKey,
        body: ByteStream,
        collision: Collision,
    ) -> Result<Stored, StorageError> {
        let key = match collision {
            Collision::Number => self.free_key(key).await?,
            Collision::Replace => key.clone(),
        };
        self.upload(&key, body).await
    }

    async fn commit_file(
        &self,
        staged: &Path,
        key: &StorageKey,
        collision: Collision,
    ) -> Result<StorageKey, StorageError> {
        let file = tokio::fs::File::open(staged)
            .await
            .map_err(|err| StorageError::io(staged, None, &err))?;
        let shown = staged.to_path_buf();
        let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map_err(move |err| StorageError::io(&shown, None, &err))
            .boxed();
        let stored = self.put(key, body, collision).await?;
        tokio::fs::remove_file(staged)
            .await
            .map_err(|err| StorageError::io(staged, None, &err))?;
        Ok(stored.key)
    }

    async fn size(&self, key: &StorageKey) -> Result<Option<u64>, StorageError> {
        match self.client.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.error(Some(key), err)),
        }
    }

    async fn read(
        &self,
        key: &StorageKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let options = GetOptions {
            range: range.map(|range| GetRange::Bounded(*range.start()..range.end() + 1)),
            ..GetOptions::default()
        };
        let got = self
            .client
            .get_opts(&self.path(key), options)
            .await
            .map_err(|err| self.error(Some(key), err))?;
        let bucket = self.bucket.clone();
        let key = key.clone();
        Ok(got
            .into_stream()
            .map_err(move |err| classify(&bucket, Some(&key), err))
            .boxed())
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        match self.client.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(self.error(Some(key), err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let listed = format!("{}{dir_part}", self.prefix);
        let listed = listed.trim_end_matches('/');
        let from = (!listed.is_empty()).then(|| ObjectPath::from(listed));
        let objects: Vec<object_store::ObjectMeta> = self
            .client
            .list(from.as_ref())
            .try_collect()
            .await
            .map_err(|err| self.error(None, err))?;
        let mut found: Vec<ObjectInfo> = objects
            .into_iter()
            .filter_map(|meta| {
                let key = meta.location.as_ref().strip_prefix(self.prefix.as_str())?;
                let temporary = key
                    .split('/')
                    .any(|segment| segment.starts_with(TEMP_PREFIX));
                (!temporary && key.starts_with(prefix)).then(|| {
                    StorageKey::new(key).ok().map(|key| ObjectInfo {
                        key,
                        size: meta.size,
                    })
                })?
            })
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn recover(&self) -> Result<usize, StorageError> {
        let aborted = self.abort_journalled().await?;
        Ok(aborted + remove_stale_temporaries(self.staging_dir.clone(), STALE_STAGED_AGE).await)
    }

    async fn presigned_url(&self, key: &StorageKey) -> Result<Option<url::Url>, StorageError> {
        let Some(ttl) = self.presign_for else {
            return Ok(None);
        };
        self.client
            .signed_url(http::Method::GET, &self.path(key), ttl)
            .await
            .map(Some)
            .map_err(|err| self.error(Some(key), err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sent_part_buffer_is_reused_not_reallocated() {
        let pool = Arc::new(PartBuffers::new(1, PART_SIZE));
        let mut part = PartBuffers::take(&pool).await.unwrap();
        part.bytes.resize(PART_SIZE, 7);
        let first = part.bytes.as_ptr();
        let body = part.freeze();
        let request_copy = body.clone();
        drop(request_copy);
        part.reclaim(body);

        let again = PartBuffers::take(&pool).await.unwrap();
        assert_eq!(again.bytes.as_ptr(), first, "the same allocation");
        assert!(again.bytes.is_empty() && again.bytes.capacity() >= PART_SIZE);
    }

    #[test]
    fn a_part_size_below_the_s3_minimum_is_refused_in_words() {
        let settings = S3Settings {
            bucket: "media".into(),
            ..S3Settings::default()
        };
        let mut config = S3Config::new(settings, "/tmp/unused-staging");
        config.part_size = MIN_PART_SIZE - 1;
        let err = S3Storage::new(&config).expect_err("too small a part");
        assert!(err.to_string().contains("below the 5 MiB"), "{err}");
        config.part_size = MIN_PART_SIZE;
        assert!(S3Storage::new(&config).is_ok());
    }

    #[tokio::test]
    async fn a_part_still_held_elsewhere_is_left_to_its_holder() {
        let pool = Arc::new(PartBuffers::new(1, PART_SIZE));
        let mut part = PartBuffers::take(&pool).await.unwrap();
        part.bytes.resize(PART_SIZE, 7);
        let body = part.freeze();
        let held = body.clone();
        part.reclaim(body);

        assert_eq!(held.len(), PART_SIZE, "the holder's bytes are untouched");
        let fresh = PartBuffers::take(&pool).await.unwrap();
        assert_ne!(fresh.bytes.as_ptr(), held.as_ptr());
    }
}
