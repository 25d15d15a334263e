//! Issue 19's property test: valid objects of every served kind, mutated at random (wrong
//! types, nulls, unknown and duplicate fields, truncation, garbage protobuf), sent through the
//! real API server with every write verb, content type and patch type. The server never answers
//! 5xx (except kube-apiserver's own 500 for a strategic-merge patch it cannot apply), everything
//! it stores decodes with the k8s-openapi types, and afterwards the endpoints loop still gives
//! a new Service over a ready pod its Endpoints.
//!
//! The cases come from a fixed seed, so a failure names a case that replays the same way.

use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::api::{
    admissionregistration, apps, batch, certificates, coordination, core, discovery, networking,
    policy, scheduling,
};
use kinet_types::registry::{Resource, RESOURCES};
use kube::api::ListParams;
use kube::Api;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

const SEED: [u8; 32] = *b"kinet-issue-19-fuzz-writes-seed!";
const CASES: usize = 600;

/// A valid object of each served kind, named `name`.
fn valid(kind: &str, name: &str) -> Value {
    let meta = json!({"name": name, "labels": {"app": "fuzz"}, "annotations": {"a": "b"}});
    let pod_spec = json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
        "resources": {"limits": {"cpu": "1"}}, "env": [{"name": "E", "value": "v"}]}]});
    let template = json!({"metadata": {"labels": {"app": "fuzz"}}, "spec": pod_spec});
    let selector = json!({"matchLabels": {"app": "fuzz"}});
    // Jobs refuse the pods' default restartPolicy (Always).
    let mut run_once = template.clone();
    run_once["spec"]["restartPolicy"] = json!("Never");
    let body = match kind {
        "Pod" => json!({"spec": pod_spec}),
        "Service" => {
            json!({"spec": {"selector": {"app": "fuzz"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        }
        "Namespace" | "ServiceAccount" => json!({}),
        "Node" => json!({"spec": {"podCIDR": "10.244.200.0/24"}}),
        "Endpoints" => {
            json!({"subsets": [{"addresses": [{"ip": "10.244.0.9"}], "ports": [{"port": 80}]}]})
        }
        "ConfigMap" => json!({"data": {"k": "v"}}),
        "Secret" => json!({"data": {"k": "aGk="}, "type": "Opaque"}),
        "Event" => json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "R", "message": "m", "type": "Normal"}),
        "Deployment" | "ReplicaSet" => {
            json!({"spec": {"replicas": 0, "selector": selector, "template": template}})
        }
        "DaemonSet" => json!({"spec": {"selector": selector, "template": template}}),
        "EndpointSlice" => {
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.9"]}],
            "ports": [{"port": 80, "protocol": "TCP"}]})
        }
        "Lease" => json!({"spec": {"holderIdentity": "x", "leaseDurationSeconds": 40}}),
        "CertificateSigningRequest" => {
            use base64::Engine;
            let (pem, _) = kinet_pki::csr::node_request("fuzz").unwrap();
            json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["client auth"]}})
        }
        "Ingress" => {
            json!({"spec": {"rules": [{"host": "a.example", "http": {"paths": [{"path": "/",
            "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}})
        }
        "IngressClass" => json!({"spec": {"controller": "example.com/x"}}),
        "Role" | "ClusterRole" => {
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "default"}]})
        }
        "NetworkPolicy" => {
            json!({"spec": {"podSelector": selector, "ingress": [{"from": [{"podSelector": {}}]}]}})
        }
        // Valid but for its name, which must be `<plural>.<group>`: refused with 422.
        "CustomResourceDefinition" => {
            json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
        }
        "StatefulSet" => {
            json!({"spec": {"replicas": 0, "serviceName": "s", "selector": selector,
            "template": template}})
        }
        "ControllerRevision" => json!({"revision": 1, "data": {"spec": {}}}),
        "Job" => json!({"spec": {"template": run_once}}),
        "CronJob" => {
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": run_once}}}})
        }
        "PersistentVolumeClaim" => {
            json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}})
        }
        "ResourceQuota" => json!({"spec": {"hard": {"pods": "10"}}}),
        "LimitRange" => {
            json!({"spec": {"limits": [{"type": "Container", "default": {"cpu": "100m"}}]}})
        }
        "PodDisruptionBudget" => json!({"spec": {"minAvailable": 1, "selector": selector}}),
        "PriorityClass" => json!({"value": 1000, "description": "d"}),
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => json!({}),
        other => panic!("no valid object for {other}"),
    };
    let mut obj = body;
    obj["metadata"] = meta;
    obj
}

fn collection(r: &Resource) -> String {
    let root = if r.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    if r.namespaced() {
        format!("{root}/namespaces/default/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    }
}

/// What a mutation puts somewhere in the object.
#[derive(Debug, Clone)]
enum Junk {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Nested(usize),
    NullMap,
}

impl Junk {
    fn value(&self) -> Value {
        match self {
            Junk::Null => Value::Null,
            Junk::Bool(b) => json!(b),
            Junk::Int(i) => json!(i),
            Junk::Float(f) => json!(f),
            Junk::Str(s) => json!(s),
            Junk::Nested(depth) => (0..*depth).fold(json!([]), |v, _| json!([v])),
            Junk::NullMap => json!({"a": null, "b": "x"}),
        }
    }
}

fn junk() -> impl Strategy<Value = Junk> {
    prop_oneof![
        Just(Junk::Null),
        any::<bool>().prop_map(Junk::Bool),
        prop_oneof![Just(0i64), Just(-1), Just(80), Just(i64::MAX), any::<i64>()]
            .prop_map(Junk::Int),
        prop_oneof![Just(1.5f64), Just(-0.25), Just(1e300)].prop_map(Junk::Float),
        prop_oneof![
            Just(String::new()),
            Just("x".to_string()),
            Just("80".to_string()),
            Just("1.2.3.4".to_string()),
            Just("aGk=".to_string()),
            Just("2026-01-01T00:00:00Z".to_string()),
            "[a-zA-Z0-9./ -]{0,12}",
        ]
        .prop_map(Junk::Str),
        (1usize..6).prop_map(Junk::Nested),
        Just(Junk::NullMap),
    ]
}

/// One change to the object: walk down by `path` (each number picks a child), then act.
#[derive(Debug, Clone)]
enum Edit {
    Set(Vec<usize>, Junk),
    Remove(Vec<usize>),
    AddUnknown(Vec<usize>, Junk),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = prop::collection::vec(0usize..16, 0..6);
    prop_oneof![
        (path.clone(), junk()).prop_map(|(p, j)| Edit::Set(p, j)),
        path.clone().prop_map(Edit::Remove),
        (path, junk()).prop_map(|(p, j)| Edit::AddUnknown(p, j)),
    ]
}

/// A step down the object: a key or an index.
enum Step {
    Key(String),
    Index(usize),
}

/// The container reached by `path` (each number picks a child, until a scalar), with the key
/// the last number picks there and the number itself.
fn walk<'a>(v: &'a mut Value, path: &[usize]) -> Option<(&'a mut Value, Option<String>, usize)> {
    let (&last, parents) = path.split_last()?;
    let mut steps = Vec::new();
    let mut node = &*v;
    for &choice in parents {
        let (step, next) = match node {
            Value::Object(m) if !m.is_empty() => {
                let (k, next) = m.iter().nth(choice % m.len())?;
                (Step::Key(k.clone()), next)
            }
            Value::Array(a) if !a.is_empty() => {
                (Step::Index(choice % a.len()), &a[choice % a.len()])
            }
            _ => break,
        };
        steps.push(step);
        node = next;
    }
    let key = match node {
        Value::Object(m) if !m.is_empty() => m.keys().nth(last % m.len()).cloned(),
        _ => None,
    };
    let target = steps.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    });
    Some((target, key, last))
}

fn apply_edit(obj: &mut Value, e: &Edit) {
    match e {
        Edit::Set(path, junk) => match walk(obj, path) {
            Some((Value::Object(m), Some(k), _)) => {
                m.insert(k, junk.value());
            }
            Some((Value::Array(a), _, i)) if !a.is_empty() => {
                let n = a.len();
                a[i % n] = junk.value();
            }
            _ => {}
        },
        Edit::Remove(path) => match walk(obj, path) {
            Some((Value::Object(m), Some(k), _)) => {
                m.remove(&k);
            }
            Some((Value::Array(a), _, i)) if !a.is_empty() => {
                let n = a.len();
                a.remove(i % n);
            }
            _ => {}
        },
        Edit::AddUnknown(path, junk) => {
            if let Some((Value::Object(m), _, i)) = walk(obj, path) {
                m.insert(format!("bogus{}", i % 3), junk.value());
            }
        }
    }
}

/// How the request is made.
#[derive(Debug, Clone)]
enum Verb {
    Create(Encoding),
    Update,
    Patch(&'static str),
    Status(bool),
    Scale,
}

#[derive(Debug, Clone)]
enum Encoding {
    Json,
    Yaml,
    /// The JSON cut short at this fraction (in percent).
    Truncated(u8),
    /// A duplicate `metadata` key in front of the real one.
    DuplicateKey,
    /// Random bytes sent as protobuf.
    Protobuf(Vec<u8>),
}

fn verb() -> impl Strategy<Value = Verb> {
    let encoding = prop_oneof![
        3 => Just(Encoding::Json),
        1 => Just(Encoding::Yaml),
        1 => (1u8..100).prop_map(Encoding::Truncated),
        1 => Just(Encoding::DuplicateKey),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut b| {
            // Sometimes behind the real envelope's magic bytes.
            if b.first().is_some_and(|x| x % 2 == 0) {
                b.splice(0..0, *b"k8s\0");
            }
            Encoding::Protobuf(b)
        }),
    ];
    prop_oneof![
        3 => encoding.prop_map(Verb::Create),
        1 => Just(Verb::Update),
        1 => Just(Verb::Patch("application/merge-patch+json")),
        1 => Just(Verb::Patch("application/strategic-merge-patch+json")),
        1 => Just(Verb::Patch("application/apply-patch+yaml")),
        1 => Just(Verb::Patch("application/json-patch+json")),
        1 => any::<bool>().prop_map(Verb::Status),
        1 => Just(Verb::Scale),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    kind: usize,
    edits: Vec<Edit>,
    verb: Verb,
    validation: &'static str,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..RESOURCES.len(),
        prop::collection::vec(edit(), 0..4),
        verb(),
        prop_oneof![Just("Strict"), Just("Warn"), Just("Ignore")],
    )
        .prop_map(|(kind, edits, verb, validation)| Case {
            kind,
            edits,
            verb,
            validation,
        })
}

/// The method, URL, content type and body of a case against the kind's object `name`.
fn request(c: &Case, name: &str) -> (http::Method, String, &'static str, Vec<u8>) {
    let r = &RESOURCES[c.kind];
    let mut obj = valid(r.kind, name);
    obj["apiVersion"] = json!(r.api_version());
    obj["kind"] = json!(r.kind);
    for e in &c.edits {
        apply_edit(&mut obj, e);
    }
    let item = format!("{}/{name}", collection(r));
    let q = format!("?fieldValidation={}", c.validation);
    let json_body = serde_json::to_vec(&obj).unwrap();
    match &c.verb {
        Verb::Create(enc) => {
            let url = format!("{}{q}", collection(r));
            let (ct, body) = match enc {
                Encoding::Json => ("application/json", json_body),
                Encoding::Yaml => (
                    "application/yaml",
                    serde_yaml_ng::to_string(&obj).unwrap().into_bytes(),
                ),
                Encoding::Truncated(pct) => {
                    let cut = json_body.len() * usize::from(*pct) / 100;
                    ("application/json", json_body[..cut].to_vec())
                }
                Encoding::DuplicateKey => {
                    let mut b = br#"{"metadata":{"name":"dup","labels":{"x":null}},"#.to_vec();
                    b.extend_from_slice(&json_body[1..]);
                    ("application/json", b)
                }
                Encoding::Protobuf(bytes) => ("application/vnd.kubernetes.protobuf", bytes.clone()),
            };
            (http::Method::POST, url, ct, body)
        }
        Verb::Update => (
            http::Method::PUT,
            format!("{item}{q}"),
            "application/json",
            json_body,
        ),
        Verb::Patch("application/json-patch+json") => {
            let ops: Vec<Value> = obj
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "apiVersion" && k.as_str() != "kind")
                .map(|(k, v)| json!({"op": "add", "path": format!("/{k}"), "value": v}))
                .collect();
            let body = serde_json::to_vec(&ops).unwrap();
            (
                http::Method::PATCH,
                format!("{item}{q}"),
                "application/json-patch+json",
                body,
            )
        }
        Verb::Patch(ct) => {
            let url = format!("{item}{q}&fieldManager=fuzz&force=true");
            (http::Method::PATCH, url, ct, json_body)
        }
        Verb::Status(true) => (
            http::Method::PUT,
            format!("{item}/status{q}"),
            "application/json",
            json_body,
        ),
        Verb::Status(false) => (
            http::Method::PATCH,
            format!("{item}/status{q}"),
            "application/merge-patch+json",
            json_body,
        ),
        Verb::Scale => {
            let scale = json!({"spec": {"replicas": obj["spec"]["replicas"].clone()}});
            let body = serde_json::to_vec(&scale).unwrap();
            (
                http::Method::PATCH,
                format!("{item}/scale"),
                "application/merge-patch+json",
                body,
            )
        }
    }
}

async fn send(
    client: &kube::Client,
    method: http::Method,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body))
        .unwrap();
    let resp = client.send(req).await.expect("the server answers");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Lists every object of `K` through the typed client: fails if any one does not decode.
async fn decodes<K>(client: &kube::Client) -> usize
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{} list does not decode: {e}", K::kind(&())));
    list.items.len()
}

#[tokio::test]
async fn mutated_writes_never_store_what_typed_clients_cannot_read() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let endpoints = tokio::spawn(kinet_controllers::endpoints::run(client.clone()));

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
    );
    let strategy = case();
    let mut answered = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..CASES {
        let c = strategy.new_tree(&mut runner).unwrap().current();
        // Creates get fresh names; half the other cases aim at an object a clean create made
        // first, the rest at one that may not exist.
        let name = match c.verb {
            Verb::Create(_) => format!("c{i}"),
            _ if i % 2 == 0 => "base".to_string(),
            _ => "other".to_string(),
        };
        let r = &RESOURCES[c.kind];
        if name == "base" {
            let body = serde_json::to_vec(&valid(r.kind, "base")).unwrap();
            send(
                &client,
                http::Method::POST,
                &collection(r),
                "application/json",
                body,
            )
            .await;
        }
        let (method, url, ct, body) = request(&c, &name);
        let (status, text) = send(&client, method, &url, ct, body).await;
        *answered.entry(status).or_default() += 1;
        let smp_500 = status == 500 && ct == "application/strategic-merge-patch+json";
        assert!(
            status < 500 || smp_500,
            "case {i} (seed {SEED:?}): {c:?}\n{url} answered {status}: {text}"
        );
    }
    eprintln!("{CASES} mutated writes answered: {answered:?}");

    let mut stored = 0;
    stored += decodes::<core::v1::Pod>(&client).await;
    stored += decodes::<core::v1::Service>(&client).await;
    stored += decodes::<core::v1::Namespace>(&client).await;
    stored += decodes::<core::v1::Node>(&client).await;
    stored += decodes::<core::v1::Endpoints>(&client).await;
    stored += decodes::<core::v1::ConfigMap>(&client).await;
    stored += decodes::<core::v1::Secret>(&client).await;
    stored += decodes::<core::v1::ServiceAccount>(&client).await;
    stored += decodes::<core::v1::Event>(&client).await;
    stored += decodes::<apps::v1::Deployment>(&client).await;
    stored += decodes::<apps::v1::ReplicaSet>(&client).await;
    stored += decodes::<apps::v1::DaemonSet>(&client).await;
    stored += decodes::<discovery::v1::EndpointSlice>(&client).await;
    stored += decodes::<coordination::v1::Lease>(&client).await;
    stored += decodes::<certificates::v1::CertificateSigningRequest>(&client).await;
    stored += decodes::<networking::v1::Ingress>(&client).await;
    stored += decodes::<networking::v1::IngressClass>(&client).await;
    stored += decodes::<networking::v1::NetworkPolicy>(&client).await;
    stored += decodes::<apps::v1::StatefulSet>(&client).await;
    stored += decodes::<apps::v1::ControllerRevision>(&client).await;
    stored += decodes::<batch::v1::Job>(&client).await;
    stored += decodes::<batch::v1::CronJob>(&client).await;
    stored += decodes::<core::v1::PersistentVolumeClaim>(&client).await;
    stored += decodes::<core::v1::ResourceQuota>(&client).await;
    stored += decodes::<core::v1::LimitRange>(&client).await;
    stored += decodes::<policy::v1::PodDisruptionBudget>(&client).await;
    stored += decodes::<scheduling::v1::PriorityClass>(&client).await;
    stored += decodes::<admissionregistration::v1::ValidatingWebhookConfiguration>(&client).await;
    stored += decodes::<admissionregistration::v1::MutatingWebhookConfiguration>(&client).await;
    assert!(
        stored > RESOURCES.len(),
        "the run stored objects ({stored})"
    );

    // A new Service over a ready pod still gets its Endpoints.
    let svc = json!({"metadata": {"name": "after"}, "spec": {"selector": {"app": "after"}, "ports": [{"port": 80}]}});
    let pod = json!({"metadata": {"name": "after", "labels": {"app": "after"}},
        "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "nginx"}]}});
    let status = json!({"status": {"phase": "Running", "podIP": "10.244.7.7", "podIPs": [{"ip": "10.244.7.7"}],
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let services = collection(kinet_types::registry::lookup("", "v1", "services").unwrap());
    let pods = collection(kinet_types::registry::lookup("", "v1", "pods").unwrap());
    for (url, body) in [(&services, &svc), (&pods, &pod)] {
        let (code, text) = send(
            &client,
            http::Method::POST,
            url,
            "application/json",
            serde_json::to_vec(body)?,
        )
        .await;
        assert_eq!(code, 201, "{text}");
    }
    let (code, text) = send(
        &client,
        http::Method::PATCH,
        &format!("{pods}/after/status"),
        "application/merge-patch+json",
        serde_json::to_vec(&status)?,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let eps: Api<core::v1::Endpoints> = Api::namespaced(client.clone(), "default");
    let mut ip = None;
    for _ in 0..400 {
        ip = eps
            .get_opt("after")
            .await?
            .and_then(|e| Some(e.subsets?.first()?.addresses.as_ref()?.first()?.ip.clone()));
        if ip.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(ip.as_deref(), Some("10.244.7.7"));
    assert!(!endpoints.is_finished(), "the endpoints loop kept running");
    endpoints.abort();
    Ok(())
}
