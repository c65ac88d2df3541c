//! The OpenAPI document and the routes describe the same API: every
//! operation the server's filters were built for is in the document, and
//! every operation of the document is answered by a route.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backing, Db, TestApp};

/// `(method, path)` of every operation in the served document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

pub async fn every_route_has_an_operation_and_every_operation_a_route() {
    let backing = Backing::new(Db::Sqlite).await;
    let app = TestApp::start(backing.config()).await;
    let admin = app.admin_token().await;
    let (status, _, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let documented = documented(&doc);
    let built = mediadl_server::routes::built_operations();
    let undocumented: Vec<_> = built.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&built).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without an operation: {undocumented:?}; operations without a route: {unrouted:?}"
    );
    assert!(documented.len() >= 50, "{} operations", documented.len());

    // Each documented operation reaches its handler: a request with its
    // method and path (parameters filled in) is neither an unknown path
    // nor a wrong method, whatever the handler then answers.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "1").replace("{name}", "instagram");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let (status, _, body) = app
            .call(method.clone(), &concrete, Some(&admin), None)
            .await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        assert_ne!(
            body["error_code"], "ROUTE_NOT_FOUND",
            "{method} {concrete}: {body}"
        );
    }
    app.stop().await;
}
