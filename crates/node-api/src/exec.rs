//! `exec`: a command in the container's namespaces (`nsenter --target <container pid>`: its
//! root filesystem, processes, network, hostname and IPC), with the container's environment
//! and working directory, over pipes or a terminal; its exit status
//! goes back on the session's error channel.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use kinet_remotecommand::{ExecSession, ExitStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;

use crate::ContainerInfo;

/// The container's namespaces an exec joins; with `--pid`, nsenter forks into its PIDs.
const NAMESPACES: [&str; 5] = ["--net", "--uts", "--ipc", "--mount", "--pid"];

/// The full argv: `[setsid --ctty] nsenter --target PID --net --uts --ipc --mount --pid [--wd=DIR] -- cmd…`.
/// With a terminal, `setsid --ctty` makes it the command's controlling terminal (so a shell
/// gets job control and ^C), before nsenter enters the namespaces.
pub fn argv(
    nsenter: &str,
    setsid: Option<&str>,
    container_pid: u32,
    working_dir: Option<&str>,
    command: &[String],
) -> Vec<String> {
    let mut argv = Vec::new();
    if let Some(setsid) = setsid {
        argv.extend([setsid.to_string(), "--ctty".to_string()]);
    }
    argv.extend([
        nsenter.to_string(),
        "--target".to_string(),
        container_pid.to_string(),
    ]);
    argv.extend(NAMESPACES.iter().map(|s| s.to_string()));
    if let Some(dir) = working_dir.filter(|d| !d.is_empty()) {
        argv.push(format!("--wd={dir}"));
    }
    argv.push("--".to_string());
    argv.extend(command.iter().cloned());
    argv
}

/// A host program by name, found on the agent's own PATH (the command itself is looked up
/// with the container's PATH, inside the pod's mount namespace).
pub fn host_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/usr/bin").join(name))
}

/// The command for `info`'s container: environment replaced by the container's.
pub fn command(info: &ContainerInfo, container_pid: u32, cmd: &[String], tty: bool) -> Command {
    let nsenter = host_program("nsenter");
    let setsid = tty.then(|| host_program("setsid"));
    let argv = argv(
        &nsenter.to_string_lossy(),
        setsid.as_deref().map(|p| p.to_string_lossy()).as_deref(),
        container_pid,
        info.working_dir.as_deref(),
        cmd,
    );
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(info.env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    command
}

/// Runs the command with pipes for the session's streams, then finishes the session.
pub async fn run_piped(mut session: ExecSession, mut command: Command) {
    let stdin = session.stdin();
    let stdout = session.stdout();
    let stderr = session.stderr();
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    command
        .stdin(piped(stdin.is_some()))
        .stdout(piped(stdout.is_some()))
        .stderr(piped(stderr.is_some()));
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = session
                .finish(ExitStatus::Error(format!("starting nsenter: {e}")))
                .await;
            return;
        }
    };
    // Closing the child's stdin when the client's ends gives the command EOF.
    let stdin_copy = match (stdin, child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = copy_flushing(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let mut copies = Vec::new();
    if let (Some(from), Some(to)) = (child.stdout.take(), stdout) {
        copies.push(tokio::spawn(copy_out(from, to)));
    }
    if let (Some(from), Some(to)) = (child.stderr.take(), stderr) {
        copies.push(tokio::spawn(copy_out(from, to)));
    }
    let status = child.wait().await;
    for c in copies {
        let _ = c.await;
    }
    if let Some(c) = stdin_copy {
        c.abort();
    }
    let status = match status {
        Ok(s) => s.into(),
        Err(e) => ExitStatus::Error(e.to_string()),
    };
    if let Err(e) = session.finish(status).await {
        tracing::debug!(error = %e, "finishing exec session");
    }
}

/// Copies until EOF and shuts the writer down; stops early if the client is gone.
pub(crate) async fn copy_out<R, W>(mut from: R, mut to: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = copy_flushing(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Like `tokio::io::copy`, but each chunk is flushed as it comes (interactive streams).
pub(crate) async fn copy_flushing<R, W>(from: &mut R, to: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_without_terminal() {
        assert_eq!(
            argv(
                "nsenter",
                None,
                42,
                Some("/srv"),
                &s(&["sh", "-c", "echo hi"])
            ),
            s(&[
                "nsenter",
                "--target",
                "42",
                "--net",
                "--uts",
                "--ipc",
                "--mount",
                "--pid",
                "--wd=/srv",
                "--",
                "sh",
                "-c",
                "echo hi"
            ])
        );
        assert_eq!(
            argv("nsenter", None, 7, Some(""), &s(&["ls"])),
            s(&[
                "nsenter", "--target", "7", "--net", "--uts", "--ipc", "--mount", "--pid", "--",
                "ls"
            ])
        );
    }

    #[test]
    fn argv_with_terminal() {
        assert_eq!(
            argv(
                "/usr/bin/nsenter",
                Some("/usr/bin/setsid"),
                7,
                None,
                &s(&["sh"])
            ),
            s(&[
                "/usr/bin/setsid",
                "--ctty",
                "/usr/bin/nsenter",
                "--target",
                "7",
                "--net",
                "--uts",
                "--ipc",
                "--mount",
                "--pid",
                "--",
                "sh"
            ])
        );
    }

    #[test]
    fn host_programs_are_found_on_path() {
        assert!(host_program("sh").is_absolute());
    }
}
