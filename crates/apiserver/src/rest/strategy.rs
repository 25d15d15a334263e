//! Per-kind storage strategy, as kube-apiserver's registry strategies: what a create resets,
//! and which part of the object an update of the main resource or of `/status` may change.

use kinet_types::registry::Resource;
use kinet_types::wellknown;
use serde_json::{json, Value};

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: status changes are ignored for kinds with a status subresource.
    Main,
    /// `/status`: only status changes are kept.
    Status,
    /// A pod's `/ephemeralcontainers`: only `spec.ephemeralContainers` changes are kept.
    EphemeralContainers,
    /// A CertificateSigningRequest's `/approval`: only `status.conditions` changes are kept.
    Approval,
}

/// The status a new object starts with (clients cannot create objects with a status, except Nodes
/// and the kinds without a status subresource).
pub fn prepare_create(resource: &Resource, obj: &mut Value) {
    let status = match resource.kind {
        "Pod" => json!({"phase": "Pending", "qosClass": qos_class(obj)}),
        "Deployment" | "ReplicaSet" | "CronJob" => json!({}),
        "StatefulSet" => json!({"replicas": 0, "availableReplicas": 0}),
        "Job" => {
            generate_job_selector(obj);
            json!({})
        }
        "PersistentVolumeClaim" => json!({"phase": "Pending"}),
        "PodDisruptionBudget" => {
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
        }
        "DaemonSet" => {
            json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})
        }
        "Service" | "Ingress" => json!({"loadBalancer": {}}),
        "Namespace" => json!({"phase": "Active"}),
        "CertificateSigningRequest" => json!({}),
        _ => return,
    };
    obj["status"] = status;
}

/// The Job strategy's generateSelector: unless `spec.manualSelector`, the pods are selected by the
/// Job's uid, and the template carries the uid and the Job's name under both label spellings.
fn generate_job_selector(job: &mut Value) {
    if job["spec"]["manualSelector"] == json!(true) {
        return;
    }
    let uid = job["metadata"]["uid"].clone();
    let name = job["metadata"]["name"].clone();
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    for (key, value) in [
        (wellknown::JOB_CONTROLLER_UID, &uid),
        (wellknown::LEGACY_CONTROLLER_UID, &uid),
        (wellknown::JOB_NAME, &name),
        (wellknown::LEGACY_JOB_NAME, &name),
    ] {
        labels[key] = value.clone();
    }
    job["spec"]["selector"] = json!({"matchLabels": {wellknown::JOB_CONTROLLER_UID: uid}});
}

/// Guaranteed for containers with requests equal to limits for cpu and memory, BestEffort with
/// none at all, Burstable otherwise.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod["spec"][*f].as_array())
        .flatten()
        .collect();
    let has_any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c["resources"][*k]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !has_any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][*r];
            !limit.is_null()
                && (c["resources"]["requests"][*r].is_null()
                    || c["resources"]["requests"][*r] == *limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Combines the stored object and the client's new version according to the part written.
pub fn prepare_update(resource: &Resource, part: Part, old: &Value, new: Value) -> Value {
    match part {
        Part::Main if resource.has_status() => {
            let mut new = new;
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
            if resource.kind == "Service" {
                drop_type_dependent_fields(old, &mut new);
            }
            if resource.kind == "CertificateSigningRequest" {
                // kube-apiserver's csrStrategy: the request and its requestor never change.
                new["spec"] = old["spec"].clone();
            }
            new
        }
        Part::Main => new,
        Part::Approval => {
            let mut merged = old.clone();
            merged["status"]["conditions"] = new["status"]["conditions"].clone();
            merged
        }
        Part::Status => {
            // Everything but status and the metadata a status writer may touch comes from `old`.
            let mut merged = old.clone();
            if let Some(status) = new.get("status") {
                merged["status"] = status.clone();
            }
            for field in ["labels", "annotations"] {
                if let Some(v) = new["metadata"].get(field) {
                    merged["metadata"][field] = v.clone();
                }
            }
            merged
        }
        Part::EphemeralContainers => {
            // kube-apiserver's dropNonEphemeralContainerUpdates.
            let mut merged = old.clone();
            match new["spec"].get("ephemeralContainers") {
                Some(ec) => merged["spec"]["ephemeralContainers"] = ec.clone(),
                None => {
                    merged["spec"]
                        .as_object_mut()
                        .map(|s| s.remove("ephemeralContainers"));
                }
            }
            merged
        }
    }
}

/// kube-apiserver's `dropTypeDependentFields`: when a Service changes type, the fields only the
/// old type used are cleared if the client left them as they were, so `kubectl patch` to
/// `ClusterIP` works without also nulling node ports and traffic policies.
fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let kind = |v: &Value| {
        v["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let (was, now) = (kind(old), kind(new));
    if was == now {
        return;
    }
    let external = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let Some(spec) = new["spec"].as_object_mut() else {
        return;
    };
    if external(&was) && !external(&now) {
        let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let kept = old_ports
                .iter()
                .any(|o| o["port"] == port["port"] && o.get("nodePort") == port.get("nodePort"));
            if kept {
                port.as_object_mut().map(|p| p.remove("nodePort"));
            }
        }
    }
    let clear = |field: &str, when: bool, spec: &mut serde_json::Map<String, Value>| {
        if when && old["spec"].get(field) == spec.get(field) {
            spec.remove(field);
        }
    };
    clear(
        "externalTrafficPolicy",
        external(&was) && !external(&now),
        spec,
    );
    clear(
        "healthCheckNodePort",
        was == "LoadBalancer" && now != "LoadBalancer",
        spec,
    );
    clear(
        "allocateLoadBalancerNodePorts",
        was == "LoadBalancer" && now != "LoadBalancer",
        spec,
    );
    clear(
        "loadBalancerClass",
        was == "LoadBalancer" && now != "LoadBalancer",
        spec,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::registry::lookup;

    #[test]
    fn main_updates_ignore_status_and_status_updates_ignore_spec() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"spec": {"replicas": 3}, "status": {"replicas": 9}});
        let main = prepare_update(deploy, Part::Main, &old, new.clone());
        assert_eq!(
            main,
            json!({"spec": {"replicas": 3}, "status": {"replicas": 1}})
        );
        let status = prepare_update(deploy, Part::Status, &old, new);
        assert_eq!(
            status,
            json!({"spec": {"replicas": 1}, "status": {"replicas": 9}})
        );
        let cm = lookup("", "v1", "configmaps").unwrap();
        assert_eq!(
            prepare_update(cm, Part::Main, &json!({}), json!({"data": {"a": "b"}})),
            json!({"data": {"a": "b"}})
        );
    }

    #[test]
    fn a_request_keeps_its_spec_and_approval_changes_only_conditions() {
        let csr = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let old = json!({"spec": {"username": "a"}, "status": {"certificate": "c"}});
        let new = json!({"spec": {"username": "b"}, "status": {"certificate": "d",
            "conditions": [{"type": "Approved", "status": "True"}]}});
        assert_eq!(prepare_update(csr, Part::Main, &old, new.clone()), old);
        assert_eq!(
            prepare_update(csr, Part::Approval, &old, new),
            json!({"spec": {"username": "a"}, "status": {"certificate": "c",
                "conditions": [{"type": "Approved", "status": "True"}]}})
        );
    }

    #[test]
    fn the_ephemeral_containers_subresource_changes_only_them() {
        let pod = lookup("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"labels": {"a": "1"}},
            "spec": {"containers": [{"name": "web"}]}, "status": {"phase": "Running"}});
        let new = json!({"metadata": {"labels": {"a": "2"}},
            "spec": {"containers": [{"name": "other"}], "ephemeralContainers": [{"name": "d"}]},
            "status": {"phase": "Failed"}});
        let merged = prepare_update(pod, Part::EphemeralContainers, &old, new);
        let mut want = old.clone();
        want["spec"]["ephemeralContainers"] = json!([{"name": "d"}]);
        assert_eq!(merged, want);
    }

    #[test]
    fn a_service_turned_cluster_ip_drops_what_only_its_old_type_used() {
        let svc = lookup("", "v1", "services").unwrap();
        let old = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000, "allocateLoadBalancerNodePorts": true,
            "ports": [{"port": 80, "nodePort": 30080}]}, "status": {}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        let merged = prepare_update(svc, Part::Main, &old, new);
        assert_eq!(
            merged["spec"],
            json!({"type": "ClusterIP", "ports": [{"port": 80}]})
        );
        // A value the client changed is its own: left for validation to judge.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        new["spec"]["ports"][0]["nodePort"] = json!(30081);
        let merged = prepare_update(svc, Part::Main, &old, new);
        assert_eq!(merged["spec"]["ports"][0]["nodePort"], 30081);
    }

    #[test]
    fn a_new_job_selects_its_pods_by_its_uid() {
        let jobs = lookup("batch", "v1", "jobs").unwrap();
        let mut job =
            json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {"spec": {}}}});
        prepare_create(jobs, &mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u1", "controller-uid": "u1",
                "batch.kubernetes.io/job-name": "pi", "job-name": "pi"})
        );
        let mut manual = json!({"metadata": {"name": "m", "uid": "u2"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"a": "b"}}}});
        prepare_create(jobs, &mut manual);
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"a": "b"}})
        );
    }

    #[test]
    fn new_pods_are_pending_with_a_qos_class() {
        let pod = lookup("", "v1", "pods").unwrap();
        let mut p =
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}});
        prepare_create(pod, &mut p);
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        let mut g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        prepare_create(pod, &mut g);
        assert_eq!(g["status"]["qosClass"], "Guaranteed");
    }
}
