//! The [`MediaStorage`] conformance suite: one set of checks every backend
//! passes unchanged (ranges, atomicity, deletes, listing, hashing, missing
//! objects). [`storage_conformance_suite!`](crate::storage_conformance_suite)
//! turns them into `#[tokio::test]`s for a storage factory, as the store
//! suite does for stores.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{
    ByteStream, Collision, MediaStorage, StorageError, StorageKey, bytes_stream, collect, sha256_of,
};

/// A storage under test and whatever must live as long as it (a temporary
/// directory, a bucket's server).
pub struct StorageHarness {
    /// The storage.
    pub storage: Arc<dyn MediaStorage>,
    _keep: Box<dyn Any + Send>,
}

impl std::fmt::Debug for StorageHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageHarness")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl StorageHarness {
    /// `storage`, keeping `keep` alive beside it.
    pub fn new(storage: Arc<dyn MediaStorage>, keep: impl Any + Send) -> Self {
        Self {
            storage,
            _keep: Box::new(keep),
        }
    }
}

fn key(raw: &str) -> StorageKey {
    StorageKey::new(raw).expect("key")
}

/// `len` bytes that differ from position to position.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// `bytes` as a stream of `piece`-sized chunks.
fn pieces(bytes: &[u8], piece: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, StorageError>> = bytes
        .chunks(piece)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// `len` bytes in 256 KiB chunks, then an error.
fn broken_body(len: usize) -> ByteStream {
    let mut chunks: Vec<Result<Bytes, StorageError>> = pattern(len)
        .chunks(256 * 1024)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    chunks.push(Err(StorageError::Unavailable("the body broke".into())));
    futures::stream::iter(chunks).boxed()
}

async fn read_all(storage: &dyn MediaStorage, key: &StorageKey) -> Vec<u8> {
    collect(storage.read(key, None).await.expect("read"))
        .await
        .expect("body")
        .to_vec()
}

/// A written object reads back byte for byte, its hash and size are those
/// of its bytes, and its locator maps back to its key.
pub async fn write_read_and_hash(storage: Arc<dyn MediaStorage>) {
    // Large enough for several parts of a multipart upload.
    for (name, len) in [
        ("small.bin", 10usize),
        ("empty.bin", 0),
        ("large.bin", 12 << 20),
    ] {
        let bytes = pattern(len);
        let k = key(&format!("dir/sub/{name}"));
        let stored = storage
            .put(&k, pieces(&bytes, 64 * 1024), Collision::Number)
            .await
            .expect("put");
        assert_eq!(stored.key, k);
        assert_eq!(stored.size, len as u64);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(storage.size(&k).await.expect("size"), Some(len as u64));
        assert_eq!(read_all(&*storage, &k).await, bytes);
        assert_eq!(sha256_of(&*storage, &k).await.expect("hash"), stored.sha256);
        assert_eq!(storage.key_of(&storage.locator(&k)), Some(k));
    }
}

/// Ranges return exactly their bytes, at the start, middle and end.
pub async fn ranges(storage: Arc<dyn MediaStorage>) {
    let bytes = pattern(1000);
    let k = key("ranges/file.bin");
    storage
        .put(&k, bytes_stream(bytes.clone().into()), Collision::Replace)
        .await
        .expect("put");
    for (start, end) in [(0u64, 0u64), (0, 99), (500, 749), (999, 999), (0, 999)] {
        let got = collect(storage.read(&k, Some(start..=end)).await.expect("read"))
            .await
            .expect("body");
        assert_eq!(
            &got[..],
            &bytes[start as usize..=end as usize],
            "{start}-{end}"
        );
    }
}

/// A taken key gets a numbered name, or is replaced whole when asked.
pub async fn collisions(storage: Arc<dyn MediaStorage>) {
    let k = key("c/photo.jpg");
    let first = storage
        .put(&k, bytes_stream("one".into()), Collision::Number)
        .await
        .expect("first");
    let second = storage
        .put(&k, bytes_stream("two".into()), Collision::Number)
        .await
        .expect("second");
    assert_eq!(first.key, k);
    assert_eq!(second.key.as_str(), "c/photo_1.jpg");
    assert_eq!(read_all(&*storage, &k).await, b"one");
    let replaced = storage
        .put(&k, bytes_stream("three".into()), Collision::Replace)
        .await
        .expect("replace");
    assert_eq!(replaced.key, k);
    assert_eq!(read_all(&*storage, &k).await, b"three");
}

/// A body that fails part way leaves nothing under the key, and nothing
/// listed; an existing object it would have replaced stays whole.
pub async fn a_failed_write_leaves_nothing(storage: Arc<dyn MediaStorage>) {
    for (name, len) in [("small.bin", 1000usize), ("large.bin", 11 << 20)] {
        let k = key(&format!("atomic/{name}"));
        let failed = storage.put(&k, broken_body(len), Collision::Number).await;
        assert!(failed.is_err(), "{name}: a broken body was stored");
        assert_eq!(storage.size(&k).await.expect("size"), None, "{name}");
        assert!(
            storage.list("atomic/").await.expect("list").is_empty(),
            "{name}: a partial object is listed"
        );

        storage
            .put(&k, bytes_stream("whole".into()), Collision::Replace)
            .await
            .expect("put");
        let failed = storage.put(&k, broken_body(len), Collision::Replace).await;
        assert!(failed.is_err());
        assert_eq!(read_all(&*storage, &k).await, b"whole", "{name}");
        storage.delete(&k).await.expect("delete");
    }
}

/// Deleting removes the object; deleting or sizing a missing one is fine,
/// reading one is `NotFound`.
pub async fn deletes_and_missing_objects(storage: Arc<dyn MediaStorage>) {
    let k = key("d/gone.txt");
    storage
        .put(&k, bytes_stream("x".into()), Collision::Number)
        .await
        .expect("put");
    storage.delete(&k).await.expect("delete");
    assert_eq!(storage.size(&k).await.expect("size"), None);
    storage.delete(&k).await.expect("deleting twice");
    assert!(matches!(
        storage.read(&k, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        storage.read(&key("never/was"), Some(0..=1)).await,
        Err(StorageError::NotFound { .. })
    ));
}

/// Listing shows what is under a prefix, sorted, with sizes; companion
/// objects beside a key are listed too; the total is what is used.
pub async fn listing_and_usage(storage: Arc<dyn MediaStorage>) {
    assert_eq!(storage.used().await.expect("used"), 0);
    let media = key("l/a/1.jpg");
    for (k, body) in [
        (media.clone(), "one"),
        (media.companion(".json").expect("companion"), "{}"),
        (key("l/a/2.jpg"), "two!"),
        (key("l/b/3.jpg"), "three"),
        (key("other/4.jpg"), "4"),
    ] {
        storage
            .put(&k, bytes_stream(body.into()), Collision::Number)
            .await
            .expect("put");
    }
    let listed: Vec<(String, u64)> = storage
        .list("l/a/")
        .await
        .expect("list")
        .into_iter()
        .map(|o| (o.key.to_string(), o.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("l/a/1.jpg".to_owned(), 3),
            ("l/a/1.jpg.json".to_owned(), 2),
            ("l/a/2.jpg".to_owned(), 4)
        ]
    );
    assert_eq!(storage.list("l/").await.expect("list").len(), 4);
    assert_eq!(storage.list("").await.expect("list").len(), 5);
    assert!(storage.list("none/").await.expect("list").is_empty());
    assert_eq!(storage.used().await.expect("used"), 3 + 2 + 4 + 5 + 1);
}

/// A staged local file is committed under its key, numbered when taken,
/// and consumed.
pub async fn committing_a_staged_file(storage: Arc<dyn MediaStorage>) {
    let k = key("s/video.mp4");
    for (attempt, expected) in [(0, "s/video.mp4"), (1, "s/video_1.mp4")] {
        let staging = storage.staging(k.dir()).expect("staging");
        std::fs::create_dir_all(&staging.dir).expect("staging dir");
        let staged = staging.dir.join(format!(".mediadl-test-{attempt}.part"));
        std::fs::write(&staged, pattern(5000 + attempt)).expect("stage");
        let placed = storage
            .commit_file(&staged, &k, Collision::Number)
            .await
            .expect("commit");
        assert_eq!(placed.as_str(), expected);
        assert!(!staged.exists(), "the staged file stays");
        assert_eq!(read_all(&*storage, &placed).await, pattern(5000 + attempt));
    }
    assert_eq!(storage.list("s/").await.expect("list").len(), 2);
}

/// The probe writes, reads and deletes, leaving nothing.
pub async fn check_leaves_nothing(storage: Arc<dyn MediaStorage>) {
    storage.check().await.expect("check");
    assert!(storage.list("").await.expect("list").is_empty());
    storage.recover().await.expect("recover");
}

/// Turns every conformance check into a `#[tokio::test]` for a storage
/// factory: an `async fn() -> StorageHarness` giving a fresh, empty storage.
#[macro_export]
macro_rules! storage_conformance_suite {
    ($fresh:path) => {
        $crate::storage_conformance_suite!(@checks $fresh;
            write_read_and_hash, ranges, collisions, a_failed_write_leaves_nothing,
            deletes_and_missing_objects, listing_and_usage, committing_a_staged_file,
            check_leaves_nothing);
    };
    (@checks $fresh:path; $($check:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let harness = $fresh().await;
                $crate::storage::conformance::$check(::std::sync::Arc::clone(&harness.storage)).await;
            }
        )+
    };
}
