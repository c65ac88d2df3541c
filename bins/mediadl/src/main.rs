//! `mediadl`: the command line. Parses flags and environment, starts
//! tracing, and hands over to the library (thin-binary style).

mod backup;
mod cli;
mod download;
mod import;
mod logging;
mod probe;
mod serve;
mod storage;
mod user;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mediadl: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let log_format = cli.log_format;
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(args, log_format).await,
            Command::Worker(args) => serve::worker(args, log_format).await,
            Command::Download(args) => download::download(args).await,
            Command::Import(args) => import::import(args).await,
            Command::User(args) => user::user(args).await,
            Command::Migrate(args) => serve::migrate(args, log_format).await,
            Command::Storage(args) => storage::storage(args).await,
            Command::Backup(args) => backup::backup(args, log_format).await,
            Command::Restore(args) => backup::restore(args, log_format).await,
            Command::Healthcheck(args) => probe::healthcheck(args).await,
            Command::Completions { shell } => probe::completions(shell),
            Command::Manpage { output_dir } => probe::manpage(output_dir.as_deref()),
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mediadl: {err}");
            ExitCode::FAILURE
        }
    }
}
