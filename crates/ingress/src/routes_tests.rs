//! The routing table against the scenarios of the ingress-controller conformance features
//! (default backend, host rules, path rules, ingress class), rewritten as case tables, and
//! its text form against a golden file.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::backends::BackendState;

const CONTROLLER: &str = "kinet.dev/ingress";

fn ingress(yaml: &str) -> Ingress {
    serde_yaml_ng::from_str(yaml).expect("test Ingress")
}

/// A Service `name` with port 8080 named `http` → 3000, and one ready endpoint 10.244.0.N.
fn echo(name: &str, n: u8) -> (Service, EndpointSlice) {
    let svc = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 3000}]},
    }))
    .unwrap();
    let slice = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 3000, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [format!("10.244.0.{n}")], "conditions": {"ready": true}},
            {"addresses": [format!("10.244.1.{n}")], "conditions": {"ready": false}},
        ],
    }))
    .unwrap();
    (svc, slice)
}

fn class(name: &str, controller: &str, default: bool, created: &str) -> IngressClass {
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created,
            "annotations": {"ingressclass.kubernetes.io/is-default-class": default.to_string()}},
        "spec": {"controller": controller},
    }))
    .unwrap()
}

const SERVICES: &[&str] = &[
    "echo-service",
    "foo-exact",
    "foo-prefix",
    "aaa-slash-bbb-prefix",
    "aaa-prefix",
    "aaa-slash-bbb-slash-prefix",
    "foo-slash-exact",
    "wildcard-foo-com",
    "foo-bar-com",
];

/// A conformance feature's Ingress and request rows, from the shared files the e2e test
/// reads too.
#[derive(serde::Deserialize)]
struct Feature {
    ingress: Ingress,
    cases: Vec<(String, String, String)>,
}

fn feature(yaml: &str, created: &str) -> Feature {
    let mut f: Feature = serde_yaml_ng::from_str(yaml).expect("feature file");
    f.ingress.metadata.namespace = Some("default".into());
    f.ingress.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
    f
}

const PATH_RULES: &str = include_str!("../tests/conformance/path-rules.yaml");
const HOST_RULES: &str = include_str!("../tests/conformance/host-rules.yaml");

fn path_rules() -> Feature {
    feature(PATH_RULES, "2026-01-01T00:00:00Z")
}

fn host_rules() -> Feature {
    feature(HOST_RULES, "2026-01-01T00:00:01Z")
}

struct Fixture {
    ingresses: Vec<Ingress>,
    classes: Vec<IngressClass>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
}

impl Fixture {
    fn new(ingresses: Vec<Ingress>) -> Fixture {
        let (services, slices) = SERVICES
            .iter()
            .enumerate()
            .map(|(i, name)| echo(name, i as u8 + 1))
            .unzip();
        Fixture {
            ingresses,
            classes: vec![class("kinet", CONTROLLER, true, "2026-01-01T00:00:00Z")],
            services,
            slices,
        }
    }

    fn table(&self) -> RouteTable {
        let ingresses: Vec<&Ingress> = self.ingresses.iter().collect();
        let classes: Vec<&IngressClass> = self.classes.iter().collect();
        let services: Vec<&Service> = self.services.iter().collect();
        let slices: Vec<&EndpointSlice> = self.slices.iter().collect();
        RouteTable::build(
            &Objects {
                ingresses: &ingresses,
                classes: &classes,
                services: &services,
                slices: &slices,
            },
            CONTROLLER,
        )
    }
}

/// The Service a request reaches (`"404"` when none).
fn service(table: &RouteTable, host: &str, path: &str) -> String {
    match table.resolve(host, path) {
        Verdict::NotFound => "404".into(),
        Verdict::Route(r) => {
            let name = r.backend.name.trim_start_matches("default/");
            name.split(':').next().unwrap().to_string()
        }
    }
}

fn check(table: &RouteTable, cases: &[(String, String, String)]) {
    for (host, path, want) in cases {
        assert_eq!(service(table, host, path), *want, "{host}{path}");
    }
}

#[test]
fn path_rules_table() {
    let f = path_rules();
    check(&Fixture::new(vec![f.ingress]).table(), &f.cases);
}

#[test]
fn longest_path_without_its_trailing_slash_then_exact() {
    let f = Fixture::new(vec![ingress(
        r#"
metadata: {name: ranks, namespace: default}
spec:
  rules:
  - host: h
    http:
      paths:
      - {path: /foo/, pathType: Prefix, backend: {service: {name: foo-prefix, port: {number: 8080}}}}
      - {path: /foo, pathType: Exact, backend: {service: {name: foo-exact, port: {number: 8080}}}}
      - {path: /aaa/, pathType: Exact, backend: {service: {name: aaa-prefix, port: {number: 8080}}}}
      - {path: /aaa, pathType: Prefix, backend: {service: {name: aaa-slash-bbb-prefix, port: {number: 8080}}}}
"#,
    )]);
    let cases = [
        ("h", "/foo", "foo-exact"),
        ("h", "/foo/", "foo-prefix"),
        ("h", "/foo/x", "foo-prefix"),
        ("h", "/aaa/", "aaa-prefix"),
        ("h", "/aaa", "aaa-slash-bbb-prefix"),
    ];
    check(
        &f.table(),
        &cases.map(|(h, p, w)| (h.into(), p.into(), w.into())),
    );
}

#[test]
fn repeated_paths_keep_the_oldest_even_when_not_adjacent() {
    let rules = |name: &str, created: &str, svc: &str| {
        ingress(&format!(
            r#"
metadata: {{name: {name}, namespace: default, creationTimestamp: "{created}"}}
spec:
  rules:
  - host: h
    http:
      paths:
      - {{path: /foo, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 8080}}}}}}}}
      - {{path: /bar, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 8080}}}}}}}}
"#
        ))
    };
    let t = Fixture::new(vec![
        rules("newer", "2026-01-02T00:00:00Z", "foo-prefix"),
        rules("older", "2026-01-01T00:00:00Z", "foo-exact"),
    ])
    .table();
    let text = t.to_string();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().all(|l| l.ends_with("from default/older")),
        "{text}"
    );
}

#[test]
fn host_rules_wildcards_and_tls() {
    let f = host_rules();
    let t = Fixture::new(vec![f.ingress]).table();
    check(&t, &f.cases);
    assert_eq!(service(&t, "FOO.bar.com:80", "/x"), "foo-bar-com");
    let Verdict::Route(r) = t.resolve("foo.bar.com", "/") else {
        panic!("foo.bar.com is routed")
    };
    assert!(r.redirect_https);
    let Verdict::Route(r) = t.resolve("bar.foo.com", "/") else {
        panic!("bar.foo.com is routed")
    };
    assert!(!r.redirect_https);
    let tls: Vec<(&String, &SecretRef)> = t.tls_secrets().collect();
    assert_eq!(tls.len(), 1);
    assert_eq!(
        (tls[0].0.as_str(), tls[0].1.name.as_str()),
        ("foo.bar.com", "conformance-tls")
    );
}

#[test]
fn redirect_can_be_switched_off() {
    let mut ing = host_rules().ingress;
    ing.metadata.annotations = Some([(SSL_REDIRECT_ANNOTATION.into(), "false".into())].into());
    let t = Fixture::new(vec![ing]).table();
    let Verdict::Route(r) = t.resolve("foo.bar.com", "/") else {
        panic!("foo.bar.com is routed")
    };
    assert!(!r.redirect_https);
}

const DEFAULT_BACKEND: &str = r#"
metadata: {name: default-backend, namespace: default, creationTimestamp: "2026-01-01T00:00:02Z"}
spec:
  defaultBackend: {service: {name: echo-service, port: {number: 8080}}}
"#;

#[test]
fn default_backend_takes_everything_unmatched() {
    let t = Fixture::new(vec![ingress(DEFAULT_BACKEND), path_rules().ingress]).table();
    let cases = [
        ("my-host", "/", "echo-service"),
        ("my-host", "/sub-path", "echo-service"),
        ("", "/resource", "echo-service"),
        ("exact-path-rules", "/bar", "echo-service"),
        ("exact-path-rules", "/foo", "foo-exact"),
    ];
    check(&t, &cases.map(|(h, p, w)| (h.into(), p.into(), w.into())));
}

#[test]
fn only_own_class_or_classless_when_default() {
    let other = DEFAULT_BACKEND.replace(
        "spec:",
        "spec:\n  ingressClassName: some-invalid-class-name",
    );
    let mut f = Fixture::new(vec![ingress(&other)]);
    assert!(matches!(f.table().resolve("h", "/"), Verdict::NotFound));
    // Class-less: served while kinet's class is the default...
    f.ingresses = vec![ingress(DEFAULT_BACKEND)];
    assert_eq!(service(&f.table(), "h", "/"), "echo-service");
    // ...not once a newer default class belongs to someone else...
    f.classes.push(class(
        "nginx",
        "k8s.io/ingress-nginx",
        true,
        "2026-02-01T00:00:00Z",
    ));
    assert!(matches!(f.table().resolve("h", "/"), Verdict::NotFound));
    // ...and again when kinet's default is the newer one.
    f.classes[1] = class(
        "nginx",
        "k8s.io/ingress-nginx",
        true,
        "2025-02-01T00:00:00Z",
    );
    assert_eq!(service(&f.table(), "h", "/"), "echo-service");
    // The legacy annotation names a class too.
    let legacy = DEFAULT_BACKEND.replace(
        "creationTimestamp",
        "annotations: {kubernetes.io/ingress.class: nginx}, creationTimestamp",
    );
    f.ingresses = vec![ingress(&legacy)];
    assert!(matches!(f.table().resolve("h", "/"), Verdict::NotFound));
}

#[test]
fn unavailable_backends_answer_503() {
    let yaml = r#"
metadata: {name: broken, namespace: default}
spec:
  rules:
  - host: h
    http:
      paths:
      - {path: /missing, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
      - {path: /badport, pathType: Prefix, backend: {service: {name: foo-exact, port: {number: 81}}}}
      - {path: /badname, pathType: Prefix, backend: {service: {name: foo-exact, port: {name: grpc}}}}
      - {path: /bucket, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: icons}}}
"#;
    let mut f = Fixture::new(vec![ingress(yaml)]);
    f.slices
        .retain(|s| s.metadata.name.as_deref() != Some("foo-exact-abc"));
    let t = f.table();
    for (path, why) in [
        ("/missing", "service not found"),
        ("/badport", "service port not found"),
        ("/badname", "service port not found"),
        ("/bucket", "resource backends are not supported"),
    ] {
        let Verdict::Route(r) = t.resolve("h", path) else {
            panic!("{path} is routed")
        };
        assert_eq!(r.backend.state, BackendState::Unavailable(why), "{path}");
    }
}

#[test]
fn oldest_ingress_wins_a_repeated_path() {
    let newer = serde_json::to_string(&feature(PATH_RULES, "2026-01-01T00:00:09Z").ingress)
        .unwrap()
        .replace("\"path-rules\"", "\"newer\"")
        .replace("\"foo-exact\"", "\"echo-service\"");
    let newer = serde_json::from_str(&newer).unwrap();
    let t = Fixture::new(vec![newer, path_rules().ingress]).table();
    assert_eq!(service(&t, "exact-path-rules", "/foo"), "foo-exact");
    assert_eq!(t.served(), ["default/path-rules", "default/newer"]);
}

#[test]
fn round_robin_over_ready_endpoints() {
    let mut f = Fixture::new(vec![ingress(DEFAULT_BACKEND)]);
    f.slices[0].endpoints[1].conditions.as_mut().unwrap().ready = None;
    let t = f.table();
    let Verdict::Route(r) = t.resolve("h", "/") else {
        panic!("routed")
    };
    let firsts: Vec<String> = (0..3)
        .map(|_| r.backend.endpoints().next().unwrap().to_string())
        .collect();
    assert_eq!(
        firsts,
        ["10.244.0.1:3000", "10.244.1.1:3000", "10.244.0.1:3000"]
    );
}

#[test]
fn golden_text() {
    let t = Fixture::new(vec![
        path_rules().ingress,
        host_rules().ingress,
        ingress(DEFAULT_BACKEND),
    ])
    .table();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/conformance.txt");
    let got = t.to_string();
    if std::env::var_os("KINET_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(got, want, "golden {path} (KINET_BLESS=1 rewrites it)");
}
