//! Exec with a terminal: the command's stdin, stdout and stderr are the slave side of a fresh
//! pseudo-terminal; the master side is relayed to the session, and resizes set its size.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use kinet_remotecommand::{ExecSession, ExitStatus, TerminalSize};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::mpsc;

/// After the command exits, how long its last output may take to come out of the terminal
/// (a background process that keeps the terminal open would hold it forever).
const DRAIN: Duration = Duration::from_secs(2);
/// After a hang-up, how long the command gets to exit before it is killed.
const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// Runs the command on a new terminal, then finishes the session.
pub async fn run_tty(mut session: ExecSession, mut command: Command) {
    let (master, mut child) = match start(&mut command) {
        Ok(started) => started,
        Err(e) => {
            let msg = format!("starting a terminal for the command: {e}");
            let _ = session.finish(ExitStatus::Error(msg)).await;
            return;
        }
    };
    // The parent's copies of the slave are gone with the command, so reading the master ends
    // (EIO) once every process of the command has closed it.
    drop(command);
    let output = session
        .stdout()
        .map(|out| tokio::spawn(relay_out(master.reader, out)));
    let input = session
        .stdin()
        .map(|inp| tokio::spawn(relay_in(master.writer, inp)));
    let resizes = session
        .resizes()
        .map(|r| tokio::spawn(apply_resizes(master.control, r)));
    let status = match input {
        Some(mut input) => tokio::select! {
            status = child.wait() => {
                input.abort();
                status
            }
            _ = &mut input => {
                // A terminal's input only ends with the connection: the client is gone. Closing
                // every master fd hangs the terminal up (SIGHUP), as when an ssh session drops.
                for task in [&output, &resizes].into_iter().flatten() {
                    task.abort();
                }
                match tokio::time::timeout(HANGUP_GRACE, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                }
            }
        },
        None => child.wait().await,
    };
    if let Some(mut output) = output {
        if tokio::time::timeout(DRAIN, &mut output).await.is_err() {
            output.abort();
        }
    }
    if let Some(resizes) = resizes {
        resizes.abort();
    }
    let status = match status {
        Ok(s) => s.into(),
        Err(e) => ExitStatus::Error(e.to_string()),
    };
    if let Err(e) = session.finish(status).await {
        tracing::debug!(error = %e, "finishing exec session");
    }
}

/// The master side, three ways: tokio's pipe types do non-blocking reads and writes on any
/// fd (their `_unchecked` constructors skip the FIFO check), a plain fd sets the size.
struct Master {
    reader: pipe::Receiver,
    writer: pipe::Sender,
    control: OwnedFd,
}

fn start(command: &mut Command) -> io::Result<(Master, tokio::process::Child)> {
    let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    // openpty's fds are inheritable: the command must not hold the master (the terminal would
    // never hang up), nor a stray copy of the slave.
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    }
    // O_NONBLOCK belongs to the open file, so every duplicate below shares it.
    fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    let master = Master {
        reader: pipe::Receiver::from_owned_fd_unchecked(pty.master.try_clone()?)?,
        writer: pipe::Sender::from_owned_fd_unchecked(pty.master.try_clone()?)?,
        control: pty.master,
    };
    let slave = pty.slave;
    command
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    let child = command.spawn()?;
    Ok((master, child))
}

async fn relay_out(mut master: pipe::Receiver, mut out: DuplexStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match master.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            // EIO: no process has the terminal open any more.
            Err(_) => break,
        };
        if out.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = out.shutdown().await;
}

async fn relay_in(mut master: pipe::Sender, mut input: DuplexStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = input.read(&mut buf).await {
        // A terminal has no end of input to pass on: the client closing stdin just stops this.
        if n == 0 || master.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Sets the size of the terminal behind `terminal` (either side of it) at each resize.
pub(crate) async fn apply_resizes(terminal: OwnedFd, mut sizes: mpsc::Receiver<TerminalSize>) {
    while let Some(size) = sizes.recv().await {
        let winsize = rustix::termios::Winsize {
            ws_row: size.height,
            ws_col: size.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        if let Err(e) = rustix::termios::tcsetwinsize(terminal.as_fd(), winsize) {
            tracing::debug!(error = %e, "setting the terminal size");
        }
    }
}
