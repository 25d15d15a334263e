//! Test pieces: the testkit's sandbox pod, the agent on loopback, and a client presenting the API server's certificate.

#![allow(dead_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kinet_node_api::{Pods, API_SERVER_CLIENT_CN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use kinet_testkit::pod::{FakePods, Sandbox};

/// The agent on a loopback port; stops when dropped.
pub struct Agent {
    pub addr: std::net::SocketAddr,
    pub pki: kinet_pki::Pki,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Agent {
    pub async fn start(pods: Arc<dyn Pods>) -> Agent {
        let pki = kinet_pki::Pki::generate("t", &[]).unwrap();
        let tls = kinet_node_api::server_config(&pki.ca_cert_pem, &["127.0.0.1".into()]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(kinet_node_api::serve(listener, tls, pods, async {
            let _ = stopped.await;
        }));
        Agent {
            addr,
            pki,
            stop: Some(stop),
        }
    }

    /// A TLS connection presenting a client certificate with common name `cn`.
    pub async fn connect_as(&self, cn: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
        let (cert, key) = self.pki.issue_client(cn, &[]).unwrap();
        let config = kinet_node_api::client_config(&cert, &key).unwrap();
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(config)
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await
            .unwrap()
    }

    /// Sends a request as the API server; returns the response (body not yet read).
    pub async fn request(
        &self,
        req: http::Request<Empty<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        self.request_as(API_SERVER_CLIENT_CN, req).await
    }

    pub async fn request_as(
        &self,
        cn: &str,
        req: http::Request<Empty<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        let tls = self.connect_as(cn).await;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        send.send_request(req).await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let req = http::Request::get(path)
            .header("host", "node")
            .body(Empty::new())
            .unwrap();
        let resp = self.request(req).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// A websocket exec client on an upgraded connection (client frames are masked).
pub struct WsClient {
    io: TokioIo<hyper::upgrade::Upgraded>,
}

impl WsClient {
    pub async fn open(agent: &Agent, path: &str) -> WsClient {
        let req = http::Request::post(path)
            .header("host", "node")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-protocol", "v5.channel.k8s.io")
            .body(Empty::new())
            .unwrap();
        let resp = agent.request(req).await;
        assert_eq!(resp.status(), 101, "upgrade refused");
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        WsClient {
            io: TokioIo::new(upgraded),
        }
    }

    /// Sends data on a channel (0 stdin, 4 resize, 255 close).
    pub async fn send(&mut self, channel: u8, data: &[u8]) {
        let payload = [&[channel][..], data].concat();
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x82];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend((payload.len() as u16).to_be_bytes());
        }
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.io.write_all(&frame).await.unwrap();
    }

    /// Reads stdout until a line `pid=N`; returns N.
    pub async fn read_pid(&mut self) -> u32 {
        let mut seen = String::new();
        loop {
            let (ch, data) = self.next_message().await.expect("a message");
            if ch != 1 {
                continue;
            }
            seen.push_str(&String::from_utf8_lossy(&data));
            if let Some(rest) = seen.split("pid=").nth(1) {
                if let Some(end) = rest.find(['\r', '\n']) {
                    return rest[..end].parse().unwrap();
                }
            }
        }
    }

    /// The next binary message, or None at close.
    pub async fn next_message(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            let mut head = [0u8; 2];
            self.io.read_exact(&mut head).await.ok()?;
            let opcode = head[0] & 0x0f;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.io.read_exact(&mut b).await.ok()?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.io.read_exact(&mut b).await.ok()?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.io.read_exact(&mut payload).await.ok()?;
            match opcode {
                0x2 if !payload.is_empty() => return Some((payload[0], payload[1..].to_vec())),
                0x8 => return None,
                _ => {}
            }
        }
    }

    /// Reads binary messages until the server closes: (channel, data) in order.
    pub async fn read_all(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(m) = self.next_message().await {
            out.push(m);
        }
        out
    }
}

/// Everything received on one channel.
pub fn channel(messages: &[(u8, Vec<u8>)], ch: u8) -> String {
    let bytes: Vec<u8> = messages
        .iter()
        .filter(|(c, _)| *c == ch)
        .flat_map(|(_, d)| d.clone())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn running(pods: &FakePods, on: bool) {
    pods.running.store(on, Ordering::SeqCst);
}
