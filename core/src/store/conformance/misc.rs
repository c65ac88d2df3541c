//! Conformance checks of the settings document, logs and key-value state.

use std::sync::Arc;

use serde_json::json;

use crate::model::{LogFilter, LogLevel};
use crate::store::Store;

use super::*;

/// The misc checks, expanded by
/// [`store_conformance_suite!`](crate::store_conformance_suite). A new
/// check of this file goes in this list (a test fails when one is missing).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_misc_cases {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory; settings_document, logs_query_and_retention, state_documents);
    };
}

/// One JSON document, `{}` until saved; deep merge happens on top of it.
pub async fn settings_document(store: Arc<dyn Store>) {
    assert_eq!(store.get_settings().await.expect("get"), json!({}));
    let document = json!({
        "general": {"concurrent_downloads": 6, "download_directory": "/srv/media"},
        "platforms": {"instagram": {"native": {"sessionid": "secret"}}},
        "unicode": "Grüße 🌍"
    });
    store.save_settings(&document).await.expect("save");
    assert_eq!(store.get_settings().await.expect("get"), document);

    // The settings API merges a patch into what is stored and saves the result.
    let mut merged = store.get_settings().await.expect("get");
    crate::model::settings::merge_patch(
        &mut merged,
        &json!({"general": {"concurrent_downloads": 2}, "unicode": null}),
    );
    store.save_settings(&merged).await.expect("save merged");
    assert_eq!(
        store.get_settings().await.expect("get"),
        json!({
            "general": {"concurrent_downloads": 2, "download_directory": "/srv/media"},
            "platforms": {"instagram": {"native": {"sessionid": "secret"}}}
        })
    );
    expect_invalid(store.save_settings(&json!([1, 2])).await, "not an object");
    expect_invalid(store.save_settings(&json!("text")).await, "not an object");
}

/// Log queries filter, count and order; retention removes old entries.
pub async fn logs_query_and_retention(store: Arc<dyn Store>) {
    let empty = store
        .query_logs(&LogFilter::default())
        .await
        .expect("query");
    assert_eq!((empty.logs.len(), empty.matching, empty.total), (0, 0, 0));
    let mut with_metadata = log(40, LogLevel::Error, "Scheduler", "Job j1 failed: HTTP 500");
    with_metadata.metadata.insert("job_id".into(), json!("j1"));
    store
        .append_logs(vec![
            log(0, LogLevel::Info, "Instagram", "Fetched 12 posts"),
            log(10, LogLevel::Debug, "Instagram", "Page 2 requested"),
            log(20, LogLevel::Warning, "TikTok", "Rate limited, waiting 60s"),
            log(30, LogLevel::Info, "scheduler", "Job j1 started"),
            with_metadata.clone(),
        ])
        .await
        .expect("append");
    store.append_logs(Vec::new()).await.expect("append nothing");

    let all = store.query_logs(&LogFilter::default()).await.expect("all");
    assert_eq!((all.matching, all.total), (5, 5));
    assert_eq!(
        all.logs.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
        [at(40), at(30), at(20), at(10), at(0)],
        "newest first"
    );
    assert_eq!(all.logs[0].metadata, with_metadata.metadata);
    assert_eq!(all.logs[0].module, "Scheduler");

    let query = |filter: LogFilter| {
        let store = store.clone();
        async move {
            let page = store.query_logs(&filter).await.expect("query");
            (
                page.logs
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>(),
                page.matching,
                page.total,
            )
        }
    };
    assert_eq!(
        query(LogFilter {
            level: Some(LogLevel::Info),
            ..Default::default()
        })
        .await,
        (
            vec!["Job j1 started".to_string(), "Fetched 12 posts".to_string()],
            2,
            5
        )
    );
    let (messages, matching, _) = query(LogFilter {
        module: Some("SCHEDULER".into()),
        ..Default::default()
    })
    .await;
    assert_eq!((messages.len(), matching), (2, 2), "module ignores case");
    let (messages, _, _) = query(LogFilter {
        search: Some("RATE limited".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(messages, ["Rate limited, waiting 60s"]);
    let (messages, matching, _) = query(LogFilter {
        date_from: Some(at(10)),
        date_to: Some(at(30)),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(
        (messages, matching),
        (
            vec![
                "Job j1 started".to_string(),
                "Rate limited, waiting 60s".to_string()
            ],
            3
        ),
        "inclusive bounds, limited rows, full match count"
    );
    let (messages, _, _) = query(LogFilter {
        search: Some("%".into()),
        ..Default::default()
    })
    .await;
    assert!(messages.is_empty(), "percent is literal");

    let deleted = store.delete_logs_before(at(20)).await.expect("delete old");
    assert_eq!(deleted.entries, 2);
    assert_eq!(
        deleted.bytes,
        ("Fetched 12 posts".len() + 2 + "Page 2 requested".len() + 2) as u64,
        "message bytes plus the empty metadata document"
    );
    let rest = store.query_logs(&LogFilter::default()).await.expect("rest");
    assert_eq!((rest.matching, rest.total), (3, 3));
    assert_eq!(
        store
            .delete_logs_before(at(0))
            .await
            .expect("nothing older")
            .entries,
        0
    );
}

/// Small JSON documents per key.
pub async fn state_documents(store: Arc<dyn Store>) {
    assert_eq!(store.get_state("forum:thread:1").await.expect("get"), None);
    store
        .put_state("forum:thread:1", &json!({"last_page": 3}))
        .await
        .expect("put");
    store
        .put_state("forum:thread:1", &json!({"last_page": 4, "etag": "x"}))
        .await
        .expect("overwrite");
    store
        .put_state("cookies:example.com", &json!(["a", "b"]))
        .await
        .expect("put other");
    assert_eq!(
        store.get_state("forum:thread:1").await.expect("get"),
        Some(json!({"last_page": 4, "etag": "x"}))
    );
    store.delete_state("forum:thread:1").await.expect("delete");
    store
        .delete_state("forum:thread:1")
        .await
        .expect("delete missing is fine");
    assert_eq!(store.get_state("forum:thread:1").await.expect("get"), None);
    assert_eq!(
        store.get_state("cookies:example.com").await.expect("get"),
        Some(json!(["a", "b"]))
    );
}
