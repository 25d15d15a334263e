//! Authorization of every request, as kube-apiserver's `--authorization-mode=Node,RBAC`:
//! `system:masters` may do anything, node agents go through the Node authorizer, then RBAC
//! decides from a cached graph of the stored roles and bindings. The graph is rebuilt on the
//! first request after any RBAC object changes (writes through this server mark it stale).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use http::Method;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kinet_rbac::graph::Objects;
use kinet_rbac::{bootstrap, node, Attributes, Decision, Graph, UserInfo, MASTERS};
use kinet_store::Store;
use kinet_types::ApiError;
use serde_json::{json, Value};

use crate::http::Query;
use crate::path::Target;
use crate::rest::collection_prefix;

/// The RBAC graph cache and the Node authorizer's rules.
pub struct Authorizer {
    /// Off only for `kinet bench api`'s baseline.
    enabled: bool,
    /// Counts RBAC changes; the cached graph records the count it was built at.
    changes: AtomicU64,
    graph: RwLock<(u64, Arc<Graph>)>,
    /// One rebuild at a time: the requests that wait for it then find it built.
    rebuilding: Mutex<()>,
    node_rules: Vec<PolicyRule>,
}

impl Authorizer {
    pub fn new(enabled: bool) -> Authorizer {
        Authorizer {
            enabled,
            changes: AtomicU64::new(1),
            graph: RwLock::new((0, Arc::new(Graph::default()))),
            rebuilding: Mutex::new(()),
            node_rules: bootstrap::node_rules(),
        }
    }

    /// An RBAC object changed: the next request rebuilds the graph.
    pub fn invalidate(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// The graph of every change counted so far. A graph is only ever replaced by one built
    /// later, so a slow rebuild can never put back rules a newer one removed.
    fn graph(&self, store: &Store) -> Arc<Graph> {
        let cached = || {
            let wanted = self.changes.load(Ordering::Acquire);
            let (built, graph) = &*self.graph.read().unwrap_or_else(|e| e.into_inner());
            (*built >= wanted).then(|| graph.clone()).ok_or(wanted)
        };
        let wanted = match cached() {
            Ok(graph) => return graph,
            Err(wanted) => wanted,
        };
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(graph) = cached() {
            return graph;
        }
        // Read after `wanted` was loaded, so the store holds at least those changes.
        let graph = Arc::new(build(store));
        let mut slot = self.graph.write().unwrap_or_else(|e| e.into_inner());
        if slot.0 < wanted {
            *slot = (wanted, graph.clone());
        }
        graph
    }

    /// The rules of a Role or ClusterRole, from the cached graph (empty if it does not exist).
    pub fn role_rules(
        &self,
        store: &Store,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<PolicyRule> {
        self.graph(store)
            .role_rules(kind, namespace, name)
            .map(|rules| rules.to_vec())
            .unwrap_or_default()
    }

    /// Every rule `user` holds in `namespace`.
    pub fn rules_for(&self, store: &Store, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        self.graph(store).rules_for(user, namespace)
    }

    pub fn authorize(&self, store: &Store, user: &UserInfo, a: &Attributes) -> Decision {
        if !self.enabled || user.in_group(MASTERS) {
            return Decision::Allow(String::new());
        }
        let by_node = node::authorize(user, a, &self.node_rules, &StorePods(store));
        if by_node.allowed() {
            return by_node;
        }
        self.graph(store).authorize(user, a)
    }
}

fn rbac_values(store: &Store, plural: &str) -> Vec<Arc<kinet_store::Stored>> {
    let resource = kinet_types::registry::lookup(kinet_rbac::GROUP, "v1", plural)
        .expect("RBAC kinds are served");
    store.list(&collection_prefix(resource, None)).0
}

fn build(store: &Store) -> Graph {
    let lists = [
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
    ]
    .map(|plural| rbac_values(store, plural));
    let [roles, cluster_roles, role_bindings, cluster_role_bindings] = lists
        .each_ref()
        .map(|l| l.iter().map(|s| &s.value).collect::<Vec<_>>());
    Graph::build(Objects {
        roles: &roles,
        cluster_roles: &cluster_roles,
        role_bindings: &role_bindings,
        cluster_role_bindings: &cluster_role_bindings,
    })
}

/// The stored ClusterRoles, for aggregation.
pub fn cluster_roles(store: &Store) -> Vec<Arc<kinet_store::Stored>> {
    rbac_values(store, "clusterroles")
}

struct StorePods<'a>(&'a Store);

impl node::PodsOnNode for StorePods<'_> {
    fn any(&self, namespace: &str, node: &str, f: &mut dyn FnMut(&Value) -> bool) -> bool {
        let pods = kinet_types::registry::lookup("", "v1", "pods").expect("pods are served");
        // Only the namespace asked about: a node's read is not a walk over every pod.
        self.0
            .list(&collection_prefix(pods, Some(namespace)))
            .0
            .iter()
            .filter(|p| p.value["spec"]["nodeName"].as_str() == Some(node))
            .any(|p| f(&p.value))
    }
}

/// kube-apiserver's RequestInfo for a resource request: the verb from the method (watch and
/// list for collections, deletecollection), `create` for exec, attach and port-forward (which
/// open streams), `get` for logs; a `metadata.name` field selector names the object.
pub fn resource_attributes(method: &Method, target: &Target, query: &Query) -> Attributes {
    let named = target.name.is_some();
    let watch = target.watch_prefix || query.flag("watch");
    let sub = target.subresource.as_deref().unwrap_or_default();
    let verb = match (method.as_str(), sub) {
        (_, "exec" | "attach" | "portforward") => "create",
        ("GET" | "HEAD", _) if watch => "watch",
        ("GET" | "HEAD", _) if named => "get",
        ("GET" | "HEAD", _) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) if named => "delete",
        ("DELETE", _) => "deletecollection",
        (other, _) => other,
    };
    let name = target.name.clone().or_else(|| {
        query
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="))
            .filter(|n| !n.contains(','))
            .map(str::to_string)
    });
    Attributes::resource(
        &verb.to_ascii_lowercase(),
        target.resource.group,
        target.resource.plural,
        sub,
        target.namespace.as_deref().unwrap_or_default(),
        name.as_deref().unwrap_or_default(),
    )
}

/// A non-resource request's attributes: the lower-case method on the path.
pub fn path_attributes(method: &Method, path: &str) -> Attributes {
    let verb = match method.as_str() {
        "HEAD" => "get".to_string(),
        m => m.to_ascii_lowercase(),
    };
    Attributes::non_resource(&verb, path)
}

/// kube-apiserver's 403: `pods is forbidden: User "..." cannot list resource "pods" in API
/// group "" in the namespace "default"`, with the object's name when there is one.
pub fn forbidden(user: &UserInfo, a: &Attributes) -> ApiError {
    let reason = a.forbidden_message(&user.name);
    if !a.resource_request {
        return ApiError::forbidden(format!("forbidden: {reason}"));
    }
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", a.name)
    };
    let mut err = ApiError::forbidden(message);
    err.details = Some(json!({"name": a.name, "group": a.api_group, "kind": a.resource}));
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::{route, Route};

    fn attrs(method: Method, path_and_query: &str) -> Attributes {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let Some(Route::Resource(t)) = route(path) else {
            panic!("{path}")
        };
        resource_attributes(&method, &t, &Query::parse(Some(query)))
    }

    #[test]
    fn request_info_verbs() {
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods");
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", "default"));
        assert_eq!(attrs(Method::GET, "/api/v1/pods?watch=true").verb, "watch");
        assert_eq!(
            attrs(Method::GET, "/api/v1/watch/namespaces/x/pods").verb,
            "watch"
        );
        let a = attrs(Method::GET, "/api/v1/namespaces/x/pods/web/log");
        assert_eq!(
            (
                a.verb.as_str(),
                a.combined_resource().as_str(),
                a.name.as_str()
            ),
            ("get", "pods/log", "web")
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/x/pods/web/exec").verb,
            "create"
        );
        assert_eq!(
            attrs(Method::POST, "/api/v1/namespaces/x/pods/web/portforward").verb,
            "create"
        );
        assert_eq!(
            attrs(Method::DELETE, "/api/v1/namespaces/x/pods").verb,
            "deletecollection"
        );
        assert_eq!(
            attrs(Method::DELETE, "/api/v1/namespaces/x/pods/p").verb,
            "delete"
        );
        assert_eq!(
            attrs(
                Method::PATCH,
                "/apis/apps/v1/namespaces/x/deployments/d/scale"
            )
            .verb,
            "patch"
        );
        let a = attrs(
            Method::GET,
            "/api/v1/namespaces/x/secrets?fieldSelector=metadata.name%3Dtls&watch=1",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "tls"));
        let a = attrs(
            Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        );
        assert_eq!(
            (a.api_group.as_str(), a.namespace.as_str()),
            ("rbac.authorization.k8s.io", "")
        );
    }

    #[test]
    fn forbidden_bodies() {
        let sa = UserInfo::new("system:serviceaccount:default:x", &[]);
        let e = forbidden(
            &sa,
            &attrs(Method::GET, "/api/v1/namespaces/default/secrets"),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"secrets is forbidden: User "system:serviceaccount:default:x" cannot list resource "secrets" in API group "" in the namespace "default""#
        );
        let e = forbidden(
            &sa,
            &attrs(Method::GET, "/apis/apps/v1/namespaces/d/deployments/web"),
        );
        assert!(
            e.message
                .starts_with(r#"deployments.apps "web" is forbidden: "#),
            "{}",
            e.message
        );
        let e = forbidden(&sa, &path_attributes(&Method::GET, "/metrics"));
        assert_eq!(
            e.message,
            r#"forbidden: User "system:serviceaccount:default:x" cannot get path "/metrics""#
        );
    }
}
