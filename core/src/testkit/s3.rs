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
        self.unfinished_uploads(bucket).await.len()
    }

    /// The multipart uploads still open in `bucket`: each one's key and id.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn unfinished_uploads(&self, bucket: &str) -> Vec<OpenUpload> {
        let body = get_text(self.bucket_url(bucket, &[("uploads", "")])).await;
        elements(&body, "Upload")
            .into_iter()
            .map(|upload| OpenUpload {
                key: element(upload, "Key"),
                upload_id: element(upload, "UploadId"),
            })
            .collect()
    }

    /// How many parts the open upload `upload_id` of `key` holds (unsigned
    /// ListParts).
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn parts_uploaded(&self, bucket: &str, key: &str, upload_id: &str) -> usize {
        let mut url = self.object_url(bucket, key);
        url.query_pairs_mut().append_pair("uploadId", upload_id);
        let body = get_text(url).await;
        elements(&body, "Part").len()
    }

    /// Every object in `bucket`: its key and size (unsigned ListObjectsV2,
    /// page after page).
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn objects(&self, bucket: &str) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2")];
            if let Some(token) = &token {
                query.push(("continuation-token", token));
            }
            let body = get_text(self.bucket_url(bucket, &query)).await;
            found.extend(elements(&body, "Contents").into_iter().map(|object| {
                let size = element(object, "Size");
                (
                    element(object, "Key"),
                    size.parse()
                        .unwrap_or_else(|_| panic!("an object size: {size}")),
                )
            }));
            if element(&body, "IsTruncated") != "true" {
                return found;
            }
            token = Some(element(&body, "NextContinuationToken"));
        }
    }

    /// The URL of `bucket`, with `query`.
    fn bucket_url(&self, bucket: &str, query: &[(&str, &str)]) -> url::Url {
        let mut url = self.object_url(bucket, "");
        url.query_pairs_mut().extend_pairs(query);
        url
    }

    /// The URL of the object `key` in `bucket` (of the bucket when `key`
    /// is empty), each segment escaped.
    fn object_url(&self, bucket: &str, key: &str) -> url::Url {
        let mut url = url::Url::parse(&self.endpoint).expect("the endpoint is a URL");
        url.path_segments_mut()
            .expect("an http URL")
            .clear()
            .push(bucket)
            .extend(key.split('/').filter(|segment| !segment.is_empty()));
        url
    }

    /// A proxy on another loopback port in front of this server that
    /// answers `503 SlowDown` to each request `fails` picks (given its
    /// method and query string) and forwards the others: a storage that
    /// throttles mid-upload. Stops with the returned token.
    pub async fn failing_proxy(
        &self,
        fails: impl Fn(&hyper::Method, &str) -> bool + Send + Sync + 'static,
    ) -> (String, tokio_util::sync::CancellationToken) {
        self.proxy(move |method, query| {
            if fails(method, query) {
                ProxyAnswer::SlowDown
            } else {
                ProxyAnswer::Forward
            }
        })
        .await
    }

    /// A proxy on another loopback port in front of this server that
    /// treats each request as `decide` says (given its method and query
    /// string). Stops with the returned token, which also ends the
    /// requests it holds.
    pub async fn proxy(
        &self,
        decide: impl Fn(&hyper::Method, &str) -> ProxyAnswer + Send + Sync + 'static,
    ) -> (String, tokio_util::sync::CancellationToken) {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let stop = tokio_util::sync::CancellationToken::new();
        let upstream = self.endpoint.clone();
        let decide = std::sync::Arc::new(decide);
        let client = reqwest::Client::new();
        let running = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = running.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (decide, client, upstream, running) = (
                    std::sync::Arc::clone(&decide),
                    client.clone(),
                    upstream.clone(),
                    running.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let (decide, client, upstream, running) = (
                                std::sync::Arc::clone(&decide),
                                client.clone(),
                                upstream.clone(),
                                running.clone(),
                            );
                            async move {
                                let query = request.uri().query().unwrap_or_default().to_owned();
                                let answer = decide(request.method(), &query);
                                if answer == ProxyAnswer::Hold {
                                    running.cancelled().await;
                                }
                                if answer != ProxyAnswer::Forward {
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

/// What [`S3Server::proxy`] does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyAnswer {
    /// Passes it to the server and its answer back.
    Forward,
    /// Answers `503 SlowDown` at once.
    SlowDown,
    /// Answers nothing until the proxy stops (then `503 SlowDown`): a
    /// transfer stalled on the network.
    Hold,
}

/// A multipart upload the server holds open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    /// The object's key.
    pub key: String,
    /// The upload's id.
    pub upload_id: String,
}

/// The body of an unsigned GET of `url`, which must succeed.
async fn get_text(url: url::Url) -> String {
    let shown = url.to_string();
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|err| panic!("GET {shown}: {err}"));
    let status = response.status();
    let body = response.text().await.expect("a listing body");
    assert!(status.is_success(), "GET {shown}: {status}: {body}");
    body
}

/// The contents of each `<name>…</name>` element in `xml`, in order.
fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(inner, _)| inner))
        .collect()
}

/// The text of the first `<name>` element in `xml` with its XML escapes
/// undone (`""` when there is none).
fn element(xml: &str, name: &str) -> String {
    elements(xml, name)
        .first()
        .copied()
        .unwrap_or_default()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}
