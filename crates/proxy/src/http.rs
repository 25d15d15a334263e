//! The little HTTP the proxy answers (health checks, metrics): read a request head, write one
//! response and close, as kube-proxy's servers answer with one document.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads the request head and returns its path (without the query); empty when there is none.
pub(crate) async fn request_path(conn: &mut TcpStream) -> String {
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    target.split('?').next().unwrap_or_default().to_string()
}

/// Writes `body` with `code` and closes.
pub(crate) async fn reply(
    mut conn: TcpStream,
    code: u16,
    content_type: &str,
    extra_headers: &str,
    body: &str,
) {
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

/// Reads (and ignores) the request head, then writes `body` with `code` and closes: for
/// servers that answer any path with one document.
pub(crate) async fn answer(
    mut conn: TcpStream,
    code: u16,
    content_type: &str,
    extra_headers: &str,
    body: &str,
) {
    request_path(&mut conn).await;
    reply(conn, code, content_type, extra_headers, body).await;
}
