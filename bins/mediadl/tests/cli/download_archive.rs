//! `mediadl download` without `--platform` (each URL recognised), with an
//! archive kept across runs (`--archive FILE`) and a cookies file
//! (`--cookies FILE`), through the real binary against a local fixture.

use std::path::Path;

use mediadl::testkit::{Fixture, FixtureServer};

use crate::backup::{mediadl, stderr};

/// The regular files under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy();
                found.push(relative.into_owned());
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_with_the_archive_downloads_nothing() {
    let server = FixtureServer::start().await;
    server.route("/a.bin", Fixture::bytes(vec![1u8; 2048]));
    server.route("/b.bin", Fixture::bytes(vec![2u8; 4096]));
    let (a, b) = (server.url("/a.bin"), server.url("/b.bin"));
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.db");
    let archive = archive.to_str().unwrap();
    let run = |output: &str| {
        let output = dir.path().join(output);
        let output = output.to_str().unwrap().to_owned();
        let (a, b) = (a.clone(), b.clone());
        let archive = archive.to_owned();
        tokio::task::spawn_blocking(move || {
            mediadl(&[
                "download",
                &a,
                &b,
                "-q",
                "-o",
                &output,
                "--archive",
                &archive,
            ])
        })
    };

    let first = run("first").await.unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(files_under(&dir.path().join("first")).len(), 2);
    assert!(stderr(&first).contains("2 file(s)"), "{}", stderr(&first));

    let second = run("second").await.unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(files_under(&dir.path().join("second")).is_empty());
    assert!(stderr(&second).contains("0 file(s)"), "{}", stderr(&second));
    assert_eq!((server.hits("/a.bin"), server.hits("/b.bin")), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_url_is_recognised_without_a_platform() {
    let server = FixtureServer::start().await;
    // A forum thread URL (XenForo's shape): the forum platform saves the
    // full image a thumbnail links to, in a folder named after the forum.
    server.route(
        "/threads/a-title.1/",
        Fixture::html(
            r#"<html><body><a href="/full.jpg"><img src="/thumb.jpg"></a></body></html>"#,
        ),
    );
    server.route("/full.jpg", Fixture::bytes(vec![7u8; 3000]));
    server.route("/thumb.jpg", Fixture::bytes(vec![8u8; 300]));
    server.route("/plain.pdf", Fixture::bytes(vec![9u8; 1000]));
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().to_str().unwrap().to_owned();
    let (thread, plain) = (server.url("/threads/a-title.1/"), server.url("/plain.pdf"));
    let run = tokio::task::spawn_blocking(move || {
        mediadl(&["download", &thread, &plain, "-q", "-o", &output])
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let files = files_under(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    // The forum's label is the host; the plain file is `direct`, labelled likewise.
    assert!(
        files.iter().all(|f| f.starts_with("127.0.0.1/")),
        "{files:?}"
    );
    assert_eq!(
        server.hits("/full.jpg"),
        1,
        "the full image, not the thumbnail"
    );
    assert_eq!(server.hits("/thumb.jpg"), 0);
}

#[test]
fn a_bad_cookies_file_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let not_cookies = dir.path().join("cookies.txt");
    std::fs::write(&not_cookies, "this is not\ta cookies file\n").unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# Netscape HTTP Cookie File\n").unwrap();
    let missing = dir.path().join("missing.txt");
    for cookies in [&not_cookies, &empty, &missing] {
        let run = mediadl(&[
            "download",
            "http://127.0.0.1:9/file.bin",
            "-q",
            "-o",
            dir.path().join("out").to_str().unwrap(),
            "--cookies",
            cookies.to_str().unwrap(),
        ]);
        assert!(!run.status.success(), "{}", cookies.display());
        let message = stderr(&run);
        assert!(
            message.contains("cookies file") && message.contains(&*cookies.to_string_lossy()),
            "{message}"
        );
        assert!(files_under(&dir.path().join("out")).is_empty());
    }
}
