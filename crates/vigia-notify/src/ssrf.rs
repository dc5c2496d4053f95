//! The SSRF guard: webhooks never reach loopback, private, link-local (including the cloud
//! metadata address 169.254.169.254), unspecified, multicast or other non-public addresses
//! unless `allow_private_targets` is set. Host names are checked on every connection by the
//! HTTP client's resolver, so a name that later resolves to a private address (DNS rebinding)
//! is refused too; addresses written in the URL are checked before sending.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// True for addresses a webhook must not reach by default.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // carrier-grade NAT, 100.64.0.0/10
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments 192.0.0.0/24 (DS-Lite, NAT64 discovery, ...)
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // benchmarking 198.18.0.0/15 and reserved 240.0.0.0/4
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let first = segments[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // unique local fc00::/7
        || (first & 0xfe00) == 0xfc00
        // link-local fe80::/10
        || (first & 0xffc0) == 0xfe80
        // IPv4-compatible ::a.b.c.d (::/96, deprecated by RFC 4291): refused whatever the
        // address, as a stack may still route it to IPv4
        || segments[..6].iter().all(|s| *s == 0)
        // 6to4 2002::/16 carries an IPv4 address in its next 32 bits: refused when that
        // address is
        || (first == 0x2002 && forbidden_v4(embedded_v4(segments[1], segments[2])))
        // NAT64 64:ff9b::/32 (the well-known prefix 64:ff9b::/96 and the local-use
        // 64:ff9b:1::/48): refused whole, whatever IPv4 address it embeds, since the gateway
        // translating it may reach private IPv4 networks
        || (first == 0x64 && segments[1] == 0xff9b)
}

/// The IPv4 address carried by two 16-bit segments of an IPv6 address.
fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Why a URL may not receive webhooks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    #[error("must be an absolute http:// or https:// URL")]
    NotHttp,
    #[error("must not contain credentials")]
    Credentials,
    #[error("points to a private, loopback or link-local address ({0}), which is not allowed")]
    Private(IpAddr),
}

/// Checks a URL before it is stored or used: scheme, no userinfo, and — for addresses written
/// literally — the address ranges. Host names are checked when they are resolved.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, UrlRefused> {
    let url = url::Url::parse(raw).map_err(|_| UrlRefused::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(UrlRefused::NotHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    if !allow_private {
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| is_forbidden(*ip)) {
            return Err(UrlRefused::Private(ip));
        }
    }
    Ok(url)
}

/// A resolver that drops forbidden addresses and fails when none is left.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| allow_private || !is_forbidden(a.ip()))
                .collect();
            if allowed.is_empty() {
                let shown = resolved
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "refused: {host} resolves to a private, loopback or link-local address {shown}"
                )
                .into());
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
    fn loopback_private_link_local_and_metadata_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::808:808",
        ] {
            assert!(
                is_forbidden(ip.parse().expect("ip")),
                "{ip} must be forbidden"
            );
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(
                !is_forbidden(ip.parse().expect("ip")),
                "{ip} must be allowed"
            );
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_addresses() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert_eq!(
            check_url("ftp://example.com", false),
            Err(UrlRefused::NotHttp)
        );
        assert_eq!(
            check_url("https://u:p@example.com", false),
            Err(UrlRefused::Credentials)
        );
        assert!(matches!(
            check_url("http://169.254.169.254/latest/meta-data", false),
            Err(UrlRefused::Private(_))
        ));
        assert!(matches!(
            check_url("http://[::1]:8080/", false),
            Err(UrlRefused::Private(_))
        ));
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
    }

    #[test]
    fn ietf_protocol_assignments_192_0_0_0_24_are_forbidden() {
        for ip in ["192.0.0.1", "192.0.0.8", "192.0.0.170", "192.0.0.255"] {
            assert!(
                is_forbidden(ip.parse().expect("ip")),
                "{ip} must be forbidden"
            );
        }
        // Neighbours of the range stay allowed.
        for ip in ["192.0.1.1", "192.1.0.1"] {
            assert!(
                !is_forbidden(ip.parse().expect("ip")),
                "{ip} must be allowed"
            );
        }
    }

    #[test]
    fn six_to_four_addresses_are_forbidden_when_their_embedded_ipv4_is() {
        // 2002:AABB:CCDD:: carries AA.BB.CC.DD.
        for ip in [
            "2002:7f00:1::",      // 127.0.0.1
            "2002:a00:1::1",      // 10.0.0.1
            "2002:a9fe:a9fe::",   // 169.254.169.254
            "2002:c0a8:101:1::1", // 192.168.1.1
            "2002:c000:8::",      // 192.0.0.8
        ] {
            assert!(
                is_forbidden(ip.parse().expect("ip")),
                "{ip} must be forbidden"
            );
        }
        // 8.8.8.8 and 93.184.216.34 are public: so are their 6to4 addresses.
        for ip in ["2002:808:808::1", "2002:5db8:d822::"] {
            assert!(
                !is_forbidden(ip.parse().expect("ip")),
                "{ip} must be allowed"
            );
        }
    }

    #[test]
    fn ipv4_compatible_ipv6_addresses_are_forbidden() {
        for ip in [
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "::8.8.8.8",
            "::0.0.0.2",
        ] {
            assert!(
                is_forbidden(ip.parse().expect("ip")),
                "{ip} must be forbidden"
            );
        }
        assert!(matches!(
            check_url("http://[::127.0.0.1]:8080/", false),
            Err(UrlRefused::Private(_))
        ));
        assert!(matches!(
            check_url("http://[2002:7f00:1::]/", false),
            Err(UrlRefused::Private(_))
        ));
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_loopback_addresses_unless_allowed() {
        let name = || -> Name { "localhost".parse().expect("name") };
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name())
        .await;
        assert!(refused.is_err());
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name())
        .await;
        let mut allowed = allowed.map_err(|e| e.to_string()).expect("resolves");
        assert!(allowed.all(|a| a.ip().is_loopback()));
    }
}
