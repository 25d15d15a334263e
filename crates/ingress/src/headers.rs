//! The request headers the proxy sends upstream, as ingress-nginx sets them by default: hop-by-hop
//! headers dropped (RFC 9110 §7.6.1), `X-Forwarded-For` and `X-Real-IP` set to the peer the
//! proxy sees (a client-sent `X-Forwarded-For` is not trusted, it moves to
//! `X-Original-Forwarded-For`), `X-Forwarded-Host`, `-Port`, `-Proto` and `-Scheme` from the
//! connection, and `Proxy` removed (httpoxy).

use std::io::Write;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, UPGRADE};

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub client: IpAddr,
    pub https: bool,
    /// The port the client connected to, as the client sees the Service (80 or 443).
    pub port: u16,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy",
];

/// The `Upgrade` protocol a request asks for (`Connection: upgrade` plus `Upgrade: x`).
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// Rewrites `headers` of a request to `host` for the upstream.
pub fn forward(headers: &mut HeaderMap, host: HeaderValue, arrival: Arrival) {
    let upgrade = upgrade_protocol(headers);
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
    for (original, sent) in [
        ("x-original-forwarded-for", "x-forwarded-for"),
        ("x-original-forwarded-host", "x-forwarded-host"),
    ] {
        if let Some(v) = headers.remove(sent) {
            headers.insert(HeaderName::from_static(original), v);
        }
    }
    // Formatted on the stack: an IP is at most 39 bytes.
    let mut ip = [0u8; 48];
    let len = {
        let mut cursor = std::io::Cursor::new(&mut ip[..]);
        let _ = write!(cursor, "{}", arrival.client);
        cursor.position() as usize
    };
    let client = HeaderValue::from_bytes(&ip[..len]).expect("an IP is a header value");
    let proto = HeaderValue::from_static(if arrival.https { "https" } else { "http" });
    let set = |headers: &mut HeaderMap, name: &'static str, v: HeaderValue| {
        headers.insert(HeaderName::from_static(name), v);
    };
    set(headers, "x-forwarded-for", client.clone());
    set(headers, "x-real-ip", client);
    set(headers, "x-forwarded-proto", proto.clone());
    set(headers, "x-forwarded-scheme", proto);
    set(headers, "x-forwarded-port", HeaderValue::from(arrival.port));
    set(headers, "x-forwarded-host", host.clone());
    headers.insert(HOST, host);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const FROM: Arrival = Arrival {
        client: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
        https: false,
        port: 80,
    };

    #[test]
    fn client_forwarded_headers_are_not_trusted() {
        let mut h = map(&[
            ("x-forwarded-proto", "myproto"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "myhost"),
            ("x-forwarded-port", "1234"),
            ("host", "app.example.com"),
        ]);
        forward(&mut h, HeaderValue::from_static("app.example.com"), FROM);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-port"], "80");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert_eq!(h["x-original-forwarded-for"], "1.2.3.4");
        assert_eq!(h["x-original-forwarded-host"], "myhost");
        assert_eq!(h["host"], "app.example.com");
    }

    #[test]
    fn hop_by_hop_headers_go_but_upgrades_pass() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy", "http://evil"),
            ("te", "trailers"),
            ("accept", "*/*"),
        ]);
        forward(
            &mut h,
            HeaderValue::from_static("h"),
            Arrival {
                https: true,
                port: 443,
                ..FROM
            },
        );
        for gone in ["connection", "x-secret", "keep-alive", "proxy", "te"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "443");

        let mut ws = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(upgrade_protocol(&ws).unwrap(), "websocket");
        forward(&mut ws, HeaderValue::from_static("h"), FROM);
        assert_eq!(ws["connection"], "upgrade");
        assert_eq!(ws["upgrade"], "websocket");
        assert!(upgrade_protocol(&map(&[("upgrade", "websocket")])).is_none());
    }
}
