//! A real S3-compatible server on loopback for tests: moto's server
//! (`moto_server`, from PyPI's `moto[server]`, installed by
//! `scripts/test-services.sh`). A test that needs it fails, never skips,
//! when it cannot start.

use std::process::Stdio;
use std::time::Duration;

use crate::storage::S3Settings;

/// A running `moto_server`, stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: tokio::process::Child,
    endpoint: String,
}

impl S3Server {
    /// Starts a server on a free loopback port and waits until it answers.
    ///
    /// # Panics
    ///
    /// When `moto_server` is missing or does not answer within 30 s.
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let child = tokio::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "moto_server must be installed (scripts/test-services.sh installs moto[server])",
            );
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(&server.endpoint).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "moto_server did not answer on {} within 30 s",
            server.endpoint
        );
    }

    /// The server's URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a bucket (moto takes unsigned requests).
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
    }

    /// Settings for `bucket` on this server, with test credentials.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.clone(),
            bucket: bucket.into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            ..S3Settings::default()
        }
    }

    /// Multipart uploads still open in `bucket` (unsigned ListMultipartUploads).
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn open_uploads(&self, bucket: &str) -> usize {
        let body = reqwest::Client::new()
            .get(format!("{}/{bucket}?uploads", self.endpoint))
            .send()
            .await
            .expect("list uploads")
            .text()
            .await
            .expect("uploads body");
        body.matches("<UploadId>").count()
    }

    /// A proxy on another loopback port in front of this server that
    /// answers `503 SlowDown` to each request `fails` picks (given its
    /// method and query string) and forwards the others: a storage that
    /// throttles mid-upload. Stops with the returned token.
    pub async fn failing_proxy(
        &self,
        fails: impl Fn(&hyper::Method, &str) -> bool + Send + Sync + 'static,
    ) -> (String, tokio_util::sync::CancellationToken) {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let stop = tokio_util::sync::CancellationToken::new();
        let upstream = self.endpoint.clone();
        let fails = std::sync::Arc::new(fails);
        let client = reqwest::Client::new();
        let running = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = running.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (fails, client, upstream) = (
                    std::sync::Arc::clone(&fails),
                    client.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let (fails, client, upstream) = (
                                std::sync::Arc::clone(&fails),
                                client.clone(),
                                upstream.clone(),
                            );
                            async move {
                                let query = request.uri().query().unwrap_or_default().to_owned();
                                if fails(request.method(), &query) {
                                    let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                                    return Ok::<_, std::convert::Infallible>(
                                        hyper::Response::builder()
                                            .status(503)
                                            .body(http_body_util::Full::new(bytes::Bytes::from(
                                                body,
                                            )))
                                            .expect("response"),
                                    );
                                }
                                let (head, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let target = format!(
                                    "{upstream}{}",
                                    head.uri.path_and_query().map_or("/", |pq| pq.as_str())
                                );
                                let mut forward =
                                    client.request(head.method.clone(), target).body(body);
                                for (name, value) in &head.headers {
                                    if name != hyper::header::HOST {
                                        forward = forward.header(name, value);
                                    }
                                }
                                let answer = match forward.send().await {
                                    Ok(answer) => answer,
                                    Err(_) => {
                                        return Ok(hyper::Response::builder()
                                            .status(502)
                                            .body(http_body_util::Full::new(bytes::Bytes::new()))
                                            .expect("response"));
                                    }
                                };
                                let mut response =
                                    hyper::Response::builder().status(answer.status().as_u16());
                                for (name, value) in answer.headers() {
                                    response = response.header(name, value);
                                }
                                let bytes = answer.bytes().await.unwrap_or_default();
                                Ok(response
                                    .body(http_body_util::Full::new(bytes))
                                    .expect("response"))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), stop)
    }

    /// Stops the server now (a test of an unreachable storage).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
