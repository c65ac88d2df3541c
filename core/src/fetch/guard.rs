//! The address guard: which network addresses mediadl refuses to reach.
//!
//! Two rules, judged on the resolved address (so a public name pointing
//! inside is caught), on literal hosts and on every redirect:
//!
//! - cloud metadata endpoints ([`METADATA_ADDRESSES`]) are always refused:
//!   a downloaded page or a webhook must never read instance credentials;
//! - with `network.block_private_addresses` on, every address of the IANA
//!   special-purpose registries ([`SPECIAL_PURPOSE_V4`],
//!   [`SPECIAL_PURPOSE_V6`]) is refused too. IPv4 carried inside IPv6
//!   (mapped, compatible, NAT64 `64:ff9b::/96`, 6to4) is unwrapped and
//!   judged as the IPv4 address it reaches.
//!
//! The HTTP clients install [`GuardedResolver`], which hands the connector
//! only addresses that passed, so the address checked is the address
//! connected to (no DNS-rebinding window between the two).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::error::DownloadError;

/// IPv4 special-purpose blocks (RFC 6890 and the IANA registry), refused
/// when private addresses are blocked.
pub const SPECIAL_PURPOSE_V4: &[&str] = &[
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // carrier-grade NAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // TEST-NET-1
    "192.88.99.0/24",  // 6to4 relay anycast
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // TEST-NET-2
    "203.0.113.0/24",  // TEST-NET-3
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
];

/// IPv6 special-purpose blocks, refused when private addresses are blocked.
/// The blocks that embed IPv4 (`::ffff:0:0/96`, `::/96`, `64:ff9b::/96`,
/// `2002::/16`) are not listed: their IPv4 address is judged instead.
pub const SPECIAL_PURPOSE_V6: &[&str] = &[
    "::/128",         // unspecified
    "::1/128",        // loopback
    "64:ff9b:1::/48", // local-use NAT64
    "100::/64",       // discard-only
    "2001::/23",      // IETF protocol assignments (Teredo, ORCHID, …)
    "2001:db8::/32",  // documentation
    "fc00::/7",       // unique local
    "fe80::/10",      // link-local
    "fec0::/10",      // site-local (deprecated)
    "ff00::/8",       // multicast
];

/// Cloud instance-metadata endpoints, refused even when private addresses
/// are allowed (AWS/GCP/Azure/OpenStack, AWS ECS task metadata, Alibaba
/// Cloud, AWS IPv6).
pub const METADATA_ADDRESSES: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "fd00:ec2::254",
];

static V4_NETS: LazyLock<Vec<Ipv4Net>> = LazyLock::new(|| {
    SPECIAL_PURPOSE_V4
        .iter()
        .map(|net| net.parse().expect("valid IPv4 block"))
        .collect()
});
static V6_NETS: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| {
    SPECIAL_PURPOSE_V6
        .iter()
        .map(|net| net.parse().expect("valid IPv6 block"))
        .collect()
});
static METADATA: LazyLock<Vec<IpAddr>> = LazyLock::new(|| {
    METADATA_ADDRESSES
        .iter()
        .map(|ip| ip.parse().expect("valid metadata address"))
        .collect()
});

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A cloud metadata endpoint (always refused).
    Metadata,
    /// A private, local or otherwise special-purpose address (refused while
    /// `network.block_private_addresses` is on).
    SpecialPurpose,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Metadata => "cloud metadata address refused",
            Self::SpecialPurpose => {
                "private or special-purpose address refused (network.block_private_addresses is on)"
            }
        })
    }
}

/// A connection the guard refused. The target is a host name or address,
/// never a whole URL (webhook URLs carry tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {reason}")]
pub struct AddressRefused {
    /// The host that was refused.
    pub target: String,
    /// Why.
    pub reason: Refusal,
}

impl From<AddressRefused> for DownloadError {
    fn from(err: AddressRefused) -> Self {
        DownloadError::permanent(err.to_string())
    }
}

/// The IPv4 address an IPv6 address reaches, for the forms that embed one:
/// mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`
/// and 6to4 `2002:AABB:CCDD::/48`.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && u32::from(low) > 1 {
        // IPv4-compatible (`::` and `::1` are IPv6's own).
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Whether `ip` is in a special-purpose block (IPv4 inside IPv6 judged as IPv4).
pub fn is_special_purpose(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => V4_NETS.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_special_purpose(IpAddr::V4(v4)),
            None => V6_NETS.iter().any(|net| net.contains(&v6)),
        },
    }
}

/// Whether `ip` is a cloud metadata endpoint (IPv4 inside IPv6 unwrapped).
pub fn is_metadata_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    METADATA.contains(&ip)
}

/// Whether an address is one a self-hosted tool must not be tricked into
/// reaching when private targets are blocked (metadata endpoints included).
pub fn is_blocked_address(ip: IpAddr) -> bool {
    is_metadata_address(ip) || is_special_purpose(ip)
}

/// What a client refuses: metadata endpoints always, special-purpose
/// addresses when `block_private` (the `network.block_private_addresses` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressGuard {
    /// Refuse every special-purpose address, not only metadata endpoints.
    pub block_private: bool,
}

impl AddressGuard {
    /// A guard following `network.block_private_addresses`.
    pub fn new(block_private: bool) -> Self {
        Self { block_private }
    }

    /// Why `ip` is refused, or `None` when it may be reached.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        if is_metadata_address(ip) {
            Some(Refusal::Metadata)
        } else if self.block_private && is_special_purpose(ip) {
            Some(Refusal::SpecialPurpose)
        } else {
            None
        }
    }

    /// Refuses a URL whose host is a refused literal address (or
    /// `localhost` while private addresses are blocked). Names are checked
    /// by [`GuardedResolver`] when they are resolved.
    ///
    /// # Errors
    ///
    /// [`AddressRefused`] naming the host.
    pub fn check_url(&self, url: &Url) -> Result<(), AddressRefused> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(name))
                if self.block_private
                    && (name.eq_ignore_ascii_case("localhost")
                        || name.to_ascii_lowercase().ends_with(".localhost")) =>
            {
                return Err(AddressRefused {
                    target: name.to_owned(),
                    reason: Refusal::SpecialPurpose,
                });
            }
            _ => return Ok(()),
        };
        self.check_ip(&ip.to_string(), ip)
    }

    /// Refuses `ip` (reached as `target`) when the guard says so.
    ///
    /// # Errors
    ///
    /// [`AddressRefused`] naming `target`.
    pub fn check_ip(&self, target: &str, ip: IpAddr) -> Result<(), AddressRefused> {
        match self.refusal(ip) {
            Some(reason) => Err(AddressRefused {
                target: target.to_owned(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// The addresses of `host` that may be reached, in resolver order.
    ///
    /// # Errors
    ///
    /// The lookup's I/O error, or [`AddressRefused`] when every address
    /// the name has is refused.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await?
            .filter(|addr| match self.refusal(addr.ip()) {
                Some(reason) => {
                    refused = Some(reason);
                    false
                }
                None => true,
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (true, Some(reason)) => Err(Box::new(AddressRefused {
                target: host.to_owned(),
                reason,
            })),
            (true, None) => Err(format!("{host}: no addresses").into()),
            (false, _) => Ok(allowed),
        }
    }

    /// A resolver for reqwest that applies this guard.
    pub fn resolver(self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { guard: self })
    }
}

/// A resolver that drops refused addresses and fails when none are left;
/// the connector then connects only to addresses that passed.
#[derive(Debug)]
pub struct GuardedResolver {
    guard: AddressGuard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard;
        Box::pin(async move {
            let allowed = guard.resolve(name.as_str(), 0).await?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address inside every listed block, and its embedded-IPv4 forms.
    #[test]
    fn every_special_purpose_block_is_refused_in_every_form() {
        let guard = AddressGuard::new(true);
        for net in V4_NETS.iter() {
            for v4 in [net.network(), net.broadcast()] {
                let forms = [
                    IpAddr::V4(v4),
                    IpAddr::V6(v4.to_ipv6_mapped()),
                    IpAddr::V6(v4.to_ipv6_compatible()),
                    format!("64:ff9b::{v4}").parse().unwrap(),
                    {
                        let [a, b, c, d] = v4.octets();
                        let s1 = u16::from_be_bytes([a, b]);
                        let s2 = u16::from_be_bytes([c, d]);
                        IpAddr::V6(Ipv6Addr::new(0x2002, s1, s2, 0, 0, 0, 0, 1))
                    },
                ];
                for ip in forms {
                    if ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
                        continue; // 0.0.0.0 compatible is `::`, refused as IPv6
                    }
                    assert_eq!(
                        guard.refusal(ip),
                        Some(Refusal::SpecialPurpose),
                        "{ip} ({net})"
                    );
                }
            }
        }
        for net in V6_NETS.iter() {
            for ip in [net.network(), net.broadcast()] {
                let refusal = guard.refusal(IpAddr::V6(ip));
                assert!(refusal.is_some(), "{ip} ({net})");
            }
        }
        for literal in [
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.251",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "fec0::1",
            "ff02::1",
            "fe80::1",
            "fd12::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
        ] {
            let ip: IpAddr = literal.parse().unwrap();
            assert!(guard.refusal(ip).is_some(), "{literal}");
            assert!(is_blocked_address(ip), "{literal}");
        }
    }

    #[test]
    fn public_addresses_pass_in_every_form() {
        let guard = AddressGuard::new(true);
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:2800:220:1::1",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "100.128.0.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(guard.refusal(ip), None, "{public}");
            assert!(!is_blocked_address(ip), "{public}");
        }
    }

    #[test]
    fn metadata_endpoints_are_refused_even_when_private_is_allowed() {
        let open = AddressGuard::new(false);
        for metadata in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "fd00:ec2::254",
            "100.100.100.200",
            "169.254.170.2",
        ] {
            let ip: IpAddr = metadata.parse().unwrap();
            assert_eq!(open.refusal(ip), Some(Refusal::Metadata), "{metadata}");
        }
        for private in ["127.0.0.1", "10.0.0.1", "::1", "169.254.1.1"] {
            assert_eq!(open.refusal(private.parse().unwrap()), None, "{private}");
        }
        let err = open
            .check_url(&Url::parse("http://169.254.169.254/latest/meta-data/").unwrap())
            .unwrap_err();
        assert_eq!(err.target, "169.254.169.254");
        assert!(err.to_string().contains("metadata"), "{err}");
    }

    #[test]
    fn literal_hosts_are_checked() {
        let guard = AddressGuard::new(true);
        let check = |url: &str| guard.check_url(&Url::parse(url).unwrap());
        assert!(check("http://127.0.0.1:8080/x").is_err());
        assert!(check("http://[::1]/x").is_err());
        assert!(check("http://[::ffff:127.0.0.1]/x").is_err());
        assert!(check("http://localhost/x").is_err());
        assert!(check("http://api.localhost/x").is_err());
        assert!(check("http://example.com/x").is_ok());
        let err = check("http://10.0.0.1/hook?token=abc").unwrap_err();
        assert!(!err.to_string().contains("token"), "{err}");
        assert!(
            AddressGuard::new(false)
                .check_url(&Url::parse("http://127.0.0.1/").unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_point_inside() {
        let err = AddressGuard::new(true)
            .resolver()
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("private"), "{err}");
        let allowed = AddressGuard::new(false)
            .resolver()
            .resolve("localhost".parse().unwrap())
            .await;
        assert!(allowed.is_ok(), "private allowed when the setting is off");
    }
}
