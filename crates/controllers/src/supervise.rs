//! Supervision of the control loops: each runs as its own task and is restarted with
//! exponential back-off when it returns an error or panics, its restarts counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Waits between restarts: doubling from `initial` up to `max`, and back to `initial` once
/// a run lasted `reset_after` (it was healthy for a while). The control loops and the node
/// agents' supervisors both restart this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A run at least this long resets the wait to `initial`.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Doubling from `initial` to `max`, reset by a run longer than `max`.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            reset_after: max,
        }
    }

    /// The wait after a run that lasted `ran`, when the previous wait was `previous`.
    pub fn next(&self, previous: Option<Duration>, ran: Duration) -> Duration {
        match previous {
            Some(p) if ran < self.reset_after => (p * 2).min(self.max),
            _ => self.initial,
        }
    }
}

/// What the supervisor knows of one loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopState {
    /// Whether it is running now (false while waiting to restart).
    pub running: bool,
    /// How often it was restarted.
    pub restarts: u64,
    /// Why it last stopped.
    pub last_error: Option<String>,
    /// It returned `Ok`: done, not waiting to restart.
    pub finished: bool,
}

/// The state of every supervised loop, shared with whoever reports it (`/metrics`).
#[derive(Debug, Default)]
pub struct LoopMetrics {
    loops: Mutex<BTreeMap<&'static str, LoopState>>,
    /// What the endpoints loop started with these metrics leaves out.
    pub endpoint_skips: Arc<crate::endpoints::lenient::Skips>,
}

impl LoopMetrics {
    fn update(&self, name: &'static str, f: impl FnOnce(&mut LoopState)) {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        f(loops.entry(name).or_default());
    }

    /// A copy of one loop's state.
    pub fn get(&self, name: &str) -> Option<LoopState> {
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        loops.get(name).cloned()
    }

    /// The loops that failed and wait to restart, with why (what `/readyz` reports).
    pub fn failing(&self) -> Vec<(&'static str, String)> {
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        loops
            .iter()
            .filter(|(_, s)| !s.running && !s.finished)
            .filter_map(|(name, s)| Some((*name, s.last_error.clone()?)))
            .collect()
    }

    /// The Prometheus text exposition of the restart counts and running states.
    pub fn render(&self) -> String {
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP kinet_controller_loop_restarts_total Restarts of a control loop after an error or a panic.\n\
             # TYPE kinet_controller_loop_restarts_total counter\n",
        );
        for (name, s) in loops.iter() {
            let _ = writeln!(
                out,
                "kinet_controller_loop_restarts_total{{loop=\"{name}\"}} {}",
                s.restarts
            );
        }
        out.push_str(
            "# HELP kinet_controller_loop_running Whether a control loop is running (0 while it waits to restart).\n\
             # TYPE kinet_controller_loop_running gauge\n",
        );
        for (name, s) in loops.iter() {
            let _ = writeln!(
                out,
                "kinet_controller_loop_running{{loop=\"{name}\"}} {}",
                u8::from(s.running)
            );
        }
        let _ = writeln!(
            out,
            "# HELP kinet_endpoints_decode_failures_total Objects the endpoints loop skipped because they did not decode.\n\
             # TYPE kinet_endpoints_decode_failures_total counter\n\
             kinet_endpoints_decode_failures_total {}",
            self.endpoint_skips.decode_failures()
        );
        let _ = writeln!(
            out,
            "# HELP kinet_endpoints_objects_skipped Objects the endpoints loop leaves out now because they do not decode.\n\
             # TYPE kinet_endpoints_objects_skipped gauge\n\
             kinet_endpoints_objects_skipped {}",
            self.endpoint_skips.skipped().len()
        );
        out
    }
}

/// Runs `start()` on a task of its own, again and again after each error or panic (with
/// `backoff` between), until a run returns `Ok`. The supervising task is returned.
pub fn supervise<F, Fut>(
    name: &'static str,
    metrics: Arc<LoopMetrics>,
    backoff: Backoff,
    mut start: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), crate::LoopError>> + Send + 'static,
{
    metrics.update(name, |s| s.running = true);
    tokio::spawn(async move {
        // Aborting the supervisor (leadership lost) aborts the run too, and says it stopped.
        let _stopped = Stopped(name, metrics.clone());
        let mut wait = None;
        loop {
            let began = Instant::now();
            metrics.update(name, |s| s.running = true);
            // A task of its own: a panic ends only this run, and the loop may use another core.
            let mut run = AbortOnDrop(tokio::spawn(start()));
            let why = match (&mut run.0).await {
                Ok(Ok(())) => {
                    metrics.update(name, |s| {
                        s.running = false;
                        s.finished = true;
                    });
                    tracing::info!(controller = name, "control loop finished");
                    return;
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                Err(e) => e.to_string(),
            };
            let delay = backoff.next(wait, began.elapsed());
            wait = Some(delay);
            metrics.update(name, |s| {
                s.running = false;
                s.restarts += 1;
                s.last_error = Some(why.clone());
            });
            tracing::error!(controller = name, error = %why, retry_in = ?delay, "control loop failed, restarting");
            tokio::time::sleep(delay).await;
        }
    })
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Marks the loop not running when its supervisor ends, however it ends.
struct Stopped(&'static str, Arc<LoopMetrics>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.1.update(self.0, |s| s.running = false);
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let short = Duration::from_millis(10);
        let mut wait = None;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let w = b.next(wait, short);
            seen.push(w.as_secs());
            wait = Some(w);
        }
        assert_eq!(seen, [1, 2, 4, 8, 8]);
        assert_eq!(b.next(wait, Duration::from_secs(9)), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_panicking_loop_is_restarted_and_counted() {
        let metrics = Arc::new(LoopMetrics::default());
        let quick = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = runs.clone();
        let handle = supervise("flaky", metrics.clone(), quick, move || {
            let n = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                match n {
                    0 => panic!("boom"),
                    1 => Err(crate::LoopError::Ended("the watch")),
                    _ => Ok(()),
                }
            }
        });
        handle.await.unwrap();
        let state = metrics.get("flaky").unwrap();
        assert_eq!(state.restarts, 2);
        assert!(!state.running);
        assert_eq!(state.last_error.as_deref(), Some("the watch ended"));
        assert!(
            state.finished && metrics.failing().is_empty(),
            "done, not failing"
        );
        let text = metrics.render();
        assert!(
            text.contains("kinet_controller_loop_restarts_total{loop=\"flaky\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kinet_controller_loop_running{loop=\"flaky\"} 0\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_loop_waiting_to_restart_is_failing() {
        let metrics = Arc::new(LoopMetrics::default());
        let slow = Backoff::new(Duration::from_secs(600), Duration::from_secs(600));
        let handle = supervise("down", metrics.clone(), slow, || async {
            Err(crate::LoopError::Ended("the watch"))
        });
        while metrics.get("down").is_none_or(|s| s.restarts == 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(metrics.failing(), [("down", "the watch ended".to_string())]);
        handle.abort();
    }
}
