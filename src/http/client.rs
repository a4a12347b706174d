//! Where a request comes from: the TCP peer, or, when the peer is a trusted proxy
//! (`server.trusted_proxies`), the client its `X-Forwarded-For` names, and whether the client
//! used HTTPS (`X-Forwarded-Proto`). A header from any other peer is ignored, so a client can't
//! pick its own address to dodge the login throttle or its scheme to get cookies sent in clear.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address; `None` only when the peer is unknown (a test request).
    pub ip: Option<IpAddr>,
    /// The client reached us over HTTPS (as a trusted proxy says; Steward speaks plain HTTP).
    pub https: bool,
}

impl ClientInfo {
    pub fn of(req: &HttpRequest, trusted: &[IpNet]) -> ClientInfo {
        let peer = req.peer_addr().map(|a| a.ip());
        let Some(peer) = peer else {
            return ClientInfo {
                ip: None,
                https: false,
            };
        };
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return ClientInfo {
                ip: Some(peer),
                https: false,
            };
        }
        let header = |name: &str| {
            req.headers()
                .get_all(name)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect::<Vec<String>>()
        };
        // Right to left: each trusted proxy appended the address it saw; the first address
        // that is not a trusted proxy is the client. A value that is not an address stops the
        // walk there (whatever lies left of it is the client's own claim).
        let mut ip = peer;
        for hop in header("X-Forwarded-For").iter().rev() {
            let Ok(hop) = hop.parse::<IpAddr>() else {
                break;
            };
            ip = hop;
            if !is_trusted(&hop) {
                break;
            }
        }
        let https = header("X-Forwarded-Proto")
            .last()
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        ClientInfo {
            ip: Some(ip),
            https,
        }
    }

    /// The client as a throttle key and in audit events: an IPv4 address, or an IPv6
    /// address's /64 (one host usually holds the whole /64, so a finer key would let it vary
    /// its address freely).
    pub fn key(&self) -> String {
        match self.ip {
            Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
            Some(std::net::IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .map(|v4| v4.to_string())
                .unwrap_or_default(),
            Some(ip) => ip.to_string(),
            None => "unknown".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn an_ipv6_client_is_keyed_by_its_64() {
        let info = |ip: &str| ClientInfo {
            ip: Some(ip.parse().expect("ip")),
            https: false,
        };
        assert_eq!(
            info("2001:db8:1:2:aaaa::1").key(),
            info("2001:db8:1:2:bbbb::9").key()
        );
        assert_ne!(info("2001:db8:1:2::1").key(), info("2001:db8:1:3::1").key());
        assert_eq!(info("::ffff:10.1.2.3").key(), "10.1.2.3");
        assert_eq!(info("10.1.2.3").key(), "10.1.2.3");
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_peers() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:4000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "1.2.3.4"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request();
        let info = ClientInfo::of(&req, &nets(&["10.0.0.0/8"]));
        assert_eq!(info.ip, Some("203.0.113.9".parse().expect("ip")));
        assert!(!info.https);

        // Render's one hop: the proxy appends the client's address.
        let req = TestRequest::default()
            .peer_addr("10.1.2.3:4000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "6.6.6.6, 198.51.100.7"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request();
        let info = ClientInfo::of(&req, &nets(&["10.0.0.0/8"]));
        assert_eq!(info.ip, Some("198.51.100.7".parse().expect("ip")));
        assert!(info.https);

        // Two trusted hops are skipped; garbage stops the walk.
        let req = TestRequest::default()
            .peer_addr("10.1.2.3:4000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "nonsense, 10.9.9.9"))
            .to_http_request();
        let info = ClientInfo::of(&req, &nets(&["10.0.0.0/8"]));
        assert_eq!(info.ip, Some("10.9.9.9".parse().expect("ip")));
    }
}
