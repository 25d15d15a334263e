//! The ingress controller: namespace `kinet-ingress` with a ServiceAccount, a Deployment
//! running the `kinet-ingress` image, a LoadBalancer Service, and the IngressClass `kinet`,
//! marked default.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::{json, Value};

use crate::objects::{self, cluster_role_and_binding, typed, value};

pub const NAMESPACE: &str = "kinet-ingress";
/// The Deployment, Service and ServiceAccount share it.
pub const NAME: &str = "kinet-ingress";
/// The IngressClass kinet's controller serves.
pub const CLASS: &str = "kinet";
pub const METRICS_PORT: i32 = 10254;

fn labels() -> Value {
    json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "controller"})
}

pub fn namespace() -> Namespace {
    typed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
}

pub fn service_account() -> ServiceAccount {
    typed(objects::service_account(NAMESPACE, NAME))
}

pub fn container() -> Container {
    let probe = |delay: i32| {
        json!({"httpGet": {"path": "/healthz", "port": METRICS_PORT, "scheme": "HTTP"},
               "initialDelaySeconds": delay, "periodSeconds": 10, "timeoutSeconds": 1,
               "successThreshold": 1, "failureThreshold": 3})
    };
    typed(json!({
        "name": "controller",
        "image": kinet_images::INGRESS_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--publish-service", format!("{NAMESPACE}/{NAME}")],
        "ports": [
            {"name": "http", "containerPort": 80, "protocol": "TCP"},
            {"name": "https", "containerPort": 443, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}},
        "livenessProbe": probe(10),
        "readinessProbe": probe(0),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
        },
    }))
}

pub fn deployment() -> Deployment {
    typed(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels()},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels()},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "serviceAccountName": NAME,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [container()],
                },
            },
        },
    }))
}

pub fn service() -> Service {
    typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels()},
        "spec": {
            "type": "LoadBalancer",
            "selector": labels(),
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"},
            ],
        },
    }))
}

pub fn ingress_class() -> IngressClass {
    typed(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {
            "name": CLASS,
            "labels": labels(),
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
        },
        "spec": {"controller": kinet_ingress::CONTROLLER},
    }))
}

/// What the controller reads and writes, and nothing more: ingress-nginx's ClusterRole,
/// less what kinet's controller does not use (leader election, ConfigMaps, nodes).
pub fn rbac() -> (ClusterRole, ClusterRoleBinding) {
    let rules = json!([
        {"apiGroups": [""], "resources": ["services", "secrets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]);
    cluster_role_and_binding(NAME, rules, NAMESPACE, NAME)
}

/// Every object of the ingress add-on, for `kinet manifests ingress`.
pub fn objects() -> Vec<Value> {
    let (role, binding) = rbac();
    vec![
        value(&namespace()),
        value(&service_account()),
        value(&role),
        value(&binding),
        value(&ingress_class()),
        value(&service()),
        value(&deployment()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_fit_together() {
        let d = deployment();
        let spec = d.spec.unwrap();
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some(kinet_images::INGRESS_IMAGE)
        );
        let selector = spec.selector.match_labels.unwrap();
        let svc = service().spec.unwrap();
        assert_eq!(svc.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(svc.selector.as_ref(), Some(&selector));
        assert_eq!(
            spec.template.metadata.unwrap().labels.as_ref(),
            Some(&selector)
        );
        let class = ingress_class();
        assert_eq!(
            class.spec.unwrap().controller.as_deref(),
            Some(kinet_ingress::CONTROLLER)
        );
        assert_eq!(
            class.metadata.annotations.unwrap()[kinet_ingress::class::DEFAULT_CLASS_ANNOTATION],
            "true"
        );
        // The Service's target ports are the container's port names.
        let names: Vec<_> = pod.containers[0]
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.clone())
            .collect();
        for p in svc.ports.unwrap() {
            let target = p.target_port.unwrap();
            let k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(t) = target
            else {
                panic!("named target port")
            };
            assert!(names.contains(&t), "{t}");
        }
    }
}
