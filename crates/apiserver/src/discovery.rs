//! Discovery documents: `/version`, legacy `/api` + `/apis` + resource lists, and aggregated
//! discovery (`apidiscovery.k8s.io/v2`), all built from the resource registry and the custom
//! resources CustomResourceDefinitions serve (`custom`, in preferred-version order).

use kinet_types::registry::{self, Resource, Scope, RESOURCES};
use serde_json::{json, Value};

/// The content type kubectl needs to accept an aggregated discovery body.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// kubectl on these machines dispatches on `minor`; "32" selects kubectl 1.32.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0-kinet.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "kinet",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a (Rust)",
        "compiler": "rustc",
        "platform": "linux/amd64"
    })
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "status" | "scale" | "ephemeralcontainers" => &["get", "patch", "update"],
        "binding" | "eviction" => &["create"],
        "log" => &["get"],
        "finalize" => &["update"],
        _ => &["create", "get"],
    }
}

/// The group, version and kind a subresource answers with.
fn subresource_kind(resource: &Resource, sub: &str) -> (&'static str, &'static str, &'static str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        "exec" => ("", "v1", "PodExecOptions"),
        "attach" => ("", "v1", "PodAttachOptions"),
        "portforward" => ("", "v1", "PodPortForwardOptions"),
        "log" => ("", "v1", "Pod"),
        _ => (resource.group, resource.version, resource.kind),
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Namespaced => "Namespaced",
        Scope::Cluster => "Cluster",
    }
}

fn resources_in<'a>(
    group: &'a str,
    version: &'a str,
    custom: &'a [&'static Resource],
) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .chain(custom.iter().copied())
        .filter(move |r| r.group == group && r.version == version)
}

/// The API groups other than core, built-in first.
fn groups(custom: &[&'static Resource]) -> Vec<&'static str> {
    let mut out = registry::groups();
    for r in custom {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// A group's versions, preferred first.
fn versions(group: &str, custom: &[&'static Resource]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().chain(custom.iter().copied()) {
        if r.group == group && !out.contains(&r.version) {
            out.push(r.version);
        }
    }
    out
}

fn aggregated_resource(r: &Resource) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (group, version, kind) = subresource_kind(r, sub);
            json!({
                "subresource": sub,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": subresource_verbs(sub),
            })
        })
        .collect();
    let mut out = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope_name(r.scope),
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        out["subresources"] = json!(subresources);
    }
    out
}

fn aggregated_group(group: &str, custom: &[&'static Resource]) -> Value {
    let versions: Vec<Value> = versions(group, custom)
        .into_iter()
        .map(|version| {
            let resources: Vec<Value> = resources_in(group, version, custom)
                .map(aggregated_resource)
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}

/// `/api` (legacy = true) or `/apis` as an `APIGroupDiscoveryList`.
pub fn aggregated(legacy: bool, custom: &[&'static Resource]) -> Value {
    let items: Vec<Value> = if legacy {
        vec![aggregated_group("", custom)]
    } else {
        groups(custom)
            .into_iter()
            .map(|g| aggregated_group(g, custom))
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, custom: &[&'static Resource]) -> Value {
    let versions: Vec<Value> = versions(group, custom)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "preferredVersion": versions[0], "versions": versions})
}

/// Legacy `/apis`.
pub fn api_group_list(custom: &[&'static Resource]) -> Value {
    let groups: Vec<Value> = groups(custom)
        .into_iter()
        .map(|g| api_group(g, custom))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/{group}`, if served.
pub fn group(name: &str, custom: &[&'static Resource]) -> Option<Value> {
    groups(custom).contains(&name).then(|| {
        let mut g = api_group(name, custom);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// `/api/v1` or `/apis/{group}/{version}` as an `APIResourceList`, if served.
pub fn resource_list(group: &str, version: &str, custom: &[&'static Resource]) -> Option<Value> {
    if !versions(group, custom).contains(&version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in resources_in(group, version, custom) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, kind) = subresource_kind(r, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": kind,
                "verbs": subresource_verbs(sub),
            });
            if g != r.group {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_core_lists_pods_with_subresources() {
        let doc = aggregated(true, &[]);
        let core = &doc["items"][0];
        assert!(core["metadata"].get("name").is_none());
        let pods = core["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert!(subs.contains(&"exec") && subs.contains(&"log") && subs.contains(&"binding"));
    }

    #[test]
    fn aggregated_groups_and_scale() {
        let doc = aggregated(false, &[]);
        let items = doc["items"].as_array().unwrap();
        let names: Vec<&str> = items
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        // Each group of the registry once, in its order, serving each of its resources.
        assert_eq!(names, registry::groups());
        for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
            let group = items.iter().find(|g| g["metadata"]["name"] == r.group);
            let version = group.and_then(|g| {
                g["versions"]
                    .as_array()?
                    .iter()
                    .find(|v| v["version"] == r.version)
            });
            let served = version
                .and_then(|v| v["resources"].as_array())
                .is_some_and(|rs| rs.iter().any(|x| x["resource"] == r.plural));
            assert!(served, "{} is not in discovery", r.qualified_resource());
        }
        assert_eq!(names[0], "apps");
        let deploy = &doc["items"][0]["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(deploy["subresources"][1]["responseKind"]["kind"], "Scale");
    }

    #[test]
    fn legacy_resource_lists() {
        let list = resource_list("apps", "v1", &[]).unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(resource_list("apps", "v2", &[]).is_none());
        assert!(resource_list("autoscaling", "v2", &[]).is_none());
        assert_eq!(
            group("apps", &[]).unwrap()["preferredVersion"]["version"],
            "v1"
        );
    }

    static ROUTE_V1: Resource = Resource {
        group: "gateway.networking.k8s.io",
        version: "v1",
        kind: "HTTPRoute",
        plural: "httproutes",
        singular: "httproute",
        short_names: &[],
        scope: Scope::Namespaced,
        categories: &["gateway-api"],
        subresources: &["status"],
    };
    static ROUTE_BETA: Resource = Resource {
        version: "v1beta1",
        ..ROUTE_V1
    };

    #[test]
    fn custom_groups_list_their_versions_preferred_first() {
        let custom = [&ROUTE_V1, &ROUTE_BETA];
        let g = group("gateway.networking.k8s.io", &custom).unwrap();
        assert_eq!(g["preferredVersion"]["version"], "v1");
        assert_eq!(
            g["versions"][1]["groupVersion"],
            "gateway.networking.k8s.io/v1beta1"
        );
        let list = resource_list("gateway.networking.k8s.io", "v1beta1", &custom).unwrap();
        assert_eq!(list["resources"][0]["name"], "httproutes");
        assert_eq!(list["resources"][1]["name"], "httproutes/status");
        let agg = aggregated(false, &custom);
        let last = agg["items"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["metadata"]["name"], "gateway.networking.k8s.io");
        assert_eq!(
            last["versions"][0]["resources"][0]["categories"],
            json!(["gateway-api"])
        );
        assert!(resource_list("gateway.networking.k8s.io", "v2", &custom).is_none());
    }
}
