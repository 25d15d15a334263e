//! What the agent reports in a pod's status, from what it knows of the sandbox and the
//! container instances: the kubelet's `generateAPIPodStatus` and `getPhase`. Pure data.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code (128+signal for a signal, as runtimes report).
    pub code: i32,
    /// `Completed`, `Error`, `OOMKilled`...
    pub reason: String,
    /// When it started and ended.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// The process it was.
    pub pid: u32,
}

impl Exit {
    /// The kubelet's reasons: 0 is `Completed`, anything else `Error`.
    pub fn new(code: i32, started_at: Timestamp, finished_at: Timestamp, pid: u32) -> Exit {
        let reason = if code == 0 { "Completed" } else { "Error" };
        Exit {
            code,
            reason: reason.into(),
            started_at,
            finished_at,
            pid,
        }
    }
}

/// The current state of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Not running: `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`...
    Waiting {
        /// The kubelet's reason.
        reason: String,
        /// Details, if any.
        message: Option<String>,
    },
    /// Its process runs.
    Running {
        /// The process.
        pid: u32,
        /// When it started.
        started_at: Timestamp,
    },
    /// Ended and will not be restarted (or not yet).
    Terminated(Exit),
}

/// One container as the agent tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The container's name.
    pub name: String,
    /// The image as the spec gives it.
    pub image: String,
    /// The digest reference of the image it runs (empty for built-in images).
    #[serde(default)]
    pub image_id: String,
    /// Now.
    pub state: State,
    /// The previous instance's end.
    pub last: Option<Exit>,
    /// How often it was restarted.
    pub restarts: i32,
    /// Readiness probe result (true without a probe once running).
    pub ready: bool,
    /// Startup probe passed (true without a probe once running).
    pub started: bool,
}

impl Record {
    /// A container not started yet.
    pub fn waiting(name: &str, image: &str, reason: &str) -> Record {
        Record {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            state: State::Waiting {
                reason: reason.into(),
                message: None,
            },
            last: None,
            restarts: 0,
            ready: false,
            started: false,
        }
    }
}

/// The pod-level facts the status carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    /// The pod's address, once its network is up.
    pub pod_ip: Option<String>,
    /// The node's address.
    pub host_ip: String,
    /// When the agent first accepted the pod.
    pub start_time: Option<Timestamp>,
    /// Whether the sandbox (pause process and network) is up.
    pub ready: bool,
}

fn time(t: Timestamp) -> Option<Time> {
    Some(Time(t))
}

/// The API form of one container record.
pub fn container_status(r: &Record) -> ContainerStatus {
    let terminated = |e: &Exit| ContainerStateTerminated {
        exit_code: e.code,
        reason: Some(e.reason.clone()),
        started_at: time(e.started_at),
        finished_at: time(e.finished_at),
        container_id: Some(container_id(e.pid)),
        ..Default::default()
    };
    let (state, id) = match &r.state {
        State::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            r.last.as_ref().map(|e| container_id(e.pid)),
        ),
        State::Running { pid, started_at } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time(*started_at),
                }),
                ..Default::default()
            },
            Some(container_id(*pid)),
        ),
        State::Terminated(e) => (
            ContainerState {
                terminated: Some(terminated(e)),
                ..Default::default()
            },
            Some(container_id(e.pid)),
        ),
    };
    let running = matches!(r.state, State::Running { .. });
    ContainerStatus {
        name: r.name.clone(),
        image: r.image.clone(),
        image_id: r.image_id.clone(),
        container_id: id,
        ready: running && r.ready,
        started: Some(running && r.started),
        restart_count: r.restarts,
        state: Some(state),
        last_state: Some(match &r.last {
            Some(e) => ContainerState {
                terminated: Some(terminated(e)),
                ..Default::default()
            },
            None => ContainerState::default(),
        }),
        ..Default::default()
    }
}

/// `kinet://<pid>`: what `nsenter -t <pid>` needs, in the place tutorials read it from.
pub fn container_id(pid: u32) -> String {
    format!("kinet://{pid}")
}

/// The kubelet's `getPhase`.
pub fn phase(restart_policy: &str, records: &[Record]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for r in records {
        match &r.state {
            State::Running { .. } => running += 1,
            State::Terminated(e) => {
                stopped += 1;
                if e.code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if r.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || records.is_empty() {
        "Pending"
    } else if running > 0 || restart_policy == "Always" {
        "Running"
    } else if stopped == succeeded {
        "Succeeded"
    } else if restart_policy == "Never" {
        "Failed"
    } else {
        "Running"
    }
}

fn condition(
    previous: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let kept = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .map(|c| (c.status.as_str(), c.last_transition_time.as_ref()));
    let transition = crate::node::transition_time(kept, status, now);
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(transition),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The pod's whole status: phase, conditions (keeping the scheduler's `PodScheduled`),
/// addresses and container statuses. `now` is the transition time of changed conditions.
/// The pod's status; `ephemeral` are its ephemeral containers, which count for nothing but
/// their own statuses.
pub fn pod_status(
    pod: &Pod,
    sandbox: &Sandbox,
    records: &[Record],
    ephemeral: &[Record],
    now: Timestamp,
) -> PodStatus {
    let previous = pod.status.as_ref();
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = phase(policy, records);
    let completed = phase == "Succeeded" || phase == "Failed";
    let unready: Vec<&str> = records
        .iter()
        .filter(|r| !(r.ready && matches!(r.state, State::Running { .. })))
        .map(|r| r.name.as_str())
        .collect();
    let (ready_reason, ready_message) = match (completed, unready.is_empty()) {
        (true, _) => (Some("PodCompleted"), None),
        (false, true) => (None, None),
        (false, false) => (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        ),
    };
    let all_ready = !completed && unready.is_empty();
    let mut conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            sandbox.ready,
            None,
            None,
            now,
        ),
        condition(previous, "Initialized", true, None, None, now),
        condition(
            previous,
            "Ready",
            all_ready,
            ready_reason,
            ready_message.clone(),
            now,
        ),
        condition(
            previous,
            "ContainersReady",
            all_ready,
            ready_reason,
            ready_message,
            now,
        ),
    ];
    if let Some(scheduled) = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(scheduled.clone());
    }
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(sandbox.host_ip.clone()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: sandbox.host_ip.clone(),
        }]),
        pod_ip: sandbox.pod_ip.clone(),
        pod_ips: sandbox.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: sandbox.start_time.and_then(time),
        container_statuses: Some(records.iter().map(container_status).collect()),
        ephemeral_container_statuses: (!ephemeral.is_empty())
            .then(|| ephemeral.iter().map(container_status).collect()),
        qos_class: previous
            .and_then(|p| p.qos_class.clone())
            .or_else(|| Some(qos_class(pod).into())),
        ..Default::default()
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers = pod.spec.as_ref().map(|s| &s.containers[..]).unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let res = c.resources.as_ref();
        let req = res.and_then(|r| r.requests.as_ref());
        let lim = res.and_then(|r| r.limits.as_ref());
        any |= req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty());
        for k in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(k));
            let r = req.and_then(|r| r.get(k)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Whether the stored status shows the conditions as `ours` has them (type and status).
/// Another writer may change them under the agent (the node lifecycle controller marks the
/// pods of a node that is not Ready as not Ready), and the agent then writes its own again.
pub fn conditions_agree(stored: Option<&PodStatus>, ours: &PodStatus) -> bool {
    let states = |s: Option<&PodStatus>| -> Vec<(String, String)> {
        s.and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    };
    states(stored) == states(Some(ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_changed_by_another_writer_disagree() {
        let with_ready = |status: &str| PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: status.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        };
        let ours = with_ready("True");
        assert!(conditions_agree(Some(&with_ready("True")), &ours));
        assert!(!conditions_agree(Some(&with_ready("False")), &ours));
        assert!(!conditions_agree(None, &ours));
    }

    fn rec(state: State, last: Option<Exit>) -> Record {
        Record {
            name: "c".into(),
            image: "nginx".into(),
            image_id: String::new(),
            state,
            last,
            restarts: 0,
            ready: true,
            started: true,
        }
    }

    fn exit(code: i32) -> Exit {
        Exit::new(code, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH, 7)
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let running = rec(
            State::Running {
                pid: 1,
                started_at: Timestamp::UNIX_EPOCH,
            },
            None,
        );
        let waiting = rec(
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            None,
        );
        let backoff = rec(
            State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            },
            Some(exit(1)),
        );
        assert_eq!(
            phase("Always", &[running.clone(), waiting.clone()]),
            "Pending"
        );
        assert_eq!(phase("Always", &[running, backoff.clone()]), "Running");
        assert_eq!(phase("Always", &[backoff]), "Running");
        assert_eq!(
            phase("Never", &[rec(State::Terminated(exit(0)), None)]),
            "Succeeded"
        );
        assert_eq!(
            phase("Never", &[rec(State::Terminated(exit(2)), None)]),
            "Failed"
        );
        assert_eq!(
            phase("OnFailure", &[rec(State::Terminated(exit(0)), None)]),
            "Succeeded"
        );
        assert_eq!(phase("Always", &[]), "Pending");
    }

    #[test]
    fn status_keeps_scheduled_and_lists_unready_containers() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}, {"name": "d"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}
        }))
        .unwrap();
        let mut d = rec(
            State::Running {
                pid: 42,
                started_at: Timestamp::UNIX_EPOCH,
            },
            None,
        );
        d.name = "d".into();
        d.ready = false;
        let c = rec(
            State::Running {
                pid: 41,
                started_at: Timestamp::UNIX_EPOCH,
            },
            None,
        );
        let sandbox = Sandbox {
            pod_ip: Some("10.244.1.5".into()),
            host_ip: "172.18.0.2".into(),
            start_time: Some(Timestamp::UNIX_EPOCH),
            ready: true,
        };
        let s = pod_status(&pod, &sandbox, &[c, d], &[], Timestamp::UNIX_EPOCH);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let conds = s.conditions.unwrap();
        let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert_eq!(conds[2].status, "False");
        assert_eq!(
            conds[2].message.as_deref(),
            Some("containers with unready status: [d]")
        );
        let cs = s.container_statuses.unwrap();
        assert_eq!(cs[0].container_id.as_deref(), Some("kinet://41"));
        assert!(cs[0].ready && !cs[1].ready);
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.5"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(s.ephemeral_container_statuses, None);
    }

    #[test]
    fn ephemeral_containers_have_statuses_of_their_own_and_no_say_in_the_pod_s() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "restartPolicy": "Always"}
        }))
        .unwrap();
        let running = rec(
            State::Running {
                pid: 41,
                started_at: Timestamp::UNIX_EPOCH,
            },
            None,
        );
        let mut debugger = Record::waiting("debugger", "busybox", "ContainerCreating");
        debugger.state = State::Terminated(Exit::new(
            1,
            Timestamp::UNIX_EPOCH,
            Timestamp::UNIX_EPOCH,
            43,
        ));
        let sandbox = Sandbox {
            ready: true,
            ..Sandbox::default()
        };
        let s = pod_status(
            &pod,
            &sandbox,
            &[running],
            &[debugger],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.container_statuses.unwrap().len(), 1);
        let eph = s.ephemeral_container_statuses.unwrap();
        assert_eq!(eph[0].name, "debugger");
        let ended = eph[0].state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(ended.exit_code, 1);
    }
}
