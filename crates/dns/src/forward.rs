//! Names outside the zone go to the configured upstreams: UDP first, TCP when
//! the answer comes back truncated, the next upstream when one fails.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use kinet_dns_zone::hickory_proto::op::{Edns, Message, Query};
use kinet_dns_zone::DEFAULT_UDP_PAYLOAD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Per upstream and attempt; clients retry on their own after ~5 s.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("upstream {0} did not answer in time")]
    Timeout(SocketAddr),
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("upstream {0} sent an undecodable response")]
    Decode(SocketAddr),
    #[error("no upstream configured")]
    NoUpstream,
}

/// Ask the upstreams in order for `query`; the first answer wins.
pub async fn resolve(upstreams: &[SocketAddr], query: &Query) -> Result<Message, ForwardError> {
    let mut last = ForwardError::NoUpstream;
    for upstream in upstreams {
        match exchange(*upstream, query).await {
            Ok(m) => return Ok(m),
            Err(e) => {
                tracing::debug!(error = %e, "forward failed");
                last = e;
            }
        }
    }
    Err(last)
}

fn request(query: &Query) -> (u16, Vec<u8>) {
    let id: u16 = rand::random();
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(DEFAULT_UDP_PAYLOAD);
    m.set_edns(edns);
    // A query we built ourselves always encodes.
    (id, m.to_vec().unwrap_or_default())
}

/// The response is ours if it carries our id and echoes our question
/// (RFC 5452: anything else may be spoofed or stale).
fn matches(resp: &Message, id: u16, query: &Query) -> bool {
    resp.id == id
        && resp.queries.len() == 1
        && *resp.queries[0].name() == *query.name()
        && resp.queries[0].query_type() == query.query_type()
}

async fn exchange(upstream: SocketAddr, query: &Query) -> Result<Message, ForwardError> {
    let resp = timeout(UPSTREAM_TIMEOUT, udp(upstream, query))
        .await
        .map_err(|_| ForwardError::Timeout(upstream))??;
    if !resp.truncation {
        return Ok(resp);
    }
    timeout(UPSTREAM_TIMEOUT, tcp(upstream, query))
        .await
        .map_err(|_| ForwardError::Timeout(upstream))?
}

async fn udp(upstream: SocketAddr, query: &Query) -> Result<Message, ForwardError> {
    let io_err = |source| ForwardError::Io { upstream, source };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(io_err)?;
    // Connected: the kernel drops datagrams from any other source.
    sock.connect(upstream).await.map_err(io_err)?;
    let (id, bytes) = request(query);
    sock.send(&bytes).await.map_err(io_err)?;
    let mut buf = vec![0u8; usize::from(DEFAULT_UDP_PAYLOAD).max(4096)];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io_err)?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if matches(&m, id, query) => return Ok(m),
            // Someone else's answer: keep waiting for ours until the timeout.
            _ => continue,
        }
    }
}

async fn tcp(upstream: SocketAddr, query: &Query) -> Result<Message, ForwardError> {
    let io_err = |source| ForwardError::Io { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io_err)?;
    let (id, bytes) = request(query);
    let len = u16::try_from(bytes.len()).map_err(|_| ForwardError::Decode(upstream))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.map_err(io_err)?;
    let n = stream.read_u16().await.map_err(io_err)?;
    let mut buf = vec![0u8; usize::from(n)];
    stream.read_exact(&mut buf).await.map_err(io_err)?;
    match Message::from_vec(&buf) {
        Ok(m) if matches(&m, id, query) => Ok(m),
        _ => Err(ForwardError::Decode(upstream)),
    }
}
