//! `mediadl storage check|migrate` through the real binary, against a
//! local download directory and moto's S3 server on loopback.

use std::path::Path;
use std::process::{Command, Output};

use mediadl::model::{DownloadFilter, NewDownload, Page};
use mediadl::storage::{MediaStorage, S3Config, S3Storage, sha256_of};
use mediadl::store::DownloadRepo;
use mediadl::testkit::s3::S3Server;
use mediadl_store::SqliteStore;
use sha2::Digest;

use crate::backup::{mediadl_with, stderr};

/// `mediadl storage ARGS` on `data`, with the S3 settings of `s3`'s `bucket`.
fn storage_command(data: &Path, s3: &S3Server, bucket: &str, args: &[&str]) -> Output {
    let mut all = vec!["storage", "--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    mediadl_with(&all, |command| s3_env(command, s3.endpoint(), bucket))
}

/// The environment that points a `mediadl` command at `bucket` on the S3
/// server at `endpoint`, with moto's test credentials.
pub(crate) fn s3_env(command: &mut Command, endpoint: &str, bucket: &str) {
    command
        .env("MEDIADL_STORAGE_S3_ENDPOINT", endpoint)
        .env("MEDIADL_STORAGE_S3_BUCKET", bucket)
        .env("MEDIADL_STORAGE_S3_ACCESS_KEY_ID", "testing")
        .env("MEDIADL_STORAGE_S3_SECRET_ACCESS_KEY", "testing");
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_what_is_wrong_and_fails() {
    let s3 = S3Server::start().await;
    s3.create_bucket("media").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("downloads")).unwrap();

    let local = storage_command(&data, &s3, "media", &["check"]);
    assert!(local.status.success(), "{}", stderr(&local));
    assert!(
        stdout(&local).contains("storage ok: download directory"),
        "{}",
        stdout(&local)
    );

    let bucket = storage_command(&data, &s3, "media", &["--storage-backend", "s3", "check"]);
    assert!(bucket.status.success(), "{}", stderr(&bucket));
    assert!(
        stdout(&bucket).contains("storage ok: bucket \"media\""),
        "{}",
        stdout(&bucket)
    );

    let missing = storage_command(&data, &s3, "absent", &["--storage-backend", "s3", "check"]);
    assert!(!missing.status.success());
    let said = stderr(&missing);
    assert!(said.contains("bucket absent does not exist"), "{said}");
    assert!(said.contains("create the bucket"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_verifies_and_repoints_and_a_second_run_has_nothing_left() {
    let s3 = S3Server::start().await;
    s3.create_bucket("media").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = data.join("downloads").join("direct").join("site");
    std::fs::create_dir_all(&root).unwrap();
    let store = SqliteStore::open(data.join("mediadl.db")).await.unwrap();
    let mut bodies = Vec::new();
    for n in 0..3 {
        let body = format!("media file {n} ")
            .repeat(1000 * (n + 1))
            .into_bytes();
        let file = root.join(format!("{n}.bin"));
        std::fs::write(&file, &body).unwrap();
        store
            .insert_download(NewDownload {
                file_path: Some(file.to_string_lossy().into_owned()),
                file_hash: Some(format!("sha256:{}", hex(&body))),
                file_size: Some(body.len() as u64),
                ..mediadl::store::conformance::new_download(
                    &format!("direct:{n}"),
                    chrono::Utc::now(),
                )
            })
            .await
            .unwrap();
        bodies.push(body);
    }
    // A record whose hash does not match its bytes is not moved.
    let wrong = root.join("wrong.bin");
    std::fs::write(&wrong, b"other bytes").unwrap();
    let wrong_record = store
        .insert_download(NewDownload {
            file_path: Some(wrong.to_string_lossy().into_owned()),
            file_hash: Some(format!("sha256:{}", hex(b"expected bytes"))),
            ..mediadl::store::conformance::new_download("direct:wrong", chrono::Utc::now())
        })
        .await
        .unwrap();
    drop(store);

    let first = storage_command(&data, &s3, "media", &["migrate", "--to", "s3"]);
    assert!(!first.status.success(), "the mismatch is reported");
    assert!(
        stdout(&first).contains("moved 3 files"),
        "{}",
        stdout(&first)
    );
    assert!(
        stderr(&first).contains(&format!("download {} not moved", wrong_record.id)),
        "{}",
        stderr(&first)
    );

    let store = SqliteStore::open(data.join("mediadl.db")).await.unwrap();
    let staging = tempfile::tempdir().unwrap();
    let bucket = S3Storage::new(&S3Config::new(s3.settings("media"), staging.path())).unwrap();
    let records = store
        .list_downloads(&DownloadFilter::default(), Page::new(1, 50))
        .await
        .unwrap();
    let mut moved = 0;
    for record in &records.items {
        let locator = record.file_path.as_deref().unwrap();
        if record.id == wrong_record.id {
            assert!(locator.starts_with('/'), "left where it was: {locator}");
            continue;
        }
        let key = bucket.key_of(locator).expect("an s3:// locator");
        let hash = sha256_of(&bucket, &key).await.unwrap();
        assert_eq!(
            record.file_hash.as_deref(),
            Some(format!("sha256:{hash}").as_str())
        );
        moved += 1;
    }
    assert_eq!(moved, 3);
    drop(store);

    let again = storage_command(&data, &s3, "media", &["migrate", "--to", "s3"]);
    assert!(
        stdout(&again).contains("moved 0 files"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains("3 were there already"),
        "{}",
        stdout(&again)
    );
}

/// The SHA-256 of `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
