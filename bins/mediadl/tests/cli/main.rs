//! The `mediadl` binary end to end: started as a process, observed through
//! its exit status, its log lines and its HTTP API.

mod config;
mod json_logs;
