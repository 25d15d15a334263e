//! NodeResourcesFit's arithmetic: what a pod requests, what a node can hold, and the words
//! kube-scheduler uses when it does not fit ("Too many pods", "Insufficient cpu", ...).

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// CPU in millicores, memory in bytes, and a pod count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: u64,
    pub memory: u64,
    pub pods: u64,
}

impl std::ops::AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.pods += o.pods;
    }
}

impl std::ops::SubAssign for Resources {
    fn sub_assign(&mut self, o: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.pods = self.pods.saturating_sub(o.pods);
    }
}

/// A node's `status.allocatable`. A resource the node does not report is not limited: nodes
/// registered by hand (no kubelet yet) often carry no allocatable at all, and must still
/// take pods. kube-scheduler would treat them as full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub milli_cpu: Option<u64>,
    pub memory: Option<u64>,
    pub pods: Option<u64>,
}

impl Allocatable {
    pub fn from_node(node: &Node) -> Allocatable {
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |k: &str| {
            alloc
                .and_then(|a| a.get(k))
                .and_then(|q| parse_quantity(&q.0))
        };
        Allocatable {
            milli_cpu: get("cpu").map(|v| (v * 1000.0).ceil() as u64),
            memory: get("memory").map(|v| v.ceil() as u64),
            pods: get("pods").map(|v| v as u64),
        }
    }

    /// Why `request` does not fit beside `used`, in kube-scheduler's words (empty: it fits).
    pub fn misfits(&self, request: &Resources, used: &Resources) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.pods.is_some_and(|a| used.pods + request.pods > a) {
            out.push("Too many pods");
        }
        let short = |alloc: Option<u64>, req: u64, used: u64| {
            req > 0 && alloc.is_some_and(|a| req > a.saturating_sub(used))
        };
        if short(self.milli_cpu, request.milli_cpu, used.milli_cpu) {
            out.push("Insufficient cpu");
        }
        if short(self.memory, request.memory, used.memory) {
            out.push("Insufficient memory");
        }
        out
    }
}

/// A pod's effective request, as `resourcehelper.PodRequests`: the sum over its containers,
/// at least the largest init container, plus the pod overhead; always one pod.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut total = Resources {
        pods: 1,
        ..Default::default()
    };
    for c in &spec.containers {
        total += container_requests(c);
    }
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        total.milli_cpu = total.milli_cpu.max(r.milli_cpu);
        total.memory = total.memory.max(r.memory);
    }
    if let Some(o) = &spec.overhead {
        total += from_list(o);
    }
    total
}

/// A container's requests; a limit without a request counts as the request, as API
/// defaulting would have made it.
fn container_requests(c: &Container) -> Resources {
    let Some(res) = &c.resources else {
        return Resources::default();
    };
    let mut list = res.limits.clone().unwrap_or_default();
    list.extend(res.requests.clone().unwrap_or_default());
    from_list(&list)
}

fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
    let get = |k: &str| list.get(k).and_then(|q| parse_quantity(&q.0));
    Resources {
        milli_cpu: get("cpu").map_or(0, |v| (v * 1000.0).ceil() as u64),
        memory: get("memory").map_or(0, |v| v.ceil() as u64),
        pods: 0,
    }
}

/// A resource.Quantity's value ("100m", "1.5", "8Gi", "1e3", "2k"); `None` if malformed or
/// negative. Floating point is exact enough for fitting pods onto nodes.
pub fn parse_quantity(s: &str) -> Option<f64> {
    kinet_types::quantity::Quantity::parse(s.trim())
        .filter(|q| !q.is_negative())
        .map(|q| q.as_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        for (q, want) in [
            ("100m", Some(0.1)),
            ("2", Some(2.0)),
            ("1.5", Some(1.5)),
            ("8Gi", Some(8.0 * 1073741824.0)),
            ("128974848", Some(128974848.0)),
            ("129e6", Some(129e6)),
            ("123Mi", Some(123.0 * 1048576.0)),
            ("2k", Some(2000.0)),
            ("1E", Some(1e18)),
            ("", None),
            ("abc", None),
            ("-1", None),
        ] {
            assert_eq!(parse_quantity(q), want, "{q}");
        }
    }

    #[test]
    fn pod_requests_sum_containers_and_cover_init() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"memory": "128Mi"}}},
                {"name": "c"}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "overhead": {"memory": "1Mi"}
        }))
        .unwrap();
        assert_eq!(
            pod_requests(&spec),
            Resources {
                milli_cpu: 2000,
                memory: (64 + 128 + 1) * 1048576,
                pods: 1
            }
        );
    }

    #[test]
    fn misfits_are_worded_like_kube_scheduler() {
        let alloc = Allocatable {
            milli_cpu: Some(4000),
            memory: Some(1 << 30),
            pods: Some(2),
        };
        let used = Resources {
            milli_cpu: 3500,
            memory: 1 << 29,
            pods: 2,
        };
        let big = Resources {
            milli_cpu: 1000,
            memory: 1 << 30,
            pods: 1,
        };
        assert_eq!(
            alloc.misfits(&big, &used),
            ["Too many pods", "Insufficient cpu", "Insufficient memory"]
        );
        let free = Resources::default();
        assert!(alloc.misfits(&big, &free).is_empty());
        // A request of nothing fits a node already over-committed.
        let zero = Resources {
            pods: 1,
            ..Default::default()
        };
        let full = Resources {
            milli_cpu: 9000,
            memory: 0,
            pods: 0,
        };
        assert!(alloc.misfits(&zero, &full).is_empty());
        assert!(Allocatable::default().misfits(&big, &used).is_empty());
    }
}
