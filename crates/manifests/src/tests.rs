use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::Value;

use super::*;

fn all() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        ("dns", Addon::Dns(dns::DnsAddon::new(vec![])).objects()),
        (
            "proxy",
            Addon::Proxy(proxy::ProxyAddon::default()).objects(),
        ),
        ("policy", Addon::Policy.objects()),
        ("ingress", Addon::Ingress.objects()),
    ]
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The pod template's spec of the add-on's one workload.
fn pod_spec(objects: &[Value]) -> k8s_openapi::api::core::v1::PodSpec {
    let workload = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
        .expect("one workload");
    let template = if workload["kind"] == "Deployment" {
        typed::<Deployment>(workload.clone()).spec.unwrap().template
    } else {
        typed::<DaemonSet>(workload.clone()).spec.unwrap().template
    };
    template.spec.unwrap()
}

#[test]
fn each_workload_runs_as_its_own_account_bound_to_its_role() {
    for (name, objects) in all() {
        let pod = pod_spec(&objects);
        let account = pod.service_account_name.clone().unwrap();
        let sa = of_kind(&objects, "ServiceAccount");
        assert_eq!(sa.len(), 1, "{name}");
        assert_eq!(sa[0]["metadata"]["name"], account.as_str(), "{name}");
        let binding: ClusterRoleBinding = typed(of_kind(&objects, "ClusterRoleBinding")[0].clone());
        let role: ClusterRole = typed(of_kind(&objects, "ClusterRole")[0].clone());
        assert_eq!(binding.role_ref.name, role.metadata.name.unwrap(), "{name}");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(subject.name, account, "{name}");
        assert_eq!(
            subject.namespace.as_deref(),
            sa[0]["metadata"]["namespace"].as_str(),
            "{name}"
        );
        // Every object says what it is, as `kubectl apply` needs.
        for o in &objects {
            assert!(o["apiVersion"].is_string() && o["kind"].is_string(), "{o}");
        }
    }
}

#[test]
fn roles_grant_no_wildcards_and_write_only_events_and_ingress_status() {
    for (name, objects) in all() {
        let role: ClusterRole = typed(of_kind(&objects, "ClusterRole")[0].clone());
        for rule in role.rules.unwrap() {
            let resources = rule.resources.unwrap_or_default();
            assert!(!rule.verbs.iter().any(|v| v == "*"), "{name}");
            assert!(
                !resources
                    .iter()
                    .any(|r| r == "*" || r == "secrets" && name != "ingress"),
                "{name}"
            );
            let writes = rule
                .verbs
                .iter()
                .any(|v| !["get", "list", "watch"].contains(&v.as_str()));
            if writes {
                assert!(
                    resources == ["events"] || resources == ["ingresses/status"],
                    "{name} writes {resources:?}"
                );
            }
        }
    }
}

#[test]
fn node_daemons_run_on_every_node_in_its_network_namespace() {
    for objects in [
        Addon::Proxy(proxy::ProxyAddon::default()).objects(),
        Addon::Policy.objects(),
    ] {
        let pod = pod_spec(&objects);
        assert_eq!(pod.host_network, Some(true));
        let tolerations = pod.tolerations.unwrap();
        assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
        assert!(tolerations[0].key.is_none());
        let env: Vec<String> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(env, ["NODE_NAME", "NODE_IP"]);
    }
}

#[test]
fn the_proxy_serves_labelled_services_only_beside_kube_proxy() {
    let replace = proxy::ProxyAddon::default();
    assert!(!replace.args().contains(&"--service-proxy-name".to_string()));
    let beside = proxy::ProxyAddon {
        beside_kube_proxy: true,
        ..Default::default()
    };
    assert_eq!(
        beside.args()[4..],
        [
            "--service-proxy-name",
            proxy::PROXY_NAME,
            "--metrics-bind-address",
            "0.0.0.0:10263",
            "--healthz-bind-address",
            "0.0.0.0:10264"
        ]
    );
}

#[test]
fn yaml_is_one_document_per_object() {
    let objects = Addon::Ingress.objects();
    let text = yaml(&objects);
    let docs: Vec<Value> = text
        .split("---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    assert_eq!(docs, objects);
}
