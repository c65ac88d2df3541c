//! The config file through the real binary: a bad file stops the process
//! before it starts, naming the file, the line and the key; for process
//! settings a flag beats the environment, which beats the file, which beats
//! the default.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `mediadl serve` with a clean environment in `dir` (where a default
/// `mediadl.toml` would be found).
fn serve(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mediadl"));
    command
        .arg("serve")
        .current_dir(dir)
        .env("MEDIADL_ADMIN_PASSWORD", "config-test-password")
        .env("MEDIADL_LOG", "info")
        .env("MEDIADL_LOG_FORMAT", "text")
        .env_remove("MEDIADL_BIND")
        .env_remove("MEDIADL_DATA_DIR")
        .env_remove("MEDIADL_CONFIG")
        .env_remove("MEDIADL_DOWNLOAD_DIR")
        .env_remove("MEDIADL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Stops the server (SIGKILL) however the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` and returns its "listening on http://ADDR (data in
/// DIR)" line from the address on.
fn listening_address(mut command: Command) -> (Server, String) {
    let mut child = command.spawn().expect("mediadl serve starts");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a log line before the server listens");
        if let Some((_, rest)) = line.split_once("listening on http://") {
            return (server, rest.to_owned());
        }
    }
}

/// The host of a "listening on" line (`127.0.0.3:41234 (data in x)` → `127.0.0.3`).
fn host(line: &str) -> &str {
    line.split_once(':').unwrap().0
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Every loopback address listens on Linux, so the host tells which
    // layer chose it; port 0 keeps the tests apart.
    std::fs::write(
        dir.path().join("mediadl.toml"),
        "[server]\nbind = \"127.0.0.3:0\"\ndata_dir = \"from-file\"\n",
    )
    .unwrap();

    let (server, address) = listening_address(serve(dir.path()));
    assert_eq!(
        host(&address),
        "127.0.0.3",
        "the default mediadl.toml is read"
    );
    assert!(address.ends_with("(data in from-file)"), "{address}");
    drop(server);

    let mut command = serve(dir.path());
    command.env("MEDIADL_BIND", "127.0.0.2:0");
    let (server, address) = listening_address(command);
    assert_eq!(
        host(&address),
        "127.0.0.2",
        "the environment beats the file"
    );
    drop(server);

    let mut command = serve(dir.path());
    command.env("MEDIADL_BIND", "127.0.0.2:0").args([
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        "from-flag",
    ]);
    let (server, address) = listening_address(command);
    assert_eq!(
        host(&address),
        "127.0.0.1",
        "the flag beats the environment"
    );
    assert!(address.ends_with("(data in from-flag)"), "{address}");
    drop(server);
}

#[test]
fn a_bad_config_file_stops_the_process_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    for (text, expected) in [
        (
            "[general]\nconcurrent_downloads = 2\nconcurent_downloads = 3\n",
            ":3: general.concurent_downloads: unknown field",
        ),
        (
            "[network]\n\nproxy = 8080\n",
            ":3: network.proxy: invalid type",
        ),
        ("[server]\nbind = \"127.0.0.1:0\n", "line 2"),
        ("[server]\nport = 8000\n", ":2: server.port: unknown field"),
    ] {
        std::fs::write(&path, text).unwrap();
        let mut command = serve(dir.path());
        command.arg("--config").arg(&path).stderr(Stdio::piped());
        let output = command.output().expect("mediadl runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text:?} started the server");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(expected),
            "{text:?}: {stderr}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "nothing is created before the file is accepted"
        );
    }
    // A file named by MEDIADL_CONFIG must exist.
    let mut command = serve(dir.path());
    command.env("MEDIADL_CONFIG", dir.path().join("missing.toml"));
    let output = command.output().expect("mediadl runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
}
