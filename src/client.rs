//! Who is asking, for the fair share of the identity provider: the client's address from the header the operator
//! trusts (`server.client_address`), else the peer. Not a security boundary: it only decides whose queue a call
//! joins when the IdP's slots are all taken.

use std::net::IpAddr;

use crate::token::lookup::ClientKey;

/// `server.client_address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    /// The TCP peer (the proxy, for a sidecar: every client then shares one share).
    Peer,
    /// `X-Forwarded-For`, the address `trusted_hops` from the right (each trusted proxy appends one).
    ForwardedFor { trusted_hops: usize },
    /// `X-Real-IP` (nginx `proxy_set_header X-Real-IP $remote_addr`).
    RealIp,
    /// Envoy's `x-envoy-external-address`.
    EnvoyExternal,
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678`, `::1`.
fn parse(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    if let Ok(ip) = raw.parse() {
        return Some(ip);
    }
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    raw.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

/// The client key for one check; `header` reads one header value by (lower-case) name.
pub fn client_key<'a>(how: ClientAddress, header: impl Fn(&str) -> Option<&'a str>, peer: Option<IpAddr>) -> ClientKey {
    let from_header = match how {
        ClientAddress::Peer => None,
        ClientAddress::ForwardedFor { trusted_hops } => header("x-forwarded-for").and_then(|list| {
            let hops: Vec<&str> = list.split(',').collect();
            let index = hops.len().checked_sub(trusted_hops.max(1))?;
            hops.get(index).and_then(|a| parse(a))
        }),
        ClientAddress::RealIp => header("x-real-ip").and_then(parse),
        ClientAddress::EnvoyExternal => header("x-envoy-external-address").and_then(parse),
    };
    ClientKey(from_header.or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_each_source() {
        let peer: Option<IpAddr> = "192.0.2.1".parse().ok();
        let key = |how, name: &'static str, value: &'static str| {
            client_key(how, |n| (n == name).then_some(value), peer)
                .0
                .map(|ip| ip.to_string())
        };
        let xff = |hops| ClientAddress::ForwardedFor { trusted_hops: hops };
        assert_eq!(
            key(xff(1), "x-forwarded-for", "203.0.113.9, 10.0.0.2").as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(
            key(xff(2), "x-forwarded-for", "203.0.113.9, 10.0.0.2").as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            key(xff(3), "x-forwarded-for", "203.0.113.9, 10.0.0.2").as_deref(),
            Some("192.0.2.1"),
            "fewer hops than trusted: the peer"
        );
        assert_eq!(
            key(ClientAddress::RealIp, "x-real-ip", "[2001:db8::1]:443").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            key(ClientAddress::RealIp, "x-real-ip", "198.51.100.4:8080").as_deref(),
            Some("198.51.100.4")
        );
        assert_eq!(
            key(ClientAddress::RealIp, "x-real-ip", "garbage").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(
            key(ClientAddress::EnvoyExternal, "x-envoy-external-address", "198.51.100.7").as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            key(ClientAddress::Peer, "x-real-ip", "198.51.100.4").as_deref(),
            Some("192.0.2.1"),
            "headers are only read when the operator says so"
        );
    }
}
