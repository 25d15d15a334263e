use serde_json::json;

use super::*;

fn resource(plural: &str) -> &'static Resource {
    kinet_types::registry::lookup("", "v1", plural).unwrap()
}

fn quota(spec: Value) -> Value {
    json!({"metadata": {"name": "compute"}, "spec": spec})
}

/// `quota` with `used` kept in its status, as the quota status task writes it.
fn charged(quota: &Value, used: &ResourceList) -> Value {
    let mut q = quota.clone();
    let text: serde_json::Map<String, Value> = used
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.to_string())))
        .collect();
    q["status"] = json!({ "used": text });
    q
}

fn refused(charge: Charge) -> String {
    match charge {
        Charge::Refused(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
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
        refused(charge(&charged(&q, &used), pods, &pod("500m", "512Mi"), None)),
        "exceeded quota: compute, requested: limits.memory=512Mi,pods=1,requests.cpu=500m, \
         used: limits.memory=768Mi,pods=2,requests.cpu=750m, limited: limits.memory=1Gi,pods=2,requests.cpu=1"
    );
    let roomy = quota(json!({"hard": {"pods": "10", "requests.cpu": "1", "limits.memory": "1Gi"}}));
    let roomy = charged(&roomy, &used);
    let Charge::Used(after) = charge(&roomy, pods, &pod("250m", "256Mi"), None) else {
        panic!("a pod that fits is charged");
    };
    assert_eq!(after["requests.cpu"].to_string(), "1");
    assert_eq!(after["limits.memory"].to_string(), "1Gi");
    assert_eq!(after["pods"].to_string(), "3");
    let bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b",
        "resources": {"requests": {"cpu": "1"}}}]}});
    assert_eq!(
        refused(charge(&roomy, pods, &bare, None)),
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
    let q = charged(&q, &used);
    assert!(matches!(
        charge(&q, services, &node_port, None),
        Charge::Used(_)
    ));
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    assert_eq!(
        refused(charge(&q, services, &lb, None)),
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

#[test]
fn an_update_is_charged_only_what_grows() {
    let services = resource("services");
    let q = quota(
        json!({"hard": {"services.nodeports": "3", "services.loadbalancers": "1",
        "services": "5"}}),
    );
    let plain = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}});
    let q = charged(&q, &used(&q, [(services, &plain)]));
    // The same Service again charges nothing; turning it into a LoadBalancer charges its two
    // node ports and one balancer, but not a second Service.
    assert_eq!(charge(&q, services, &plain, Some(&plain)), Charge::Free);
    let mut lb = plain.clone();
    lb["spec"]["type"] = json!("LoadBalancer");
    let Charge::Used(after) = charge(&q, services, &lb, Some(&plain)) else {
        panic!("the growth fits");
    };
    assert_eq!(after["services"].to_string(), "1");
    assert_eq!(after["services.nodeports"].to_string(), "2");
    assert_eq!(after["services.loadbalancers"].to_string(), "1");
    // Going back down charges nothing (the status task gives the share back).
    assert_eq!(charge(&q, services, &plain, Some(&lb)), Charge::Free);

    let claims = resource("persistentvolumeclaims");
    let claim = |size: &str| {
        json!({"metadata": {"name": "c"},
        "spec": {"resources": {"requests": {"storage": size}}}})
    };
    let q = quota(json!({"hard": {"requests.storage": "10Gi"}}));
    let q = charged(&q, &used(&q, [(claims, &claim("4Gi"))]));
    assert_eq!(
        refused(charge(&q, claims, &claim("12Gi"), Some(&claim("4Gi")))),
        "exceeded quota: compute, requested: requests.storage=8Gi, used: requests.storage=4Gi, \
         limited: requests.storage=10Gi"
    );
    let Charge::Used(after) = charge(&q, claims, &claim("10Gi"), Some(&claim("4Gi"))) else {
        panic!("growing to the limit fits");
    };
    assert_eq!(after["requests.storage"].to_string(), "10Gi");
}

#[test]
fn a_quota_without_computed_usage_is_not_charged() {
    let pods = resource("pods");
    let q = quota(json!({"hard": {"pods": "2", "requests.cpu": "1"}}));
    assert_eq!(
        charge(&q, pods, &pod("1", "1Gi"), None),
        Charge::Unknown(vec!["pods".into(), "requests.cpu".into()])
    );
    assert_eq!(
        unknown_status(&q, &["pods".into(), "requests.cpu".into()]),
        "status unknown for quota: compute, resources: pods,requests.cpu"
    );
    let scoped = quota(json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}));
    assert_eq!(charge(&scoped, pods, &pod("1", "1Gi"), None), Charge::Free);
}
