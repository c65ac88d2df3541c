//! Conformance checks of the download history: records, filters, look-ups and statistics.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::model::{
    Bucket, DownloadFilter, DownloadStatus, DownloadTotals, GroupBy, LogFilter, LogLevel, Metadata,
    Page, Window,
};
use crate::store::Store;

use super::*;

/// The downloads checks, expanded by
/// [`store_conformance_suite!`](crate::store_conformance_suite). A new
/// check of this file goes in this list (a test fails when one is missing).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_downloads_cases {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory; downloads_insert_get_replace_delete, downloads_reject_bad_input, downloads_list_filters_and_paging, downloads_search_is_literal_and_case_insensitive, filters_holding_nul_match_nothing, downloads_batch_insert_fails_only_conflicts, downloads_lookups, downloads_stats, downloads_timelines, downloads_stats_follow_replace_and_delete, downloads_relocate_a_file);
    };
}

/// Insert, get, replace and delete keep every field; a recorded archive key
/// is a conflict.
pub async fn downloads_insert_get_replace_delete(store: Arc<dyn Store>) {
    let mut first = new_download("direct:https://example.com/a.jpg", at(10));
    first.post_date = Some(at(-86_400));
    first.file_hash = Some(hash_of(1));
    first.queue_id = Some(42);
    first.metadata = json!({"title": "Grüße 🌍", "tags": ["a", "b"], "nested": {"w": 1920}})
        .as_object()
        .cloned()
        .expect("object");
    let stored = store.insert_download(first.clone()).await.expect("insert");
    assert!(stored.id > 0);
    assert_eq!(stored, first.clone().into_download(stored.id));
    assert_eq!(
        stored.url_hash,
        crate::model::url_hash("direct:https://example.com/a.jpg")
    );
    assert_eq!(
        store.get_download(stored.id).await.expect("get"),
        stored,
        "get returns what insert returned"
    );

    expect_conflict(
        store.insert_download(first.clone()).await,
        "second insert of one archive key",
    );
    let mut failed_same_key = first.clone();
    failed_same_key.status = DownloadStatus::Failed;
    expect_conflict(
        store.insert_download(failed_same_key).await,
        "a failed record of a recorded key",
    );

    let second = store
        .insert_download(new_download("direct:b", at(20)))
        .await
        .expect("insert b");
    assert_ne!(second.id, stored.id);

    let mut replacement = first.clone();
    replacement.file_size = Some(5000);
    replacement.status = DownloadStatus::Completed;
    replacement.metadata = Metadata::new();
    let replaced = store
        .replace_download(stored.id, replacement.clone())
        .await
        .expect("replace");
    assert_eq!(replaced, replacement.into_download(stored.id));
    assert_eq!(store.get_download(stored.id).await.expect("get"), replaced);
    expect_conflict(
        store
            .replace_download(
                second.id,
                new_download("direct:https://example.com/a.jpg", at(1)),
            )
            .await,
        "replace onto another record's key",
    );
    expect_not_found(
        store
            .replace_download(999_999, new_download("direct:zzz", at(1)))
            .await,
        "replace of a missing id",
    );

    let deleted = store.delete_download(stored.id).await.expect("delete");
    assert_eq!(deleted, replaced);
    expect_not_found(store.get_download(stored.id).await, "get after delete");
    expect_not_found(store.delete_download(stored.id).await, "delete twice");
    // The key is free again once its record is gone.
    store
        .insert_download(new_download("direct:https://example.com/a.jpg", at(30)))
        .await
        .expect("insert after delete");
}

/// Bad records are refused with `Invalid`, never stored.
pub async fn downloads_reject_bad_input(store: Arc<dyn Store>) {
    expect_invalid(
        store.insert_download(new_download("", at(0))).await,
        "empty archive key",
    );
    let mut bad_hash = new_download("direct:x", at(0));
    bad_hash.file_hash = Some("md5:abc".into());
    expect_invalid(store.insert_download(bad_hash).await, "bad file hash");
    let mut no_url = new_download("direct:y", at(0));
    no_url.url = String::new();
    expect_invalid(store.insert_download(no_url).await, "empty url");
    let all = store
        .list_downloads(&DownloadFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(all.total, 0, "nothing was stored");
    expect_not_found(store.get_download(-1).await, "negative id");
}

/// Every filter narrows; the order is newest first with id breaking ties;
/// paging reports the total of all matches.
pub async fn downloads_list_filters_and_paging(store: Arc<dyn Store>) {
    // (key, platform, source, status, download_date, url, filename)
    let rows: Vec<(&str, &str, &str, DownloadStatus, DateTime<Utc>)> = vec![
        ("k1", "instagram", "alice", DownloadStatus::Completed, at(0)),
        (
            "k2",
            "instagram",
            "alice",
            DownloadStatus::Failed,
            at(3_600),
        ),
        (
            "k3",
            "instagram",
            "bob",
            DownloadStatus::Completed,
            at(86_400),
        ),
        ("k4", "tiktok", "bob", DownloadStatus::Completed, at(86_400)),
        (
            "k5",
            "tiktok",
            "carol",
            DownloadStatus::Failed,
            at(2 * 86_400 - 1),
        ),
        (
            "k6",
            "direct",
            "example.com",
            DownloadStatus::Completed,
            at(2 * 86_400),
        ),
        (
            "k7",
            "forum",
            "cars",
            DownloadStatus::Completed,
            at(10 * 86_400),
        ),
    ];
    let mut ids_by_key = std::collections::HashMap::new();
    for (key, platform, source, status, date) in &rows {
        let mut new = new_download(key, *date);
        new.platform = platform.to_string();
        new.source = source.to_string();
        new.status = *status;
        if *status == DownloadStatus::Failed {
            new.filename = None;
            new.file_path = None;
            new.file_size = None;
            new.error_message = Some("HTTP 404".into());
        }
        let stored = store.insert_download(new).await.expect("insert");
        ids_by_key.insert(*key, stored.id);
    }
    let key_of = |id: i64| {
        ids_by_key
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.to_string())
            .expect("known id")
    };
    let list = |filter: DownloadFilter, page: Page| {
        let store = store.clone();
        async move {
            let paged = store.list_downloads(&filter, page).await.expect("list");
            let keys: Vec<String> = paged.items.iter().map(|d| key_of(d.id)).collect();
            (keys, paged.total)
        }
    };

    let (keys, total) = list(DownloadFilter::default(), Page::new(1, 50)).await;
    assert_eq!(total, 7);
    // k3 and k4 share a date: the later id comes first.
    assert_eq!(keys, ["k7", "k6", "k5", "k4", "k3", "k2", "k1"]);

    let (keys, total) = list(
        DownloadFilter {
            platform: Some("instagram".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(
        (keys, total),
        (vec!["k3".into(), "k2".into(), "k1".into()], 3)
    );

    let (keys, _) = list(
        DownloadFilter {
            source: Some("bob".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k4", "k3"]);

    let (keys, _) = list(
        DownloadFilter {
            status: Some(DownloadStatus::Failed),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k5", "k2"]);

    // Day bounds are inclusive: date_to covers its whole UTC day.
    let (keys, _) = list(
        DownloadFilter {
            date_from: Some(day(2026, 3, 3)),
            date_to: Some(day(2026, 3, 3)),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k5", "k4", "k3"]);
    let (keys, _) = list(
        DownloadFilter {
            date_from: Some(day(2026, 3, 4)),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k7", "k6"]);
    let (keys, _) = list(
        DownloadFilter {
            date_to: Some(day(2026, 3, 2)),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k2", "k1"]);

    // Combined filters narrow together.
    let (keys, total) = list(
        DownloadFilter {
            platform: Some("tiktok".into()),
            status: Some(DownloadStatus::Completed),
            date_from: Some(day(2026, 3, 3)),
            search: Some("K4".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!((keys, total), (vec!["k4".into()], 1));

    // Paging: totals stay, pages slice in order, past the end is empty.
    let (keys, total) = list(DownloadFilter::default(), Page::new(2, 3)).await;
    assert_eq!(
        (keys, total),
        (vec!["k4".into(), "k3".into(), "k2".into()], 7)
    );
    let (keys, total) = list(DownloadFilter::default(), Page::new(3, 3)).await;
    assert_eq!((keys, total), (vec!["k1".into()], 7));
    let (keys, total) = list(DownloadFilter::default(), Page::new(9, 3)).await;
    assert_eq!((keys, total), (Vec::<String>::new(), 7));

    let (keys, total) = list(
        DownloadFilter {
            platform: Some("nope".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!((keys, total), (Vec::<String>::new(), 0));
}

/// Search matches the URL or the filename, ignores ASCII case, and treats
/// `%`, `_` and `\` as plain characters.
pub async fn downloads_search_is_literal_and_case_insensitive(store: Arc<dyn Store>) {
    let mut a = new_download("s:a", at(0));
    a.url = "https://cdn.example.com/Photos/Summer_2025.JPG".into();
    a.filename = Some("beach.jpg".into());
    let mut b = new_download("s:b", at(1));
    b.url = "https://other.example.org/x?id=1".into();
    b.filename = Some("100% real_Photo.png".into());
    let mut c = new_download("s:c", at(2));
    c.url = "https://third.example.net/path\\with\\backslash".into();
    c.filename = None;
    for new in [a, b, c] {
        store.insert_download(new).await.expect("insert");
    }
    let search = |text: &str| {
        let store = store.clone();
        let filter = DownloadFilter {
            search: Some(text.to_string()),
            ..Default::default()
        };
        async move {
            let paged = store
                .list_downloads(&filter, Page::default())
                .await
                .expect("list");
            let mut keys: Vec<String> = paged.items.into_iter().map(|d| d.archive_key).collect();
            keys.sort();
            keys
        }
    };
    assert_eq!(search("summer_2025").await, ["s:a"], "URL, other case");
    assert_eq!(search("BEACH").await, ["s:a"], "filename, other case");
    assert_eq!(search("photo").await, ["s:a", "s:b"], "URL or filename");
    assert_eq!(search("100%").await, ["s:b"], "percent is literal");
    assert!(
        search("%").await == ["s:b"],
        "a lone percent matches only itself"
    );
    assert_eq!(search("l_p").await, ["s:b"], "underscore is literal");
    assert!(
        search("_").await.len() == 2,
        "underscore only where present"
    );
    assert_eq!(search("\\with\\").await, ["s:c"], "backslash is literal");
    assert!(search("nothing-like-this").await.is_empty());
}

/// A filter text holding NUL (`?search=%00`) matches nothing, on every
/// field and in logs too: no store may read it as an empty pattern that
/// matches everything, or fail on it.
pub async fn filters_holding_nul_match_nothing(store: Arc<dyn Store>) {
    let mut plain = new_download("n:a", at(0));
    plain.url = "https://example.com/a%00b".into();
    store.insert_download(plain).await.expect("insert");
    store
        .insert_download(new_download("n:b", at(1)))
        .await
        .expect("insert");
    store
        .append_logs(vec![log(0, LogLevel::Info, "Server", "started")])
        .await
        .expect("append");
    for text in ["\u{0}", "a\u{0}", "\u{0}%", "%\u{0}_", "Server\u{0}"] {
        let filters = [
            DownloadFilter {
                search: Some(text.into()),
                ..Default::default()
            },
            DownloadFilter {
                platform: Some(text.into()),
                ..Default::default()
            },
            DownloadFilter {
                source: Some(text.into()),
                ..Default::default()
            },
        ];
        for filter in filters {
            let paged = store
                .list_downloads(&filter, Page::default())
                .await
                .expect("a NUL is not an error");
            assert_eq!((paged.items.len(), paged.total), (0, 0), "{filter:?}");
        }
        for filter in [
            LogFilter {
                search: Some(text.into()),
                ..Default::default()
            },
            LogFilter {
                module: Some(text.into()),
                ..Default::default()
            },
        ] {
            let page = store
                .query_logs(&filter)
                .await
                .expect("a NUL is not an error");
            assert_eq!((page.logs.len(), page.matching), (0, 0), "{filter:?}");
            assert_eq!(page.total, 1, "the stored total is still counted");
        }
    }
}

/// A batch insert (an import) records every new key in order, and a
/// recorded key or an invalid record fails only its own place.
pub async fn downloads_batch_insert_fails_only_conflicts(store: Arc<dyn Store>) {
    store
        .insert_download(new_download("b:known", at(10)))
        .await
        .expect("first");
    let batch = vec![
        new_download("b:one", at(20)),
        new_download("b:known", at(30)),
        new_download("", at(40)),
        new_download("b:two", at(50)),
    ];
    let results = store.insert_downloads(batch).await.expect("batch");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().expect("one").archive_key, "b:one");
    assert!(
        matches!(results[1], Err(StoreError::Conflict(_))),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(StoreError::Invalid(_))),
        "{:?}",
        results[2]
    );
    assert_eq!(results[3].as_ref().expect("two").archive_key, "b:two");
    let keys = ["b:one".to_owned(), "b:known".into(), "b:two".into()];
    assert_eq!(store.known_archive_keys(&keys).await.expect("keys"), keys);
    let totals = store
        .download_totals(Window::default())
        .await
        .expect("totals");
    assert_eq!(totals.total, 3);
}

/// Lookups by archive key and content hash, metadata merges, duplicates
/// and age queries.
pub async fn downloads_lookups(store: Arc<dyn Store>) {
    let mut original = new_download("h:original", at(100));
    original.file_hash = Some(hash_of(7));
    let original = store.insert_download(original).await.expect("original");
    let mut dup = new_download("h:dup", at(200));
    dup.file_hash = Some(hash_of(7));
    dup.duplicate_of = Some(original.id);
    let dup = store.insert_download(dup).await.expect("dup");
    let mut failed = new_download("h:failed", at(50));
    failed.status = DownloadStatus::Failed;
    failed.file_hash = Some(hash_of(8));
    let failed = store.insert_download(failed).await.expect("failed");

    assert_eq!(
        store
            .download_by_archive_key("h:dup")
            .await
            .expect("by key"),
        Some(dup.clone())
    );
    assert_eq!(
        store
            .download_by_archive_key("h:none")
            .await
            .expect("by key"),
        None
    );
    assert_eq!(
        store
            .download_by_archive_key("h:failed")
            .await
            .expect("failed by key"),
        Some(failed.clone()),
        "failed records are found by key too"
    );

    let asked: Vec<String> = ["h:original", "h:failed", "h:none", "h:dup", "h:original"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let known: BTreeSet<String> = store
        .known_archive_keys(&asked)
        .await
        .expect("known")
        .into_iter()
        .collect();
    assert_eq!(
        known,
        BTreeSet::from(["h:original".to_string(), "h:dup".to_string()]),
        "only completed records count as known"
    );
    assert!(
        store
            .known_archive_keys(&[])
            .await
            .expect("empty batch")
            .is_empty()
    );
    let many: Vec<String> = (0..1500).map(|n| format!("h:many:{n}")).collect();
    assert!(
        store
            .known_archive_keys(&many)
            .await
            .expect("large batch")
            .is_empty(),
        "a large batch works in one call"
    );

    assert_eq!(
        store
            .download_by_file_hash(&hash_of(7))
            .await
            .expect("by hash"),
        Some(original.clone()),
        "the owner, not the duplicate"
    );
    assert_eq!(
        store
            .download_by_file_hash(&hash_of(8))
            .await
            .expect("by hash"),
        None,
        "failed records own no file"
    );
    assert_eq!(
        store.duplicates_of(original.id).await.expect("dups"),
        vec![dup.clone()]
    );
    assert!(store.duplicates_of(dup.id).await.expect("dups").is_empty());

    let mut seeded = Metadata::new();
    seeded.insert("width".into(), json!(1920));
    seeded.insert("nested".into(), json!({"a": 1, "b": 2}));
    store
        .update_download_metadata(original.id, seeded)
        .await
        .expect("seed metadata");
    let mut patch = Metadata::new();
    patch.insert("nested".into(), json!({"c": 3}));
    patch.insert("height".into(), json!(1080));
    let updated = store
        .update_download_metadata(original.id, patch)
        .await
        .expect("patch metadata");
    assert_eq!(
        Value::Object(updated.metadata.clone()),
        json!({"width": 1920, "height": 1080, "nested": {"c": 3}}),
        "top-level keys replace"
    );
    assert_eq!(
        store.get_download(original.id).await.expect("get").metadata,
        updated.metadata
    );
    expect_not_found(
        store
            .update_download_metadata(999_999, Metadata::new())
            .await,
        "metadata of a missing record",
    );

    let old = store.downloads_before(at(150), 10).await.expect("before");
    assert_eq!(
        ids(&old, |d| d.id),
        [failed.id, original.id],
        "oldest first"
    );
    let old = store.downloads_before(at(150), 1).await.expect("before");
    assert_eq!(ids(&old, |d| d.id), [failed.id], "limited");
    assert!(
        store
            .downloads_before(at(50), 10)
            .await
            .expect("before")
            .is_empty(),
        "cutoff is exclusive"
    );
}

/// Totals, breakdowns, storage used and the latest download per platform.
pub async fn downloads_stats(store: Arc<dyn Store>) {
    let empty = store
        .download_totals(Window::default())
        .await
        .expect("totals");
    assert_eq!(empty, DownloadTotals::default());
    assert_eq!(store.storage_used().await.expect("storage"), 0);

    let mut owner = new_download("st:1", at(0));
    owner.platform = "instagram".into();
    owner.source = "alice".into();
    owner.content_type = "posts".into();
    owner.file_size = Some(1_000);
    owner.file_hash = Some(hash_of(1));
    let owner = store.insert_download(owner).await.expect("owner");
    let mut dup = new_download("st:2", at(60));
    dup.platform = "instagram".into();
    dup.source = "bob".into();
    dup.content_type = "reels".into();
    dup.file_size = Some(1_000);
    dup.duplicate_of = Some(owner.id);
    store.insert_download(dup).await.expect("dup");
    let mut failed = new_download("st:3", at(120));
    failed.platform = "instagram".into();
    failed.source = "alice".into();
    failed.content_type = "posts".into();
    failed.status = DownloadStatus::Failed;
    failed.file_size = None;
    store.insert_download(failed).await.expect("failed");
    let mut tiktok = new_download("st:4", at(86_400));
    tiktok.platform = "tiktok".into();
    tiktok.source = "carol".into();
    tiktok.content_type = "videos".into();
    tiktok.file_size = Some(5_000_000_000);
    store.insert_download(tiktok).await.expect("tiktok");
    let mut old_tiktok = new_download("st:5", at(-86_400));
    old_tiktok.platform = "tiktok".into();
    old_tiktok.source = "carol".into();
    old_tiktok.content_type = "videos".into();
    old_tiktok.file_size = Some(10);
    store.insert_download(old_tiktok).await.expect("old tiktok");

    let all = store
        .download_totals(Window::default())
        .await
        .expect("totals");
    assert_eq!(
        all,
        DownloadTotals {
            total: 5,
            completed: 4,
            failed: 1,
            size_bytes: 1_000 + 5_000_000_000 + 10,
        }
    );
    assert_eq!(all.success_rate(), 80.0);
    let window = Window {
        from: Some(at(0)),
        to: Some(at(86_400)),
    };
    assert_eq!(
        store.download_totals(window).await.expect("window"),
        DownloadTotals {
            total: 3,
            completed: 2,
            failed: 1,
            size_bytes: 1_000,
        },
        "from is inclusive, to exclusive"
    );

    let by_platform = store
        .download_totals_by(GroupBy::Platform, Window::default())
        .await
        .expect("by platform");
    let summary: Vec<(String, u64, u64, u64, u64)> = by_platform
        .iter()
        .map(|g| {
            (
                g.key.clone(),
                g.totals.total,
                g.totals.completed,
                g.totals.failed,
                g.totals.size_bytes,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("instagram".to_string(), 3, 2, 1, 1_000),
            ("tiktok".to_string(), 2, 2, 0, 5_000_000_010)
        ]
    );
    let by_source = store
        .download_totals_by(GroupBy::Source, window)
        .await
        .expect("by source");
    let summary: Vec<(String, u64)> = by_source
        .iter()
        .map(|g| (g.key.clone(), g.totals.total))
        .collect();
    assert_eq!(
        summary,
        [("alice".to_string(), 2), ("bob".to_string(), 1)],
        "largest first"
    );
    let by_type = store
        .download_totals_by(GroupBy::ContentType, Window::default())
        .await
        .expect("by type");
    let summary: Vec<(String, u64)> = by_type
        .iter()
        .map(|g| (g.key.clone(), g.totals.total))
        .collect();
    assert_eq!(
        summary,
        [
            ("posts".to_string(), 2),
            ("videos".to_string(), 2),
            ("reels".to_string(), 1)
        ],
        "equal totals in key order"
    );

    assert_eq!(
        store.storage_used().await.expect("storage"),
        1_000 + 5_000_000_000 + 10,
        "duplicates and failures use no storage"
    );
    assert_eq!(
        store.last_download_per_platform().await.expect("latest"),
        vec![
            ("instagram".to_string(), at(60)),
            ("tiktok".to_string(), at(86_400))
        ]
    );
}

/// Timeline buckets by hour, day, Monday-based week and month, in UTC.
pub async fn downloads_timelines(store: Arc<dyn Store>) {
    let points = [
        ("t:1", "2026-03-02T10:15:00Z", DownloadStatus::Completed),
        ("t:2", "2026-03-02T10:45:00Z", DownloadStatus::Failed),
        ("t:3", "2026-03-02T11:00:00Z", DownloadStatus::Completed),
        ("t:4", "2026-03-08T23:59:59Z", DownloadStatus::Completed),
        ("t:5", "2026-03-09T00:00:00Z", DownloadStatus::Completed),
        ("t:6", "2026-04-01T00:00:00Z", DownloadStatus::Failed),
        ("t:7", "2025-12-31T23:00:00Z", DownloadStatus::Completed),
    ];
    for (key, when, status) in points {
        let mut new = new_download(key, when.parse().expect("time"));
        new.status = status;
        store.insert_download(new).await.expect("insert");
    }
    let timeline = |bucket: Bucket, window: Window| {
        let store = store.clone();
        async move {
            store
                .download_timeline(bucket, window)
                .await
                .expect("timeline")
                .into_iter()
                .map(|p| (p.timestamp.to_rfc3339(), p.downloads, p.success, p.failed))
                .collect::<Vec<_>>()
        }
    };
    let march_second = Window {
        from: Some("2026-03-02T00:00:00Z".parse().expect("time")),
        to: Some("2026-03-03T00:00:00Z".parse().expect("time")),
    };
    assert_eq!(
        timeline(Bucket::Hour, march_second).await,
        [
            ("2026-03-02T10:00:00+00:00".to_string(), 2, 1, 1),
            ("2026-03-02T11:00:00+00:00".to_string(), 1, 1, 0)
        ]
    );
    assert_eq!(
        timeline(Bucket::Day, Window::default()).await,
        [
            ("2025-12-31T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-02T00:00:00+00:00".to_string(), 3, 2, 1),
            ("2026-03-08T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-09T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-04-01T00:00:00+00:00".to_string(), 1, 0, 1)
        ]
    );
    assert_eq!(
        timeline(Bucket::Week, Window::default()).await,
        [
            ("2025-12-29T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-02T00:00:00+00:00".to_string(), 4, 3, 1),
            ("2026-03-09T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-30T00:00:00+00:00".to_string(), 1, 0, 1)
        ]
    );
    assert_eq!(
        timeline(Bucket::Month, Window::default()).await,
        [
            ("2025-12-01T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-01T00:00:00+00:00".to_string(), 5, 4, 1),
            ("2026-04-01T00:00:00+00:00".to_string(), 1, 0, 1)
        ]
    );
    assert!(
        timeline(
            Bucket::Day,
            Window {
                from: Some(at(365 * 86_400)),
                to: None
            }
        )
        .await
        .is_empty()
    );
}

/// Totals, breakdowns, storage and filtered counts follow records that are
/// replaced (other status, platform, size, date) or deleted.
pub async fn downloads_stats_follow_replace_and_delete(store: Arc<dyn Store>) {
    let mut first = new_download("r:1", at(0));
    first.platform = "instagram".into();
    first.file_size = Some(100);
    let first = store.insert_download(first).await.expect("first");
    let mut second = new_download("r:2", at(10));
    second.platform = "instagram".into();
    second.file_size = Some(200);
    let second = store.insert_download(second).await.expect("second");
    let mut third = new_download("r:3", at(3 * 86_400));
    third.platform = "tiktok".into();
    third.file_size = Some(400);
    store.insert_download(third).await.expect("third");

    // The first fails on a later day on another platform; the second goes.
    let mut replacement = new_download("r:1", at(2 * 86_400));
    replacement.platform = "tiktok".into();
    replacement.status = DownloadStatus::Failed;
    replacement.file_size = None;
    store
        .replace_download(first.id, replacement)
        .await
        .expect("replace");
    store.delete_download(second.id).await.expect("delete");

    assert_eq!(
        store
            .download_totals(Window::default())
            .await
            .expect("totals"),
        DownloadTotals {
            total: 2,
            completed: 1,
            failed: 1,
            size_bytes: 400,
        }
    );
    assert_eq!(store.storage_used().await.expect("storage"), 400);
    let by_platform = store
        .download_totals_by(GroupBy::Platform, Window::default())
        .await
        .expect("by platform");
    let summary: Vec<(String, u64, u64)> = by_platform
        .iter()
        .map(|g| (g.key.clone(), g.totals.completed, g.totals.failed))
        .collect();
    assert_eq!(summary, [("tiktok".to_string(), 1, 1)]);
    let by_source = store
        .download_totals_by(GroupBy::Source, Window::default())
        .await
        .expect("by source");
    assert_eq!(by_source.len(), 1);
    assert_eq!(by_source[0].totals.total, 2);
    let day_one = Window {
        from: Some(at(0)),
        to: Some(at(86_400)),
    };
    assert_eq!(
        store.download_totals(day_one).await.expect("day one"),
        DownloadTotals::default()
    );
    assert!(
        store
            .download_timeline(Bucket::Day, day_one)
            .await
            .expect("timeline")
            .is_empty(),
        "no empty buckets"
    );
    for (filter, expected) in [
        (
            DownloadFilter {
                platform: Some("instagram".into()),
                ..Default::default()
            },
            0,
        ),
        (
            DownloadFilter {
                platform: Some("tiktok".into()),
                status: Some(DownloadStatus::Failed),
                ..Default::default()
            },
            1,
        ),
        (
            DownloadFilter {
                source: Some("example.com".into()),
                date_from: Some(day(2026, 3, 4)),
                ..Default::default()
            },
            2,
        ),
        (
            DownloadFilter {
                date_to: Some(day(2026, 3, 3)),
                ..Default::default()
            },
            0,
        ),
    ] {
        let page = store
            .list_downloads(&filter, Page::default())
            .await
            .expect("list");
        assert_eq!(page.total, expected, "count for {filter:?}");
        assert_eq!(page.items.len() as u64, expected, "rows for {filter:?}");
    }
}

/// Relocating a file changes the records that point at it (an original
/// and its duplicate), and nothing else.
pub async fn downloads_relocate_a_file(store: Arc<dyn Store>) {
    let original = store
        .insert_download(new_download("direct:a", at(1)))
        .await
        .expect("insert");
    let mut copy = new_download("direct:b", at(2));
    copy.file_path = original.file_path.clone();
    copy.duplicate_of = Some(original.id);
    let copy = store.insert_download(copy).await.expect("insert");
    let other = store
        .insert_download(new_download("direct:c", at(3)))
        .await
        .expect("insert");
    let from = original.file_path.clone().expect("a path");
    let to = "s3://media/direct/a.jpg";
    assert_eq!(store.relocate_file(&from, to).await.expect("relocate"), 2);
    for id in [original.id, copy.id] {
        let moved = store.get_download(id).await.expect("get");
        assert_eq!(moved.file_path.as_deref(), Some(to));
    }
    assert_eq!(
        store.get_download(other.id).await.expect("get").file_path,
        other.file_path
    );
    assert_eq!(store.relocate_file(&from, to).await.expect("again"), 0);
}
