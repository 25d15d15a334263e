//! Renders tables the way kubectl prints them and compares with expected text.

use serde_json::{json, Value};

use super::{now, res};
use crate::table;

/// kubectl's human-readable printer: upper-case headers, priority-0 columns unless wide,
/// tabwriter with minimum width 6 and padding 3, the last column unpadded.
fn render(table: &Value, wide: bool) -> String {
    let cols = table["columnDefinitions"].as_array().unwrap();
    let keep: Vec<usize> = (0..cols.len())
        .filter(|&i| wide || cols[i]["priority"] == 0)
        .collect();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut lines: Vec<Vec<String>> = vec![keep
        .iter()
        .map(|&i| text(&cols[i]["name"]).to_uppercase())
        .collect()];
    for row in table["rows"].as_array().unwrap() {
        lines.push(keep.iter().map(|&i| text(&row["cells"][i])).collect());
    }
    let widths: Vec<usize> = (0..keep.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].len() + 3)
                .max()
                .unwrap_or(0)
                .max(6)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let last = line.len() - 1;
        for (c, cell) in line.iter().enumerate() {
            if c == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn pods_as_kubectl_prints_them() {
    let running = json!({"metadata": {"name": "web-7c9f8b6d5-x2x4q", "namespace": "default", "creationTimestamp": "2025-01-08T09:00:00Z"},
        "spec": {"containers": [{"name": "nginx"}], "nodeName": "kinet-worker"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.5"}], "containerStatuses": [
            {"name": "nginx", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2025-01-10T09:00:00Z"}}}]}});
    let pulling = json!({"metadata": {"name": "db-0", "namespace": "default", "creationTimestamp": "2025-01-10T11:59:15Z"},
        "spec": {"containers": [{"name": "pg"}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "pg", "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
    let t = table(res("", "pods"), &[&running, &pulling], "100", now());
    let want = "\
NAME                  READY   STATUS             RESTARTS     AGE
web-7c9f8b6d5-x2x4q   1/1     Running            1 (3h ago)   2d3h
db-0                  0/1     ImagePullBackOff   0            45s
";
    assert_eq!(render(&t, false), want);
    let wide = "\
NAME                  READY   STATUS             RESTARTS     AGE    IP           NODE           NOMINATED NODE   READINESS GATES
web-7c9f8b6d5-x2x4q   1/1     Running            1 (3h ago)   2d3h   10.244.1.5   kinet-worker   <none>           <none>
db-0                  0/1     ImagePullBackOff   0            45s    <none>       <none>         <none>           <none>
";
    assert_eq!(render(&t, true), wide);
}

#[test]
fn services_and_nodes_as_kubectl_prints_them() {
    let kubernetes = json!({"metadata": {"name": "kubernetes", "creationTimestamp": "2025-01-08T09:00:00Z"},
        "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 443, "protocol": "TCP"}]}});
    let web = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-10T11:30:00Z"},
        "spec": {"type": "NodePort", "clusterIPs": ["10.96.100.7"], "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}});
    let t = table(res("", "services"), &[&kubernetes, &web], "5", now());
    let want = "\
NAME         TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)        AGE
kubernetes   ClusterIP   10.96.0.1     <none>        443/TCP        2d3h
web          NodePort    10.96.100.7   <none>        80:30080/TCP   30m
";
    assert_eq!(render(&t, false), want);

    let cp = json!({"metadata": {"name": "kinet-control-plane", "creationTimestamp": "2025-01-10T11:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0"}}});
    let w = json!({"metadata": {"name": "kinet-worker", "creationTimestamp": "2025-01-10T11:00:00Z"},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0"}}});
    let t = table(res("", "nodes"), &[&cp, &w], "9", now());
    let want = "\
NAME                  STATUS                     ROLES           AGE   VERSION
kinet-control-plane   Ready                      control-plane   60m   v1.32.0
kinet-worker          Ready,SchedulingDisabled   <none>          60m   v1.32.0
";
    assert_eq!(render(&t, false), want);
}

#[test]
fn claims_as_kubectl_prints_them() {
    let pending = json!({"metadata": {"name": "data-web-0", "namespace": "default", "creationTimestamp": "2025-01-10T11:59:15Z"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "standard"},
        "status": {"phase": "Pending"}});
    let bound = json!({"metadata": {"name": "logs", "namespace": "default", "creationTimestamp": "2025-01-10T11:00:00Z",
            "annotations": {"volume.beta.kubernetes.io/storage-class": "slow"}},
        "spec": {"volumeName": "pv-7", "volumeMode": "Block", "volumeAttributesClassName": "gold",
            "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"]}});
    let going = json!({"metadata": {"name": "old", "creationTimestamp": "2025-01-08T09:00:00Z", "deletionTimestamp": "2025-01-10T12:00:00Z"},
        "spec": {}, "status": {"phase": "Bound"}});
    let t = table(
        res("", "persistentvolumeclaims"),
        &[&pending, &bound, &going],
        "7",
        now(),
    );
    let want = "\
NAME         STATUS        VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE
data-web-0   Pending                                          standard       <unset>                 45s
logs         Bound         pv-7     2Gi        RWO,RWX        slow           gold                    60m
old          Terminating                                                     <unset>                 2d3h
";
    assert_eq!(render(&t, false), want);
    let wide = render(&t, true);
    let modes: Vec<&str> = wide
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(modes, ["VOLUMEMODE", "<unset>", "Block", "<unset>"]);
}
