//! Issue 17, item 3: a host joins with nothing but the server URL and a join token. The
//! joining "host" is the cluster's outside namespace (reached only over the underlay bridge),
//! in a mount namespace of its own where the server's KINET_HOME is hidden under an empty
//! tmpfs, and a PID namespace of its own. Tokens are created, listed, refused when wrong or
//! expired (and expired ones cleaned up), the node's certificate comes from a CSR the cluster
//! approves and signs. Then the host runs its node agent: the Node turns Ready, and its pods
//! reach pods, Services and DNS on the original node over VXLAN (UDP 8472 counted on the
//! underlay bridge) without NAT, under NetworkPolicy. `kinet leave` removes everything it
//! made, and `kinet node revoke` makes the credentials useless.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use kinet_testkit::host::SimulatedHost;

use crate::harness::{show, stdout, Cluster};
use crate::nodes::node_ready;
use crate::pods::{apply, exec, json, wait_ready, AGNHOST};
use crate::services::poll as poll_for;

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

/// The joining host ([`SimulatedHost`] in the cluster's outside namespace, the server's home
/// hidden). Dropped, it runs `kinet leave` if the host joined, then ends.
struct JoiningHost {
    host: SimulatedHost,
    state_dir: String,
}

impl JoiningHost {
    fn start(c: &Cluster, state_dir: &str) -> JoiningHost {
        let outside = format!("kinet-{}-outside", c.name);
        JoiningHost {
            host: SimulatedHost::start(&outside, &c.home).unwrap(),
            state_dir: state_dir.to_string(),
        }
    }

    /// Runs `script` on the joining host, `$KINET` the kinet binary.
    fn run(&self, script: &str) -> Output {
        self.host
            .run(script, &[("KINET", env!("CARGO_BIN_EXE_kinet"))])
    }
}

impl Drop for JoiningHost {
    fn drop(&mut self) {
        if std::path::Path::new(&self.state_dir)
            .join("join.json")
            .exists()
        {
            let out = self.run(&format!("\"$KINET\" leave --state-dir {}", self.state_dir));
            if !out.status.success() {
                eprintln!("kinet leave failed on drop: {}", show(&out));
            }
        }
    }
}

/// Runs `script` once on a fresh joining host.
fn on_joining_host(c: &Cluster, script: &str) -> Output {
    JoiningHost::start(c, "/nonexistent").run(script)
}

fn join_script(server: &str, token: &str, node: &str, state: &str) -> String {
    format!("\"$KINET\" join --server {server} --token '{token}' --node-name {node} --state-dir {state}")
}

#[test]
fn a_host_joins_with_only_the_url_and_a_token_and_its_node_can_be_revoked() {
    // Not the default mode: the joined host must take the cluster's, which it reads from
    // the published kube-system/kinet-config.
    let c = Cluster::up_with(1, &["--proxy-mode", "iptables"]);
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

    // The real token: trust, CSR, approval, signing; then the node agent, Ready.
    let node = format!("{}-joined", c.name);
    let host = JoiningHost::start(&c, &state_dir);
    let out = host.run(&join_script(&server, &token, &node, &state_dir));
    assert!(
        out.status.success(),
        "{}\n{}\nagent log:\n{}",
        show(&out),
        c.log(),
        std::fs::read_to_string(state.path().join(format!("logs/{node}.log"))).unwrap_or_default()
    );
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

    let joined_ip = outside_ip(&c);
    let n = json(&c, &["get", "node", &node]);
    assert!(node_ready(&n), "{n}");
    assert!(n["spec"]["podCIDR"].is_string(), "{n}");
    let annotations = &n["metadata"]["annotations"];
    assert_eq!(
        annotations["flannel.alpha.coreos.com/backend-type"],
        "vxlan"
    );
    assert_eq!(annotations["flannel.alpha.coreos.com/public-ip"], joined_ip);

    pods_across_hosts(&c, &node, &joined_ip);
    in_iptables_mode(&host);

    let as_node = |args: &[&str]| {
        Command::new("kubectl")
            .arg(format!("--kubeconfig={}", node_kubeconfig.display()))
            .args(args)
            .output()
            .unwrap()
    };
    let version = as_node(&["get", "--raw", "/version"]);
    assert!(version.status.success(), "{}", show(&version));

    // Revoked: every new request with that certificate is refused.
    let out = c.kinet(&["node", "revoke", &node]);
    assert!(out.status.success(), "{}", show(&out));
    let refused = as_node(&["get", "--raw", "/api"]);
    assert!(!refused.status.success(), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"),
        "{}",
        show(&refused)
    );

    // Leaving removes what the host's agent made: processes, links, tables, pod namespaces,
    // the state folder.
    let out = host.run(&format!("\"$KINET\" leave --state-dir {state_dir}"));
    assert!(out.status.success(), "{}", show(&out));
    // Killed processes stay zombies here: the simulated host's init (`sleep`) reaps nothing.
    let processes = stdout(&host.run("ps -e -o stat=,comm="));
    let stray: Vec<&str> = processes
        .lines()
        .filter(|p| !p.starts_with('Z'))
        .filter(|p| !["sleep", "sh", "ps"].contains(&p.split_whitespace().last().unwrap_or("")))
        .collect();
    assert!(stray.is_empty(), "processes left: {stray:?}");
    let links = stdout(&host.run("ip -o link"));
    for gone in ["cbr0", "flannel.1", "veth"] {
        assert!(!links.contains(gone), "{gone} is left:\n{links}");
    }
    let addresses = stdout(&host.run("ip -o addr"));
    assert!(!addresses.contains("kinet-lb"), "{addresses}");
    // iptables' own empty tables may stay; nothing of kinet's or kube-proxy's does.
    let ruleset = stdout(&host.run("nft list ruleset"));
    assert!(
        !ruleset.contains("kinet") && !ruleset.contains("KUBE-"),
        "rules left:\n{ruleset}"
    );
    let namespaces = kinet_netns::list().unwrap();
    let prefix = format!("kinet-{node}-");
    assert!(
        !namespaces.iter().any(|n| n.starts_with(&prefix)),
        "{namespaces:?}"
    );
    assert!(!state.path().exists(), "the state folder is left");
}

/// The joined host's proxy programs kube-proxy's iptables chains, the cluster's published
/// mode, and no nftables-mode table.
fn in_iptables_mode(host: &JoiningHost) {
    let saved = stdout(&host.run("iptables-save"));
    assert!(
        saved.contains("-A KUBE-SERVICES") && saved.contains(":KUBE-SVC-"),
        "no kube-proxy chains on the joined host:\n{saved}"
    );
    let nft = host.run("nft list table ip kinet");
    assert!(
        !nft.status.success(),
        "an nftables-mode table: {}",
        show(&nft)
    );
}

/// The joined host's address on the underlay (the outside namespace's).
fn outside_ip(c: &Cluster) -> String {
    let out = Command::new("ip")
        .args([
            "-n",
            &format!("kinet-{}-outside", c.name),
            "-o",
            "-4",
            "addr",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| !l.contains(" lo "))
        .expect("an underlay address");
    let cidr = line.split_whitespace().nth(3).unwrap();
    cidr.split('/').next().unwrap().to_string()
}

/// A netexec pod `name` pinned to `node`, labelled `app=<name>`, once Ready; its IP.
fn netexec_on(c: &Cluster, name: &str, node: &str) -> String {
    apply(
        c,
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  containers:
  - name: agnhost
    image: {AGNHOST}
    command: [/agnhost, netexec, --http-port=8080]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"
        ),
    );
    wait_ready(c, &format!("app={name}"), 1)[0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string()
}

/// UDP 8472 packets between the joined host and the nodes, counted on the underlay bridge by
/// an nftables bridge table (tcpdump is not on the machine; this counts the same packets).
struct VxlanCounter {
    underlay: String,
}

const COUNTER_TABLE: &str = "kinet-e2e-vxlan";

impl VxlanCounter {
    fn install(c: &Cluster, joined_ip: &str) -> VxlanCounter {
        let underlay = format!("kinet-{}-underlay", c.name);
        let rules = format!(
            "table bridge {COUNTER_TABLE} {{ chain counts {{ type filter hook forward priority 0; \
             ip saddr {joined_ip} udp dport 8472 counter; ip daddr {joined_ip} udp dport 8472 counter; }}; }}"
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &underlay, "nft", &rules])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        VxlanCounter { underlay }
    }

    /// Packets (from the joined host, to it).
    fn packets(&self) -> (u64, u64) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.underlay,
                "nft",
                "list",
                "table",
                "bridge",
                COUNTER_TABLE,
            ])
            .output()
            .unwrap();
        let counts: Vec<u64> = stdout(&out)
            .split("packets ")
            .skip(1)
            .map(|s| s.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        (counts[0], counts[1])
    }
}

impl Drop for VxlanCounter {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.underlay,
                "nft",
                "delete",
                "table",
                "bridge",
                COUNTER_TABLE,
            ])
            .status();
    }
}

/// curl `url` from `pod`: the body, or None when it fails.
fn curl(c: &Cluster, pod: &str, url: &str) -> Option<String> {
    let out = c.kubectl(&["exec", pod, "--", "curl", "-s", "--max-time", "3", url]);
    out.status.success().then(|| stdout(&out))
}

/// Pods on the joined host and on the original node reach each other, directly and through
/// a Service and its DNS name, with no NAT, over VXLAN on the underlay; policies apply there.
fn pods_across_hosts(c: &Cluster, node: &str, joined_ip: &str) {
    let counter = VxlanCounter::install(c, joined_ip);
    let here = netexec_on(c, "here", &format!("{}-control-plane", c.name));
    let there = netexec_on(c, "there", node);
    c.kubectl_ok(&[
        "expose",
        "pod",
        "here",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let cluster_ip = c.kubectl_ok(&["get", "svc", "here", "-o", "jsonpath={.spec.clusterIP}"]);

    exec(c, "there", &["ping", "-c1", "-W2", here.as_str()]);
    exec(c, "here", &["ping", "-c1", "-W2", there.as_str()]);
    // The server sees the client's own pod IP, both ways.
    let seen = curl(c, "there", &format!("http://{here}:8080/clientip")).unwrap();
    assert!(seen.starts_with(&format!("{there}:")), "{seen}");
    let seen = curl(c, "here", &format!("http://{there}:8080/clientip")).unwrap();
    assert!(seen.starts_with(&format!("{here}:")), "{seen}");
    let seen = poll_for("the Service from the joined host", || {
        curl(c, "there", &format!("http://{cluster_ip}/clientip"))
    });
    assert!(seen.starts_with(&format!("{there}:")), "{seen}");
    let answer = poll_for("cluster DNS from the joined host", || {
        let out = c.kubectl(&[
            "exec",
            "there",
            "--",
            "nslookup",
            "here.default.svc.cluster.local",
        ]);
        let text = stdout(&out);
        (out.status.success() && text.contains(&cluster_ip)).then_some(text)
    });
    assert!(answer.contains(&cluster_ip), "{answer}");
    let (out, back) = counter.packets();
    assert!(
        out > 0 && back > 0,
        "UDP 8472 on the underlay: {out} out, {back} back"
    );

    // A policy that admits only `access=yes` pods to `there` is enforced on the joined host.
    apply(
        c,
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-access}
spec:
  podSelector: {matchLabels: {app: there}}
  ingress: [{from: [{podSelector: {matchLabels: {access: \"yes\"}}}]}]
",
    );
    let url = format!("http://{there}:8080/clientip");
    poll_for("the policy on the joined host", || {
        curl(c, "here", &url).is_none().then_some(())
    });
    c.kubectl_ok(&["label", "pod", "here", "access=yes"]);
    poll_for("the policy admitting access=yes", || curl(c, "here", &url));
}
