//! Draining on SIGTERM, in the order that loses no request: readiness fails at once (the
//! endpoint leaves the Service), the listeners keep accepting for a short delay while that
//! spreads, then close; connections finish the requests they have in flight, for up to a
//! grace period, and idle keep-alive connections close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// How long each step may take.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From SIGTERM (readiness failing) to the listeners closing.
    pub delay: Duration,
    /// Then, how long in-flight requests may take to finish.
    pub grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            delay: Duration::from_secs(2),
            grace: Duration::from_secs(20),
        }
    }
}

/// The shared shutdown state of the listeners and their connections.
pub struct Drain {
    draining: AtomicBool,
    closed: watch::Sender<bool>,
    /// Each open connection holds a clone; dropped here when the drain begins, so the
    /// receiver ends once the last connection has.
    open: Mutex<Option<mpsc::Sender<()>>>,
    all_closed: Mutex<Option<mpsc::Receiver<()>>>,
}

/// Held by an open connection.
pub struct Open(#[allow(dead_code)] mpsc::Sender<()>);

impl Default for Drain {
    fn default() -> Self {
        let (open, all_closed) = mpsc::channel(1);
        Drain {
            draining: AtomicBool::new(false),
            closed: watch::Sender::new(false),
            open: Mutex::new(Some(open)),
            all_closed: Mutex::new(Some(all_closed)),
        }
    }
}

impl Drain {
    /// Whether a shutdown has begun (readiness fails from then on).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves when the listeners are to close and connections to finish.
    pub async fn closed(&self) {
        let _ = self.closed.subscribe().wait_for(|closed| *closed).await;
    }

    /// Registers a new connection; `None` once connections are being shut down.
    pub fn open(&self) -> Option<Open> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.clone().map(Open)
    }

    /// Runs the shutdown; whether every connection finished within the grace period.
    pub async fn drain(&self, timing: Timing) -> bool {
        self.draining.store(true, Ordering::Release);
        tokio::time::sleep(timing.delay).await;
        self.open.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.closed.send_replace(true);
        let all_closed = self
            .all_closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut all_closed) = all_closed else {
            return true;
        };
        tracing::info!("ingress: listeners closed, finishing requests in flight");
        tokio::time::timeout(timing.grace, all_closed.recv())
            .await
            .is_ok()
    }
}
