//! The server side of `kubectl exec`, `attach` and `port-forward` streaming.
//!
//! 1. [`negotiate_exec`] / [`negotiate_portforward`] read the upgrade request's headers, choose
//!    the protocol, and give the 101 response to send.
//! 2. On the upgraded connection (any `AsyncRead + AsyncWrite`), [`exec_session`] yields stdin,
//!    stdout, stderr and terminal resizes, and [`ExecSession::finish`] reports the exit status;
//!    [`portforward_session`] yields one [`ForwardRequest`] per connection kubectl forwards.
//!
//! Protocols: websocket channels `v5.channel.k8s.io` and `v4.channel.k8s.io`; SPDY/3.1 with
//! `v5`…`v2.channel.k8s.io` and `portforward.k8s.io`, raw or tunnelled in websocket messages
//! (`SPDY/3.1+portforward.k8s.io`). Both the API server (which proxies) and the node agent
//! (which runs the process) can use this.

mod exec;
mod negotiate;
mod pipe;
mod portforward;
pub mod spdy;
mod status;
#[cfg(test)]
mod test_client;
mod tunnel;
pub mod ws;

pub use exec::{exec_session, ExecSession, StreamOptions, TerminalSize, STREAM_CREATION_TIMEOUT};
pub use negotiate::{
    negotiate_exec, negotiate_portforward, PortForwardProtocol, Protocol, SpdyVersion,
    ACCEPTED_STREAM_PROTOCOL_VERSIONS, STREAM_PROTOCOL_VERSION,
};
pub use portforward::{portforward_session, ForwardRequest, PortForwardSession};
pub use status::{status_json, ExitStatus};

/// What can go wrong negotiating or running a session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "not an upgrade request (need Connection: Upgrade and Upgrade: websocket or SPDY/3.1)"
    )]
    NotAnUpgrade,
    #[error("bad websocket handshake: {0}")]
    BadWebSocketHandshake(&'static str),
    #[error(
        "unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
    )]
    NoCommonProtocol {
        offered: Vec<String>,
        supported: Vec<String>,
    },
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
    #[error("timed out waiting for client to create streams")]
    StreamCreationTimeout,
    #[error("connection closed before the session started")]
    ConnectionClosed,
    #[error(transparent)]
    Spdy(#[from] spdy::SpdyError),
    #[error("websocket connection: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status to refuse an upgrade with (before any 101 was sent).
    pub fn http_status(&self) -> http::StatusCode {
        match self {
            Error::NoCommonProtocol { .. } => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
