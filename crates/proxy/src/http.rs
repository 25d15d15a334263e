//! The little HTTP the proxy answers (health checks, metrics): read a request head, write one
//! response and close, as kube-proxy's servers answer any path with one document.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads (and ignores) the request head, then writes `body` with `code` and closes.
pub(crate) async fn answer(
    mut conn: TcpStream,
    code: u16,
    content_type: &str,
    extra_headers: &str,
    body: &str,
) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
    let reason = match code {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let reply = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n{extra_headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
}
