//! netexec's `/dial`: reach another endpoint `tries` times and report what came back.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UdpSocket};

use crate::gojson;
use crate::query;

/// How long one try may take (agnhost's client timeout and UDP read deadline).
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocols `/dial` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `GET http://host:port/<request>`.
    Http,
    /// `<request>` as one datagram, one datagram back.
    Udp,
}

/// A parsed `/dial` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `host`.
    pub host: String,
    /// `port`.
    pub port: String,
    /// `request`: the HTTP path or the UDP payload.
    pub request: String,
    /// `protocol`.
    pub protocol: Protocol,
    /// `tries`.
    pub tries: u32,
    raw_protocol: String,
    raw_tries: String,
}

impl Request {
    /// Reads the query; `Err` holds the 400 message agnhost sends.
    pub fn parse(params: &[(String, String)]) -> Result<Request, String> {
        let get = |key| query::get(params, key).to_string();
        let (raw_tries, raw_protocol) = (get("tries"), get("protocol"));
        let tries = if raw_tries.is_empty() {
            1
        } else {
            // Go's Atoi; a negative count makes no tries.
            match raw_tries.parse::<i64>() {
                Ok(n) => u32::try_from(n.max(0)).unwrap_or(u32::MAX),
                Err(_) => {
                    return Err(format!(
                        "tries parameter is invalid. strconv.Atoi: parsing {raw_tries:?}: invalid syntax"
                    ))
                }
            }
        };
        let request = get("request");
        if request.is_empty() {
            return Err("request parameter not specified. <nil>".into());
        }
        let protocol = match raw_protocol.to_lowercase().as_str() {
            "" | "http" => Protocol::Http,
            "udp" => Protocol::Udp,
            _ => return Err(format!("unsupported protocol. {raw_protocol}")),
        };
        Ok(Request {
            host: get("host"),
            port: get("port"),
            request,
            protocol,
            tries,
            raw_protocol,
            raw_tries,
        })
    }

    /// agnhost's log line for the request.
    pub fn log_line(&self) -> String {
        format!(
            "GET /dial?host={}&protocol={}&port={}&request={}&tries={}",
            self.host, self.raw_protocol, self.port, self.request, self.raw_tries
        )
    }

    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The JSON body: `responses` only when the last try answered (agnhost checks the last
/// response, not the list), `errors` when any failed.
pub fn output_json(results: &[Result<String, String>]) -> String {
    let responses: Vec<String> = results.iter().filter_map(|r| r.clone().ok()).collect();
    let errors: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    let last_answered = matches!(results.last(), Some(Ok(body)) if !body.is_empty());
    let mut entries = Vec::new();
    if last_answered {
        entries.push(("responses", responses));
    }
    if !errors.is_empty() {
        entries.push(("errors", errors));
    }
    gojson::object_of_lists(&entries)
}

/// Performs the tries and returns the JSON body.
pub async fn run(request: &Request) -> String {
    let addr = match resolve(request).await {
        Ok(addr) => addr,
        Err(e) => {
            // Go resolves before trying; a bad host is one error per try.
            let results = (0..request.tries)
                .map(|_| Err(e.clone()))
                .collect::<Vec<_>>();
            return output_json(&results);
        }
    };
    let mut results = Vec::new();
    for _ in 0..request.tries {
        let result = match request.protocol {
            Protocol::Http => dial_http(&request.request, addr).await,
            Protocol::Udp => dial_udp(&request.request, addr).await,
        };
        results.push(result);
    }
    output_json(&results)
}

async fn resolve(request: &Request) -> Result<SocketAddr, String> {
    let network = match request.protocol {
        Protocol::Http => "tcp",
        Protocol::Udp => "udp",
    };
    let port: u16 = request
        .port
        .parse()
        .map_err(|_| format!("lookup {network}/{}: unknown port", request.port))?;
    let host = &request.host;
    // Go dials the local system for an empty host.
    let target = if host.is_empty() {
        format!("127.0.0.1:{port}")
    } else {
        request.host_port()
    };
    let found: Vec<SocketAddr> = tokio::net::lookup_host(target)
        .await
        .map_err(|_| format!("lookup {host}: no such host"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("lookup {host}: no such host"))
}

async fn dial_http(path: &str, addr: SocketAddr) -> Result<String, String> {
    let url = format!("http://{addr}/{path}");
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: connect: {}", io_reason(&e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = http::Request::get(format!("/{path}"))
            .header(http::header::HOST, addr.to_string())
            .header(http::header::USER_AGENT, "Go-http-client/1.1")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>(String::from_utf8_lossy(&body).into_owned())
    };
    match tokio::time::timeout(TRY_TIMEOUT, attempt).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(format!("Get {url:?}: {e}")),
        Err(_) => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

async fn dial_udp(payload: &str, addr: SocketAddr) -> Result<String, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("udp dial failed. err:{e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("udp dial failed. err:dial udp {addr}: {}", io_reason(&e)))?;
    let local = socket
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    socket.send(payload.as_bytes()).await.map_err(|e| {
        format!(
            "udp connection write failed. err:write udp {local}->{addr}: {}",
            io_reason(&e)
        )
    })?;
    let mut buf = [0u8; 2048];
    let read_error = |reason: String| {
        format!("reading from udp connection failed. err:'read udp {local}->{addr}: {reason}'")
    };
    match tokio::time::timeout(TRY_TIMEOUT, socket.recv(&mut buf)).await {
        Ok(Ok(0)) => Err(read_error("EOF".into())),
        Ok(Ok(n)) => Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(Err(e)) => Err(read_error(format!("read: {}", io_reason(&e)))),
        Err(_) => Err(read_error("i/o timeout".into())),
    }
}

/// The errno text Go prints (`connection refused`), without Rust's "(os error 111)".
fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Request, String> {
        Request::parse(&query::parse(query))
    }

    #[test]
    fn parses_the_query() {
        let request =
            parse("request=hostname&host=10.0.0.5&port=8080&protocol=http&tries=3").unwrap();
        assert_eq!(request.protocol, Protocol::Http);
        assert_eq!(request.tries, 3);
        assert_eq!(request.host_port(), "10.0.0.5:8080");
        assert_eq!(
            request.log_line(),
            "GET /dial?host=10.0.0.5&protocol=http&port=8080&request=hostname&tries=3"
        );
        let request = parse("request=echo%20hi&host=fd00::1&port=8081&protocol=UDP").unwrap();
        assert_eq!(request.protocol, Protocol::Udp);
        assert_eq!(request.tries, 1);
        assert_eq!(request.request, "echo hi");
        assert_eq!(request.host_port(), "[fd00::1]:8081");
    }

    #[test]
    fn refuses_like_agnhost() {
        assert_eq!(
            parse("host=a&port=1").unwrap_err(),
            "request parameter not specified. <nil>"
        );
        assert_eq!(
            parse("request=x&tries=two").unwrap_err(),
            "tries parameter is invalid. strconv.Atoi: parsing \"two\": invalid syntax"
        );
        assert_eq!(
            parse("request=x&protocol=tcp").unwrap_err(),
            "unsupported protocol. tcp"
        );
    }

    #[test]
    fn output_follows_the_last_try() {
        let ok = |s: &str| Ok(s.to_string());
        let err = |s: &str| Err(s.to_string());
        assert_eq!(output_json(&[ok("pod-a")]), r#"{"responses":["pod-a"]}"#);
        assert_eq!(
            output_json(&[ok("pod-a"), ok("pod-b")]),
            r#"{"responses":["pod-a","pod-b"]}"#
        );
        assert_eq!(output_json(&[err("boom")]), r#"{"errors":["boom"]}"#);
        // A failed last try hides earlier answers, as in agnhost.
        assert_eq!(
            output_json(&[ok("pod-a"), err("boom")]),
            r#"{"errors":["boom"]}"#
        );
        assert_eq!(
            output_json(&[err("boom"), ok("pod-a")]),
            r#"{"errors":["boom"],"responses":["pod-a"]}"#
        );
        assert_eq!(output_json(&[]), "{}");
    }

    #[test]
    fn errno_text() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let raw = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_reason(&raw), "connection refused");
        assert!(!io_reason(&e).is_empty());
    }
}
