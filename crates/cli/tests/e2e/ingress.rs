//! The ingress add-on on one shared cluster, driven by kubectl and curl from the host (and
//! from the outside namespace): the tutorial's three-rule Ingress, edits and deletion taking
//! effect, `kubectl describe ingress`, the ingress-controller-conformance scenarios (path
//! rules, host rules with a wildcard and TLS by SNI, ingress class, load balancing over 10
//! pods, every method to the default backend), forwarded headers, scaling to 0 and back, and
//! the metrics. Requests go only to the cluster's own LoadBalancer address (checked to lie in
//! its underlay); host names are given with `Host:` or `curl --resolve`, never /etc/hosts.

use std::collections::BTreeSet;
use std::process::Command;

use crate::harness::{show, stdout, Cluster};
use crate::pods::{apply, json, wait_ready, AGNHOST};
use crate::services::{external, own, poll};

/// netexec: `/hostname`, `/echo`, `/header` and more.
const NETEXEC: &str = "netexec, --http-port=8080";
/// serve-hostname: the pod's name for any path, so a response names the route's Service.
const SERVE_HOSTNAME: &str = "serve-hostname, --port=8080";

/// `(status, body)` of `curl` from the host with `Host: host`; status 0 when it failed.
fn get(addr: &str, host: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "3", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {host}"))
        .args(extra)
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Polls until `host` + `path` answers `code` with a body containing `needle`.
fn wait_for(addr: &str, host: &str, path: &str, code: u16, needle: &str) {
    poll(&format!("{host}{path} → {code} {needle:?}"), || {
        let (got, body) = get(addr, host, path, &[]);
        (got == code && body.contains(needle)).then_some(())
    });
}

/// One agnhost Deployment (running `args`, serving 8080) and Service (port 8080 named
/// `http`) per name.
fn backends(c: &Cluster, names: &[&str], args: &str) {
    let yaml: String = names
        .iter()
        .map(|n| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {n}}}\nspec:\n  selector: {{matchLabels: {{app: {n}}}}}\n  template:\n    metadata: {{labels: {{app: {n}}}}}\n    spec:\n      containers:\n      - {{name: echo, image: \"{AGNHOST}\", args: [{args}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: {n}}}\nspec:\n  selector: {{app: {n}}}\n  ports: [{{name: http, port: 8080, targetPort: 8080}}]\n---\n"
            )
        })
        .collect();
    apply(c, &yaml);
    for n in names {
        wait_ready(c, &format!("app={n}"), 1);
    }
}

/// The Deployment that answers `host` + `path` as the conformance suite's client sees it
/// (the name resolved to the ingress address, redirects to HTTPS followed, any certificate),
/// or `404` when the ingress found no route.
fn served(addr: &str, host: &str, path: &str) -> String {
    let resolve = |port: u16| format!("{host}:{port}:{addr}");
    let out = Command::new("curl")
        .args(["-s", "-L", "-k", "--max-time", "3", "-w", "\n%{http_code}"])
        .args(["--resolve", &resolve(80), "--resolve", &resolve(443)])
        .arg(format!("http://{host}{path}"))
        .output()
        .unwrap();
    let text = stdout(&out);
    match text.rsplit_once('\n') {
        Some((body, "404")) if body.contains("kinet-ingress") => "404".into(),
        Some((body, "200")) => served_by(body),
        _ => text,
    }
}

/// A conformance feature file of crates/ingress/tests/conformance (shared with the routing
/// table's unit tests): the Ingress as JSON, and its `(host, path, Service or 404)` rows.
fn feature(yaml: &str) -> (String, Vec<(String, String, String)>) {
    let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let ingress = serde_json::to_string(&file["ingress"]).unwrap();
    let cases = serde_yaml_ng::from_value(file["cases"].clone()).unwrap();
    (ingress, cases)
}

/// The pod's Deployment name, from netexec's `/hostname` (`<deploy>-<rs hash>-<pod hash>`).
fn served_by(body: &str) -> String {
    let parts: Vec<&str> = body.trim().rsplitn(3, '-').collect();
    parts.last().unwrap_or(&"").to_string()
}

#[test]
fn ingress_routes_tutorial_and_conformance_scenarios() {
    let c = Cluster::up(2);
    let lb = poll("the ingress Service's address", || {
        let svc = json(&c, &["get", "svc", "-n", "kinet-ingress", "kinet-ingress"]);
        svc["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    });
    let lb = own(&c, &lb);
    let class = c.kubectl_ok(&["get", "ingressclass", "kinet", "-o", "yaml"]);
    assert!(class.contains("controller: kinet.dev/ingress"), "{class}");
    assert!(class.contains("is-default-class: \"true\""), "{class}");
    // Nothing served yet: everything is 404.
    assert_eq!(get(&lb, "app.example.com", "/", &[]).0, 404);

    tutorial(&c, &lb);
    conformance_paths_hosts_and_tls(&c, &lb);
    class_methods_and_balancing(&c, &lb);
    websocket_echo(&c, &lb);
}

/// kubeserve.example.com → kubeserve2, app.example.com → nginx, anything else → httpd.
pub(crate) fn tutorial(c: &Cluster, lb: &str) {
    c.kubectl_ok(&["create", "deployment", "nginx", "--image", "nginx"]);
    c.kubectl_ok(&["create", "deployment", "httpd", "--image", "httpd"]);
    c.kubectl_ok(&["expose", "deployment", "nginx", "--port", "80"]);
    c.kubectl_ok(&["expose", "deployment", "httpd", "--port", "80"]);
    backends(c, &["kubeserve2"], NETEXEC);
    apply(
        c,
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: service-ingress}
spec:
  defaultBackend: {service: {name: httpd, port: {number: 80}}}
  rules:
  - host: kubeserve.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: kubeserve2, port: {number: 8080}}}}]}
  - host: app.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: nginx, port: {number: 80}}}}]}
"#,
    );
    wait_ready(c, "app=nginx", 1);
    wait_ready(c, "app=httpd", 1);
    wait_for(lb, "app.example.com", "/", 200, "Welcome to nginx!");
    wait_for(lb, "anything.example.org", "/", 200, "It works!");
    let (code, body) = get(lb, "kubeserve.example.com", "/hostname", &[]);
    assert_eq!(
        (code, served_by(&body).as_str()),
        (200, "kubeserve2"),
        "{body}"
    );
    // The same from the outside namespace.
    let out = external(
        c,
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            "-H",
            "Host: app.example.com",
            &format!("http://{lb}/"),
        ],
    );
    assert!(stdout(&out).contains("Welcome to nginx!"), "{}", show(&out));

    // Forwarded headers: the client's own X-Forwarded-For is not trusted.
    let header = |key: &str| {
        get(
            lb,
            "kubeserve.example.com",
            &format!("/header?key={key}"),
            &["-H", "X-Forwarded-For: 1.2.3.4"],
        )
        .1
    };
    let xff = header("X-Forwarded-For");
    assert!(
        xff.trim().parse::<std::net::IpAddr>().is_ok() && !xff.contains("1.2.3.4"),
        "{xff}"
    );
    assert_eq!(header("X-Original-Forwarded-For").trim(), "1.2.3.4");
    assert_eq!(header("X-Forwarded-Proto").trim(), "http");
    assert_eq!(header("X-Forwarded-Host").trim(), "kubeserve.example.com");

    // Created without a class, it got the default one (DefaultIngressClass admission).
    let class = c.kubectl_ok(&[
        "get",
        "ingress",
        "service-ingress",
        "-o",
        "jsonpath={.spec.ingressClassName}",
    ]);
    assert_eq!(class.trim(), "kinet");

    // ADDRESS, rules and backends, and the Sync event.
    poll("the Ingress's ADDRESS", || {
        c.kubectl_ok(&["get", "ingress", "service-ingress"])
            .contains(lb)
            .then_some(())
    });
    let described = c.kubectl_ok(&["describe", "ingress", "service-ingress"]);
    for want in [
        lb,
        "kubeserve.example.com",
        "kubeserve2:8080",
        "app.example.com",
        "nginx:80",
        "httpd:80",
        "Sync",
    ] {
        assert!(described.contains(want), "{want} missing from\n{described}");
    }

    // kubectl edit: app.example.com now goes to httpd.
    let out = c
        .kubectl_cmd(&["edit", "ingress", "service-ingress"])
        .env("KUBE_EDITOR", "sed -i s/name:\\ nginx/name:\\ httpd/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    wait_for(lb, "app.example.com", "/", 200, "It works!");

    // Scale to 0 → 503, back → 200.
    c.kubectl_ok(&["scale", "deployment", "kubeserve2", "--replicas", "0"]);
    wait_for(
        lb,
        "kubeserve.example.com",
        "/hostname",
        503,
        "Service Temporarily Unavailable",
    );
    c.kubectl_ok(&["scale", "deployment", "kubeserve2", "--replicas", "1"]);
    wait_for(lb, "kubeserve.example.com", "/hostname", 200, "kubeserve2");

    // Deleting the Ingress makes its hosts 404.
    c.kubectl_ok(&["delete", "ingress", "service-ingress"]);
    wait_for(lb, "kubeserve.example.com", "/", 404, "404 Not Found");
    wait_for(lb, "app.example.com", "/", 404, "404 Not Found");
}

/// The conformance features' path-rules and host-rules tables (one-label wildcards, TLS by
/// SNI with a Secret from `kubectl create secret tls`), and the 308 redirect to HTTPS.
fn conformance_paths_hosts_and_tls(c: &Cluster, lb: &str) {
    let features = [
        feature(include_str!(
            "../../../ingress/tests/conformance/path-rules.yaml"
        )),
        feature(include_str!(
            "../../../ingress/tests/conformance/host-rules.yaml"
        )),
    ];
    let services: BTreeSet<&str> = features
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|(_, _, want)| want.as_str()))
        .filter(|s| *s != "404")
        .collect();
    backends(c, &Vec::from_iter(services), SERVE_HOSTNAME);
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=foo.bar.com",
        ])
        .args(["-addext", "subjectAltName=DNS:foo.bar.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    c.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "conformance-tls",
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ]);
    for (ingress, _) in &features {
        apply(c, ingress);
    }
    poll("the conformance Ingresses' routes", || {
        (served(lb, "exact-path-rules", "/foo") == "foo-exact"
            && served(lb, "bar.foo.com", "/") == "wildcard-foo-com")
            .then_some(())
    });
    for (host, path, want) in features.iter().flat_map(|(_, cases)| cases) {
        assert_eq!(served(lb, host, path), *want, "{host}{path}");
    }
    // TLS host: plain HTTP gets a 308 to https, and HTTPS serves the Secret's certificate by SNI.
    let (code, _) = get(
        lb,
        "foo.bar.com",
        "/hostname",
        &["-o", "/dev/null", "-D", "-"],
    );
    assert_eq!(code, 308);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "3", "--cacert"])
        .arg(&crt)
        .args([
            "--resolve",
            &format!("foo.bar.com:443:{lb}"),
            "https://foo.bar.com/",
        ])
        .output()
        .unwrap();
    assert_eq!(served_by(&stdout(&out)), "foo-bar-com", "{}", show(&out));
    let sni = |name: &str| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("{lb}:443"),
                "-servername",
                name,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        stdout(&out)
    };
    assert!(sni("foo.bar.com").contains("subject=CN = foo.bar.com"));
    assert!(sni("unknown.example.com").contains("Fake Certificate"));
    c.kubectl_ok(&["delete", "ingress", "path-rules", "host-rules"]);
}

/// An Ingress of another class is left alone; every method reaches the default backend;
/// requests spread over 10 endpoints; the metrics count them.
fn class_methods_and_balancing(c: &Cluster, lb: &str) {
    apply(
        c,
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other-class}
spec:
  ingressClassName: some-invalid-class-name
  rules:
  - host: ingress-class
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: kubeserve2, port: {number: 8080}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: own-class}
spec:
  ingressClassName: kinet
  rules:
  - host: kinet-class
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: kubeserve2, port: {number: 8080}}}}]}
"#,
    );
    // Watch events come in order: once the later Ingress routes, the earlier one was seen.
    wait_for(lb, "kinet-class", "/hostname", 200, "kubeserve2");
    assert_eq!(get(lb, "ingress-class", "/hostname", &[]).0, 404);
    // Moved to another class, an Ingress stops routing and loses kinet's address.
    let address = |name: &str| {
        json(c, &["get", "ingress", name])["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    };
    poll("own-class's ADDRESS", || {
        (address("own-class").as_deref() == Some(lb)).then_some(())
    });
    c.kubectl_ok(&[
        "patch",
        "ingress",
        "own-class",
        "--type=merge",
        "-p",
        r#"{"spec": {"ingressClassName": "some-invalid-class-name"}}"#,
    ]);
    wait_for(lb, "kinet-class", "/hostname", 404, "404 Not Found");
    poll("own-class's ADDRESS cleared", || {
        address("own-class").is_none().then_some(())
    });
    apply(
        c,
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: default-backend}
spec:
  defaultBackend: {service: {name: kubeserve2, port: {name: http}}}
"#,
    );
    wait_for(lb, "my-host", "/hostname", 200, "kubeserve2");
    let other = json(c, &["get", "ingress", "other-class"]);
    assert!(
        other["status"]["loadBalancer"]["ingress"].is_null(),
        "{other}"
    );
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let (code, body) = get(lb, "some-host", "/echo?msg=ok", &["-X", method]);
        assert_eq!((code, body.trim()), (200, "ok"), "{method}");
    }
    c.kubectl_ok(&["scale", "deployment", "kubeserve2", "--replicas", "10"]);
    wait_ready(c, "app=kubeserve2", 10);
    let seen: BTreeSet<String> = poll("10 endpoints behind the default backend", || {
        let seen: BTreeSet<String> = (0..20).map(|_| get(lb, "h", "/hostname", &[]).1).collect();
        (seen.len() == 10).then_some(seen)
    });
    assert!(
        seen.iter().all(|h| served_by(h) == "kubeserve2"),
        "{seen:?}"
    );
    let pod = json(c, &["get", "pods", "-n", "kinet-ingress", "-o", "json"]);
    let (ip, node) = (
        pod["items"][0]["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string(),
        pod["items"][0]["spec"]["nodeName"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let out = c.node_exec(
        &node,
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            &format!("http://{ip}:10254/metrics"),
        ],
    );
    let metrics = stdout(&out);
    assert!(
        metrics.lines().any(|l| l.starts_with("kinet_ingress_requests_total{ingress=\"default/default-backend\",backend=\"default/kubeserve2:http\",code=\"200\"}")),
        "{}",
        show(&out)
    );
}

/// A WebSocket echo server (RFC 6455, small frames) on :8080, in Python's standard library
/// from the debian image.
const WS_ECHO: &str = r#"
import base64, hashlib, socketserver
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        head = dict(l.split(b":", 1) for l in iter(lambda: self.rfile.readline().strip(), b""))
        head = {k.strip().lower(): v.strip() for k, v in head.items()}
        accept = base64.b64encode(hashlib.sha1(head[b"sec-websocket-key"] + GUID).digest())
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            b = self.rfile.read(2)
            if len(b) < 2 or b[0] & 15 == 8:
                return
            n, mask = b[1] & 127, self.rfile.read(4)
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(self.rfile.read(n)))
            self.wfile.write(bytes([b[0], n]) + data)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("", 8080), Echo).serve_forever()
"#;

/// A WebSocket client: the handshake through `argv[1]:80` with `Host: argv[2]`, the accept
/// key checked, one masked text frame sent; prints the echoed frame.
const WS_CLIENT: &str = r#"
import base64, hashlib, os, socket, sys
key = base64.b64encode(os.urandom(16))
s = socket.create_connection((sys.argv[1], 80), timeout=3)
s.sendall(b"GET /chat HTTP/1.1\r\nHost: " + sys.argv[2].encode() + b"\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
f = s.makefile("rb")
status = f.readline()
head = dict(l.split(b":", 1) for l in iter(lambda: f.readline().strip(), b""))
head = {k.strip().lower(): v.strip() for k, v in head.items()}
want = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
assert status.split()[1] == b"101", status
assert head.get(b"sec-websocket-accept") == want, head
msg, mask = b"hello through the ingress", os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(msg)))
b = f.read(2)
print(f.read(b[1] & 127).decode())
"#;

/// A WebSocket echo behind an Ingress: the Upgrade handshake and a message both ways.
fn websocket_echo(c: &Cluster, lb: &str) {
    let objects = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ws-echo"},
         "spec": {"selector": {"matchLabels": {"app": "ws-echo"}},
                  "template": {"metadata": {"labels": {"app": "ws-echo"}},
                               "spec": {"containers": [{"name": "echo", "image": "debian",
                                   "command": ["python3", "-c", WS_ECHO]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ws-echo"},
         "spec": {"selector": {"app": "ws-echo"}, "ports": [{"port": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ws"},
         "spec": {"rules": [{"host": "ws.example.com", "http": {"paths": [{"path": "/",
             "pathType": "Prefix", "backend": {"service": {"name": "ws-echo", "port": {"number": 8080}}}}]}}]}},
    ]});
    apply(c, &objects.to_string());
    wait_ready(c, "app=ws-echo", 1);
    let echoed = poll("a WebSocket echo through the ingress", || {
        let out = Command::new("python3")
            .args(["-c", WS_CLIENT, lb, "ws.example.com"])
            .output()
            .unwrap();
        out.status.success().then(|| stdout(&out))
    });
    assert_eq!(echoed.trim(), "hello through the ingress");
}
