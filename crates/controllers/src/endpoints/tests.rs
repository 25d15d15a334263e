//! Table tests of the pure endpoint rules.

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

use super::desired::{desired_endpoints, endpoints_differ, resolve_port};
use super::slices::{desired_slices, MAX_ENDPOINTS};

fn svc(extra: Value) -> Service {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// A pod named `name` with IP `ip`, ready or not, serving `http` on 8080.
fn pod(name: &str, ip: &str, ready: bool, extra: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// (ready IPs, not-ready IPs, ports) of a subset, for compact expectations.
type Shape = (Vec<String>, Vec<String>, Vec<i32>);

fn shape(e: &Endpoints) -> Vec<Shape> {
    let ips = |a: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
        a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
    };
    e.subsets
        .iter()
        .flatten()
        .map(|s| {
            (
                ips(&s.addresses),
                ips(&s.not_ready_addresses),
                s.ports.iter().flatten().map(|p| p.port).collect(),
            )
        })
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn endpoints_table() {
    let terminating = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
    let cases: Vec<(&str, Service, Vec<Pod>, Vec<Shape>)> = vec![
        ("no pods", svc(json!({})), vec![], vec![]),
        (
            "ready and not ready, sorted by ip",
            svc(json!({})),
            vec![
                pod("b", "10.0.0.2", true, json!({})),
                pod("a", "10.0.0.1", true, json!({})),
                pod("c", "10.0.0.3", false, json!({})),
            ],
            vec![(s(&["10.0.0.1", "10.0.0.2"]), s(&["10.0.0.3"]), vec![8080])],
        ),
        (
            "no ip yet",
            svc(json!({})),
            vec![pod("a", "", true, json!({}))],
            vec![],
        ),
        (
            "finished pod",
            svc(json!({})),
            vec![pod(
                "a",
                "10.0.0.1",
                true,
                json!({"status": {"phase": "Succeeded"}}),
            )],
            vec![],
        ),
        (
            "other labels",
            svc(json!({})),
            vec![pod(
                "a",
                "10.0.0.1",
                true,
                json!({"metadata": {"labels": {"app": "db"}}}),
            )],
            vec![],
        ),
        (
            "other namespace",
            svc(json!({})),
            vec![pod(
                "a",
                "10.0.0.1",
                true,
                json!({"metadata": {"namespace": "x"}}),
            )],
            vec![],
        ),
        (
            "terminating pods leave",
            svc(json!({})),
            vec![pod("a", "10.0.0.1", true, terminating.clone())],
            vec![],
        ),
        (
            "publishNotReadyAddresses keeps not-ready and terminating pods as ready",
            svc(json!({"spec": {"publishNotReadyAddresses": true}})),
            vec![
                pod("a", "10.0.0.1", false, json!({})),
                pod("b", "10.0.0.2", true, terminating.clone()),
            ],
            vec![(s(&["10.0.0.1", "10.0.0.2"]), vec![], vec![8080])],
        ),
        (
            "pods naming the port differently get their own subset",
            svc(json!({})),
            vec![
                pod("a", "10.0.0.1", true, json!({})),
                pod(
                    "b",
                    "10.0.0.2",
                    true,
                    json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 9090}]}]}}),
                ),
            ],
            vec![
                (s(&["10.0.0.1"]), vec![], vec![8080]),
                (s(&["10.0.0.2"]), vec![], vec![9090]),
            ],
        ),
        (
            "a pod without the named port is no endpoint",
            svc(json!({})),
            vec![pod(
                "a",
                "10.0.0.1",
                true,
                json!({"spec": {"containers": [{"name": "c"}]}}),
            )],
            vec![],
        ),
        (
            "numeric target port",
            svc(json!({"spec": {"ports": [{"port": 80, "targetPort": 8000}]}})),
            vec![pod(
                "a",
                "10.0.0.1",
                true,
                json!({"spec": {"containers": [{"name": "c"}]}}),
            )],
            vec![(s(&["10.0.0.1"]), vec![], vec![8000])],
        ),
        (
            "headless without ports lists every pod",
            svc(json!({"spec": {"clusterIP": "None", "ports": []}})),
            vec![pod("a", "10.0.0.1", true, json!({}))],
            vec![(s(&["10.0.0.1"]), vec![], vec![])],
        ),
    ];
    for (name, svc, pods, want) in cases {
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(shape(&desired_endpoints(&svc, &refs)), want, "{name}");
    }
}

#[test]
fn addresses_carry_node_target_and_hostname() {
    let service = svc(json!({}));
    let p = pod(
        "a",
        "10.0.0.1",
        true,
        json!({"spec": {"hostname": "a", "subdomain": "web"}}),
    );
    let e = desired_endpoints(&service, &[&p]);
    let a = &e.subsets.as_ref().unwrap()[0].addresses.as_ref().unwrap()[0];
    assert_eq!(a.hostname.as_deref(), Some("a"));
    assert_eq!(a.node_name.as_deref(), Some("node-1"));
    let r = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            r.kind.as_deref(),
            r.name.as_deref(),
            r.namespace.as_deref(),
            r.uid.as_deref()
        ),
        (Some("Pod"), Some("a"), Some("ns"), Some("uid-a"))
    );
    assert_eq!(
        e.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0]
            .name
            .as_deref(),
        Some("http")
    );
    // A subdomain naming another Service gives no hostname.
    let other = pod(
        "b",
        "10.0.0.2",
        true,
        json!({"spec": {"hostname": "b", "subdomain": "db"}}),
    );
    let e = desired_endpoints(&service, &[&other]);
    assert_eq!(
        e.subsets.as_ref().unwrap()[0].addresses.as_ref().unwrap()[0].hostname,
        None
    );
}

#[test]
fn named_ports_match_protocol() {
    let udp = svc(
        json!({"spec": {"ports": [{"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}]}}),
    );
    let p = pod(
        "a",
        "10.0.0.1",
        true,
        json!({"spec": {"containers": [{"name": "c", "ports": [
        {"name": "dns", "containerPort": 5353, "protocol": "TCP"}, {"name": "dns", "containerPort": 5354, "protocol": "UDP"}]}]}}),
    );
    let port = &udp.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(resolve_port(&p, port), Some(5354));
}

#[test]
fn equal_endpoints_are_not_rewritten() {
    let service = svc(json!({}));
    let p = pod("a", "10.0.0.1", true, json!({}));
    let want = desired_endpoints(&service, &[&p]);
    let mut have = want.clone();
    have.metadata.resource_version = Some("7".into());
    assert!(!endpoints_differ(&have, &want));
    let not_ready = pod("a", "10.0.0.1", false, json!({}));
    assert!(endpoints_differ(
        &have,
        &desired_endpoints(&service, &[&not_ready])
    ));
    assert!(!endpoints_differ(
        &desired_endpoints(&service, &[]),
        &Endpoints {
            subsets: Some(vec![]),
            ..desired_endpoints(&service, &[])
        }
    ));
}

/// Applies changes the way the API server would, naming created slices.
fn apply(
    existing: &[EndpointSlice],
    changes: super::SliceChanges,
    next_name: &mut usize,
) -> Vec<EndpointSlice> {
    let mut out: Vec<EndpointSlice> = existing
        .iter()
        .filter(|s| {
            !changes
                .delete
                .iter()
                .any(|d| d.metadata.name == s.metadata.name)
        })
        .map(|s| {
            changes
                .update
                .iter()
                .find(|u| u.metadata.name == s.metadata.name)
                .unwrap_or(s)
                .clone()
        })
        .collect();
    for mut c in changes.create {
        *next_name += 1;
        c.metadata.name = Some(format!("web-{next_name}"));
        out.push(c);
    }
    out
}

fn conditions(s: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
    s.endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.clone().unwrap();
            (
                e.addresses[0].clone(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        })
        .collect()
}

#[test]
fn slices_from_nothing_then_converge() {
    let service = svc(json!({}));
    let mut n = 0;
    // No pods: one placeholder slice without ports.
    let changes = desired_slices(&service, &[], &[]);
    assert_eq!(
        (
            changes.create.len(),
            changes.update.len(),
            changes.delete.len()
        ),
        (1, 0, 0)
    );
    let placeholder = &changes.create[0];
    assert!(placeholder.endpoints.is_empty() && placeholder.ports.is_none());
    assert_eq!(placeholder.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(placeholder.address_type, "IPv4");
    let labels = placeholder.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        placeholder.metadata.owner_references.as_ref().unwrap()[0].uid,
        "svc-uid"
    );
    let slices = apply(&[], changes, &mut n);
    assert!(
        desired_slices(&service, &[], &slices).is_empty(),
        "placeholder is stable"
    );

    // Pods arrive: the placeholder goes, a slice with ports comes.
    let a = pod("a", "10.0.0.1", true, json!({}));
    let b = pod("b", "10.0.0.2", false, json!({}));
    let changes = desired_slices(&service, &[&a, &b], &slices);
    assert_eq!(
        (
            changes.create.len(),
            changes.update.len(),
            changes.delete.len()
        ),
        (1, 0, 1)
    );
    let slices = apply(&slices, changes, &mut n);
    assert_eq!(slices[0].ports.as_ref().unwrap()[0].port, Some(8080));
    assert_eq!(
        slices[0].ports.as_ref().unwrap()[0].name.as_deref(),
        Some("http")
    );
    assert_eq!(
        conditions(&slices[0]),
        vec![
            ("10.0.0.1".into(), true, true, false),
            ("10.0.0.2".into(), false, false, false)
        ]
    );
    assert!(
        desired_slices(&service, &[&a, &b], &slices).is_empty(),
        "no writes when nothing changed"
    );

    // b turns Ready, a terminates while still Ready: one update of the same slice.
    let b = pod("b", "10.0.0.2", true, json!({}));
    let a = pod(
        "a",
        "10.0.0.1",
        true,
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    let changes = desired_slices(&service, &[&a, &b], &slices);
    assert_eq!(
        (
            changes.create.len(),
            changes.update.len(),
            changes.delete.len()
        ),
        (0, 1, 0)
    );
    let slices = apply(&slices, changes, &mut n);
    assert_eq!(
        conditions(&slices[0]),
        vec![
            ("10.0.0.1".into(), false, true, true),
            ("10.0.0.2".into(), true, true, false)
        ]
    );

    // Everything gone: back to a placeholder.
    let changes = desired_slices(&service, &[], &slices);
    let slices = apply(&slices, changes, &mut n);
    assert_eq!(slices.len(), 1);
    assert!(slices[0].endpoints.is_empty());
}

#[test]
fn slices_hold_at_most_max_endpoints_and_keep_placement() {
    let service = svc(json!({}));
    let pods: Vec<Pod> = (0..MAX_ENDPOINTS + 5)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.1.{}.{}", i / 200, i % 200 + 1),
                true,
                json!({}),
            )
        })
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let mut n = 0;
    let slices = apply(&[], desired_slices(&service, &refs, &[]), &mut n);
    assert_eq!(slices.len(), 2);
    assert_eq!(
        slices.iter().map(|s| s.endpoints.len()).sum::<usize>(),
        MAX_ENDPOINTS + 5
    );
    assert!(slices.iter().all(|s| s.endpoints.len() <= MAX_ENDPOINTS));
    // One pod leaves: only its slice is rewritten.
    let changes = desired_slices(&service, &refs[1..], &slices);
    assert_eq!(
        (
            changes.create.len(),
            changes.update.len(),
            changes.delete.len()
        ),
        (0, 1, 0)
    );
    // A foreign slice with the label but another manager is left alone.
    let mut foreign = slices[0].clone();
    foreign.metadata.name = Some("mine".into());
    foreign.metadata.labels.as_mut().unwrap().insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        "someone-else".into(),
    );
    let mut with_foreign = slices.clone();
    with_foreign.push(foreign);
    assert!(desired_slices(&service, &refs, &with_foreign).is_empty());
}

#[test]
fn hostname_and_target_in_slices() {
    let service = svc(json!({}));
    let p = pod(
        "a",
        "10.0.0.1",
        true,
        json!({"spec": {"hostname": "a", "subdomain": "web"}}),
    );
    let changes = desired_slices(&service, &[&p], &[]);
    let e = &changes.create[0].endpoints[0];
    assert_eq!(e.hostname.as_deref(), Some("a"));
    assert_eq!(e.node_name.as_deref(), Some("node-1"));
    assert_eq!(e.target_ref.as_ref().unwrap().uid.as_deref(), Some("uid-a"));
}
