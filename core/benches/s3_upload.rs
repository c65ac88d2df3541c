//! S3 uploads against moto on loopback (`cargo bench -p mediadl --bench
//! s3_upload --features s3,testkit`; figures in benches/README.md):
//!
//! 1. throughput: 4 × 256 MiB staged files committed at once by
//!    `S3Storage`, against boto3's `upload_file` of the same files (4
//!    threads) in the same run, to a fresh moto each, in rounds
//!    (`S3_UPLOAD_ROUNDS`, 5) that alternate who goes first; the median
//!    ratio is the figure;
//! 2. memory: peak RSS of this process while 16 transfers of 128 MiB
//!    commit at once (`S3_UPLOAD_PHASE=rss` runs only this, so earlier
//!    phases do not raise the high-water mark).
//!
//! `S3_UPLOAD_MIB` changes the file size of phase 1, `S3_PART_MIB` the part
//! size, `S3_PART_BUFFERS` the
//! storage's part buffers, `S3_PARTS_IN_FLIGHT` the parts each upload
//! sends at once, `S3_CONCURRENT_UPLOADS` the uploads under way at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mediadl::storage::{Collision, MediaStorage, S3Config, S3Storage, StorageKey};
use mediadl::testkit::s3::S3Server;

const BUCKET: &str = "bench";

fn write_file(path: &Path, mib: usize, seed: u8) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let block: Vec<u8> = (0..1 << 20)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    for _ in 0..mib {
        file.write_all(&block).unwrap();
    }
}

/// Commits copies of `files` at once; seconds taken.
async fn commit_all(storage: Arc<S3Storage>, files: &[PathBuf], staging: &Path) -> f64 {
    let staged: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .map(|(n, file)| {
            let copy = staging.join(format!(".mediadl-bench-{n}.part"));
            std::fs::copy(file, &copy).unwrap();
            // Written back before the clock starts: the server's own disk
            // writes would otherwise wait behind these copies' (boto3 reads
            // the sources, which have long been written).
            std::fs::File::open(&copy).unwrap().sync_all().unwrap();
            copy
        })
        .collect();
    let began = Instant::now();
    let tasks: Vec<_> = staged
        .into_iter()
        .enumerate()
        .map(|(n, path)| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move {
                let key = StorageKey::new(format!("bench/file-{n}.bin")).unwrap();
                storage
                    .commit_file(&path, &key, Collision::Replace)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    began.elapsed().as_secs_f64()
}

/// A number from the environment, when set and valid.
fn env_number(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

async fn fresh_storage(staging: &Path) -> (S3Server, Arc<S3Storage>) {
    let server = S3Server::start().await;
    server.create_bucket(BUCKET).await;
    let mut config = S3Config::new(server.settings(BUCKET), staging);
    config.part_buffers = env_number("S3_PART_BUFFERS").unwrap_or(config.part_buffers);
    config.part_size = env_number("S3_PART_MIB").map_or(config.part_size, |mib| mib << 20);
    config.concurrent_uploads =
        env_number("S3_CONCURRENT_UPLOADS").unwrap_or(config.concurrent_uploads);
    config.parts_in_flight = env_number("S3_PARTS_IN_FLIGHT").unwrap_or(config.parts_in_flight);
    let storage = S3Storage::new(&config).unwrap();
    (server, Arc::new(storage))
}

fn boto3_seconds(endpoint: &str, files: &[PathBuf]) -> f64 {
    let script = r#"
import sys, time, threading, boto3
endpoint, files = sys.argv[1], sys.argv[2:]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
began = time.perf_counter()
threads = [threading.Thread(target=s3.upload_file, args=(f, "bench", "boto/%d.bin" % n))
           for n, f in enumerate(files)]
for t in threads: t.start()
for t in threads: t.join()
print(time.perf_counter() - began)
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(endpoint)
        .args(files)
        .output()
        .expect("python3 with boto3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 12th and 13th there, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let phase = std::env::var("S3_UPLOAD_PHASE").unwrap_or_default();
    if phase != "rss" {
        let mib = env_number("S3_UPLOAD_MIB").unwrap_or(256);
        let files: Vec<PathBuf> = (0..4)
            .map(|n| {
                let path = dir.path().join(format!("source-{n}.bin"));
                write_file(&path, mib, n as u8);
                path
            })
            .collect();
        let total = (4 * mib) as f64;
        let rounds = env_number("S3_UPLOAD_ROUNDS").unwrap_or(5);
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            // Each round on fresh servers; who goes first alternates, so
            // neither client always meets a server warmed up by the other.
            let mut ours = 0.0;
            let mut cpu = 0.0;
            let mut theirs = 0.0;
            for ours_now in [round % 2 == 1, round % 2 == 0] {
                let (server, storage) = fresh_storage(dir.path()).await;
                if ours_now {
                    let cpu_before = cpu_seconds();
                    ours = commit_all(storage, &files, dir.path()).await;
                    cpu = cpu_seconds() - cpu_before;
                } else {
                    theirs = boto3_seconds(server.endpoint(), &files);
                }
            }
            ratios.push(theirs / ours);
            println!(
                "round {round}, 4 x {mib} MiB: mediadl {:.1} MiB/s ({ours:.2} s, {cpu:.2} CPU-s), boto3 upload_file {:.1} MiB/s ({theirs:.2} s), ratio {:.2}",
                total / ours,
                total / theirs,
                theirs / ours
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "median ratio over {rounds} rounds: {:.2}",
            ratios[ratios.len() / 2]
        );
        for file in files {
            std::fs::remove_file(file).unwrap();
        }
    }
    if phase.is_empty() || phase == "rss" {
        let source = dir.path().join("rss-source.bin");
        write_file(&source, 128, 9);
        let files = vec![source; 16];
        let (_server, storage) = fresh_storage(dir.path()).await;
        let before = peak_rss_mib();
        let seconds = commit_all(storage, &files, dir.path()).await;
        println!(
            "16 x 128 MiB at once: {seconds:.2} s, peak RSS {:.1} MiB (before the transfers {before:.1} MiB)",
            peak_rss_mib()
        );
    }
}
