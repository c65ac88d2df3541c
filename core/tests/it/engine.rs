//! The engine end to end: MemoryStore, a local fixture server, real files.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mediadl::model::{
    DownloadFilter, DownloadStatus, EventKind, NewQueueItem, Page, QueueFilter, QueuePatch,
    QueueStatus,
};
use mediadl::store::{DownloadRepo, QueueRepo};
use mediadl::testkit::{Fixture, FixtureServer, TestEngine};
use mediadl::{BusMessage, EventBus, Registry};
use tokio_util::sync::CancellationToken;

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn direct(url: &str) -> NewQueueItem {
    NewQueueItem::new(url, "direct", "", "file")
}

#[tokio::test]
async fn downloads_a_file_once_with_hash_and_name() {
    let server = FixtureServer::start().await;
    let body = payload(300_000, 1);
    server.route(
        "/files/photo.jpg",
        Fixture::bytes(body.clone()).header("content-type", "image/jpeg"),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/files/photo.jpg")))
        .await
        .unwrap();
    assert_eq!(
        item.source, "127.0.0.1",
        "source defaults to the URL's host"
    );
    test.run_until_finished(&[item.id]).await;

    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&item);
    let list = test.downloads().await;
    assert_eq!(list.total, 1);
    let download = &list.items[0];
    assert_eq!(download.status, DownloadStatus::Completed);
    assert_eq!(download.filename.as_deref(), Some("photo.jpg"));
    let path = std::path::PathBuf::from(download.file_path.as_deref().unwrap());
    assert!(
        path.starts_with(root.path().join("direct").join("127.0.0.1")),
        "{path:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), body);
    use sha2::Digest;
    let expected = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
    assert_eq!(download.file_hash.as_deref(), Some(expected.as_str()));

    // The same URL again: known before any byte is fetched.
    let again = test
        .queue()
        .submit(direct(&server.url("/files/photo.jpg")))
        .await
        .unwrap();
    test.run_until_finished(&[again.id]).await;
    assert_eq!(server.hits("/files/photo.jpg"), 1);
    assert_eq!(test.downloads().await.total, 1);
}

#[tokio::test]
async fn retries_server_errors_and_honours_retry_after() {
    let server = FixtureServer::start().await;
    server.route(
        "/flaky.bin",
        Fixture::bytes(payload(1000, 2)).then_fail_once(500, None),
    );
    server.route(
        "/limited.bin",
        Fixture::bytes(payload(1000, 3)).then_fail_once(429, Some(1)),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let flaky = test
        .queue()
        .submit(direct(&server.url("/flaky.bin")))
        .await
        .unwrap();
    let limited = test
        .queue()
        .submit(direct(&server.url("/limited.bin")))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    test.run_until_finished(&[flaky.id, limited.id]).await;

    let flaky = test.store.get_queue_item(flaky.id).await.unwrap();
    assert_eq!(flaky.status, QueueStatus::Completed);
    assert_eq!(flaky.attempts, 2, "one failed attempt, one good");
    let limited = test.store.get_queue_item(limited.id).await.unwrap();
    assert_eq!(limited.status, QueueStatus::Completed);
    assert_eq!(limited.attempts, 1, "a 429 does not use up an attempt");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(server.hits("/limited.bin"), 2);
}

#[tokio::test]
async fn resumes_a_truncated_body_with_a_range_request() {
    let server = FixtureServer::start().await;
    let body = payload(500_000, 4);
    server.route(
        "/big.bin",
        Fixture::bytes(body.clone()).then_truncate_once(200_000),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/big.bin")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;

    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&item);
    let ranges = server.ranges("/big.bin");
    assert_eq!(item.attempts, 2, "the cut attempt and the resumed one");
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let resumed_from: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(resumed_from > 0 && resumed_from <= 200_000, "{ranges:?}");
    let download = &test.downloads().await.items[0];
    assert_eq!(
        std::fs::read(download.file_path.as_ref().unwrap()).unwrap(),
        body
    );
    use sha2::Digest;
    assert_eq!(
        download.file_hash.as_deref().unwrap(),
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))
    );
}

#[tokio::test]
async fn a_server_without_ranges_restarts_from_zero() {
    let server = FixtureServer::start().await;
    let body = payload(300_000, 5);
    server.route(
        "/norange.bin",
        Fixture::bytes(body.clone())
            .without_ranges()
            .then_truncate_once(100_000),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/norange.bin")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let download = &test.downloads().await.items[0];
    assert_eq!(
        std::fs::read(download.file_path.as_ref().unwrap()).unwrap(),
        body
    );
}

#[tokio::test]
async fn a_body_ending_on_a_piece_boundary_is_written_whole() {
    // 3 x 128 KiB: past the one-trip size, and the last piece comes out empty.
    let server = FixtureServer::start().await;
    let body = payload(3 * 128 * 1024, 6);
    server.route("/pieces.bin", Fixture::bytes(body.clone()));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/pieces.bin")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&item);
    let download = &test.downloads().await.items[0];
    assert_eq!(
        std::fs::read(download.file_path.as_ref().unwrap()).unwrap(),
        body
    );
}

#[tokio::test]
async fn not_found_leaves_a_failed_record_and_no_file() {
    let server = FixtureServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/missing.jpg")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;

    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_failed(&item, "404");
    assert_eq!(item.attempts, 1, "a 404 is not retried");
    let failed = test
        .store
        .list_downloads(
            &DownloadFilter {
                status: Some(DownloadStatus::Failed),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(failed.total, 1);
    assert!(failed.items[0].file_path.is_none());
    assert_no_final_files(root.path());
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let server = FixtureServer::start().await;
    server.route("/down.bin", Fixture::status(503));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut new = direct(&server.url("/down.bin"));
    new.max_attempts = 3;
    let item = test.queue().submit(new).await.unwrap();
    test.run_until_finished(&[item.id]).await;
    let item = test.store.get_queue_item(item.id).await.unwrap();
    assert_eq!(item.status, QueueStatus::Failed);
    assert_eq!(item.attempts, 3);
    assert_eq!(server.hits("/down.bin"), 3);
}

#[tokio::test]
async fn hostile_disposition_names_stay_inside_the_root() {
    let server = FixtureServer::start().await;
    server.route(
        "/dl",
        Fixture::bytes(payload(100, 6)).header(
            "content-disposition",
            "attachment; filename=\"../../etc/passwd\"",
        ),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/dl")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let download = &test.downloads().await.items[0];
    let path = std::path::Path::new(download.file_path.as_deref().unwrap());
    assert!(path.starts_with(root.path()), "{path:?}");
    assert_eq!(download.filename.as_deref(), Some("passwd.bin"));
}

#[tokio::test]
async fn same_bytes_under_two_urls_are_stored_once() {
    let server = FixtureServer::start().await;
    let body = payload(50_000, 7);
    server.route("/a.jpg", Fixture::bytes(body.clone()));
    server.route("/b.jpg", Fixture::bytes(body));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let a = test
        .queue()
        .submit(direct(&server.url("/a.jpg")))
        .await
        .unwrap();
    test.run_until_finished(&[a.id]).await;
    let b = test
        .queue()
        .submit(direct(&server.url("/b.jpg")))
        .await
        .unwrap();
    test.run_until_finished(&[b.id]).await;

    let list = test.downloads().await;
    assert_eq!(list.total, 2);
    let duplicate = list
        .items
        .iter()
        .find(|d| d.duplicate_of.is_some())
        .expect("one duplicate");
    let owner = list
        .items
        .iter()
        .find(|d| d.duplicate_of.is_none())
        .unwrap();
    assert_eq!(duplicate.duplicate_of, Some(owner.id));
    assert_eq!(duplicate.file_path, owner.file_path);
    assert_eq!(final_files(root.path()).len(), 1);
}

#[tokio::test]
async fn two_engines_sharing_a_store_download_each_url_once() {
    let server = FixtureServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let first = TestEngine::new(root.path());
    let second = TestEngine::sharing(
        root.path(),
        Registry::builtin(),
        Arc::clone(&first.store),
        Arc::clone(&first.events),
        "second",
    );
    let mut ids = Vec::new();
    for n in 0..30 {
        let path = format!("/f{n}.bin");
        server.route(
            &path,
            Fixture::bytes(payload(20_000, n as u8)).slow(5_000, Duration::from_millis(2)),
        );
        // The same URL twice: both may run at once on different engines.
        for _ in 0..2 {
            ids.push(
                first
                    .queue()
                    .submit(direct(&server.url(&path)))
                    .await
                    .unwrap()
                    .id,
            );
        }
    }
    let shutdown = CancellationToken::new();
    let runners: Vec<_> = [first.engine.clone(), second.engine.clone()]
        .into_iter()
        .map(|engine| {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { engine.run(shutdown).await })
        })
        .collect();
    first.run_until_finished(&ids).await;
    shutdown.cancel();
    for runner in runners {
        runner.await.unwrap().unwrap();
    }
    let list = first.downloads().await;
    assert_eq!(list.total, 30, "one record per URL");
    assert_eq!(final_files(root.path()).len(), 30, "one file per URL");
    let workers: std::collections::HashSet<_> = first
        .store
        .list_queue(&QueueFilter::default(), Page::new(1, 200))
        .await
        .unwrap()
        .items
        .iter()
        .map(|item| item.status)
        .collect();
    assert_eq!(workers, [QueueStatus::Completed].into_iter().collect());
}

#[tokio::test]
async fn pausing_a_running_item_stops_it_and_resuming_finishes_it() {
    let server = FixtureServer::start().await;
    let body = payload(400_000, 8);
    server.route(
        "/slow.bin",
        Fixture::bytes(body.clone()).slow(10_000, Duration::from_millis(10)),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut events = test.events.subscribe();
    let item = test
        .queue()
        .submit(direct(&server.url("/slow.bin")))
        .await
        .unwrap();
    let (shutdown, runner) = test.start();
    // Wait for progress, then pause.
    loop {
        if let Some(BusMessage::Event(event)) = events.next().await
            && let EventKind::DownloadProgress(progress) = &event.kind
            && progress.bytes_downloaded > 0
        {
            break;
        }
    }
    test.queue()
        .update(
            item.id,
            QueuePatch {
                priority: None,
                status: Some(QueueStatus::Paused),
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused = test.store.get_queue_item(item.id).await.unwrap();
    assert_eq!(paused.status, QueueStatus::Paused);
    let hits_when_paused = server.hits("/slow.bin");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.hits("/slow.bin"),
        hits_when_paused,
        "nothing fetched while paused"
    );

    test.queue()
        .update(
            item.id,
            QueuePatch {
                priority: None,
                status: Some(QueueStatus::Pending),
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !test
        .store
        .get_queue_item(item.id)
        .await
        .unwrap()
        .status
        .is_finished()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    runner.await.unwrap().unwrap();
    let done = test.store.get_queue_item(item.id).await.unwrap();
    assert_eq!(done.status, QueueStatus::Completed);
    assert!(
        !server.ranges("/slow.bin").is_empty(),
        "resumed with a Range request"
    );
    let download = &test.downloads().await.items[0];
    assert_eq!(
        std::fs::read(download.file_path.as_ref().unwrap()).unwrap(),
        body
    );
}

#[tokio::test]
async fn shutdown_returns_running_items_to_pending() {
    let server = FixtureServer::start().await;
    server.route(
        "/slow.bin",
        Fixture::bytes(payload(400_000, 9)).slow(4_000, Duration::from_millis(20)),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/slow.bin")))
        .await
        .unwrap();
    let (shutdown, runner) = test.start();
    while test.store.get_queue_item(item.id).await.unwrap().status != QueueStatus::Downloading {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("shuts down promptly")
        .unwrap()
        .unwrap();
    let item = test.store.get_queue_item(item.id).await.unwrap();
    assert_eq!(item.status, QueueStatus::Pending);
    assert_eq!(item.attempts, 0, "the interrupted attempt is not counted");
    assert_no_final_files(root.path());
}

#[tokio::test]
async fn removing_a_running_item_cancels_it() {
    let server = FixtureServer::start().await;
    server.route(
        "/slow.bin",
        Fixture::bytes(payload(400_000, 10)).slow(4_000, Duration::from_millis(20)),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let item = test
        .queue()
        .submit(direct(&server.url("/slow.bin")))
        .await
        .unwrap();
    let (shutdown, runner) = test.start();
    while test.store.get_queue_item(item.id).await.unwrap().status != QueueStatus::Downloading {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    test.queue().remove(item.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = server.hits("/slow.bin");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.hits("/slow.bin"), hits);
    shutdown.cancel();
    runner.await.unwrap().unwrap();
    assert_eq!(test.downloads().await.total, 0);
    assert_no_final_files(root.path());
}

#[tokio::test]
async fn an_unwritable_root_fails_with_a_reason() {
    let server = FixtureServer::start().await;
    server.route("/a.bin", Fixture::bytes(payload(10, 11)));
    let root = tempfile::tempdir().unwrap();
    let blocked = root.path().join("not-a-dir");
    std::fs::write(&blocked, b"a file where the root should be").unwrap();
    let test = TestEngine::new(&blocked);
    let mut new = direct(&server.url("/a.bin"));
    new.max_attempts = 1;
    let item = test.queue().submit(new).await.unwrap();
    test.run_until_finished(&[item.id]).await;
    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_failed(&item, "cannot write");
}

#[tokio::test]
async fn refuses_bad_urls_before_queueing() {
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    for bad in ["file:///etc/passwd", "ftp://example.com/a", "not a url"] {
        let err = test.queue().submit(direct(bad)).await.unwrap_err();
        assert!(
            matches!(err, mediadl::Error::Invalid { ref field, .. } if field == "url"),
            "{bad}: {err}"
        );
    }
    let err = test
        .queue()
        .submit(NewQueueItem::new("https://e.com", "myspace", "x", "file"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, mediadl::Error::Invalid { ref field, .. } if field == "platform"),
        "{err}"
    );
}

#[tokio::test]
async fn storage_limit_makes_items_wait_with_a_reason() {
    let server = FixtureServer::start().await;
    server.route("/one.bin", Fixture::bytes(payload(2_000, 12)));
    server.route("/two.bin", Fixture::bytes(payload(2_000, 13)));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut settings = (*test.settings.current()).clone();
    settings.general.storage_limit_gb = 1000.0 / (1024.0 * 1024.0 * 1024.0);
    settings.general.concurrent_downloads = 1;
    test.settings.replace(settings);
    let mut events = test.events.subscribe();
    let one = test
        .queue()
        .submit(direct(&server.url("/one.bin")))
        .await
        .unwrap();
    test.run_until_finished(&[one.id]).await;
    let two = test
        .queue()
        .submit(direct(&server.url("/two.bin")))
        .await
        .unwrap();
    let (shutdown, runner) = test.start();
    let notified = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(BusMessage::Event(event)) = events.next().await
                && let EventKind::Notification(note) = &event.kind
            {
                return note.clone();
            }
        }
    })
    .await
    .expect("a notification");
    assert!(
        notified.message.contains("storage limit"),
        "{}",
        notified.message
    );
    // The notification goes out before the deferral is written: wait for it.
    let waiting = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let item = test.store.get_queue_item(two.id).await.unwrap();
            if item.error_message.is_some() {
                return item;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the deferral recorded");
    shutdown.cancel();
    runner.await.unwrap().unwrap();
    assert!(
        waiting
            .error_message
            .as_deref()
            .unwrap()
            .contains("storage limit")
    );
    let two = test.store.get_queue_item(two.id).await.unwrap();
    assert_eq!(two.status, QueueStatus::Pending);
    assert_eq!(two.error_message, waiting.error_message);
    assert_eq!(server.hits("/two.bin"), 0);
}

#[tokio::test]
async fn progress_events_are_bounded_and_end_at_100() {
    let server = FixtureServer::start().await;
    server.route(
        "/p.bin",
        Fixture::bytes(payload(300_000, 14)).slow(3_000, Duration::from_millis(10)),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut events = test.events.subscribe();
    let item = test
        .queue()
        .submit(direct(&server.url("/p.bin")))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    test.run_until_finished(&[item.id]).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut progress = Vec::new();
    while let Ok(Some(BusMessage::Event(event))) =
        tokio::time::timeout(Duration::from_millis(50), events.next()).await
    {
        if let EventKind::DownloadProgress(p) = &event.kind {
            progress.push(p.progress);
        }
    }
    assert_eq!(progress.last(), Some(&100));
    let allowed = (elapsed * 4.0).ceil() as usize + 2;
    assert!(
        progress.len() <= allowed,
        "{} events in {elapsed:.2}s",
        progress.len()
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
}

fn final_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with(".mediadl-") {
                files.push(path);
            }
        }
    }
    files
}

fn assert_no_final_files(root: &std::path::Path) {
    let files = final_files(root);
    assert!(files.is_empty(), "unexpected files: {files:?}");
}

#[tokio::test]
async fn private_addresses_are_refused_when_blocked() {
    let server = FixtureServer::start().await;
    server.route("/inside.bin", Fixture::bytes(payload(10, 15)));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut settings = (*test.settings.current()).clone();
    settings.network.block_private_addresses = true;
    test.settings.replace(settings);
    // Settings reach the engine's clients through the watch channel.
    let item = test
        .queue()
        .submit(direct(&server.url("/inside.bin")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_failed(&item, "private");
    assert_eq!(server.hits("/inside.bin"), 0, "refused before connecting");
}

#[tokio::test]
async fn requests_go_through_the_configured_proxy() {
    // The fixture server answers absolute-form proxy requests by path.
    let proxy = FixtureServer::start().await;
    proxy.route("/via-proxy.bin", Fixture::bytes(payload(1_000, 16)));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut settings = (*test.settings.current()).clone();
    settings.network.proxy = proxy.url("");
    test.settings.replace(settings);
    let item = test
        .queue()
        .submit(direct("http://media.example.invalid/via-proxy.bin"))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&item);
    assert_eq!(proxy.hits("/via-proxy.bin"), 1);
}

#[tokio::test]
async fn metadata_sidecars_are_written_next_to_files() {
    let server = FixtureServer::start().await;
    server.route("/s.jpg", Fixture::bytes(payload(500, 17)));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut settings = (*test.settings.current()).clone();
    settings.downloads.metadata_sidecar = true;
    test.settings.replace(settings);
    let item = test
        .queue()
        .submit(direct(&server.url("/s.jpg")))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let download = &test.downloads().await.items[0];
    let sidecar = format!("{}.json", download.file_path.as_deref().unwrap());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
    assert_eq!(json["url"], server.url("/s.jpg"));
    assert_eq!(json["archive_key"], download.archive_key);
}

#[tokio::test]
async fn concurrency_follows_the_settings_while_running() {
    let server = FixtureServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let mut settings = (*test.settings.current()).clone();
    settings.general.concurrent_downloads = 1;
    test.settings.replace(settings.clone());
    let mut ids = Vec::new();
    for n in 0..8 {
        let path = format!("/c{n}.bin");
        server.route(
            &path,
            Fixture::bytes(payload(40_000, 20 + n)).slow(4_000, Duration::from_millis(15)),
        );
        ids.push(
            test.queue()
                .submit(direct(&server.url(&path)))
                .await
                .unwrap()
                .id,
        );
    }
    let (shutdown, runner) = test.start();
    let downloading = || async { test.store.queue_counts().await.unwrap().downloading };
    let mut most_at_once = 0;
    for _ in 0..10 {
        most_at_once = most_at_once.max(downloading().await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(most_at_once, 1, "one worker");
    settings.general.concurrent_downloads = 4;
    test.settings.replace(settings);
    let mut most_after = 0;
    for _ in 0..30 {
        most_after = most_after.max(downloading().await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        most_after > 1,
        "more workers after the change (saw {most_after})"
    );
    shutdown.cancel();
    runner.await.unwrap().unwrap();
}

/// A listing of `count` files `<url>/<n>.bin`, oldest first, as a forum
/// thread's images are: one queue item, many files.
#[derive(Debug)]
struct Numbered {
    count: usize,
}

#[async_trait::async_trait]
impl mediadl::Downloader for Numbered {
    fn info(&self) -> mediadl::model::DownloaderInfo {
        mediadl::model::DownloaderInfo {
            platform: "numbered".into(),
            platform_display_name: "Numbered".into(),
            name: "native".into(),
            display_name: "Numbered".into(),
            aliases: vec![],
            content_types: vec!["files".into()],
            features: vec![],
            listing_order: mediadl::model::ListingOrder::OldestFirst,
            accepts_cookies: false,
            is_default: true,
        }
    }

    async fn check(
        &self,
        _settings: &mediadl::model::Settings,
    ) -> Result<(), mediadl::downloader::Unavailable> {
        Ok(())
    }

    fn validate(&self, _request: &mediadl::downloader::Request) -> Result<(), mediadl::Error> {
        Ok(())
    }

    fn discover(
        &self,
        request: &mediadl::downloader::Request,
        _cx: &mediadl::downloader::Context,
    ) -> futures::stream::BoxStream<
        'static,
        Result<mediadl::downloader::MediaItem, mediadl::error::DownloadError>,
    > {
        let base = request.url.clone();
        let items: Vec<_> = (0..self.count)
            .map(|n| {
                let url = url::Url::parse(&format!("{base}/{n}.bin")).unwrap();
                Ok(mediadl::downloader::MediaItem::new(
                    format!("numbered:{n}"),
                    url,
                    "files",
                ))
            })
            .collect();
        futures::stream::iter(items).boxed()
    }
}

/// A test engine knowing only [`Numbered`], transferring `files_per_item`
/// files of one item at once.
fn numbered_engine(root: &std::path::Path, count: usize, files_per_item: u32) -> TestEngine {
    let mut registry = Registry::new();
    registry.register(Numbered { count });
    let test = TestEngine::with_registry(root, registry);
    let mut settings = (*test.settings.current()).clone();
    settings.downloads.files_per_item = files_per_item;
    test.settings.replace(settings);
    test
}

/// Serves `count` files under `/t/`, each sent slowly enough that
/// transfers started together overlap.
fn serve_numbered(server: &FixtureServer, count: usize, delay: Duration) {
    for n in 0..count {
        server.route(
            &format!("/t/{n}.bin"),
            Fixture::bytes(payload(40_000, n as u8)).slow(4_000, delay),
        );
    }
}

fn numbered_item(server: &FixtureServer) -> NewQueueItem {
    NewQueueItem::new(server.url("/t"), "numbered", "thread", "files")
}

async fn downloads_by_status(test: &TestEngine, status: DownloadStatus) -> usize {
    test.downloads()
        .await
        .items
        .iter()
        .filter(|download| download.status == status)
        .count()
}

#[tokio::test]
async fn one_items_files_transfer_up_to_files_per_item_at_once() {
    for (files_per_item, most) in [(4, 4), (1, 1)] {
        let server = FixtureServer::start().await;
        serve_numbered(&server, 12, Duration::from_millis(5));
        let root = tempfile::tempdir().unwrap();
        let test = numbered_engine(root.path(), 12, files_per_item);
        let item = test.queue().submit(numbered_item(&server)).await.unwrap();
        test.run_until_finished(&[item.id]).await;

        let item = test.store.get_queue_item(item.id).await.unwrap();
        crate::assert_completed(&item);
        assert_eq!(
            downloads_by_status(&test, DownloadStatus::Completed).await,
            12
        );
        assert_eq!(final_files(root.path()).len(), 12);
        let seen = server.most_in_flight();
        assert!(
            seen <= most,
            "{seen} requests at once with files_per_item {files_per_item}"
        );
        if most > 1 {
            assert!(seen > 1, "transfers of one item never overlapped");
        } else {
            assert_eq!(seen, 1);
        }
    }
}

#[tokio::test]
async fn max_downloads_counts_files_in_flight() {
    let server = FixtureServer::start().await;
    serve_numbered(&server, 12, Duration::from_millis(5));
    let root = tempfile::tempdir().unwrap();
    let test = numbered_engine(root.path(), 12, 4);
    let mut new = numbered_item(&server);
    new.options.max_downloads = Some(5);
    let item = test.queue().submit(new).await.unwrap();
    test.run_until_finished(&[item.id]).await;

    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&item);
    assert_eq!(
        downloads_by_status(&test, DownloadStatus::Completed).await,
        5
    );
    let requested: usize = (0..12).map(|n| server.hits(&format!("/t/{n}.bin"))).sum();
    assert_eq!(
        requested, 5,
        "no file beyond max_downloads was even started"
    );
}

#[tokio::test]
async fn a_failing_file_among_many_is_recorded_and_the_rest_complete() {
    let server = FixtureServer::start().await;
    serve_numbered(&server, 8, Duration::ZERO);
    server.route("/t/3.bin", Fixture::status(404));
    let root = tempfile::tempdir().unwrap();
    let test = numbered_engine(root.path(), 8, 4);
    let item = test.queue().submit(numbered_item(&server)).await.unwrap();
    test.run_until_finished(&[item.id]).await;

    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&item);
    assert_eq!(
        downloads_by_status(&test, DownloadStatus::Completed).await,
        7
    );
    let failed = test
        .downloads()
        .await
        .items
        .into_iter()
        .filter(|download| download.status == DownloadStatus::Failed)
        .map(|download| download.archive_key)
        .collect::<Vec<_>>();
    assert_eq!(failed, ["numbered:3"]);
    assert_eq!(final_files(root.path()).len(), 7);
}

#[tokio::test]
async fn pausing_mid_item_leaves_no_final_file_and_resuming_finishes_every_file() {
    let server = FixtureServer::start().await;
    // Each file takes about 0.9 s: the first ones are under way, none done,
    // when the pause comes, and would be done within the second after it
    // had the pause not stopped them.
    serve_numbered(&server, 6, Duration::from_millis(100));
    let root = tempfile::tempdir().unwrap();
    let test = numbered_engine(root.path(), 6, 4);
    let mut events = test.events.subscribe();
    let item = test.queue().submit(numbered_item(&server)).await.unwrap();
    let (shutdown, runner) = test.start();
    loop {
        if let Some(BusMessage::Event(event)) = events.next().await
            && let EventKind::DownloadProgress(progress) = &event.kind
            && progress.bytes_downloaded > 0
        {
            break;
        }
    }
    let pause = |status| QueuePatch {
        priority: None,
        status: Some(status),
    };
    test.queue()
        .update(item.id, pause(QueueStatus::Paused))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        test.store.get_queue_item(item.id).await.unwrap().status,
        QueueStatus::Paused
    );
    assert_no_final_files(root.path());
    assert_eq!(
        downloads_by_status(&test, DownloadStatus::Completed).await,
        0
    );

    test.queue()
        .update(item.id, pause(QueueStatus::Pending))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !test
        .store
        .get_queue_item(item.id)
        .await
        .unwrap()
        .status
        .is_finished()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    runner.await.unwrap().unwrap();
    let done = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&done);
    assert_eq!(final_files(root.path()).len(), 6);
    assert!(
        (0..6).any(|n| !server.ranges(&format!("/t/{n}.bin")).is_empty()),
        "a paused transfer resumed with a Range request"
    );
}

/// A crashed worker's lease runs out: the reaper counts the expiry and the
/// recovery, and the engine then downloads the item (counted as started,
/// completed and transferred), all in the engine's own `Metrics`.
#[tokio::test]
async fn an_expired_lease_is_counted_and_the_item_recovered() {
    use mediadl::engine::{EngineTiming, RetryPolicy};
    use mediadl::model::WorkerId;
    use mediadl::store::{MemoryStore, Store};
    use mediadl::{BroadcastBus, Engine, MeteredBus, Metrics};
    use prometheus_parse::{Scrape, Value};

    let server = FixtureServer::start().await;
    server.route("/kept.bin", Fixture::bytes(payload(700, 3)));
    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let metrics = Metrics::new();
    let bus: Arc<dyn EventBus> = Arc::new(MeteredBus::new(
        Arc::new(BroadcastBus::default()),
        metrics.clone(),
    ));
    store
        .enqueue(direct(&server.url("/kept.bin")), chrono::Utc::now())
        .await
        .unwrap();
    // Claimed by a worker that dies at once: its lease runs out unrenewed.
    let crashed = WorkerId("crashed/w1".into());
    let claimed = store
        .claim(&crashed, 1, Duration::from_millis(50), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let engine = Engine::builder()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .events(bus)
        .download_root(root.path())
        .metrics(metrics.clone())
        .retry_policy(RetryPolicy {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        })
        .timing(EngineTiming {
            lease: Duration::from_secs(5),
            renew_every: Duration::from_millis(200),
            poll_every: Duration::from_millis(20),
            reap_every: Duration::from_millis(50),
            storage_wait: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn({
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        async move { engine.run(shutdown).await }
    });

    let number = |scrape: &Scrape, name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                Value::Counter(n) | Value::Gauge(n) | Value::Untyped(n) => n,
                _ => panic!("{name}: not a number"),
            })
    };
    let mut scrape = None;
    for _ in 0..200 {
        let text = metrics.render(store.as_ref()).await;
        let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        if number(&parsed, "mediadl_items_completed_total") == Some(1.0) {
            scrape = Some(parsed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    shutdown.cancel();
    runner.await.unwrap().unwrap();
    let scrape = scrape.expect("the recovered item completes");
    assert_eq!(number(&scrape, "mediadl_lease_expiries_total"), Some(1.0));
    assert_eq!(number(&scrape, "mediadl_lease_recoveries_total"), Some(1.0));
    assert_eq!(number(&scrape, "mediadl_items_started_total"), Some(1.0));
    assert_eq!(
        number(&scrape, "mediadl_downloaded_bytes_total"),
        Some(700.0)
    );
    assert_eq!(number(&scrape, "mediadl_downloaded_files_total"), Some(1.0));
}
