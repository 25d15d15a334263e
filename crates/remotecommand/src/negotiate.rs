//! Choosing the streaming protocol from an upgrade request's headers, and the 101 reply.
//!
//! kubectl v1.32 first asks for a websocket (`Sec-WebSocket-Protocol`), and after any non-101
//! reply retries with `Upgrade: SPDY/3.1` and `X-Stream-Protocol-Version`. The client's order
//! is its preference, so the first offered protocol this side speaks wins (as the kubelet does).

use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL};
use http::header::{SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderMap, StatusCode};

use crate::ws::accept_key;
use crate::Error;

/// `X-Stream-Protocol-Version`, sent by SPDY clients and echoed with the chosen version.
pub const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// Listed in a refusal so clients can see what this side speaks.
pub const ACCEPTED_STREAM_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";

/// How an exec or attach session is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`: v4 plus close-stream messages `[255, channel]`.
    WebSocketV5,
    /// `v4.channel.k8s.io`: channel-prefixed binary messages, status JSON on channel 3.
    WebSocketV4,
    Spdy {
        version: SpdyVersion,
    },
}

/// The remote-command sub-protocol spoken over SPDY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpdyVersion {
    /// `v2.channel.k8s.io`: no resize stream, errors as plain text. (v1, `channel.k8s.io`, is not spoken.)
    V2,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v4.channel.k8s.io`: the error stream carries a metav1.Status JSON with the exit code.
    V4,
    /// `v5.channel.k8s.io`: the same as v4 over SPDY.
    V5,
}

impl SpdyVersion {
    pub fn name(self) -> &'static str {
        match self {
            SpdyVersion::V2 => "v2.channel.k8s.io",
            SpdyVersion::V3 => "v3.channel.k8s.io",
            SpdyVersion::V4 => "v4.channel.k8s.io",
            SpdyVersion::V5 => "v5.channel.k8s.io",
        }
    }
}

/// How a port-forward session is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortForwardProtocol {
    /// `SPDY/3.1+portforward.k8s.io`: SPDY frames inside websocket binary messages.
    WebSocketTunnel,
    /// `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`.
    Spdy,
}

const WS_V5: &str = "v5.channel.k8s.io";
const WS_V4: &str = "v4.channel.k8s.io";
const SPDY_EXEC: [SpdyVersion; 4] = [
    SpdyVersion::V5,
    SpdyVersion::V4,
    SpdyVersion::V3,
    SpdyVersion::V2,
];
const PORTFORWARD: &str = "portforward.k8s.io";
const WS_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const SPDY_UPGRADE: &str = "SPDY/3.1";

/// Chooses the exec/attach protocol and builds the 101 reply (add no body; then upgrade).
pub fn negotiate_exec(headers: &HeaderMap) -> Result<(Protocol, http::response::Builder), Error> {
    match upgrade_kind(headers)? {
        Upgrade::WebSocket => {
            let offered = offered(headers, SEC_WEBSOCKET_PROTOCOL.as_str());
            let (protocol, name) = offered
                .iter()
                .find_map(|p| match p.as_str() {
                    WS_V5 => Some((Protocol::WebSocketV5, WS_V5)),
                    WS_V4 => Some((Protocol::WebSocketV4, WS_V4)),
                    _ => None,
                })
                .ok_or_else(|| no_common(offered.clone(), &[WS_V5, WS_V4]))?;
            Ok((protocol, websocket_reply(headers, name)?))
        }
        Upgrade::Spdy => {
            let offered = offered(headers, STREAM_PROTOCOL_VERSION);
            let version = offered
                .iter()
                .find_map(|p| SPDY_EXEC.into_iter().find(|v| v.name() == p))
                .ok_or_else(|| no_common(offered.clone(), &SPDY_EXEC.map(|v| v.name())))?;
            Ok((Protocol::Spdy { version }, spdy_reply(version.name())))
        }
    }
}

/// Chooses the port-forward protocol and builds the 101 reply.
pub fn negotiate_portforward(
    headers: &HeaderMap,
) -> Result<(PortForwardProtocol, http::response::Builder), Error> {
    match upgrade_kind(headers)? {
        Upgrade::WebSocket => {
            let offered = offered(headers, SEC_WEBSOCKET_PROTOCOL.as_str());
            if !offered.iter().any(|p| p == WS_TUNNEL) {
                return Err(no_common(offered, &[WS_TUNNEL]));
            }
            Ok((
                PortForwardProtocol::WebSocketTunnel,
                websocket_reply(headers, WS_TUNNEL)?,
            ))
        }
        Upgrade::Spdy => {
            let offered = offered(headers, STREAM_PROTOCOL_VERSION);
            if !offered.iter().any(|p| p == PORTFORWARD) {
                return Err(no_common(offered, &[PORTFORWARD]));
            }
            Ok((PortForwardProtocol::Spdy, spdy_reply(PORTFORWARD)))
        }
    }
}

enum Upgrade {
    WebSocket,
    Spdy,
}

fn upgrade_kind(headers: &HeaderMap) -> Result<Upgrade, Error> {
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let connection_upgrade = offered(headers, CONNECTION.as_str())
        .iter()
        .any(|t| t.eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return Err(Error::NotAnUpgrade);
    }
    if upgrade.eq_ignore_ascii_case("websocket") {
        Ok(Upgrade::WebSocket)
    } else if upgrade.eq_ignore_ascii_case(SPDY_UPGRADE) {
        Ok(Upgrade::Spdy)
    } else {
        Err(Error::NotAnUpgrade)
    }
}

/// Every comma-separated token of every instance of a header, in order.
fn offered(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn no_common(offered: Vec<String>, supported: &[&str]) -> Error {
    Error::NoCommonProtocol {
        offered,
        supported: supported.iter().map(|s| s.to_string()).collect(),
    }
}

fn websocket_reply(headers: &HeaderMap, protocol: &str) -> Result<http::response::Builder, Error> {
    let version = headers
        .get(SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok());
    if version != Some("13") {
        return Err(Error::BadWebSocketHandshake(
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::BadWebSocketHandshake("missing Sec-WebSocket-Key"))?;
    Ok(http::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept_key(key))
        .header(SEC_WEBSOCKET_PROTOCOL, protocol))
}

fn spdy_reply(version: &str) -> http::response::Builder {
    http::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, SPDY_UPGRADE)
        .header(CONNECTION, "Upgrade")
        .header(STREAM_PROTOCOL_VERSION, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const WS: [(&str, &str); 4] = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn kubectl_websocket_exec_gets_v5() {
        let mut h = headers(&WS);
        h.append(SEC_WEBSOCKET_PROTOCOL, WS_V5.parse().unwrap());
        let (p, reply) = negotiate_exec(&h).unwrap();
        assert_eq!(p, Protocol::WebSocketV5);
        let r = reply.body(()).unwrap();
        assert_eq!(r.status(), 101);
        assert_eq!(r.headers()[SEC_WEBSOCKET_PROTOCOL], WS_V5);
        assert_eq!(
            r.headers()[SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_order_decides_and_unknown_protocols_are_skipped() {
        let mut h = headers(&WS);
        h.append(
            SEC_WEBSOCKET_PROTOCOL,
            "base64.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
        );
        h.append(SEC_WEBSOCKET_PROTOCOL, WS_V5.parse().unwrap());
        assert_eq!(negotiate_exec(&h).unwrap().0, Protocol::WebSocketV4);
    }

    #[test]
    fn kubectl_spdy_fallback_gets_v5_and_echoes_it() {
        let h = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v3.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v2.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "channel.k8s.io"),
        ]);
        let (p, reply) = negotiate_exec(&h).unwrap();
        assert_eq!(
            p,
            Protocol::Spdy {
                version: SpdyVersion::V5
            }
        );
        let r = reply.body(()).unwrap();
        assert_eq!(r.headers()[UPGRADE], "SPDY/3.1");
        assert_eq!(r.headers()[STREAM_PROTOCOL_VERSION], "v5.channel.k8s.io");
    }

    #[test]
    fn refusals_say_why() {
        assert!(matches!(
            negotiate_exec(&HeaderMap::new()),
            Err(Error::NotAnUpgrade)
        ));
        let h = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v9"),
        ]);
        let Err(Error::NoCommonProtocol { offered, supported }) = negotiate_exec(&h) else {
            panic!("expected NoCommonProtocol");
        };
        assert_eq!(offered, ["v9"]);
        assert_eq!(supported.len(), 4);
        let mut h = headers(&WS[..3]);
        h.append(SEC_WEBSOCKET_PROTOCOL, WS_V5.parse().unwrap());
        assert!(matches!(
            negotiate_exec(&h),
            Err(Error::BadWebSocketHandshake(_))
        ));
    }

    #[test]
    fn portforward_tunnel_and_spdy() {
        let mut h = headers(&WS);
        h.append(SEC_WEBSOCKET_PROTOCOL, WS_TUNNEL.parse().unwrap());
        let (p, reply) = negotiate_portforward(&h).unwrap();
        assert_eq!(p, PortForwardProtocol::WebSocketTunnel);
        assert_eq!(
            reply.body(()).unwrap().headers()[SEC_WEBSOCKET_PROTOCOL],
            WS_TUNNEL
        );
        let h = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "portforward.k8s.io"),
        ]);
        assert_eq!(
            negotiate_portforward(&h).unwrap().0,
            PortForwardProtocol::Spdy
        );
        let mut h = headers(&WS);
        h.append(SEC_WEBSOCKET_PROTOCOL, WS_V5.parse().unwrap());
        assert!(negotiate_portforward(&h).is_err());
    }
}
