//! Log lines as the real images print them, from values passed in (time included), so
//! they are tested without a clock.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// One served request, for an access log line.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// The client address.
    pub remote: IpAddr,
    /// When the request was served.
    pub time: DateTime<Utc>,
    /// The request line: method, target as sent, protocol (`HTTP/1.1`).
    pub method: &'a str,
    /// The request target as sent, query included.
    pub target: &'a str,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: &'a str,
    /// Response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    /// `Referer` header.
    pub referer: Option<&'a str>,
    /// `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// `X-Forwarded-For` header.
    pub forwarded_for: Option<&'a str>,
}

impl Access<'_> {
    /// The docker nginx image's `main` format (combined plus `$http_x_forwarded_for`).
    pub fn nginx(&self) -> String {
        let field = |v: Option<&str>| v.map_or_else(|| "-".to_string(), nginx_escape);
        format!(
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\" \"{}\"",
            self.remote,
            self.time.format("%d/%b/%Y:%H:%M:%S %z"),
            nginx_escape(&self.request_line()),
            self.status,
            self.bytes,
            field(self.referer),
            field(self.user_agent),
            field(self.forwarded_for),
        )
    }

    /// Apache's `common` format, which the httpd image logs to stdout.
    pub fn apache_common(&self) -> String {
        let bytes = if self.bytes == 0 {
            "-".to_string()
        } else {
            self.bytes.to_string()
        };
        format!(
            "{} - - [{}] \"{}\" {} {}",
            self.remote,
            self.time.format("%d/%b/%Y:%H:%M:%S %z"),
            apache_escape(&self.request_line()),
            self.status,
            bytes,
        )
    }

    fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version)
    }
}

/// nginx writes `"`, `\` and unprintable bytes of logged variables as `\xHH`.
fn nginx_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Apache writes `"` and `\` backslashed and unprintable bytes as `\xhh`.
fn apache_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Go's `log` prefix: `2009/11/10 23:00:00 ` (containers run in UTC).
pub fn go_log_prefix(time: DateTime<Utc>) -> String {
    time.format("%Y/%m/%d %H:%M:%S ").to_string()
}

/// Go's `time.Now().String()`: wall clock as [`kinet_types::gotime::go_time`] prints it,
/// then the monotonic reading since the process started (`m=+1.500000000`).
pub fn go_time_string(time: DateTime<Utc>, since_start: Duration) -> String {
    format!(
        "{} m=+{}.{:09}",
        kinet_types::gotime::go_time(time),
        since_start.as_secs(),
        since_start.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 7, 9, 5, 1).unwrap()
    }

    fn access() -> Access<'static> {
        Access {
            remote: "10.244.1.7".parse().unwrap(),
            time: at(),
            method: "GET",
            target: "/",
            version: "HTTP/1.1",
            status: 200,
            bytes: 615,
            referer: None,
            user_agent: Some("curl/8.5.0"),
            forwarded_for: None,
        }
    }

    #[test]
    fn nginx_main_format() {
        assert_eq!(
            access().nginx(),
            r#"10.244.1.7 - - [07/Mar/2025:09:05:01 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/8.5.0" "-""#
        );
        let odd = Access {
            user_agent: Some("a\"b"),
            target: "/x\\y",
            ..access()
        };
        assert!(
            odd.nginx().contains(r#""GET /x\x5Cy HTTP/1.1""#),
            "{}",
            odd.nginx()
        );
        assert!(odd.nginx().contains(r#""a\x22b""#), "{}", odd.nginx());
    }

    #[test]
    fn apache_common_format() {
        let line = Access {
            bytes: 45,
            ..access()
        };
        assert_eq!(
            line.apache_common(),
            r#"10.244.1.7 - - [07/Mar/2025:09:05:01 +0000] "GET / HTTP/1.1" 200 45"#
        );
        let empty = Access {
            bytes: 0,
            status: 304,
            ..access()
        };
        assert!(empty.apache_common().ends_with(" 304 -"));
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_log_prefix(at()), "2025/03/07 09:05:01 ");
        assert_eq!(
            go_time_string(at(), Duration::from_millis(1500)),
            "2025-03-07 09:05:01 +0000 UTC m=+1.500000000"
        );
        let with_nanos = at() + chrono::Duration::nanoseconds(120_000_000);
        assert_eq!(
            go_time_string(with_nanos, Duration::from_nanos(3)),
            "2025-03-07 09:05:01.12 +0000 UTC m=+0.000000003"
        );
    }
}
