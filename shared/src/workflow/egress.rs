//! Egress policy for the http and llm nodes (decision 9).
//!
//! Loopback, private, link-local, unique-local, CGNAT, unspecified and cloud-metadata addresses are
//! refused unless a setting allows them. The check runs on the addresses a host name resolves to,
//! inside the HTTP client's own resolver, so the address that is vetted is the address that is
//! connected to: a DNS answer that changes between a check and the connection (rebinding) cannot
//! slip through. IP-literal URLs never reach a resolver and are checked before sending and on
//! every redirect.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// A refused destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "HTTP request to \"{host}\" refused: {addr} is a loopback, private, link-local or cloud metadata address (set http_allow_private to allow it)"
    )]
    Forbidden { host: String, addr: IpAddr },
    #[error("HTTP request to \"{host}\" failed: the host name could not be resolved ({reason})")]
    Unresolvable { host: String, reason: String },
    #[error(
        "HTTP request to \"{host}\" refused: it is a cloud metadata service (set http_allow_private to allow it)"
    )]
    Metadata { host: String },
}

/// Cloud metadata services' host names. They resolve to link-local addresses, which the
/// address check refuses anyway; refusing the names as well means they are never even
/// looked up.
const METADATA_HOSTS: [&str; 5] = [
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Whether a host name is a cloud metadata service's (any case, with or without the final dot).
pub fn is_metadata_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    METADATA_HOSTS
        .iter()
        .any(|name| host.eq_ignore_ascii_case(name))
}

/// Whether an address is one the policy refuses by default.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254, the cloud metadata endpoint
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..=19).contains(&b)) // benchmarking 198.18/15
        || ip.is_multicast()
        || a >= 240 // reserved and broadcast
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7, includes fd00:ec2::254
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
        || ip.is_multicast()
}

/// IPv4 addresses carried inside IPv6 ones (mapped, compatible, NAT64 and 6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail()); // deprecated IPv4-compatible ::a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail()); // NAT64 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )); // 6to4 2002::/16
    }
    None
}

/// Resolve `host` and vet every address it resolves to.
pub async fn resolve_vetted(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, EgressError> {
    if !allow_private && is_metadata_host(host) {
        return Err(EgressError::Metadata {
            host: host.to_owned(),
        });
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| EgressError::Unresolvable {
            host: host.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(EgressError::Unresolvable {
            host: host.to_owned(),
            reason: "no addresses".to_owned(),
        });
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return Err(EgressError::Forbidden {
            host: host.to_owned(),
            addr: bad.ip(),
        });
    }
    Ok(addrs)
}

/// Check a URL before sending: IP literals directly, host names by resolving them.
pub async fn check_url(url: &Url, allow_private: bool) -> Result<(), EgressError> {
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(Host::Ipv4(v4)) => literal(url, IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => literal(url, IpAddr::V6(v6)),
        Some(Host::Domain(domain)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            resolve_vetted(domain, port, false).await.map(|_| ())
        }
        None => Ok(()),
    }
}

fn literal(url: &Url, ip: IpAddr) -> Result<(), EgressError> {
    if is_forbidden(ip) {
        Err(EgressError::Forbidden {
            host: url.host_str().unwrap_or_default().to_owned(),
            addr: ip,
        })
    } else {
        Ok(())
    }
}

/// The resolver the http node's client connects through.
struct VettingResolver;

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_vetted(&host, 0, false)
                .await
                .map_err(|e| Box::new(e) as Box<dyn StdError + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The client for the http node. With the policy on it resolves through [`VettingResolver`],
/// vets IP-literal redirect targets and ignores proxy settings (a proxy would resolve names for
/// us, out of the policy's sight).
pub(crate) fn http_client(allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
    let builder = if allow_private {
        builder
    } else {
        builder
            .no_proxy()
            .dns_resolver(Arc::new(VettingResolver))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("too many redirects");
                }
                let ip = match attempt.url().host() {
                    Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
                    Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
                    _ => None,
                };
                match ip {
                    Some(ip) if is_forbidden(ip) => {
                        let host = attempt.url().host_str().unwrap_or_default().to_owned();
                        attempt.error(EgressError::Forbidden { host, addr: ip })
                    }
                    _ => attempt.follow(),
                }
            }))
    };
    builder.build().unwrap_or_default()
}

/// The egress refusal inside a client error, if that is what failed.
pub(crate) fn find_egress_error(error: &(dyn StdError + 'static)) -> Option<EgressError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(egress) = e.downcast_ref::<EgressError>() {
            return Some(egress.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for addr in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.5",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(is_forbidden(ip(addr)), "{addr} should be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip(addr)), "{addr} should be allowed");
        }
    }

    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_refused() {
        let error = resolve_vetted("localhost", 80, false).await.unwrap_err();
        assert!(
            matches!(&error, EgressError::Forbidden { host, addr } if host == "localhost" && addr.is_loopback()),
            "{error:?}"
        );
        assert!(resolve_vetted("localhost", 80, true).await.is_ok());
    }

    #[tokio::test]
    async fn ip_literal_urls_are_checked_without_resolving() {
        let metadata = Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(matches!(
            check_url(&metadata, false).await,
            Err(EgressError::Forbidden { .. })
        ));
        let v6 = Url::parse("http://[::1]:8080/").unwrap();
        assert!(check_url(&v6, false).await.is_err());
        assert!(check_url(&v6, true).await.is_ok());
        let public = Url::parse("http://8.8.8.8/").unwrap();
        assert!(check_url(&public, false).await.is_ok());
    }

    /// Decided from the URL alone: nothing is resolved or connected to.
    #[tokio::test]
    async fn private_and_metadata_destinations_are_refused_without_a_lookup() {
        let refusal = |url: &'static str| async move {
            check_url(&Url::parse(url).unwrap(), false)
                .await
                .expect_err(url)
        };
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/v1",
            "https://10.0.0.1:8443/v1/chat/completions",
            "http://192.168.1.10/",
            "http://[fd00:ec2::254]/latest",
        ] {
            let error = refusal(url).await;
            assert!(
                matches!(error, EgressError::Forbidden { .. }),
                "{url}: {error:?}"
            );
        }
        for url in [
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/",
            "http://instance-data/latest/",
        ] {
            let error = refusal(url).await;
            assert!(
                matches!(error, EgressError::Metadata { .. }),
                "{url}: {error:?}"
            );
        }
        assert!(!is_metadata_host("metadata.example.com"));
        assert!(!is_metadata_host("api.openai.com"));
    }

    #[tokio::test]
    async fn the_client_refuses_loopback_at_connect_time() {
        let client = http_client(false);
        let error = client.get("http://localhost:9/").send().await.unwrap_err();
        let egress = find_egress_error(&error).expect("an egress error in the chain");
        assert!(matches!(egress, EgressError::Forbidden { .. }));
    }
}
