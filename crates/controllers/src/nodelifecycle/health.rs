//! Pure decisions of the node lifecycle controller, as kube-controller-manager's
//! `pkg/controller/nodelifecycle` makes them: which nodes stopped heartbeating (their
//! conditions turn Unknown), which taints each node should carry, which pods lose
//! readiness and when each is evicted. Time is an argument; nothing here does I/O.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::scheduler::place::tolerates;

pub use kinet_types::wellknown::{NOT_READY_TAINT, UNREACHABLE_TAINT};

/// The conditions a kubelet posts; all turn Unknown when it stops posting.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The node's Ready status: "True", "False" or "Unknown" (absent counts as Unknown).
pub fn ready_status(node: &Node) -> &str {
    conditions(node)
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or("Unknown", |c| c.status.as_str())
}

fn conditions(node: &Node) -> &[NodeCondition] {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// The last sign of life: the newest of the Lease renewal and the Ready heartbeat, or the
/// node's creation when it never posted either (upstream's probe timestamp).
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = conditions(node)
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    renewed
        .max(posted)
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How silence is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Monitor {
    /// `--node-monitor-grace-period`.
    pub grace: Duration,
    /// When the controller started watching. A heartbeat older than that counts from it, as
    /// upstream's probe timestamps start at first observation: a restarted control plane
    /// gives every node the full grace period before calling it silent.
    pub since: Timestamp,
}

impl Monitor {
    /// When a node last heard from at `heartbeat` goes stale.
    pub fn stale_at(&self, heartbeat: Timestamp) -> Timestamp {
        let grace = SignedDuration::try_from(self.grace).unwrap_or(SignedDuration::MAX);
        heartbeat
            .max(self.since)
            .saturating_add(grace)
            .unwrap_or(Timestamp::MAX)
    }
}

/// The conditions to write when the node has been silent longer than the grace period at
/// `now`: every kubelet condition Unknown (`NodeStatusUnknown`, or `NodeStatusNeverUpdated`
/// for one never posted), heartbeats kept, transitions at `now`. `None` when nothing changes.
pub fn stale_conditions(
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    monitor: &Monitor,
) -> Option<Vec<NodeCondition>> {
    let heartbeat = last_heartbeat(node, lease)?;
    if now <= monitor.stale_at(heartbeat) {
        return None;
    }
    let mut out: Vec<NodeCondition> = conditions(node).to_vec();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match out.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                out.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: Some(Time(heartbeat)),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The taints the node should carry for its Ready status: the controller's not-ready or
/// unreachable pair (NoSchedule, and NoExecute stamped with the time it was added) replaces
/// any of its earlier ones; taints others set are kept. An unchanged taint keeps its time.
pub fn desired_taints(current: &[Taint], ready: &str, now: Timestamp) -> Vec<Taint> {
    let ours = |t: &Taint| {
        (t.key == NOT_READY_TAINT || t.key == UNREACHABLE_TAINT)
            && (t.effect == "NoSchedule" || t.effect == "NoExecute")
    };
    let mut out: Vec<Taint> = current.iter().filter(|t| !ours(t)).cloned().collect();
    let key = match ready {
        "True" => return out,
        "False" => NOT_READY_TAINT,
        _ => UNREACHABLE_TAINT,
    };
    for effect in ["NoSchedule", "NoExecute"] {
        let kept = current
            .iter()
            .find(|t| t.key == key && t.effect == effect)
            .cloned();
        out.push(kept.unwrap_or_else(|| Taint {
            key: key.into(),
            effect: effect.into(),
            time_added: (effect == "NoExecute").then_some(Time(now)),
            value: None,
        }));
    }
    out
}

/// The pod's Ready condition turned False at `now` (MarkPodsNotReady), or `None` when it
/// is not True now and nothing needs writing.
pub fn not_ready_condition(pod: &Pod, now: Timestamp) -> Option<PodCondition> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| PodCondition {
        status: "False".into(),
        last_transition_time: Some(Time(now)),
        ..ready.clone()
    })
}

/// When the taint-eviction controller deletes a pod from a node with these taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every NoExecute taint forever (or there is none).
    Never,
    /// Once its shortest matching `tolerationSeconds` has run from the taint's addition.
    At(Timestamp),
}

/// The pod's eviction time under the node's taints, as the taint-eviction controller
/// computes it: an untolerated NoExecute taint evicts at once (at the taint's addition); a
/// tolerated one after the smallest `tolerationSeconds` among the tolerations that match it.
/// The time counts from the taint's addition, or from `since` (the controller's start) if
/// that is later, so a control plane that was down evicts nobody before its nodes can report.
pub fn eviction(pod: &Pod, taints: &[Taint], since: Timestamp, now: Timestamp) -> Eviction {
    let tolerations: &[Toleration] = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut at: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint.time_added.as_ref().map_or(now, |t| t.0).max(since);
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let seconds = if matching.is_empty() {
            Some(0)
        } else {
            matching
                .iter()
                .map(|t| t.toleration_seconds)
                .min_by_key(|s| s.unwrap_or(i64::MAX))
                .flatten()
        };
        if let Some(s) = seconds {
            let due = added
                .saturating_add(SignedDuration::from_secs(s.max(0)))
                .unwrap_or(Timestamp::MAX);
            at = Some(at.map_or(due, |a| a.min(due)));
        }
    }
    at.map_or(Eviction::Never, Eviction::At)
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
