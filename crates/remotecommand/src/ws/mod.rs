//! WebSocket (RFC 6455), server side: the handshake key, framing, and a writer task.

pub mod frame;
mod writer;

pub(crate) use writer::{spawn_writer, WsOut};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The GUID that RFC 6455 appends to the client's key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{ACCEPT_GUID}", client_key.trim()).as_bytes(),
    );
    STANDARD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
