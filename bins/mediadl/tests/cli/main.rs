//! The `mediadl` binary end to end: started as a process, observed through
//! its exit status, its log lines and its HTTP API. The crate's one
//! integration-test binary.

mod backup;
mod config;
mod download_archive;
mod import;
mod json_logs;
mod pg_workers;
mod s3_workers;
mod storage;
mod worker_metrics;
mod workers;
