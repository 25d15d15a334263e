//! `attach`: the running container's own streams. Its output comes from its log (the shim
//! writes every byte there as it comes), its stdin is a FIFO the shim reads, and with a
//! terminal, resizes go to the terminal device the shim recorded.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kinet_remotecommand::{ExecSession, ExitStatus};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::unix::pipe;

use crate::exec::copy_flushing;
use crate::logs::{self, Chunk, LogOptions, Stream};
use crate::route::Target;
use crate::{pty, ContainerInfo, Pods};

/// How long to wait for the shim to be reading its stdin FIFO (it reopens it between two
/// attaches, and takes a moment at container start).
const STDIN_WAIT: Duration = Duration::from_secs(5);

/// Relays the session until the container's output ends (it stopped) or the client leaves.
pub(crate) async fn run(
    mut session: ExecSession,
    pods: Arc<dyn Pods>,
    target: Target,
    info: ContainerInfo,
) {
    let from_now = LogOptions {
        follow: true,
        tail_lines: Some(0),
        ..LogOptions::default()
    };
    // The output is taken from here on before any input goes in, so no answer to it is missed.
    let output = logs::open(pods, &target, from_now).await;
    let input = match (session.stdin(), info.stdin.clone()) {
        (Some(from), Some(fifo)) => Some(tokio::spawn(feed_stdin(from, fifo))),
        _ => None,
    };
    let resizes = match (session.resizes(), info.tty.as_deref().map(terminal)) {
        (Some(sizes), Some(Ok(device))) => Some(tokio::spawn(pty::apply_resizes(device, sizes))),
        (_, Some(Err(e))) => {
            tracing::debug!(error = %e, "opening the container's terminal for resizes");
            None
        }
        _ => None,
    };
    let status = match output {
        Ok(mut rx) => {
            let mut stdout = session.stdout();
            let mut stderr = session.stderr();
            while let Some(Chunk { stream, bytes }) = rx.recv().await {
                let out = match stream {
                    Stream::Stdout => stdout.as_mut(),
                    Stream::Stderr => stderr.as_mut(),
                };
                let Some(out) = out else { continue };
                if out.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            for out in [stdout, stderr].iter_mut().flatten() {
                let _ = out.shutdown().await;
            }
            ExitStatus::Success
        }
        Err(e) => ExitStatus::Error(e.message),
    };
    // Dropping the FIFO's writer ends this attach's input (with stdinOnce, the container's).
    for task in [input, resizes].into_iter().flatten() {
        task.abort();
    }
    let _ = session.finish(status).await;
}

async fn feed_stdin(mut from: DuplexStream, fifo: PathBuf) {
    let mut to = match open_fifo(&fifo).await {
        Ok(to) => to,
        Err(e) => {
            tracing::debug!(fifo = %fifo.display(), error = %e, "opening the container's stdin");
            return;
        }
    };
    let _ = copy_flushing(&mut from, &mut to).await;
}

/// Opens the FIFO for writing once the shim has it open for reading (ENXIO until then).
async fn open_fifo(fifo: &Path) -> std::io::Result<pipe::Sender> {
    let deadline = tokio::time::Instant::now() + STDIN_WAIT;
    loop {
        match pipe::OpenOptions::new().open_sender(fifo) {
            Err(e)
                if e.raw_os_error() == Some(nix::libc::ENXIO)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The container's terminal, from the file where the shim wrote its device path. Opened
/// without becoming the agent's controlling terminal.
fn terminal(recorded: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    let device = std::fs::read_to_string(recorded)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(device.trim())?;
    Ok(file.into())
}
