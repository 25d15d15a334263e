//! Running a built-in image in this process: `kinet image-run`, after the agent has put
//! the process in the pod's namespaces.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agnhost;
use crate::catalog::{lookup, Builtin, ImageKind};
use crate::plan::Error;
use crate::server::{Bind, BoxFuture};
use crate::web::{self, Site};

/// The signals the images react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what the kubelet sends on pod deletion.
    Terminate,
    /// SIGINT.
    Interrupt,
}

pub(crate) type Signals = mpsc::UnboundedReceiver<Signal>;

/// A built-in image whose sockets are bound, and the loop that serves them.
pub(crate) struct Started {
    pub tcp: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
    pub main: BoxFuture<i32>,
}

/// A built-in image serving on this runtime. Dropping it stops it.
#[derive(Debug)]
pub struct Running {
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    signals: mpsc::UnboundedSender<Signal>,
    task: JoinHandle<i32>,
}

impl Running {
    /// The bound TCP listeners (HTTP, or serve-hostname's raw TCP).
    pub fn tcp(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The bound UDP sockets.
    pub fn udp(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// Delivers a signal, as the kernel would to the container process.
    pub fn signal(&self, signal: Signal) {
        let _ = self.signals.send(signal);
    }

    /// Whether the image's process has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the image's process to end and returns its exit code.
    pub async fn wait(mut self) -> anyhow::Result<i32> {
        (&mut self.task).await.context("built-in image task failed")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts `image` (a catalog name or any reference to it) with `args` (what follows the
/// image's program, as in [`crate::Plan::Builtin`]), listening as `bind` says.
pub async fn start(image: &str, args: &[String], bind: Bind) -> anyhow::Result<Running> {
    let known = lookup(image).ok_or_else(|| Error::UnknownImage(image.to_string()))?;
    let ImageKind::Builtin(builtin) = known.kind else {
        bail!(
            "{} is a shell image: its commands run on the host",
            known.name
        );
    };
    let (signals_tx, signals) = mpsc::unbounded_channel();
    let started = match builtin {
        Builtin::Nginx => web::start(Site::Nginx, bind, signals).await,
        Builtin::Httpd => web::start(Site::Httpd, bind, signals).await,
        Builtin::Pause => Ok(only_main(Box::pin(crate::pause::sandbox_pause(signals)))),
        Builtin::Dns | Builtin::Ingress | Builtin::Proxy | Builtin::Policy => bail!(
            "{}: the kinet binary serves it (`kinet image-run` dispatches it to the add-on)",
            known.name
        ),
        Builtin::Agnhost => match agnhost::Command::parse(args)? {
            agnhost::Command::Netexec(config) => {
                agnhost::netexec::start(config, bind, signals).await
            }
            agnhost::Command::ServeHostname(config) => {
                agnhost::serve_hostname::start(config, bind, signals).await
            }
            agnhost::Command::Pause => {
                Ok(only_main(Box::pin(crate::pause::agnhost_pause(signals))))
            }
        },
    }
    .with_context(|| format!("{}: listening", known.name))?;
    Ok(Running {
        tcp: started.tcp,
        udp: started.udp,
        signals: signals_tx,
        task: tokio::spawn(started.main),
    })
}

fn only_main(main: BoxFuture<i32>) -> Started {
    Started {
        tcp: Vec::new(),
        udp: Vec::new(),
        main,
    }
}

/// Runs a built-in image in the current process until it ends: SIGTERM and SIGINT reach
/// it as they would the real image. A non-zero exit code ends the process with that code
/// (this is the container's process; `agnhost netexec`'s `/exit?code=3` must show as 3).
pub async fn run_builtin(image: &str, args: &[String]) -> anyhow::Result<()> {
    let running = start(image, args, Bind::Image).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let forward = running.signals.clone();
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = terminate.recv() => Signal::Terminate,
                Some(()) = interrupt.recv() => Signal::Interrupt,
                else => return,
            };
            if forward.send(signal).is_err() {
                return;
            }
        }
    });
    let code = running.wait().await?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
