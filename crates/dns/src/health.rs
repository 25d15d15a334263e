//! What `/health` and `/ready` check, by name, reported as kube-apiserver reports its own
//! (`kinet_health`: `?verbose`, `?exclude=`, `/ready/<check>`):
//!
//! - `udp` (liveness): every UDP serving thread is running and turning its receive loop, which
//!   it does at least every [`crate::udp::STOP_POLL`] even when idle;
//! - `informer-sync` (readiness): every watch has listed once;
//! - `zone` (readiness): the view answers its zone's SOA;
//! - `shutdown` (readiness): the server is not draining (CoreDNS's lameduck).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use kinet_dns_zone::hickory_proto::op::ResponseCode;
use kinet_dns_zone::hickory_proto::rr::RecordType;
use kinet_health::{CheckFuture, Checks, Endpoint};

use crate::handler::SharedView;

/// A thread that has not turned its loop for this long is stuck (a hundred times its idle
/// turn, so a loaded machine does not get a healthy server restarted).
const STUCK: Duration = Duration::from_secs(10);

/// Each UDP thread's last turn of its receive loop, in milliseconds since `epoch` plus one;
/// 0 once the thread has returned.
#[derive(Debug)]
pub(crate) struct Heartbeats {
    epoch: Instant,
    beats: Box<[AtomicU64]>,
}

impl Heartbeats {
    /// `threads` threads, each counted as turning now.
    pub(crate) fn new(threads: usize) -> Heartbeats {
        Heartbeats {
            epoch: Instant::now(),
            beats: (0..threads).map(|_| AtomicU64::new(1)).collect(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    pub(crate) fn beat(&self, thread: usize) {
        self.beats[thread].store(self.now(), Ordering::Relaxed);
    }

    pub(crate) fn stopped(&self, thread: usize) {
        self.beats[thread].store(0, Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), String> {
        let beats: Vec<u64> = self
            .beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        udp_verdict(&beats, self.now(), STUCK)
    }
}

/// Whether every thread is alive and turning, from its heartbeats at `now`. Pure.
fn udp_verdict(beats: &[u64], now: u64, stuck: Duration) -> Result<(), String> {
    if beats.is_empty() {
        return Err("no UDP serving thread".into());
    }
    for (i, &beat) in beats.iter().enumerate() {
        if beat == 0 {
            return Err(format!("UDP serving thread {i} has stopped"));
        }
        let idle = Duration::from_millis(now.saturating_sub(beat));
        if idle > stuck {
            return Err(format!(
                "UDP serving thread {i} has not turned its loop for {idle:?}"
            ));
        }
    }
    Ok(())
}

/// The flags the checks read, set by the watches and by draining.
#[derive(Debug)]
pub(crate) struct State {
    pub synced: AtomicBool,
    pub draining: AtomicBool,
    pub udp: Heartbeats,
}

fn flag_check(flag: bool, reason: &'static str) -> CheckFuture {
    Box::pin(async move {
        if flag {
            Ok(())
        } else {
            Err(reason.into())
        }
    })
}

/// The server's checks over `state` and `view`.
pub(crate) fn checks(state: &Arc<State>, view: &SharedView) -> Checks {
    let checks = Checks::default();
    let s = state.clone();
    checks.add("udp", Endpoint::Live, move || {
        let verdict = s.udp.check();
        Box::pin(async move { verdict })
    });
    let s = state.clone();
    checks.add("informer-sync", Endpoint::Ready, move || {
        flag_check(
            s.synced.load(Ordering::Acquire),
            "the Service, EndpointSlice and Namespace watches have not all listed yet",
        )
    });
    let v = view.clone();
    checks.add("zone", Endpoint::Ready, move || {
        let verdict = zone_served(&v);
        Box::pin(async move { verdict })
    });
    let s = state.clone();
    checks.add("shutdown", Endpoint::Ready, move || {
        flag_check(
            !s.draining.load(Ordering::Acquire),
            "draining: answering the last clients before stopping",
        )
    });
    checks
}

/// The view answers its apex's SOA, as every negative answer of the zone needs it to.
fn zone_served(view: &SharedView) -> Result<(), String> {
    let view = view.read().unwrap_or_else(PoisonError::into_inner);
    let apex = view.zone().clone();
    let a = kinet_dns_zone::answer(&view, &apex, RecordType::SOA);
    if a.rcode == ResponseCode::NoError && !a.answers.is_empty() {
        Ok(())
    } else {
        Err(format!("{apex} SOA answered {}", a.rcode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(10);

    #[test]
    fn threads_turning_recently_are_healthy() {
        assert_eq!(udp_verdict(&[1, 9_000], 10_000, S), Ok(()));
    }

    #[test]
    fn a_stopped_or_stuck_thread_is_named() {
        assert_eq!(
            udp_verdict(&[5_000, 0], 6_000, S),
            Err("UDP serving thread 1 has stopped".into())
        );
        assert_eq!(
            udp_verdict(&[30_000, 1], 30_001, S),
            Err("UDP serving thread 1 has not turned its loop for 30s".into())
        );
        assert!(udp_verdict(&[], 1, S).is_err());
    }

    #[test]
    fn heartbeats_start_turning_and_stop_when_told() {
        let h = Heartbeats::new(2);
        assert_eq!(h.check(), Ok(()));
        h.beat(1);
        h.stopped(0);
        assert_eq!(h.check(), Err("UDP serving thread 0 has stopped".into()));
    }
}
