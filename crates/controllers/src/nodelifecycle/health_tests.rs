use super::*;
use serde_json::json;

fn grace() -> Monitor {
    Monitor {
        grace: Duration::from_secs(40),
        since: ts(-1000),
    }
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn node(conditions: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "w1", "creationTimestamp": ts(0).to_string()},
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn posted(status: &str, heartbeat: i64) -> Node {
    let at = ts(heartbeat).to_string();
    node(json!([
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": at, "lastTransitionTime": ts(0).to_string()},
        {"type": "Ready", "status": status, "reason": "KubeletReady", "lastHeartbeatTime": at, "lastTransitionTime": ts(0).to_string()},
    ]))
}

fn lease(renewed: i64) -> Lease {
    serde_json::from_value(json!({
        "metadata": {"name": "w1", "namespace": "kube-node-lease"},
        "spec": {"renewTime": format!("{}", ts(renewed)), "leaseDurationSeconds": 40},
    }))
    .unwrap()
}

fn find<'a>(cs: &'a [NodeCondition], t: &str) -> &'a NodeCondition {
    cs.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn the_newest_of_lease_and_status_heartbeat_counts() {
    let n = posted("True", 10);
    assert_eq!(last_heartbeat(&n, None), Some(ts(10)));
    assert_eq!(last_heartbeat(&n, Some(&lease(30))), Some(ts(30)));
    assert_eq!(
        last_heartbeat(&posted("True", 50), Some(&lease(30))),
        Some(ts(50))
    );
    // Never posted: the grace runs from registration.
    assert_eq!(last_heartbeat(&node(json!([])), None), Some(ts(0)));
}

#[test]
fn a_node_renewing_its_lease_stays_as_it_is() {
    // The status heartbeat is old, but the lease is fresh: upstream's lease-based health.
    let n = posted("True", 0);
    assert_eq!(
        stale_conditions(&n, Some(&lease(100)), ts(120), &grace()),
        None
    );
    // Exactly at the grace period it is still fresh; one second later it is not.
    assert_eq!(stale_conditions(&n, None, ts(40), &grace()), None);
    assert!(stale_conditions(&n, None, ts(41), &grace()).is_some());
}

#[test]
fn a_restarted_controller_gives_every_node_the_full_grace() {
    let just_started = Monitor {
        since: ts(100),
        ..grace()
    };
    let n = posted("True", 0);
    assert_eq!(stale_conditions(&n, None, ts(140), &just_started), None);
    assert!(stale_conditions(&n, None, ts(141), &just_started).is_some());
}

#[test]
fn a_silent_node_turns_every_kubelet_condition_unknown() {
    let cs = stale_conditions(&posted("True", 0), Some(&lease(5)), ts(50), &grace()).unwrap();
    let ready = find(&cs, "Ready");
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(ready.last_transition_time, Some(Time(ts(50))));
    // The heartbeat stays what the kubelet last posted.
    assert_eq!(ready.last_heartbeat_time, Some(Time(ts(0))));
    assert_eq!(find(&cs, "MemoryPressure").status, "Unknown");
    // Conditions it never posted are added, saying so.
    let disk = find(&cs, "DiskPressure");
    assert_eq!(
        (disk.status.as_str(), disk.reason.as_deref()),
        ("Unknown", Some("NodeStatusNeverUpdated"))
    );
    assert_eq!(cs.len(), 4);
    // Already all Unknown: nothing more to write.
    assert_eq!(
        stale_conditions(&node(json!(cs)), None, ts(90), &grace()),
        None
    );
}

#[test]
fn a_node_that_never_posted_is_unknown_after_the_grace() {
    let cs = stale_conditions(&node(json!([])), None, ts(41), &grace()).unwrap();
    let ready = find(&cs, "Ready");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet never posted node status.")
    );
}

fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: added.map(|s| Time(ts(s))),
        value: None,
    }
}

#[test]
fn taints_follow_the_ready_status() {
    let user = taint("dedicated", "NoSchedule", None);
    assert_eq!(
        desired_taints(std::slice::from_ref(&user), "Unknown", ts(7)),
        vec![
            user.clone(),
            taint(UNREACHABLE_TAINT, "NoSchedule", None),
            taint(UNREACHABLE_TAINT, "NoExecute", Some(7)),
        ]
    );
    assert_eq!(
        desired_taints(&[], "False", ts(7)),
        vec![
            taint(NOT_READY_TAINT, "NoSchedule", None),
            taint(NOT_READY_TAINT, "NoExecute", Some(7)),
        ]
    );
    // Unreachable → not-ready swaps the pair; a steady status keeps the time added.
    let unreachable = desired_taints(std::slice::from_ref(&user), "Unknown", ts(7));
    assert_eq!(desired_taints(&unreachable, "Unknown", ts(99)), unreachable);
    let swapped = desired_taints(&unreachable, "False", ts(9));
    assert_eq!(swapped[2], taint(NOT_READY_TAINT, "NoExecute", Some(9)));
    // Back to Ready: only the taints others set remain.
    assert_eq!(desired_taints(&swapped, "True", ts(10)), vec![user]);
}

fn pod(tolerations: serde_json::Value, ready: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c"}], "tolerations": tolerations},
        "status": {"conditions": [
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready, "lastTransitionTime": ts(0).to_string()},
        ]},
    }))
    .unwrap()
}

#[test]
fn ready_pods_are_marked_not_ready_once() {
    let c = not_ready_condition(&pod(json!([]), "True"), ts(5)).unwrap();
    assert_eq!((c.type_.as_str(), c.status.as_str()), ("Ready", "False"));
    assert_eq!(c.last_transition_time, Some(Time(ts(5))));
    assert_eq!(not_ready_condition(&pod(json!([]), "False"), ts(5)), None);
}

#[test]
fn eviction_waits_for_the_shortest_matching_toleration() {
    let unreachable = [
        taint(UNREACHABLE_TAINT, "NoSchedule", None),
        taint(UNREACHABLE_TAINT, "NoExecute", Some(100)),
    ];
    let cases = [
        ("no toleration: at once", json!([]), Eviction::At(ts(100))),
        (
            "the default 300 s",
            json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
            Eviction::At(ts(400)),
        ),
        (
            "the smallest of two",
            json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                   {"operator": "Exists", "tolerationSeconds": 10}]),
            Eviction::At(ts(110)),
        ),
        (
            "forever (a daemon pod)",
            json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]),
            Eviction::Never,
        ),
        (
            "tolerating another key is no toleration",
            json!([{"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
            Eviction::At(ts(100)),
        ),
    ];
    for (what, tolerations, want) in cases {
        assert_eq!(
            eviction(&pod(tolerations, "True"), &unreachable, ts(0), ts(200)),
            want,
            "{what}"
        );
    }
    // Only NoExecute taints evict.
    assert_eq!(
        eviction(&pod(json!([]), "True"), &unreachable[..1], ts(0), ts(200)),
        Eviction::Never
    );
    // A controller started after the taint counts from its start.
    let tolerant = pod(
        json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        "True",
    );
    assert_eq!(
        eviction(&tolerant, &unreachable, ts(1000), ts(1000)),
        Eviction::At(ts(1300))
    );
}
