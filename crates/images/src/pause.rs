//! Sleeping until signalled: agnhost's `pause` and the `pause` image.

use crate::run::{Signal, Signals};

/// `agnhost pause`: prints "Paused"; SIGINT exits 1, SIGTERM exits 2 (as `pause.go` does).
pub(crate) async fn agnhost_pause(mut signals: Signals) -> i32 {
    crate::server::stdout_line("Paused");
    match signals.recv().await {
        Some(Signal::Interrupt) => 1,
        Some(Signal::Terminate) => 2,
        None => std::future::pending().await,
    }
}

/// `registry.k8s.io/pause`: exits 0 on SIGINT or SIGTERM, saying so on stderr as
/// `psignal` does.
pub(crate) async fn sandbox_pause(mut signals: Signals) -> i32 {
    let name = match signals.recv().await {
        Some(Signal::Interrupt) => "Interrupt",
        Some(Signal::Terminate) => "Terminated",
        None => std::future::pending().await,
    };
    crate::server::stderr_line(&format!("Shutting down, got signal: {name}"));
    0
}
