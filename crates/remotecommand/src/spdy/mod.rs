//! SPDY/3.1 as kubectl's spdystream speaks it: framing, header compression, and a server-side
//! connection whose peer opens every stream.

pub(crate) mod conn;
pub mod frame;
pub mod headers;

/// What can go wrong on a SPDY connection.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY protocol error: {0}")]
    Protocol(&'static str),
    #[error("SPDY header compression: {0}")]
    Zlib(String),
    #[error("SPDY connection: {0}")]
    Io(#[source] std::io::Error),
}
