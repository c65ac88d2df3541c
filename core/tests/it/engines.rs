//! yt-dlp and gallery-dl as downloaders: through a fake executable that
//! replays recorded output and exit codes (core/testdata/engines/), and
//! through the real programs (installed from PyPI) downloading from a
//! local server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mediadl::downloader::{Context, Downloader, MediaItem, Request, Staging};
use mediadl::model::Settings;
use mediadl::store::MemoryStore;
use mediadl::testkit;
use mediadl::{DownloadError, Registry};
use serde_json::{Value, json};

/// A copy of one recorded scenario and a wrapper program that replays it.
pub(crate) struct Fake {
    _dir: tempfile::TempDir,
    pub(crate) scenario: PathBuf,
    pub(crate) program: PathBuf,
}

impl Fake {
    pub(crate) fn new(scenario: &str) -> Self {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/engines");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(scenario);
        std::fs::create_dir(&copy).unwrap();
        for entry in std::fs::read_dir(testdata.join(scenario)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        let program = dir.path().join("program");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
                testdata.join("fake-engine").display(),
                copy.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            _dir: dir,
            scenario: copy,
            program,
        }
    }

    /// The arguments of the last run, one per line.
    pub(crate) fn args(&self) -> Vec<String> {
        std::fs::read_to_string(self.scenario.join("args"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Whether the grandchild a hanging run started has died.
    pub(crate) async fn grandchild_is_gone(&self) -> bool {
        let pid = std::fs::read_to_string(self.scenario.join("grandchild.pid")).unwrap();
        let pid = pid.trim();
        for _ in 0..200 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) if stat.contains(") Z ") => return true,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        false
    }
}

pub(crate) fn settings(platform: &str, downloader: &str, section: Value, extra: Value) -> Settings {
    let mut value = json!({ "platforms": { platform: { downloader: section } } });
    mediadl::model::settings::merge_patch(&mut value, &extra);
    Settings::from_value(&value).unwrap()
}

pub(crate) fn program_settings(program: &Path) -> Value {
    json!({ "path": program, "stall_timeout_seconds": 2, "timeout_seconds": 60 })
}

pub(crate) fn context(settings: Settings) -> Context {
    testkit::context(settings, Arc::new(MemoryStore::new()))
}

pub(crate) fn request(platform: &str, content_type: &str) -> Request {
    Request::new(platform, "someone", content_type, "")
}

pub(crate) async fn collect(
    downloader: &dyn Downloader,
    request: &Request,
    cx: &Context,
) -> Result<Vec<MediaItem>, DownloadError> {
    let mut stream = downloader.discover(request, cx);
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?);
    }
    Ok(items)
}

fn ytdlp() -> mediadl::engines::YtDlp {
    mediadl::engines::YtDlp::tiktok()
}

fn gallerydl() -> mediadl::engines::GalleryDl {
    mediadl::engines::GalleryDl::instagram()
}

fn ytdlp_context(fake: &Fake, extra: Value) -> Context {
    context(settings(
        "tiktok",
        "yt-dlp",
        program_settings(&fake.program),
        extra,
    ))
}

fn gallerydl_context(fake: &Fake, extra: Value) -> Context {
    context(settings(
        "instagram",
        "gallery-dl",
        program_settings(&fake.program),
        extra,
    ))
}

pub(crate) fn only_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_iter().filter(|p| p.is_file()).collect()
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            }
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn ytdlp_listings_come_from_our_print_template() {
    let fake = Fake::new("ytdlp-list");
    let cookies =
        "# Netscape HTTP Cookie File\n.tiktok.com\tTRUE\t/\tTRUE\t4102444800\tsessionid\tabc\n";
    let cx = ytdlp_context(
        &fake,
        json!({"platforms": {"tiktok": {"cookies": cookies}}}),
    );
    let items = collect(&ytdlp(), &request("tiktok", "videos"), &cx)
        .await
        .unwrap();
    let keys = crate::archive_keys(&items);
    assert_eq!(
        keys,
        [
            "tiktok:7400000000000000010",
            "tiktok:7400000000000000020",
            "tiktok:7400000000000000030"
        ],
        "the entry without an id is left out, chatter is ignored"
    );
    assert_eq!(
        items[0].url.as_str(),
        "https://www.tiktok.com/@someone/video/7400000000000000010"
    );
    assert_eq!(items[0].posted_at.unwrap().timestamp(), 1_760_000_000);
    assert_eq!(items[0].metadata["title"], "newest clip");
    assert_eq!(items[0].metadata["downloader"], "yt-dlp");

    let args = fake.args();
    for expected in [
        "--ignore-config",
        "--flat-playlist",
        "--lazy-playlist",
        "--print",
        "--cookies",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    assert_eq!(args.last().unwrap(), "https://www.tiktok.com/@someone");
    let cookies_path = &args[args.iter().position(|a| a == "--cookies").unwrap() + 1];
    assert!(
        !Path::new(cookies_path).exists(),
        "the cookies copy is removed after the run"
    );
}

#[tokio::test]
async fn ytdlp_failures_are_typed() {
    let cases = [
        ("ytdlp-garbage", "DOWNLOAD_FAILED", "no readable entries"),
        ("ytdlp-bad-json", "DOWNLOAD_FAILED", "unreadable item"),
        ("ytdlp-login", "AUTH_REQUIRED", "Log into"),
        ("ytdlp-bot", "AUTH_REQUIRED", "not a bot"),
        ("ytdlp-ratelimit", "RATE_LIMITED", ""),
        ("ytdlp-blocked", "DOWNLOAD_FAILED", "proxy"),
        ("ytdlp-crash", "DOWNLOAD_RETRYABLE", "exited with 1"),
    ];
    for (scenario, code, words) in cases {
        let fake = Fake::new(scenario);
        let cx = ytdlp_context(&fake, json!({}));
        let err = collect(&ytdlp(), &request("tiktok", "videos"), &cx)
            .await
            .unwrap_err();
        crate::assert_failure(&err, code, words, scenario);
    }
}

#[tokio::test]
async fn a_hanging_program_is_stopped_with_its_whole_group() {
    let fake = Fake::new("ytdlp-hang");
    let cx = ytdlp_context(&fake, json!({}));
    let mut stream = ytdlp().discover(&request("tiktok", "videos"), &cx);
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.archive_key, "tiktok:7400000000000000010");
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, DownloadError::Retryable { reason, .. } if reason.contains("no progress for 2s")),
        "{err:?}"
    );
    assert!(
        fake.grandchild_is_gone().await,
        "the stuck helper process was killed"
    );
}

#[tokio::test]
async fn dropping_a_listing_stops_the_program() {
    let fake = Fake::new("ytdlp-hang");
    let mut section = program_settings(&fake.program);
    section["stall_timeout_seconds"] = json!(600);
    let cx = context(settings("tiktok", "yt-dlp", section, json!({})));
    let mut stream = ytdlp().discover(&request("tiktok", "videos"), &cx);
    stream.next().await.unwrap().unwrap();
    while !fake.scenario.join("grandchild.pid").exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The engine has what it needs (max_downloads, known items) and lets go.
    drop(stream);
    assert!(fake.grandchild_is_gone().await);
}

fn tiktok_item() -> MediaItem {
    MediaItem::new(
        "tiktok:7400000000000000010",
        url::Url::parse("https://www.tiktok.com/@someone/video/7400000000000000010").unwrap(),
        "video",
    )
}

#[tokio::test]
async fn ytdlp_transfers_report_progress_and_leave_one_file() {
    let fake = Fake::new("ytdlp-transfer");
    let cx = ytdlp_context(&fake, json!({}));
    let root = tempfile::tempdir().unwrap();
    let staging = Staging::new(root.path().join("item.staging"));
    let path = ytdlp()
        .transfer(&tiktok_item(), &staging, &cx)
        .await
        .unwrap()
        .unwrap();
    assert!(path.starts_with(staging.dir()), "{path:?}");
    assert_eq!(path.extension().unwrap(), "mp4");
    let expected = std::fs::read(fake.scenario.join("file")).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    assert_eq!(
        cx.progress.get(),
        (expected.len() as u64, Some(expected.len() as u64))
    );
    assert_eq!(
        only_files(staging.dir()),
        [path],
        "nothing else is left behind"
    );
    let args = fake.args();
    assert!(
        args.iter()
            .any(|a| a.starts_with("download:mediadl-progress")),
        "{args:?}"
    );
    assert!(args.iter().any(|a| a == "after_move:%()j"), "{args:?}");
    assert_eq!(
        args.last().unwrap(),
        "https://www.tiktok.com/@someone/video/7400000000000000010"
    );

    let fake = Fake::new("ytdlp-no-file");
    let cx = ytdlp_context(&fake, json!({}));
    let err = ytdlp()
        .transfer(&tiktok_item(), &staging, &cx)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("without reporting a file"),
        "{err}"
    );
}

#[tokio::test]
async fn cancelling_a_transfer_kills_the_group_and_keeps_nothing() {
    let fake = Fake::new("ytdlp-transfer-hang");
    let cx = ytdlp_context(&fake, json!({}));
    let root = tempfile::tempdir().unwrap();
    let staging = Staging::new(root.path().join("item.staging"));
    let cancel = cx.cancel.clone();
    let progress = Arc::clone(&cx.progress);
    tokio::spawn(async move {
        // Cancel once the first progress line has arrived.
        while progress.get().0 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
    });
    let err = ytdlp()
        .transfer(&tiktok_item(), &staging, &cx)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, DownloadError::Cancelled);
    assert_eq!(
        cx.progress.get().0,
        1024,
        "progress came from the template line"
    );
    assert!(fake.grandchild_is_gone().await);
    assert!(
        only_files(staging.dir()).is_empty(),
        "nothing partial is kept"
    );
}

#[tokio::test]
async fn availability_is_checked_without_crashing() {
    let fake = Fake::new("ytdlp-list");
    let ok = settings(
        "tiktok",
        "yt-dlp",
        program_settings(&fake.program),
        json!({}),
    );
    ytdlp().check(&ok).await.unwrap();

    let missing = settings(
        "tiktok",
        "yt-dlp",
        json!({"path": "/nonexistent/yt-dlp"}),
        json!({}),
    );
    crate::assert_unavailable(&ytdlp(), &missing, "not an executable").await;

    for (scenario, words) in [("ytdlp-old", "too old"), ("not-a-version", "not a version")] {
        let fake = Fake::new(scenario);
        let old = settings(
            "tiktok",
            "yt-dlp",
            program_settings(&fake.program),
            json!({}),
        );
        crate::assert_unavailable(&ytdlp(), &old, words).await;
    }

    let off = settings("tiktok", "yt-dlp", json!({"enabled": false}), json!({}));
    crate::assert_unavailable(&ytdlp(), &off, "platforms.tiktok.yt-dlp.enabled").await;

    // What GET /platforms shows: listed, disabled, with the reason.
    let nowhere = settings(
        "instagram",
        "gallery-dl",
        json!({"path": "/nonexistent/gallery-dl"}),
        json!({"platforms": {"tiktok": {"yt-dlp": {"path": "/nonexistent/yt-dlp"}}}}),
    );
    let statuses = Registry::builtin().statuses(&nowhere).await;
    for name in ["yt-dlp", "gallery-dl"] {
        let status = statuses.iter().find(|s| s.info.name == name).unwrap();
        assert!(!status.enabled, "{name}");
        assert!(
            status
                .reason
                .as_deref()
                .unwrap()
                .contains("not an executable"),
            "{name}: {status:?}"
        );
    }
}

#[tokio::test]
async fn gallerydl_listings_carry_instagram_media_ids() {
    let fake = Fake::new("gallerydl-list");
    let cx = gallerydl_context(&fake, json!({}));
    let items = collect(&gallerydl(), &request("instagram", "stories"), &cx)
        .await
        .unwrap();
    let keys = crate::archive_keys(&items);
    assert_eq!(
        keys,
        [
            "instagram:3000000000000000021",
            "instagram:3000000000000000022"
        ],
        "the same keys as the native client"
    );
    assert_eq!(items[0].content_type, "story");
    assert_eq!(items[0].resolution, Some((1440, 1800)));
    assert_eq!(items[0].metadata["resolution"], "1440x1800");
    assert_eq!(
        items[0].posted_at.unwrap().to_rfc3339(),
        "2025-10-09T08:53:20+00:00"
    );
    assert_eq!(
        items[1].suggested_name.as_deref(),
        Some("3000000000000000022.mp4")
    );
    let args = fake.args();
    assert!(
        args.iter().any(|a| a == "url-metadata=mediadl_url"),
        "{args:?}"
    );
    assert_eq!(
        args.last().unwrap(),
        "https://www.instagram.com/stories/someone/"
    );
}

#[tokio::test]
async fn gallerydl_failures_are_typed() {
    for (scenario, code) in [
        ("gallerydl-login", "AUTH_REQUIRED"),
        ("gallerydl-logged-error", "DOWNLOAD_RETRYABLE"),
    ] {
        let fake = Fake::new(scenario);
        let cx = gallerydl_context(&fake, json!({}));
        let err = collect(&gallerydl(), &request("instagram", "posts"), &cx)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{scenario}: {err:?}");
    }
}

fn instagram_item() -> MediaItem {
    MediaItem::new(
        "instagram:3000000000000000021",
        url::Url::parse(
            "https://scontent.cdninstagram.com/v/t51.2885-15/3000000000000000021_n.jpg?stp=x",
        )
        .unwrap(),
        "post",
    )
}

#[tokio::test]
async fn gallerydl_transfers_write_one_file_or_say_why_not() {
    let root = tempfile::tempdir().unwrap();
    let fake = Fake::new("gallerydl-transfer");
    let cx = gallerydl_context(&fake, json!({}));
    let staging = Staging::new(root.path().join("a.staging"));
    let path = gallerydl()
        .transfer(&instagram_item(), &staging, &cx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(fake.scenario.join("file")).unwrap()
    );
    assert_eq!(only_files(staging.dir()), [path]);

    let fake = Fake::new("gallerydl-404");
    let cx = gallerydl_context(&fake, json!({}));
    let staging = Staging::new(root.path().join("b.staging"));
    let err = gallerydl()
        .transfer(&instagram_item(), &staging, &cx)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), "DOWNLOAD_FAILED", "{err:?}");
    assert!(only_files(staging.dir()).is_empty());

    let fake = Fake::new("gallerydl-stuck");
    let cx = gallerydl_context(&fake, json!({}));
    let staging = Staging::new(root.path().join("c.staging"));
    let err = gallerydl()
        .transfer(&instagram_item(), &staging, &cx)
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("no progress"), "{err}");
    assert!(fake.grandchild_is_gone().await);
}

/// The real programs, from PyPI (`pip install yt-dlp gallery-dl`).
pub(crate) mod real {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    pub(crate) fn installed(name: &str) -> PathBuf {
        mediadl::engines::locate("", name).unwrap_or_else(|err| {
            panic!("{err}: these tests need the real program (pip install yt-dlp gallery-dl)")
        })
    }

    /// Queues `new` on `test`'s engine and runs the engine until the item
    /// has finished (at most a minute); returns the finished item.
    pub(crate) async fn run_to_end(
        test: &mediadl::testkit::TestEngine,
        new: mediadl::model::NewQueueItem,
    ) -> mediadl::model::QueueItem {
        let item = test.queue().submit(new).await.unwrap();
        test.run_until_finished(&[item.id]).await.remove(0)
    }

    /// [`run_to_end`], checking the item completed; returns it and every
    /// download the store now holds.
    pub(crate) async fn run_to_completion(
        test: &mediadl::testkit::TestEngine,
        new: mediadl::model::NewQueueItem,
    ) -> (mediadl::model::QueueItem, Vec<mediadl::model::Download>) {
        let item = run_to_end(test, new).await;
        crate::assert_completed(&item);
        (item, test.downloads().await.items)
    }

    pub(crate) fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    async fn server() -> MockServer {
        let server = MockServer::start().await;
        for (file, seed, kind) in [
            ("clip1.mp4", 1, "video/mp4"),
            ("clip2.mp4", 2, "video/mp4"),
            ("photo.jpg", 3, "image/jpeg"),
        ] {
            Mock::given(method("GET"))
                .and(path(format!("/media/{file}")))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("content-type", kind)
                        .set_body_bytes(payload(150_000, seed)),
                )
                .mount(&server)
                .await;
        }
        let page = "<html><head><title>someone</title></head><body>\
                    <video src=\"/media/clip1.mp4\"></video><video src=\"/media/clip2.mp4\"></video></body></html>";
        Mock::given(method("GET"))
            .and(path("/@someone"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/html")
                    .set_body_string(page),
            )
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn ytdlp_lists_and_downloads_from_a_local_server() {
        let program = installed("yt-dlp");
        let server = server().await;
        let section = json!({
            "path": program,
            "url_templates": {"videos": format!("{}/@{{username}}", server.uri())}
        });
        let cx = context(settings("tiktok", "yt-dlp", section.clone(), json!({})));
        ytdlp().check(&cx.settings).await.unwrap();
        let items = collect(&ytdlp(), &request("tiktok", "videos"), &cx)
            .await
            .unwrap();
        let urls: Vec<String> = items.iter().map(|i| i.url.path().to_owned()).collect();
        assert_eq!(urls, ["/media/clip1.mp4", "/media/clip2.mp4"], "{items:?}");

        let root = tempfile::tempdir().unwrap();
        let staging = Staging::new(root.path().join("clip.staging"));
        let path = ytdlp()
            .transfer(&items[1], &staging, &cx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), payload(150_000, 2));
        assert_eq!(cx.progress.get(), (150_000, Some(150_000)));
        assert_eq!(only_files(staging.dir()), [path]);

        // A missing file: yt-dlp's 404 becomes a permanent failure.
        let missing = MediaItem::new(
            "tiktok:gone",
            url::Url::parse(&format!("{}/media/gone.mp4", server.uri())).unwrap(),
            "video",
        );
        let staging = Staging::new(root.path().join("gone.staging"));
        let err = ytdlp()
            .transfer(&missing, &staging, &cx)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code(), "DOWNLOAD_FAILED", "{err:?}");
        assert!(only_files(staging.dir()).is_empty());
    }

    #[tokio::test]
    async fn the_engine_hashes_and_records_what_ytdlp_wrote() {
        use mediadl::model::NewQueueItem;

        let program = installed("yt-dlp");
        let server = server().await;
        let root = tempfile::tempdir().unwrap();
        let test = mediadl::testkit::TestEngine::new(root.path());
        test.settings.replace(settings(
            "tiktok",
            "yt-dlp",
            json!({"path": program, "url_templates": {"videos": format!("{}/@{{username}}", server.uri())}}),
            json!({}),
        ));
        let mut new = NewQueueItem::new(
            "https://www.tiktok.com/@someone",
            "tiktok",
            "someone",
            "videos",
        );
        new.options.downloader = Some("yt-dlp".into());
        let (_, downloads) = run_to_completion(&test, new).await;
        assert_eq!(downloads.len(), 2);
        for download in &downloads {
            let bytes = std::fs::read(download.file_path.as_deref().unwrap()).unwrap();
            use sha2::Digest;
            let hash = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
            assert_eq!(download.file_hash.as_deref(), Some(hash.as_str()));
            assert_eq!(download.metadata["downloader"], "yt-dlp");
        }
        let leftovers: Vec<_> = walk(root.path())
            .into_iter()
            .filter(|p| {
                p.to_string_lossy().contains(".staging")
                    || p.to_string_lossy().contains(".mediadl-run-")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn gallerydl_lists_and_downloads_from_a_local_server() {
        let program = installed("gallery-dl");
        let server = server().await;
        // gallery-dl's direct-link extractor stands in for Instagram's.
        let section = json!({
            "path": program,
            "url_templates": {"posts": format!("{}/media/photo.jpg", server.uri())}
        });
        let cx = context(settings("instagram", "gallery-dl", section, json!({})));
        gallerydl().check(&cx.settings).await.unwrap();
        let items = collect(&gallerydl(), &request("instagram", "posts"), &cx)
            .await
            .unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].url.path(), "/media/photo.jpg");
        assert!(
            items[0].archive_key.starts_with("instagram:url:"),
            "{}",
            items[0].archive_key
        );

        let root = tempfile::tempdir().unwrap();
        let staging = Staging::new(root.path().join("photo.staging"));
        let path = gallerydl()
            .transfer(&items[0], &staging, &cx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), payload(150_000, 3));
        assert_eq!(path.extension().unwrap(), "jpg");

        let missing = MediaItem::new(
            "instagram:gone",
            url::Url::parse(&format!("{}/media/gone.jpg", server.uri())).unwrap(),
            "post",
        );
        let staging = Staging::new(root.path().join("gone.staging"));
        let err = gallerydl()
            .transfer(&missing, &staging, &cx)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code(), "DOWNLOAD_FAILED", "{err:?}");
    }
}
