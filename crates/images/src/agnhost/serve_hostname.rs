//! `agnhost serve-hostname`: the pod's hostname over HTTP (default), raw TCP or UDP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::task::JoinSet;

use super::log;
use crate::flags::{FlagError, Flags, Kind};
use crate::run::{Signal, Signals, Started};
use crate::server::{self, Bind, Handler, Req};

/// serve-hostname's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--port` (9376).
    pub port: u16,
    /// `--http` (true).
    pub http: bool,
    /// `--tcp`: raw TCP, hostname then close.
    pub tcp: bool,
    /// `--udp`: one datagram back per datagram.
    pub udp: bool,
    /// `--close`: `Connection: close` on every HTTP answer.
    pub close: bool,
}

const SPEC: &[(&str, Kind)] = &[
    ("port", Kind::Value),
    ("http", Kind::Bool),
    ("tcp", Kind::Bool),
    ("udp", Kind::Bool),
    ("close", Kind::Bool),
];

/// How long agnhost lingers after SIGTERM ("Awaiting pod deletion").
const LINGER: Duration = Duration::from_secs(60);

impl Config {
    /// Parses the flags; HTTP together with TCP or UDP is refused as agnhost refuses it.
    pub fn parse(args: &[String]) -> Result<Config, FlagError> {
        let flags = Flags::parse(args, SPEC)?;
        let port = flags.int("port", 9376)?;
        let config = Config {
            port: u16::try_from(port)
                .map_err(|_| FlagError(format!("--port: port {port} is out of range")))?,
            http: flags.bool("http", true),
            tcp: flags.bool("tcp", false),
            udp: flags.bool("udp", false),
            close: flags.bool("close", false),
        };
        if config.http && (config.tcp || config.udp) {
            return Err(FlagError(
                "Can't server TCP/UDP mode and HTTP mode at the same time".into(),
            ));
        }
        Ok(config)
    }
}

pub(crate) async fn start(
    config: Config,
    bind: Bind,
    mut signals: Signals,
) -> std::io::Result<Started> {
    let hostname = server::hostname();
    let listener = if config.http || config.tcp {
        Some(server::listen_tcp(bind, config.port).await?)
    } else {
        None
    };
    let udp_socket = if config.udp {
        Some(server::listen_udp(bind, None, config.port).await?)
    } else {
        None
    };
    let tcp = listener
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<_>>()?;
    let udp = udp_socket
        .iter()
        .map(|s| s.local_addr())
        .collect::<std::io::Result<_>>()?;
    let main = async move {
        let mut tasks = JoinSet::new();
        if let Some(socket) = udp_socket {
            let hostname = hostname.clone();
            tasks.spawn(async move {
                let mut buf = [0u8; 16];
                while let Ok((_, client)) = socket.recv_from(&mut buf).await {
                    log(&format!("UDP request from {}", server::canonical(client)));
                    let _ = socket.send_to(hostname.as_bytes(), client).await;
                }
            });
        }
        match listener {
            Some(listener) if config.http => {
                let handler = http_handler(hostname.clone(), config.close);
                tasks.spawn(server::serve_http(
                    listener,
                    handler,
                    std::future::pending(),
                ));
            }
            Some(listener) => {
                let hostname = hostname.clone();
                tasks.spawn(async move {
                    while let Ok((mut stream, client)) = listener.accept().await {
                        log(&format!("TCP request from {}", server::canonical(client)));
                        let hostname = hostname.clone();
                        tokio::spawn(async move {
                            use tokio::io::AsyncWriteExt;
                            let _ = stream.write_all(hostname.as_bytes()).await;
                        });
                    }
                });
            }
            None => {}
        }
        log(&format!("Serving on port {}.", config.port));
        match signals.recv().await {
            Some(Signal::Terminate) => {
                log("Shutting down after receiving signal: terminated.");
                log("Awaiting pod deletion.");
                tokio::time::sleep(LINGER).await;
                0
            }
            Some(Signal::Interrupt) => 2,
            None => std::future::pending().await,
        }
    };
    Ok(Started {
        tcp,
        udp,
        main: Box::pin(main),
    })
}

fn http_handler(hostname: String, close: bool) -> Handler {
    let hostname = Arc::new(hostname);
    Arc::new(move |req: Req| {
        let hostname = hostname.clone();
        Box::pin(async move {
            log(&format!("HTTP request from {}", req.remote));
            let mut response =
                Response::builder().header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
            if close {
                response = response.header(http::header::CONNECTION, "close");
            }
            response
                .body(Full::new(Bytes::from(hostname.as_str().to_string())))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn flags() {
        let config = Config::parse(&[]).unwrap();
        assert_eq!((config.port, config.http, config.udp), (9376, true, false));
        let config = Config::parse(&s(&["--http=false", "--udp", "--port", "53"])).unwrap();
        assert_eq!((config.port, config.http, config.udp), (53, false, true));
        // --http defaults to true, so --udp alone is refused, as in agnhost.
        assert_eq!(
            Config::parse(&s(&["--udp"])).unwrap_err().0,
            "Can't server TCP/UDP mode and HTTP mode at the same time"
        );
    }
}
