//! `mediadl import` through the real binary, with archives written by the
//! real yt-dlp and gallery-dl against a local fixture site: the programs'
//! own entries become the keys a subscription checks, a second import
//! adds nothing, and bad input gets a reason and a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

use mediadl::store::DownloadRepo;
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl_store::SqliteStore;

use crate::backup::{mediadl, path, stderr};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs one of the downloaders as a user would, into `dir`.
fn run_program(program: &str, args: &[&str], dir: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| panic!("{program} (scripts/test-services.sh installs it): {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The summary on standard output says `want`.
fn assert_says(output: &Output, want: &str) {
    let said = stdout(output);
    assert!(said.contains(want), "{want:?} in {said}");
}

fn import(data: &Path, flag: &str, input: &Path) -> Output {
    mediadl(&["import", "--data-dir", path(data), flag, path(input)])
}

async fn known(data: &Path, keys: &[String]) -> Vec<String> {
    let store = SqliteStore::open(data.join("mediadl.db")).await.unwrap();
    store.known_archive_keys(keys).await.unwrap()
}

// Multi-threaded: the programs run blocking while the fixture site answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_written_by_yt_dlp_and_gallery_dl_are_imported_once() {
    let site = FixtureServer::start().await;
    site.route(
        "/watch.html",
        Fixture::html(
            "<html><head><title>Clip</title></head><body>\
             <video src=\"/clip.mp4\" controls></video></body></html>",
        ),
    );
    let mut clip = b"\x00\x00\x00\x18ftypmp42".to_vec();
    clip.resize(4096, 0);
    site.route(
        "/clip.mp4",
        Fixture::bytes(clip).header("content-type", "video/mp4"),
    );
    site.route(
        "/photos/a.jpg",
        Fixture::bytes(&b"\xff\xd8\xff\xe0 a picture"[..]).header("content-type", "image/jpeg"),
    );
    let work = tempfile::tempdir().unwrap();
    let ytdlp_archive = work.path().join("yt-dlp-archive.txt");
    run_program(
        "yt-dlp",
        &[
            "--ignore-config",
            // The sidecar names the item when its file is imported.
            "--write-info-json",
            "--download-archive",
            path(&ytdlp_archive),
            "-o",
            "videos/%(title)s [%(id)s].%(ext)s",
            &site.url("/watch.html"),
        ],
        work.path(),
    );
    let gallerydl_archive = work.path().join("gallery-dl.sqlite3");
    run_program(
        "gallery-dl",
        &[
            "--config-ignore",
            "--download-archive",
            path(&gallerydl_archive),
            "-d",
            "gallery",
            &site.url("/photos/a.jpg"),
        ],
        work.path(),
    );
    // The keys the programs' own entries map to.
    let ytdlp_entry = std::fs::read_to_string(&ytdlp_archive).unwrap();
    let ytdlp_key = format!("video:{}", ytdlp_entry.trim());
    let gallerydl_entries = {
        use mediadl::import::ArchiveDatabaseReader;
        let mut pages = mediadl_store::GalleryDlArchiveReader
            .open(&gallerydl_archive)
            .await
            .unwrap();
        pages.next_page(None, 10).await.unwrap()
    };
    let [gallerydl_entry] = gallerydl_entries.as_slice() else {
        panic!("one gallery-dl entry: {gallerydl_entries:?}");
    };
    assert!(
        gallerydl_entry.starts_with(&format!("directlink{}", site.addr()))
            && gallerydl_entry.ends_with("a.jpg"),
        "{gallerydl_entry}"
    );
    let gallerydl_key = format!("gallery:{gallerydl_entry}");
    let keys = vec![ytdlp_key, gallerydl_key];

    let data = tempfile::tempdir().unwrap();
    let first = import(data.path(), "--yt-dlp-archive", &ytdlp_archive);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_says(&first, "imported 1 entry, 0 already known");
    let first = import(data.path(), "--gallery-dl-archive", &gallerydl_archive);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_says(&first, "imported 1 entry");
    assert_eq!(known(data.path(), &keys).await, keys);

    // Again: nothing new. The downloaded video file itself fills in the
    // entry it came from (same key), and nothing is doubled.
    let again = import(data.path(), "--yt-dlp-archive", &ytdlp_archive);
    assert_says(&again, "imported 0 entries, 1 already known");
    let again = import(data.path(), "--gallery-dl-archive", &gallerydl_archive);
    assert_says(&again, "imported 0 entries, 1 already known");
    let videos = import(data.path(), "--directory", &work.path().join("videos"));
    assert!(videos.status.success(), "{}", stderr(&videos));
    let store = SqliteStore::open(data.path().join("mediadl.db"))
        .await
        .unwrap();
    let video = store
        .download_by_archive_key(&keys[0])
        .await
        .unwrap()
        .expect("the archive entry");
    assert!(
        video
            .file_path
            .as_deref()
            .is_some_and(|p| p.ends_with(".mp4")),
        "{video:?} after {}",
        stdout(&videos)
    );
    assert_eq!(known(data.path(), &keys).await, keys);
}

#[tokio::test]
async fn bad_input_gets_a_reason_and_a_failing_exit() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let jpeg = work.path().join("photo.jpg");
    std::fs::write(&jpeg, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01").unwrap();
    let text = work.path().join("archive.txt");
    std::fs::write(&text, "youtube abc\n").unwrap();
    // The database of mediadl itself: SQLite without an `archive` table.
    let created = mediadl(&["migrate", "--data-dir", path(data.path())]);
    assert!(created.status.success(), "{}", stderr(&created));
    let database = data.path().join("mediadl.db");
    let cases = [
        ("--yt-dlp-archive", empty.as_path(), "is empty"),
        ("--yt-dlp-archive", jpeg.as_path(), "not a text file"),
        (
            "--yt-dlp-archive",
            database.as_path(),
            "is an SQLite database",
        ),
        ("--gallery-dl-archive", text.as_path(), "is a text file"),
        (
            "--gallery-dl-archive",
            jpeg.as_path(),
            "not an SQLite database",
        ),
        (
            "--gallery-dl-archive",
            database.as_path(),
            "no `archive` table",
        ),
        ("--directory", text.as_path(), "not a directory"),
        (
            "--yt-dlp-archive",
            Path::new("/nonexistent/a.txt"),
            "No such file",
        ),
    ];
    for (flag, input, reason) in cases {
        let output = import(data.path(), flag, input);
        assert!(!output.status.success(), "{flag} {}", input.display());
        assert!(
            stderr(&output).contains(reason),
            "{flag}: {}",
            stderr(&output)
        );
    }
    let none = mediadl(&["import", "--data-dir", path(data.path())]);
    assert!(!none.status.success());
    let both = mediadl(&[
        "import",
        "--yt-dlp-archive",
        path(&text),
        "--directory",
        path(work.path()),
    ]);
    assert!(!both.status.success());

    // A tree with a symbolic link loop: reported, the rest imported.
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("a.png"), b"\x89PNG a").unwrap();
    std::os::unix::fs::symlink(&tree, tree.join("again")).unwrap();
    let output = mediadl(&[
        "import",
        "--data-dir",
        path(data.path()),
        "--directory",
        path(&tree),
        "--platform",
        "direct",
        "--source",
        "mine",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = stdout(&output);
    assert!(summary.contains("imported 1 entry"), "{summary}");
    assert!(
        summary.contains("1 skipped") && summary.contains("symbolic link loop"),
        "{summary}"
    );
}
