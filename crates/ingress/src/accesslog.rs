//! The access log line, in nginx's combined format followed by ingress-nginx's upstream
//! fields, so log tools that read ingress-nginx read it too.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// One answered request.
pub struct Entry<'a> {
    pub client: IpAddr,
    pub time: DateTime<Utc>,
    pub method: &'a str,
    /// Path and query as requested.
    pub target: &'a str,
    pub version: http::Version,
    pub status: u16,
    /// The response's Content-Length, when known before streaming.
    pub bytes: Option<u64>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub took: Duration,
    /// `namespace/service:port`, or `-`.
    pub backend: &'a str,
    pub upstream: Option<SocketAddr>,
}

/// `client - - [time] "METHOD target HTTP/x" status bytes "referer" "agent" seconds [backend] upstream`
pub fn line(e: &Entry<'_>) -> String {
    let opt = |v: Option<&str>| v.unwrap_or("-").replace('"', "\\\"");
    format!(
        "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" {:.3} [{}] {}",
        e.client,
        e.time.format("%d/%b/%Y:%H:%M:%S %z"),
        e.method,
        e.target,
        e.version,
        e.status,
        e.bytes.map_or("-".to_string(), |b| b.to_string()),
        opt(e.referer),
        opt(e.user_agent),
        e.took.as_secs_f64(),
        e.backend,
        e.upstream.map_or("-".to_string(), |u| u.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_format_with_upstream() {
        let e = Entry {
            client: "192.0.2.7".parse().unwrap(),
            time: "2026-12-05T03:04:05Z".parse().unwrap(),
            method: "GET",
            target: "/index.html?q=1",
            version: http::Version::HTTP_11,
            status: 200,
            bytes: Some(615),
            referer: None,
            user_agent: Some("curl/8.5 \"x\""),
            took: Duration::from_millis(2),
            backend: "default/nginx:80",
            upstream: Some("10.244.1.5:80".parse().unwrap()),
        };
        assert_eq!(
            line(&e),
            "192.0.2.7 - - [05/Dec/2026:03:04:05 +0000] \"GET /index.html?q=1 HTTP/1.1\" 200 615 \"-\" \"curl/8.5 \\\"x\\\"\" 0.002 [default/nginx:80] 10.244.1.5:80"
        );
    }
}
