//! `portForward`: each forwarded connection goes to `127.0.0.1:port` inside the pod's network
//! namespace. The socket is made on a fresh OS thread that entered the namespace (switching a
//! shared tokio worker would leak the namespace to whatever runs there next); a socket stays
//! in the namespace it was created in, so it is then used from anywhere.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use kinet_remotecommand::{ForwardRequest, PortForwardSession};
use tokio::io::AsyncWriteExt;

/// How long a connect inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `127.0.0.1:port` (or `[::1]:port`) in the network namespace of process `pid`.
pub async fn connect_in_netns(pid: u32, port: u16) -> io::Result<tokio::net::TcpStream> {
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    // A blocking connect on a thread of its own, off the runtime's workers.
    let stream = tokio::task::spawn_blocking(move || kinet_netns::run_in(&netns, || connect(port)))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

/// IPv4 first, then IPv6, as container runtimes dial "localhost".
fn connect(port: u16) -> io::Result<TcpStream> {
    let v4 = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        CONNECT_TIMEOUT,
    );
    match v4 {
        Ok(stream) => Ok(stream),
        Err(e) => TcpStream::connect_timeout(
            &SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
            CONNECT_TIMEOUT,
        )
        .map_err(|_| e),
    }
}

/// Serves every forwarded connection of a session until kubectl goes away.
pub async fn serve_session(mut session: PortForwardSession, sandbox_pid: u32, pod: String) {
    while let Some(req) = session.next().await {
        tokio::spawn(forward(req, sandbox_pid, pod.clone()));
    }
}

async fn forward(mut req: ForwardRequest, pid: u32, pod: String) {
    match connect_in_netns(pid, req.port).await {
        Ok(mut tcp) => {
            let _ = tokio::io::copy_bidirectional(&mut req.data, &mut tcp).await;
            let _ = req.data.shutdown().await;
        }
        Err(e) => {
            // kubectl prints this and keeps the other forwards going.
            let msg = format!(
                "error forwarding port {} to pod {pod}: failed to connect to localhost:{} \
                 inside the pod's network namespace: {e}",
                req.port, req.port
            );
            let _ = req.error.write_all(msg.as_bytes()).await;
            let _ = req.error.shutdown().await;
        }
    }
}
