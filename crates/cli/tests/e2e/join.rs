//! Issue 17, item 3 (its first half): a host joins with nothing but the server URL and a join
//! token. The joining "host" is the cluster's outside namespace (reached only over the
//! underlay bridge), in a mount namespace of its own where the server's KINET_HOME is hidden
//! under an empty tmpfs, and a PID namespace of its own. Tokens are created, listed, refused
//! when wrong or expired (and expired ones cleaned up), the node's certificate comes from a
//! CSR the cluster approves and signs, and `kinet node revoke` makes it useless.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{show, stdout, Cluster};

/// Polls `f` until it returns true, for at most `within`.
fn poll(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The API server's URL on the underlay gateway, as a joining host reaches it.
fn server_url(c: &Cluster) -> String {
    let text = std::fs::read_to_string(c.state_dir().join("cluster.json")).unwrap();
    let info: Value = serde_json::from_str(&text).unwrap();
    let cidr = info["underlay"].as_str().unwrap();
    let gateway: Vec<&str> = cidr.split('.').take(2).collect();
    format!("https://{}.{}.0.1:{}", gateway[0], gateway[1], info["port"])
}

/// Runs `script` as the joining host: in the outside network namespace, a new mount
/// namespace with the server's home under an empty tmpfs, and a new PID namespace.
fn on_joining_host(c: &Cluster, script: &str) -> Output {
    let hide = format!(
        "mount --make-rprivate / && mount -t tmpfs joiner {home} && {script}",
        home = c.home.display()
    );
    Command::new("ip")
        .args(["netns", "exec", &format!("kinet-{}-outside", c.name)])
        .args(["unshare", "--mount", "--pid", "--fork", "--mount-proc"])
        .args(["sh", "-c", &hide])
        .env("KINET", env!("CARGO_BIN_EXE_kinet"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("running the joining host")
}

fn join_script(server: &str, token: &str, node: &str, state: &str) -> String {
    format!("\"$KINET\" join --server {server} --token '{token}' --node-name {node} --state-dir {state}")
}

#[test]
fn a_host_joins_with_only_the_url_and_a_token_and_its_node_can_be_revoked() {
    let c = Cluster::up(1);
    let server = server_url(&c);
    let out = c.kinet(&["token", "create", "--ttl", "1h", "--description", "e2e lab"]);
    assert!(out.status.success(), "{}", show(&out));
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("K10") && token.contains("::"), "{token}");
    let list = c.kinet(&["token", "list"]);
    assert!(
        stdout(&list).contains(&token) && stdout(&list).contains("e2e lab"),
        "{}",
        show(&list)
    );

    // A bootstrap token may ask for a certificate and nothing else.
    let bearer = token.split("::").nth(1).unwrap();
    let pods = c.kubectl(&["--token", bearer, "get", "pods", "-A"]);
    assert!(!pods.status.success(), "{}", show(&pods));
    assert!(
        String::from_utf8_lossy(&pods.stderr).contains("Forbidden"),
        "{}",
        show(&pods)
    );

    // The joining host cannot see the server's files, only what it is given.
    let state = tempfile::Builder::new()
        .prefix("kinet-e2e-joiner-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let state_dir = state.path().display().to_string();
    let ca_key = c.state_dir().join("pki/ca.key");
    assert!(ca_key.exists());
    let hidden = on_joining_host(&c, &format!("test ! -e {}", ca_key.display()));
    assert!(
        hidden.status.success(),
        "the joiner sees the CA key\n{}",
        show(&hidden)
    );

    // A wrong secret, and a wrong CA hash, are refused, the latter before the token is sent.
    let wrong_secret = format!("{}.0123456789abcdef", &token[..token.len() - 17]);
    let out = on_joining_host(
        &c,
        &join_script(&server, &wrong_secret, "lab-a", &state_dir),
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the server refused the join token"),
        "{}",
        show(&out)
    );
    let wrong_ca = format!("K10{}{}", "0".repeat(64), &token[67..]);
    let out = on_joining_host(&c, &join_script(&server, &wrong_ca, "lab-a", &state_dir));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the one the join token pins"),
        "{}",
        show(&out)
    );

    // An expired token is refused, and the token cleaner deletes it.
    let expired = "abcdef.0123456789abcdef";
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true", "expiration": "2020-01-01T00:00:00Z"}})
    .to_string();
    let mut apply = c.kubectl_cmd(&["create", "-f", "-"]);
    apply
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = apply.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), secret.as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let expired_join = format!("{}::{expired}", &token[..67]);
    let out = on_joining_host(
        &c,
        &join_script(&server, &expired_join, "lab-a", &state_dir),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the server refused the join token"),
        "{}",
        show(&out)
    );
    assert!(
        poll(Duration::from_secs(30), || !c
            .kubectl(&[
                "get",
                "secret",
                "-n",
                "kube-system",
                "bootstrap-token-abcdef"
            ])
            .status
            .success()),
        "the expired token was not cleaned up"
    );

    // The real token: trust, CSR, approval, signing.
    let out = on_joining_host(&c, &join_script(&server, &token, "lab-a", &state_dir));
    assert!(out.status.success(), "{}\n{}", show(&out), c.log());
    let node_kubeconfig = state.path().join("kubeconfig");
    let csrs = c.kubectl_ok(&["get", "csr", "-o", "json"]);
    let csrs: Value = serde_json::from_str(&csrs).unwrap();
    let csr = &csrs["items"][0];
    assert_eq!(
        csr["spec"]["username"],
        format!("system:bootstrap:{}", &bearer[..6])
    );
    assert_eq!(csr["status"]["conditions"][0]["type"], "Approved");
    assert!(csr["status"]["certificate"].is_string(), "{csr}");

    let as_node = |args: &[&str]| {
        Command::new("kubectl")
            .arg(format!("--kubeconfig={}", node_kubeconfig.display()))
            .args(args)
            .output()
            .unwrap()
    };
    let version = as_node(&["get", "--raw", "/version"]);
    assert!(version.status.success(), "{}", show(&version));
    let api = as_node(&["get", "--raw", "/api"]);
    assert!(api.status.success(), "{}", show(&api));

    // Revoked: every new request with that certificate is refused.
    let out = c.kinet(&["node", "revoke", "lab-a"]);
    assert!(out.status.success(), "{}", show(&out));
    let refused = as_node(&["get", "--raw", "/api"]);
    assert!(!refused.status.success(), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"),
        "{}",
        show(&refused)
    );
}
