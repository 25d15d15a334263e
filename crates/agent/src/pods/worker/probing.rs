//! Probes: which are due, and what their verdicts do to readiness and to the container.

use k8s_openapi::api::core::v1::Container;
use kinet_controllers::events::EventType;
use tokio::time::Instant;

use super::{Event, Kind, Worker};
use crate::pods::probe::{self, Tracker};
use crate::pods::process;
use crate::pods::status::State;

impl Worker {
    pub(super) fn launch_probes(&mut self) {
        let now = Instant::now();
        let ip = self.rec.ip;
        for (idx, slot) in self.slots.iter_mut().enumerate() {
            if !matches!(self.rec.containers[idx].record.state, State::Running { .. }) {
                continue;
            }
            let started = self.rec.containers[idx].record.started;
            for (kind, t) in slot.probes.iter_mut() {
                let gated = (*kind == Kind::Startup) == started;
                if t.busy || t.next > now || gated {
                    continue;
                }
                t.busy = true;
                let probe = match kind {
                    Kind::Startup => slot.spec.startup_probe.clone(),
                    Kind::Readiness => slot.spec.readiness_probe.clone(),
                    Kind::Liveness => slot.spec.liveness_probe.clone(),
                };
                let Some(probe) = probe else { continue };
                let io = self.rt.dirs.io(&self.rec.uid, &slot.spec.name);
                let pid = process::container_pid(&io);
                let (tx, c, kind, instance, timeout) = (
                    self.tx.clone(),
                    slot.spec.clone(),
                    *kind,
                    slot.instance,
                    t.timing.timeout,
                );
                tokio::spawn(async move {
                    let result = probe::attempt(&probe, &c, ip, pid, timeout).await;
                    let _ = tx.send(Event::Probe {
                        idx,
                        instance,
                        kind,
                        result,
                    });
                });
            }
        }
    }

    pub(super) async fn probe_result(
        &mut self,
        idx: usize,
        kind: Kind,
        result: Result<(), String>,
    ) {
        let now = Instant::now();
        if let Err(msg) = &result {
            let text = format!("{} probe failed: {msg}", kind.name());
            self.event(EventType::Warning, "Unhealthy", &text).await;
        }
        let Some((_, t)) = self.slots[idx].probes.iter_mut().find(|(k, _)| *k == kind) else {
            return;
        };
        let Some(verdict) = t.record(result.is_ok(), now) else {
            return;
        };
        let name = self.slots[idx].spec.name.clone();
        match (kind, verdict) {
            (Kind::Readiness, v) => self.rec.containers[idx].record.ready = v,
            (Kind::Startup, true) => {
                self.rec.containers[idx].record.started = true;
                for (k, t) in self.slots[idx].probes.iter_mut() {
                    if *k != Kind::Startup {
                        t.next = now + t.timing.initial_delay;
                    }
                }
            }
            (Kind::Liveness, true) => {}
            (Kind::Startup | Kind::Liveness, false) => {
                let what = kind.name().to_lowercase();
                let msg = format!("Container {name} failed {what} probe, will be restarted");
                self.event(EventType::Normal, "Killing", &msg).await;
                if let Some(p) = self.rec.containers[idx].process {
                    tokio::spawn(self.rt.kernel.stop(p, self.grace()));
                }
            }
        }
    }
}

pub(super) fn trackers(c: &Container, started: Instant) -> Vec<(Kind, Tracker)> {
    [
        (Kind::Startup, &c.startup_probe),
        (Kind::Readiness, &c.readiness_probe),
        (Kind::Liveness, &c.liveness_probe),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.as_ref().map(|p| (k, Tracker::new(p, started))))
    .collect()
}
