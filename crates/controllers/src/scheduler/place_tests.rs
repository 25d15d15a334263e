use super::*;
use serde_json::json;

fn node(name: &str, labels: &[(&str, &str)], taints: serde_json::Value, ready: bool) -> NodeInfo {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap();
    NodeInfo::from_node(&n)
}

fn spec(v: serde_json::Value) -> PodSpec {
    let mut v = v;
    v["containers"] = json!([{"name": "c", "image": "i"}]);
    serde_json::from_value(v).unwrap()
}

fn cluster() -> Vec<NodeInfo> {
    vec![
        node(
            "cp",
            &[("node-role.kubernetes.io/control-plane", "")],
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            true,
        ),
        node("w1", &[("zone", "a"), ("disk", "ssd")], json!([]), true),
        node("w2", &[("zone", "b")], json!([]), true),
    ]
}

#[test]
fn placement_table() {
    let pods = |n| Resources {
        pods: n,
        ..Default::default()
    };
    let counts: HashMap<String, Resources> =
        [("w1".to_string(), pods(3)), ("w2".to_string(), pods(1))].into();
    let cases: Vec<(&str, serde_json::Value, Result<&str, &str>)> = vec![
        ("fewest pods wins", json!({}), Ok("w2")),
        ("node selector", json!({"nodeSelector": {"disk": "ssd"}}), Ok("w1")),
        (
            "affinity on metadata.name",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}]}]}}}}),
            Ok("w1"),
        ),
        (
            "affinity NotIn",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}}}),
            Ok("w1"),
        ),
        (
            "affinity Exists, terms ORed",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nope", "operator": "Exists"}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
            ]}}}}),
            Ok("w2"),
        ),
        (
            "control-plane toleration with selector",
            json!({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}, "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}),
            Ok("cp"),
        ),
        (
            "tolerate everything",
            json!({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}, "tolerations": [{"operator": "Exists"}]}),
            Ok("cp"),
        ),
        (
            "selector matches nothing",
            json!({"nodeSelector": {"zone": "c"}}),
            Err("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
        ),
        (
            "wrong toleration value",
            json!({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}, "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "x"}]}),
            Err("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
        ),
        (
            "empty term matches nothing",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}),
            Err("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
        ),
    ];
    for (name, s, want) in cases {
        let got = place(&spec(s), &cluster(), &counts, &HashMap::new());
        assert_eq!(got.as_deref().map_err(String::as_str), want, "{name}");
    }
}

#[test]
fn ties_break_by_name_and_not_ready_is_a_taint() {
    let nodes = vec![
        node("b", &[], json!([]), true),
        node("a", &[], json!([]), true),
        node("c", &[], json!([]), false),
    ];
    assert_eq!(
        place(&spec(json!({})), &nodes, &HashMap::new(), &HashMap::new()),
        Ok("a".to_string())
    );
    let only_c = vec![nodes[2].clone()];
    assert_eq!(
        place(&spec(json!({})), &only_c, &HashMap::new(), &HashMap::new()),
        Err("0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.".to_string())
    );
    let tolerant = spec(json!({"tolerations": [{"key": NOT_READY_TAINT, "operator": "Exists"}]}));
    assert_eq!(
        place(&tolerant, &only_c, &HashMap::new(), &HashMap::new()),
        Ok("c".to_string())
    );
    assert_eq!(
        place(&spec(json!({})), &[], &HashMap::new(), &HashMap::new()),
        Err("no nodes available to schedule pods".to_string())
    );
}

#[test]
fn unschedulable_and_noexecute() {
    let mut cordoned = node("x", &[], json!([]), true);
    cordoned.unschedulable = true;
    let tainted = node(
        "y",
        &[],
        json!([{"key": "k", "value": "v", "effect": "NoExecute"}, {"key": "p", "effect": "PreferNoSchedule"}]),
        true,
    );
    let nodes = vec![cordoned, tainted];
    assert_eq!(
        place(&spec(json!({})), &nodes, &HashMap::new(), &HashMap::new()),
        Err("0/2 nodes are available: 1 node(s) had untolerated taint {k: v}, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.".to_string())
    );
    let tol = spec(json!({"tolerations": [{"key": "k", "value": "v", "effect": "NoExecute"}]}));
    assert_eq!(
        place(&tol, &nodes, &HashMap::new(), &HashMap::new()),
        Ok("y".to_string())
    );
}

#[test]
fn toleration_table() {
    let taint = |k: &str, v: &str, e: &str| Taint {
        key: k.into(),
        value: Some(v.into()),
        effect: e.into(),
        ..Default::default()
    };
    let tol = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
    let cases = [
        (
            json!({"key": "a", "value": "1"}),
            taint("a", "1", "NoSchedule"),
            true,
        ),
        (
            json!({"key": "a", "value": "2"}),
            taint("a", "1", "NoSchedule"),
            false,
        ),
        (
            json!({"key": "a", "operator": "Exists"}),
            taint("a", "1", "NoSchedule"),
            true,
        ),
        (
            json!({"key": "a", "operator": "Exists", "effect": "NoExecute"}),
            taint("a", "1", "NoSchedule"),
            false,
        ),
        (
            json!({"operator": "Exists"}),
            taint("z", "", "NoExecute"),
            true,
        ),
        (
            json!({"key": "b", "operator": "Exists"}),
            taint("a", "", "NoSchedule"),
            false,
        ),
    ];
    for (t, taint, want) in cases {
        assert_eq!(tolerates(&tol(t.clone()), &taint), want, "{t}");
    }
}

#[test]
fn resources_fit_and_are_charged_per_node() {
    let sized = |name: &str, cpu: &str, pods: &str| {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": pods}}
        }))
        .unwrap();
        NodeInfo::from_node(&n)
    };
    let mut nodes = cluster();
    nodes[1] = sized("w1", "4", "110");
    nodes[2] = sized("w2", "2", "1");
    let wants = |cpu: &str| {
        let mut s = spec(json!({}));
        s.containers[0].resources =
            Some(serde_json::from_value(json!({"requests": {"cpu": cpu}})).unwrap());
        s
    };
    let used: HashMap<String, Resources> = [(
        "w1".to_string(),
        Resources {
            milli_cpu: 3500,
            memory: 0,
            pods: 5,
        },
    )]
    .into();
    // w2 is emptier, w1 has 500m left: a small pod goes to w2, a 1-cpu pod only fits w2.
    assert_eq!(
        place(&wants("100m"), &nodes, &used, &HashMap::new()),
        Ok("w2".to_string())
    );
    assert_eq!(
        place(&wants("1"), &nodes, &used, &HashMap::new()),
        Ok("w2".to_string())
    );
    let w2_full: HashMap<String, Resources> = [
        ("w1".to_string(), used["w1"]),
        (
            "w2".to_string(),
            Resources {
                milli_cpu: 0,
                memory: 0,
                pods: 1,
            },
        ),
    ]
    .into();
    assert_eq!(
        place(&wants("500m"), &nodes, &w2_full, &HashMap::new()),
        Ok("w1".to_string())
    );
    assert_eq!(
        place(&wants("100"), &nodes, &w2_full, &HashMap::new()),
        Err("0/3 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.".to_string())
    );
}

#[test]
fn replicas_spread_before_fewest_pods() {
    let nodes = vec![
        node("a", &[], json!([]), true),
        node("b", &[], json!([]), true),
    ];
    // `b` runs three other pods, `a` two replicas of this pod's controller.
    let mut used: HashMap<String, Resources> = HashMap::new();
    used.entry("a".into()).or_default().pods = 2;
    used.entry("b".into()).or_default().pods = 3;
    let siblings = HashMap::from([("a".to_string(), 2)]);
    assert_eq!(
        place(&spec(json!({})), &nodes, &used, &siblings),
        Ok("b".to_string())
    );
    // Without siblings the fewest pods still decide.
    assert_eq!(
        place(&spec(json!({})), &nodes, &used, &HashMap::new()),
        Ok("a".to_string())
    );
}
