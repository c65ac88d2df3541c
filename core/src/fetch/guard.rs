//! `network.block_private_addresses`: refuse loopback, private, link-local
//! and other non-public targets, on the resolved address (so a public name
//! pointing inside is caught) and on every redirect.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::error::DownloadError;

/// Whether an address is one a self-hosted tool must not be tricked into
/// reaching when private targets are blocked.
pub fn is_blocked_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_blocked_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Refuses a URL whose host is a literal blocked address (names are checked
/// by [`GuardedResolver`] when they are resolved).
pub(crate) fn check_literal_host(url: &Url) -> Result<(), DownloadError> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
            return Err(blocked(url.as_str()));
        }
        _ => return Ok(()),
    };
    if is_blocked_address(ip) {
        Err(blocked(url.as_str()))
    } else {
        Ok(())
    }
}

fn blocked(target: &str) -> DownloadError {
    DownloadError::permanent(format!(
        "{target}: private or local address refused (network.block_private_addresses is on)"
    ))
}

/// A resolver that drops blocked addresses and fails when none are left.
#[derive(Debug)]
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| !is_blocked_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = Box::new(blocked(&host));
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            assert!(is_blocked_address(blocked.parse().unwrap()), "{blocked}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_blocked_address(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn literal_hosts_are_checked() {
        assert!(check_literal_host(&Url::parse("http://127.0.0.1:8080/x").unwrap()).is_err());
        assert!(check_literal_host(&Url::parse("http://[::1]/x").unwrap()).is_err());
        assert!(check_literal_host(&Url::parse("http://localhost/x").unwrap()).is_err());
        assert!(check_literal_host(&Url::parse("http://example.com/x").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_point_inside() {
        let err = GuardedResolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("private"), "{err}");
    }
}
