//! `mediadl healthcheck`, `mediadl completions` and `mediadl manpage`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;

use crate::cli::{Cli, HealthcheckArgs};

type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// The readiness URL of a server listening on `bind`: an unspecified
/// address (all interfaces) is asked on the loopback of its family.
fn readiness_url(bind: &str) -> Result<String, String> {
    let address: SocketAddr = bind
        .parse()
        .map_err(|err| format!("--bind {bind}: not an IP address and port: {err}"))?;
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}/api/v1/health/ready",
        SocketAddr::new(ip, address.port())
    ))
}

/// Exit 0 when the server answers 200; otherwise print why and exit 1.
pub async fn healthcheck(args: HealthcheckArgs) -> CliResult {
    let url = match args.url {
        Some(url) => url,
        None => readiness_url(&args.bind)?,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .no_proxy()
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("{url}: {err}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        println!("{url}: {status} {body}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("mediadl: {url}: {status} {body}");
        Ok(ExitCode::FAILURE)
    }
}

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut command = Cli::command();
    // Into a buffer first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "mediadl", &mut script);
    std::io::Write::write_all(&mut std::io::stdout(), &script)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the main man page to standard output, or every page into `dir`.
pub fn manpage(dir: Option<&Path>) -> CliResult {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .map_err(|err| format!("cannot write man pages into {}: {err}", dir.display()))?;
            println!("man pages written to {}", dir.display());
        }
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_url_asks_loopback_for_unspecified_addresses() {
        assert_eq!(
            readiness_url("0.0.0.0:8000").unwrap(),
            "http://127.0.0.1:8000/api/v1/health/ready"
        );
        assert_eq!(
            readiness_url("[::]:9000").unwrap(),
            "http://[::1]:9000/api/v1/health/ready"
        );
        assert_eq!(
            readiness_url("192.0.2.7:80").unwrap(),
            "http://192.0.2.7:80/api/v1/health/ready"
        );
        assert!(
            readiness_url("localhost:8000")
                .unwrap_err()
                .contains("--bind localhost:8000")
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks: no clashing flags or names (completions and man pages read this).
        Cli::command().debug_assert();
    }
}
