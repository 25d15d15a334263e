//! What the API server stores and refuses, as kubectl shows it: removed API versions get a real
//! cluster's "no matches for kind", and writes store only what the kind's schema allows
//! (issue 19's reproductions), after which Services still get Endpoints.

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{show, Cluster};

/// `kubectl <args> -f -` with `manifest` on stdin.
pub(crate) fn kubectl_stdin(c: &Cluster, args: &[&str], manifest: &str) -> Output {
    let mut all = args.to_vec();
    all.extend(["-f", "-"]);
    let mut child = c
        .kubectl_cmd(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The tutorial's Ingress (from the seed manifests), and other kinds whose versions 1.16–1.22
/// removed.
const REMOVED: &[(&str, &str, &str)] = &[
    (
        "extensions/v1beta1",
        "Ingress",
        "spec:\n  rules:\n  - host: kubeserve.example.com\n    http:\n      paths:\n      - backend:\n          serviceName: kubeserve2\n          servicePort: 80\n",
    ),
    ("networking.k8s.io/v1beta1", "Ingress", "spec: {}\n"),
    ("extensions/v1beta1", "Deployment", "spec: {}\n"),
    ("extensions/v1beta1", "DaemonSet", "spec: {}\n"),
    ("extensions/v1beta1", "ReplicaSet", "spec: {}\n"),
    ("extensions/v1beta1", "NetworkPolicy", "spec: {}\n"),
    ("apps/v1beta1", "Deployment", "spec: {}\n"),
    ("apps/v1beta2", "Deployment", "spec: {}\n"),
];

#[test]
fn removed_api_versions_answer_no_matches_for_kind() {
    let c = Cluster::up(0);
    for (api_version, kind, spec) in REMOVED {
        let manifest =
            format!("apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: old\n{spec}");
        // kubectl's OpenAPI validation path (the default), then its discovery path.
        for args in [&["apply"][..], &["apply", "--validate=false"], &["create"]] {
            let out = kubectl_stdin(&c, args, &manifest);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{args:?} {kind}\n{}",
                show(&out)
            );
            assert!(
                err.contains(&format!(
                    "no matches for kind \"{kind}\" in version \"{api_version}\""
                )) && err.contains("ensure CRDs are installed first"),
                "{args:?} {api_version} {kind}\n{err}"
            );
        }
    }
}

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl_ok(&all)).expect("kubectl -o json prints JSON")
}

#[test]
fn writes_store_what_the_schema_allows_and_endpoints_keep_working() {
    let c = Cluster::up(0);

    // A null in a string map is stored as "" (Go's zero value), not as null.
    let null_selector = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nulls"},
        "spec": {"selector": {"a": null}, "ports": [{"port": 80}]}});
    let out = kubectl_stdin(&c, &["create"], &null_selector.to_string());
    assert!(out.status.success(), "{}", show(&out));
    let svc = get_json(&c, &["service", "nulls"]);
    assert_eq!(svc["spec"]["selector"], json!({"a": ""}));

    // Unknown fields: refused under kubectl's default --validate=strict with kube-apiserver's
    // message; dropped with a Warning that kubectl prints under --validate=warn.
    let bogus = json!({"apiVersion": "v1", "kind": "Service", "bogus": [[[[[]]]]],
        "metadata": {"name": "bogus", "weird": 1.5}, "spec": {"ports": [{"port": 80}]}})
    .to_string();
    let out = kubectl_stdin(&c, &["create"], &bogus);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains(
            "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"bogus\", unknown field \"metadata.weird\""
        ),
        "{}",
        show(&out)
    );
    let out = kubectl_stdin(&c, &["create", "--validate=warn"], &bogus);
    assert!(out.status.success(), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Warning: unknown field \"bogus\"")
            && err.contains("Warning: unknown field \"metadata.weird\""),
        "{err}"
    );
    let svc = get_json(&c, &["service", "bogus"]);
    assert!(svc.get("bogus").is_none() && svc["metadata"].get("weird").is_none());

    // Afterwards a new Service over a ready pod gets its Endpoints. The pod's kubelet part
    // (Running, Ready, an IP) is played through the status subresource.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"nodeName": "nowhere", "containers": [{"name": "web", "image": "nginx"}]}});
    let out = kubectl_stdin(&c, &["create"], &pod.to_string());
    assert!(out.status.success(), "{}", show(&out));
    let status = json!({"status": {"phase": "Running", "podIP": "10.244.9.9", "podIPs": [{"ip": "10.244.9.9"}],
        "conditions": [{"type": "Ready", "status": "True"}]}});
    c.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    c.kubectl_ok(&["expose", "pod", "web", "--port=80"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.kubectl(&["get", "endpoints", "web", "-o", "json"]);
        let ep: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if ep["subsets"][0]["addresses"][0]["ip"] == "10.244.9.9" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no endpoints for web: {ep}\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An object already stored that does not decode (written before writes were canonical, or by
/// other means) is taken out of the store at start: lists stay decodable, a Warning event
/// names it, and `kinet status` lists where it was kept.
#[test]
fn a_stored_object_that_does_not_decode_is_quarantined_and_reported() {
    let c = Cluster::up(0);
    let stop = c.kinet(&["down", "--keep-data"]);
    assert!(stop.status.success(), "{}", show(&stop));
    let db = c.home.join(&c.name).join("data/store.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = kinet_store::Store::open(&db).unwrap();
        let broken = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "broken", "namespace": "default", "uid": "u-broken"},
            "spec": {"ports": "eighty"}});
        store
            .write("core/services/default/broken", move |_| {
                Ok(kinet_store::Mutation::Put(broken))
            })
            .await
            .unwrap();
    });
    drop(runtime);

    let start = c.kinet(&["up"]);
    assert!(start.status.success(), "{}", show(&start));
    let status = c.kinet(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("Quarantined: 1 object(s)")
            && text.contains("core_services_default_broken.json"),
        "{text}"
    );
    // Typed lists work again, and the event names the object.
    let services = c.kubectl_ok(&["get", "services", "-o", "name"]);
    assert!(!services.contains("broken"), "{services}");
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=broken,reason=Quarantined",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "no Quarantined event");
}
