//! The general platforms `video` (any site yt-dlp supports) and `gallery`
//! (any site gallery-dl supports): the real programs against local
//! fixture sites (a channel feed, an HLS playlist, a gallery page), their
//! archive keys compared with the archives the programs write themselves,
//! and bad input through fake programs.

use std::path::Path;
use std::time::{Duration, SystemTime};

use mediadl::downloader::{Downloader, Staging};
use mediadl::engines::{GalleryDl, YtDlp};
use mediadl::model::NewQueueItem;
use mediadl::testkit::{Fixture, FixtureServer, TestEngine};
use serde_json::{Value, json};

use crate::engines::real::{installed, payload, run_to_completion};
use crate::engines::{Fake, collect, context, program_settings, request, settings};

/// A request of a general platform for `url`.
fn url_request(platform: &str, content_type: &str, url: &str) -> mediadl::downloader::Request {
    let mut request = request(platform, content_type);
    request.source = url.to_owned();
    request.url = url.to_owned();
    request
}

/// An RSS feed of video files, newest first, as channels publish them.
fn feed(server: &FixtureServer, clips: &[(&str, &str, &str)]) -> String {
    let items: String = clips
        .iter()
        .map(|(guid, title, date)| {
            let title = title
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!(
                "<item><title>{title}</title><guid>{guid}</guid><pubDate>{date}</pubDate>\
                 <description>About {title} &amp; more</description>\
                 <enclosure url=\"{}\" type=\"video/mp4\" length=\"1\"/></item>",
                server.url(&format!("/media/{guid}.mp4"))
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Local channel</title>\
         <link>{}</link><description>clips</description>{items}</channel></rss>",
        server.url("/")
    )
}

fn serve_clips(server: &FixtureServer, guids: &[(&str, u8)]) {
    for (guid, seed) in guids {
        server.route(
            &format!("/media/{guid}.mp4"),
            Fixture::bytes(payload(40_000, *seed)).header("content-type", "video/mp4"),
        );
    }
}

fn video_settings(extra: Value) -> mediadl::model::Settings {
    settings(
        "video",
        "yt-dlp",
        json!({"path": installed("yt-dlp")}),
        extra,
    )
}

#[tokio::test]
async fn a_video_channel_keeps_info_json_nfo_and_dates_then_only_what_is_new() {
    let server = FixtureServer::start().await;
    serve_clips(&server, &[("clip-1", 1), ("clip-2", 2), ("clip-3", 3)]);
    let two = [
        ("clip-2", "Second <clip>", "Tue, 02 Sep 2025 10:00:00 GMT"),
        ("clip-1", "First clip", "Mon, 01 Sep 2025 10:00:00 GMT"),
    ];
    server.route(
        "/feed.xml",
        Fixture::bytes(feed(&server, &two)).header("content-type", "application/rss+xml"),
    );
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(video_settings(
        json!({"platforms": {"video": {"nfo": true, "info_json": true}}}),
    ));
    let feed_url = server.url("/feed.xml");
    let new = || NewQueueItem::new(feed_url.clone(), "video", feed_url.clone(), "videos");

    let (_, downloads) = run_to_completion(&test, new()).await;
    let mut keys: Vec<&str> = downloads.iter().map(|d| d.archive_key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["video:generic clip-1", "video:generic clip-2"]);

    let second = downloads
        .iter()
        .find(|d| d.archive_key == "video:generic clip-2")
        .unwrap();
    let file = Path::new(second.file_path.as_deref().unwrap());
    assert_eq!(std::fs::read(file).unwrap(), payload(40_000, 2));
    let info = mediadl::downloads::companion_path(file, "info.json");
    let info: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert_eq!(
        info["id"], "clip-2",
        "yt-dlp's own .info.json beside the file"
    );
    let nfo = std::fs::read_to_string(mediadl::downloads::companion_path(file, "nfo")).unwrap();
    for expected in [
        "<episodedetails>",
        "<title>Second &lt;clip&gt;</title>",
        "<plot>About Second &lt;clip&gt; &amp; more</plot>",
        "<aired>2025-09-02</aired>",
        "<uniqueid type=\"generic\" default=\"true\">clip-2</uniqueid>",
    ] {
        assert!(nfo.contains(expected), "{expected} in {nfo}");
    }
    let modified = std::fs::metadata(file).unwrap().modified().unwrap();
    assert_eq!(
        modified.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
        Duration::from_secs(1_756_807_200),
        "the file's time is the upload date"
    );
    assert_eq!(
        second.metadata["companions"].as_array().map(Vec::len),
        Some(2),
        "{:?}",
        second.metadata
    );

    // yt-dlp's own archive of the same channel holds the same keys.
    let archive = root.path().join("yt-dlp-archive.txt");
    let status = tokio::process::Command::new(installed("yt-dlp"))
        .args(["--ignore-config", "--quiet", "--no-warnings", "-o"])
        .arg(root.path().join("own/%(id)s.%(ext)s"))
        .arg("--download-archive")
        .arg(&archive)
        .arg(&feed_url)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let mut own: Vec<String> = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(|line| mediadl::engines::archive_key("video", line))
        .collect();
    own.sort();
    assert_eq!(own, keys);

    // The next check finds one new clip on top and fetches only that.
    let three = [
        ("clip-3", "Third clip", "Wed, 03 Sep 2025 10:00:00 GMT"),
        two[0],
        two[1],
    ];
    server.route("/feed.xml", Fixture::bytes(feed(&server, &three)));
    let (again, downloads) = run_to_completion(&test, new()).await;
    assert_eq!(downloads.len(), 3);
    let fetched_again: Vec<&str> = downloads
        .iter()
        .filter(|d| d.queue_id == Some(again.id))
        .map(|d| d.archive_key.as_str())
        .collect();
    assert_eq!(fetched_again, ["video:generic clip-3"], "only the new clip");

    // Deleting a download with its file takes its companions along.
    let service = mediadl::downloads::DownloadService::new(
        test.store.clone(),
        test.queue(),
        test.settings.clone(),
        root.path().to_path_buf(),
        std::sync::Arc::new(mediadl::SystemClock),
    );
    service.delete(second.id, true).await.unwrap();
    assert!(!file.exists());
    assert!(!mediadl::downloads::companion_path(file, "nfo").exists());
    assert!(!mediadl::downloads::companion_path(file, "info.json").exists());
}

#[tokio::test]
async fn an_hls_playlist_is_downloaded_without_ffmpeg() {
    let server = FixtureServer::start().await;
    let playlist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
                    #EXTINF:2.0,\nseg0.ts\n#EXTINF:2.0,\nseg1.ts\n#EXTINF:2.0,\nseg2.ts\n#EXT-X-ENDLIST\n";
    server.route(
        "/live/stream.m3u8",
        Fixture::bytes(playlist).header("content-type", "application/vnd.apple.mpegurl"),
    );
    let mut whole = Vec::new();
    for seg in 0..3u8 {
        // MPEG-TS packets: a sync byte every 188 bytes.
        let body: Vec<u8> = (0..188 * 20)
            .map(|i| if i % 188 == 0 { 0x47 } else { (i as u8) ^ seg })
            .collect();
        whole.extend_from_slice(&body);
        server.route(
            &format!("/live/seg{seg}.ts"),
            Fixture::bytes(body).header("content-type", "video/mp2t"),
        );
    }
    let cx = context(video_settings(json!({})));
    let video = YtDlp::video();
    video.check(&cx.settings).await.unwrap();
    let url = server.url("/live/stream.m3u8");
    let items = collect(&video, &url_request("video", "videos", &url), &cx)
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].archive_key, "video:generic stream");
    let root = tempfile::tempdir().unwrap();
    let staging = Staging::new(root.path().join("hls.staging"));
    let path = video
        .transfer(&items[0], &staging, &cx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        whole,
        "the segments, in order"
    );
}

#[tokio::test]
async fn a_gallery_page_is_keyed_as_gallery_dl_archives_it() {
    // gallery-dl's generic extractor takes no port in a URL: the fixture
    // server serves `gallery.test` as the platform's HTTP proxy.
    let server = FixtureServer::start().await;
    server.route(
        "/album.html",
        Fixture::html(
            "<html><head><title>Album</title></head><body>\
             <img src=\"/img/one.jpg\"><img src=\"/img/two.png\"></body></html>",
        ),
    );
    server.route(
        "/img/one.jpg",
        Fixture::bytes(payload(30_000, 7)).header("content-type", "image/jpeg"),
    );
    server.route(
        "/img/two.png",
        Fixture::bytes(payload(30_000, 8)).header("content-type", "image/png"),
    );
    let proxy = format!("http://{}", server.addr());
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(settings(
        "gallery",
        "gallery-dl",
        json!({"path": installed("gallery-dl")}),
        json!({"network": {"platform_proxies": {"gallery": proxy}}}),
    ));
    let page = "http://gallery.test/album.html";
    let mut new = NewQueueItem::new(page, "gallery", "", "");
    // This source's own directory, instead of the global template's.
    new.metadata
        .insert("directory_template".into(), json!("albums/{platform}"));
    let (_, downloads) = run_to_completion(&test, new).await;
    let mut keys: Vec<String> = downloads.iter().map(|d| d.archive_key.clone()).collect();
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for download in &downloads {
        let path = Path::new(download.file_path.as_deref().unwrap());
        assert_eq!(path.parent().unwrap(), root.path().join("albums/gallery"));
        let bytes = std::fs::read(download.file_path.as_deref().unwrap()).unwrap();
        assert!(bytes == payload(30_000, 7) || bytes == payload(30_000, 8));
    }

    // gallery-dl's own archive database of the same page.
    let archive = root.path().join("gallery-dl.sqlite3");
    let status = tokio::process::Command::new(installed("gallery-dl"))
        .args([
            "--config-ignore",
            "--quiet",
            "-o",
            "extractor.generic.enabled=true",
            "--proxy",
            &proxy,
            "-D",
        ])
        .arg(root.path().join("own"))
        .arg("--download-archive")
        .arg(&archive)
        .arg(page)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let listed = tokio::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys\nfor (e,) in sqlite3.connect(sys.argv[1]).execute('select entry from archive order by entry'): print(e)")
        .arg(&archive)
        .output()
        .await
        .unwrap();
    let own: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|entry| mediadl::engines::archive_key("gallery", entry))
        .collect();
    assert_eq!(own, keys);
}

#[tokio::test]
async fn general_sources_are_urls_and_unsupported_urls_say_so() {
    let video = YtDlp::video();
    let gallery = GalleryDl::gallery();
    for downloader in [&video as &dyn Downloader, &gallery] {
        let info = downloader.info();
        let content_type = info.content_types[0].clone();
        let mut bad = request(&info.platform, &content_type);
        bad.source = "someone".into();
        let err = downloader.validate(&bad).unwrap_err();
        assert!(err.to_string().contains("not an http(s) URL"), "{err}");
        let good = url_request(&info.platform, &content_type, "https://example.org/x");
        downloader.validate(&good).unwrap();
        let mut wrong = good.clone();
        wrong.content_type = "posts".into();
        assert!(downloader.validate(&wrong).is_err());
    }

    let server = FixtureServer::start().await;
    server.route(
        "/plain.html",
        Fixture::html("<html><body>No media here.</body></html>"),
    );
    let page = server.url("/plain.html");
    let cx = context(video_settings(json!({})));
    let err = collect(&video, &url_request("video", "videos", &page), &cx)
        .await
        .unwrap_err();
    crate::assert_failure(&err, "DOWNLOAD_FAILED", "does not support", "video");

    let cx = context(settings(
        "gallery",
        "gallery-dl",
        json!({"path": installed("gallery-dl")}),
        json!({"platforms": {"gallery": {"generic": false}}}),
    ));
    let err = collect(&gallery, &url_request("gallery", "media", &page), &cx)
        .await
        .unwrap_err();
    crate::assert_failure(&err, "DOWNLOAD_FAILED", "does not support", "gallery");
}

#[tokio::test]
async fn broken_programs_fail_clearly_on_the_video_platform() {
    let url = "https://www.youtube.com/@someone/videos";
    let cases = [
        ("ytdlp-hang", "DOWNLOAD_RETRYABLE", "no progress"),
        ("ytdlp-crash", "DOWNLOAD_RETRYABLE", "KeyError"),
        ("ytdlp-garbage", "DOWNLOAD_FAILED", "no readable entries"),
        ("ytdlp-bad-json", "DOWNLOAD_FAILED", "unreadable item"),
    ];
    for (scenario, code, words) in cases {
        let fake = Fake::new(scenario);
        let cx = context(settings(
            "video",
            "yt-dlp",
            program_settings(&fake.program),
            json!({}),
        ));
        let result = collect(&YtDlp::video(), &url_request("video", "videos", url), &cx).await;
        let err = result.unwrap_err();
        crate::assert_failure(&err, code, words, scenario);
    }
    let old = Fake::new("ytdlp-old");
    let settings = settings("video", "yt-dlp", program_settings(&old.program), json!({}));
    crate::assert_unavailable(&YtDlp::video(), &settings, "too old").await;
}

#[tokio::test]
async fn each_site_gets_only_its_own_cookies() {
    // A program that keeps a copy of the cookies it was given.
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen-cookies.txt");
    let program = dir.path().join("yt-dlp");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 2026.11.23 && exit 0\n\
             while [ $# -gt 0 ]; do [ \"$1\" = --cookies ] && cp \"$2\" '{}'; shift; done\n\
             echo 'mediadl-item {{\"id\": \"1\", \"ie_key\": \"Youtube\", \"url\": \"https://www.youtube.com/watch?v=1\"}}'\n",
            seen.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cookies = "# Netscape HTTP Cookie File\n\
                   .youtube.com\tTRUE\t/\tTRUE\t4102444800\tSID\tyoutube-secret\n\
                   .vimeo.com\tTRUE\t/\tTRUE\t4102444800\tvuid\tvimeo-secret\n";
    let cx = context(settings(
        "video",
        "yt-dlp",
        program_settings(&program),
        json!({"platforms": {"video": {"cookies": cookies}}}),
    ));
    let items = collect(
        &YtDlp::video(),
        &url_request("video", "videos", "https://www.youtube.com/@someone"),
        &cx,
    )
    .await
    .unwrap();
    assert_eq!(items[0].archive_key, "video:youtube 1");
    let given = std::fs::read_to_string(&seen).unwrap();
    assert!(given.contains("youtube-secret"), "{given}");
    assert!(!given.contains("vimeo-secret"), "{given}");
}
