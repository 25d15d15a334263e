use serde_json::json;

use super::*;

fn pod(containers: &[&str], init: &[&str]) -> Value {
    let list =
        |names: &[&str]| -> Vec<Value> { names.iter().map(|n| json!({"name": n})).collect() };
    json!({"metadata": {"name": "web"}, "spec": {"containers": list(containers), "initContainers": list(init)}})
}

#[test]
fn containers_as_kube_apiserver_validates_them() {
    assert_eq!(pick_container(&pod(&["app"], &[]), None).unwrap(), "app");
    assert_eq!(
        pick_container(&pod(&["app"], &[]), Some("")).unwrap(),
        "app"
    );
    assert_eq!(
        pick_container(&pod(&["app", "side"], &["init"]), Some("init")).unwrap(),
        "init"
    );
    let err = pick_container(&pod(&["app"], &[]), Some("nope")).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "container nope is not valid for pod web")
    );
    let err = pick_container(&pod(&["app", "side"], &["init"]), None).unwrap_err();
    assert_eq!(
        err.message,
        "a container name must be specified for pod web, choose one of: [init app side]"
    );
}

#[test]
fn node_endpoints() {
    let node = json!({"status": {
        "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.77.0.2"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}
    }});
    assert_eq!(node_endpoint(&node).unwrap(), ("10.77.0.2".into(), 10251));
    let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
    assert_eq!(node_endpoint(&node).unwrap(), ("n1".into(), 10250));
    let node = json!({"status": {"addresses": [{"type": "ExternalIP", "address": "192.0.2.1"}],
                                  "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}});
    assert_eq!(node_endpoint(&node).unwrap(), ("192.0.2.1".into(), 10250));
    let err = node_endpoint(&json!({"status": {}})).unwrap_err();
    assert_eq!(err.code, 500);
    assert!(
        err.message.contains("no preferred addresses found"),
        "{}",
        err.message
    );
}

#[test]
fn kubelet_paths() {
    assert_eq!(
        kubelet_path(
            "log",
            "default",
            "web",
            Some("app"),
            Some("container=app&follow=true&tailLines=5")
        ),
        "/containerLogs/default/web/app?follow=true&tailLines=5"
    );
    assert_eq!(
        kubelet_path(
            "exec",
            "default",
            "web",
            Some("app"),
            Some("command=sh&command=-c&command=echo+hi%21&container=app&stdout=true")
        ),
        "/exec/default/web/app?command=sh&command=-c&command=echo+hi%21&stdout=true"
    );
    assert_eq!(
        kubelet_path("attach", "ns", "p", Some("c"), None),
        "/attach/ns/p/c"
    );
    assert_eq!(
        kubelet_path("portforward", "ns", "p", None, Some("ports=80")),
        "/portForward/ns/p?ports=80"
    );
}
