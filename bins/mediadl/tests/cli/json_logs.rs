//! `mediadl serve --log-format json`: every line on standard error is a JSON
//! object, and lines logged while a request is handled carry its request id.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Stops the server (SIGKILL) however the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_writes_json_lines_with_the_request_id() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mediadl"))
        .args(["serve", "--log-format", "json", "--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .env("MEDIADL_ADMIN_PASSWORD", "json-logs-password")
        // The access line (DEBUG) is logged inside the request span.
        .env("MEDIADL_LOG", "info,mediadl_server::access=debug")
        .env_remove("MEDIADL_LOG_FORMAT")
        .env_remove("MEDIADL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mediadl serve starts");
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || -> Value {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a log line");
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
    };

    // The address comes from the "listening on" line.
    let address = loop {
        let line = next();
        let message = line["fields"]["message"].as_str().unwrap_or_default();
        if let Some(rest) = message.strip_prefix("listening on http://") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let response = reqwest::Client::new()
        .get(format!("http://{address}/api/v1/health"))
        .header("x-request-id", "json-logs-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let access = loop {
        let line = next();
        if line["span"]["request_id"] == "json-logs-1" {
            break line;
        }
    };
    assert_eq!(access["span"]["name"], "request");
    assert_eq!(access["span"]["method"], "GET");
    assert_eq!(access["span"]["path"], "/api/v1/health");
    assert_eq!(access["fields"]["status"], 200);
    assert!(access["level"].is_string() && access["timestamp"].is_string());
}
