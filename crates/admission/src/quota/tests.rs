use serde_json::json;

use super::*;

fn resource(plural: &str) -> &'static Resource {
    kinet_types::registry::lookup("", "v1", plural).unwrap()
}

fn quota(spec: Value) -> Value {
    json!({"metadata": {"name": "compute"}, "spec": spec})
}

fn pod(cpu: &str, memory: &str) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}}]}})
}

#[test]
fn pods_charge_their_count_and_compute_until_they_finish() {
    let pods = resource("pods");
    let u = usage(pods, &pod("250m", "64Mi"));
    for (k, v) in [
        ("pods", "1"),
        ("count/pods", "1"),
        ("cpu", "250m"),
        ("requests.cpu", "250m"),
        ("limits.memory", "64Mi"),
    ] {
        assert_eq!(u[k].to_string(), v, "{k}");
    }
    let mut done = pod("250m", "64Mi");
    done["status"] = json!({"phase": "Succeeded"});
    assert_eq!(
        usage(pods, &done).keys().collect::<Vec<_>>(),
        ["count/pods"]
    );
}

#[test]
fn a_pod_over_the_quota_is_refused_with_upstreams_text() {
    let pods = resource("pods");
    let q = quota(json!({"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi"}}));
    let existing = [pod("500m", "512Mi"), pod("250m", "256Mi")];
    let used = used(&q, existing.iter().map(|p| (pods, p)));
    assert_eq!(used["requests.cpu"].to_string(), "750m");
    assert_eq!(used["limits.memory"].to_string(), "768Mi");
    assert_eq!(used["pods"].to_string(), "2");
    assert_eq!(
        refusal(&q, &used, pods, &pod("500m", "512Mi")).unwrap(),
        "exceeded quota: compute, requested: limits.memory=512Mi,pods=1,requests.cpu=500m, \
         used: limits.memory=768Mi,pods=2,requests.cpu=750m, limited: limits.memory=1Gi,pods=2,requests.cpu=1"
    );
    let roomy = quota(json!({"hard": {"pods": "10", "requests.cpu": "1", "limits.memory": "1Gi"}}));
    assert_eq!(refusal(&roomy, &used, pods, &pod("250m", "256Mi")), None);
    let bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b",
        "resources": {"requests": {"cpu": "1"}}}]}});
    assert_eq!(
        refusal(&roomy, &used, pods, &bare).unwrap(),
        "failed quota: compute: must specify limits.memory for: a,b; requests.cpu for: a"
    );
}

#[test]
fn object_counts_and_service_kinds() {
    let services = resource("services");
    let q = quota(
        json!({"hard": {"services.nodeports": "2", "services.loadbalancers": "0", "count/services": "5"}}),
    );
    let node_port =
        json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    let used = used(&q, [(services, &node_port)]);
    assert_eq!(used["services.nodeports"].to_string(), "1");
    assert_eq!(used["services.loadbalancers"].to_string(), "0");
    assert_eq!(refusal(&q, &used, services, &node_port), None);
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    assert_eq!(
        refusal(&q, &used, services, &lb).unwrap(),
        "exceeded quota: compute, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"
    );
    let deployments = kinet_types::registry::lookup("apps", "v1", "deployments").unwrap();
    assert_eq!(count_key(deployments), "count/deployments.apps");
    assert_eq!(
        charged_by("count/deployments.apps"),
        Some(("apps", "deployments"))
    );
    assert_eq!(charged_by("limits.cpu"), Some(("", "pods")));
    assert_eq!(
        charged_by("requests.storage"),
        Some(("", "persistentvolumeclaims"))
    );
    assert_eq!(charged_by("bogus"), None);
}

#[test]
fn scoped_quotas_cover_only_the_pods_in_scope() {
    let pods = resource("pods");
    let best_effort = quota(json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}));
    let plain = json!({"spec": {"containers": [{"name": "c"}]}});
    assert!(covers(&best_effort, pods, &plain));
    assert!(!covers(&best_effort, pods, &pod("1", "1Gi")));
    assert!(!covers(&best_effort, resource("services"), &json!({})));
    let critical = quota(
        json!({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
    );
    let high = json!({"spec": {"priorityClassName": "high", "containers": []}});
    assert!(covers(&critical, pods, &high));
    assert!(!covers(&critical, pods, &plain));
}
