//! printPod's STATUS/READY/RESTARTS cases.

use serde_json::{json, Value};

use super::{now, res};
use crate::cells;

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2025-01-10T11:59:30Z"},
        "spec": spec,
        "status": status,
    })
}

fn one() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx"}], "nodeName": "kinet-worker"})
}

#[test]
fn status_ready_restarts() {
    let running = json!({"running": {"startedAt": "2025-01-10T11:59:40Z"}});
    let cases: Vec<(&str, Value, [&str; 3])> = vec![
        (
            "running, one restart 5m ago",
            pod(
                json!({"containers": [{"name": "app"}, {"name": "log"}], "nodeName": "kinet-worker"}),
                json!({"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {"name": "app", "ready": true, "restartCount": 3, "state": running,
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-10T11:55:00Z"}}},
                        {"name": "log", "ready": true, "restartCount": 0, "state": running}]}),
            ),
            ["2/2", "Running", "3 (5m ago)"],
        ),
        (
            "image pull backoff",
            pod(
                one(),
                json!({"phase": "Pending", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
            ),
            ["0/1", "ImagePullBackOff", "0"],
        ),
        (
            "err image pull",
            pod(
                one(),
                json!({"phase": "Pending", "containerStatuses": [
                {"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
            ),
            ["0/1", "ErrImagePull", "0"],
        ),
        (
            "crash loop",
            pod(
                one(),
                json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2025-01-10T11:59:40Z"}}}]}),
            ),
            ["0/1", "CrashLoopBackOff", "4 (20s ago)"],
        ),
        (
            "second init container running",
            pod(
                json!({"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "restartCount": 0, "state": running}],
                    "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}),
            ),
            ["0/1", "Init:1/2", "0"],
        ),
        (
            "init crash loop",
            pod(
                json!({"initContainers": [{"name": "a"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "a", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            ),
            ["0/1", "Init:CrashLoopBackOff", "2"],
        ),
        (
            "init failed with exit code",
            pod(
                json!({"initContainers": [{"name": "a"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]}),
            ),
            ["0/1", "Init:ExitCode:3", "0"],
        ),
        (
            "completed",
            pod(
                one(),
                json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
            ["0/1", "Completed", "0"],
        ),
        (
            "error exit code without reason",
            pod(
                one(),
                json!({"phase": "Failed", "containerStatuses": [
                {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]}),
            ),
            ["0/1", "ExitCode:2", "0"],
        ),
        (
            "killed by signal",
            pod(
                one(),
                json!({"phase": "Failed", "containerStatuses": [
                {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            ),
            ["0/1", "Signal:9", "0"],
        ),
        (
            "evicted",
            pod(one(), json!({"phase": "Failed", "reason": "Evicted"})),
            ["0/1", "Evicted", "0"],
        ),
        (
            "pending, unscheduled",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Pending"}),
            ),
            ["0/1", "Pending", "0"],
        ),
        (
            "scheduling gated",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            ["0/1", "SchedulingGated", "0"],
        ),
        (
            "sidecar counts as a container",
            pod(
                json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                    "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1, "state": running}],
                    "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": running}]}),
            ),
            ["2/2", "Running", "1"],
        ),
        (
            "completed main but one still running",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "ready": true, "restartCount": 0, "state": running}]}),
            ),
            ["1/2", "NotReady", "0"],
        ),
    ];
    for (what, obj, want) in cases {
        let got = cells(res("", "pods"), &obj, now());
        assert_eq!(&got[1..4], &want.map(Value::from)[..], "{what}");
        assert_eq!(got[4], "30s", "{what}");
    }
}

#[test]
fn terminating_and_node_lost() {
    let mut p = pod(one(), json!({"phase": "Running"}));
    p["metadata"]["deletionTimestamp"] = json!("2025-01-10T12:00:00Z");
    assert_eq!(cells(res("", "pods"), &p, now())[2], "Terminating");
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells(res("", "pods"), &p, now())[2], "Unknown");
    let mut done = pod(one(), json!({"phase": "Succeeded"}));
    done["metadata"]["deletionTimestamp"] = json!("2025-01-10T12:00:00Z");
    assert_eq!(cells(res("", "pods"), &done, now())[2], "Succeeded");
}

#[test]
fn wide_cells() {
    let p = pod(
        json!({"containers": [{"name": "app"}], "nodeName": "kinet-worker",
            "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Running", "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}], "nominatedNodeName": "kinet-worker2",
            "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}]}),
    );
    let got = cells(res("", "pods"), &p, now());
    assert_eq!(
        &got[5..],
        &[
            json!("10.244.1.5"),
            json!("kinet-worker"),
            json!("kinet-worker2"),
            json!("1/2")
        ][..]
    );
    let bare = pod(json!({"containers": []}), json!({}));
    let got = cells(res("", "pods"), &bare, now());
    assert_eq!(
        &got[5..],
        &[
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ][..]
    );
    assert_eq!(got[1..3], [json!("0/0"), json!("")]);
}
