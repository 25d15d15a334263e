//! Issue 5: the service proxy, tried as a new user would. A 3-replica agnhost netexec
//! Deployment behind ClusterIP, UDP, NodePort and LoadBalancer Services; session affinity,
//! externalTrafficPolicy Local and its health-check port, scaling to 0 and back, and the
//! rules as `nft` and `kinet proxy rules` show them; named ports, internalTrafficPolicy Local,
//! externalIPs, headless and ExternalName Services, and connections refused at once when a
//! Service has no endpoints. Traffic goes only to addresses of the test's own cluster: pod
//! and Service IPs from its pods, node and LoadBalancer IPs (checked to lie in its underlay)
//! from the host and from its outside namespace. Every case runs once per proxy mode
//! (`<case>::nftables`, `<case>::iptables`).

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use kinet_types::wellknown::PROXY_HEALTHZ_PORT;
use serde_json::Value;

use crate::harness::{
    in_both_proxy_modes, kinet, rules_name_port, show, stdout, Cluster, ProxyMode,
};
use crate::pods::{
    apply, exec, ip_in_cidr, json, netexec_pods, wait_dns, wait_ready, wait_ready_in, AGNHOST,
};

/// `replicas` agnhost netexec pods labelled `app=<name>`: `/hostname`, `/clientip`, and
/// `hostname` over UDP on 8081.
fn netexec(c: &Cluster, name: &str, replicas: usize) -> BTreeSet<String> {
    names(&netexec_pods(c, name, replicas))
}

/// A pod that only waits, to run curl and bash from.
pub(crate) fn client(c: &Cluster) -> String {
    c.kubectl_ok(&[
        "run",
        "client",
        "--image",
        AGNHOST,
        "--command",
        "--",
        "/agnhost",
        "pause",
    ]);
    wait_ready_in(c, "default", "run=client", 1);
    "client".to_string()
}

fn names(pods: &[Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs a bash script inside `pod`.
fn sh(c: &Cluster, pod: &str, script: &str) -> String {
    exec(c, pod, &["bash", "-c", script])
}

/// `n` curls from `pod`, one answer per line (an empty line for a failed curl).
fn curls(c: &Cluster, pod: &str, url: &str, n: usize) -> Vec<String> {
    let out = sh(
        c,
        pod,
        &format!("for i in $(seq {n}); do curl -s --max-time 2 {url}; echo; done"),
    );
    out.lines().map(str::to_string).collect()
}

/// How one timed curl went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Try {
    /// curl's exit code: 7 failed to connect, 28 timed out.
    rc: i32,
    /// The connect failed with ECONNREFUSED (exit 7 also covers "No route to host").
    refused: bool,
}

/// `n` curls in a row from `pod`: how each ended.
pub(crate) fn curl_tries(c: &Cluster, pod: &str, url: &str, n: usize) -> Vec<Try> {
    let out = sh(
        c,
        pod,
        &format!(
            "for i in $(seq {n}); do \
             e=$(curl -sv -o /dev/null --max-time 5 {url} 2>&1); rc=$?; \
             case \"$e\" in *'Connection refused'*) r=1;; *) r=0;; esac; \
             echo $rc $r; done"
        ),
    );
    let tries: Vec<Try> = out
        .lines()
        .map(|l| {
            let f: Vec<u64> = l.split(' ').map(|f| f.parse().expect(l)).collect();
            Try {
                rc: f[0] as i32,
                refused: f[1] == 1,
            }
        })
        .collect();
    assert_eq!(tries.len(), n, "{out}");
    tries
}

/// Whether a try was refused (a REJECT answered, where a drop would time out with 28): what a
/// Service without endpoints must give.
pub(crate) fn refused(t: &Try) -> bool {
    t.rc == 7 && t.refused
}

/// How long a change may take to show: a bound for a loaded 2-core CI, not a target (polls
/// return as soon as it shows; `kinet bench` measures how fast).
const SETTLE: Duration = Duration::from_secs(60);

/// Polls `f` every 100 ms until it gives a value; panics with `what` after [`SETTLE`].
pub(crate) fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curl from the host; Some(body) on success.
pub(crate) fn host_curl(url: &str) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "2", url])
        .output()
        .unwrap();
    out.status.success().then(|| stdout(&out))
}

/// `kinet external exec --name <cluster> -- <cmd>`.
pub(crate) fn external(c: &Cluster, cmd: &[&str]) -> Output {
    let mut all = vec!["external", "exec", "--name", &c.name, "--"];
    all.extend(cmd);
    kinet(&c.home, &all)
}

/// The cluster's underlay subnet, as `kinet up` recorded it.
fn underlay(c: &Cluster) -> String {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_dir().join("cluster.json")).unwrap())
            .unwrap();
    info["underlay"].as_str().unwrap().to_string()
}

pub(crate) fn cluster_ip(c: &Cluster, svc: &str) -> String {
    json(c, &["get", "svc", svc])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Whether the Service's EndpointSlices list no endpoint at all.
fn no_endpoints(c: &Cluster, svc: &str) -> bool {
    let slices = json(
        c,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
        ],
    );
    slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["endpoints"].as_array().is_none_or(|e| e.is_empty()))
}

/// The pod name in a `/hostname` answer, checked to be one of `pods`.
fn one_of(pods: &BTreeSet<String>, answer: &str) -> bool {
    pods.contains(answer.trim())
}

/// One UDP `hostname` request from `pod`, sent from source port `sport`; the answer, or ""
/// when none came within a second.
fn udp_from_port(c: &Cluster, pod: &str, ip: &str, port: u16, sport: u16) -> String {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('', {sport}))\n\
         s.settimeout(1)\n\
         s.sendto(b'hostname', ('{ip}', {port}))\n\
         try:\n    print(s.recv(2048).decode())\n\
         except socket.timeout:\n    print('')\n"
    );
    exec(c, pod, &["/usr/bin/python3", "-c", &script])
        .trim()
        .to_string()
}

in_both_proxy_modes!(
    cluster_ip_spreads_keeps_affinity_answers_udp_and_follows_scaling,
    node_ports_and_load_balancers_serve_from_outside_the_cluster,
    named_ports_internal_policy_rule_free_services_and_prompt_refusals,
);

fn cluster_ip_spreads_keeps_affinity_answers_udp_and_follows_scaling(mode: ProxyMode) {
    cluster_ip_spreads_keeps_affinity_answers_udp_and_follows_scaling_on(&Cluster::up_in(mode, 3));
}

/// The case on any cluster with at least 3 node(s); `etcd.rs` runs it on an etcd-backed one.
pub(crate) fn cluster_ip_spreads_keeps_affinity_answers_udp_and_follows_scaling_on(c: &Cluster) {
    wait_dns(c);
    let pods = netexec(c, "netexec", 3);
    let client = client(c);
    let client_ip = json(c, &["get", "pod", &client])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "netexec",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let ip = cluster_ip(c, "netexec");
    let url = format!("http://{ip}/hostname");
    poll("the ClusterIP answers", || {
        curls(c, &client, &url, 1)
            .first()
            .filter(|a| one_of(&pods, a))
            .cloned()
    });

    // 30 curls reach all 3 pods.
    let answers = curls(c, &client, &url, 30);
    assert_eq!(answers.len(), 30, "{answers:?}");
    assert!(answers.iter().all(|a| one_of(&pods, a)), "{answers:?}");
    let seen: BTreeSet<String> = answers.into_iter().collect();
    assert_eq!(seen, pods, "30 curls reached only {seen:?}");

    // Pod to pod through a Service keeps the client's address.
    let seen_ip = curls(c, &client, &format!("http://{ip}/clientip"), 1).remove(0);
    assert_eq!(seen_ip.split(':').next(), Some(client_ip.as_str()));

    // Hairpin: a backend reaches the Service, itself included.
    let me = pods.iter().next().unwrap();
    let answers = curls(c, me, &url, 20);
    assert!(answers.iter().all(|a| one_of(&pods, a)), "{answers:?}");
    assert!(
        answers.contains(me),
        "{me} never reached itself: {answers:?}"
    );

    // sessionAffinity ClientIP: 15 curls in a row reach one pod. Rules change within
    // milliseconds of the patch; a round that mixes pods before that is retried.
    c.kubectl_ok(&[
        "patch",
        "svc",
        "netexec",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    poll("15 curls reach one pod", || {
        let answers = curls(c, &client, &url, 15);
        assert!(answers.iter().all(|a| one_of(&pods, a)), "{answers:?}");
        (answers.len() == 15 && answers.iter().all(|a| *a == answers[0])).then_some(())
    });
    c.kubectl_ok(&[
        "patch",
        "svc",
        "netexec",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);

    // A UDP Service answers: netexec replies to `hostname` with the pod's name.
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "netexec",
        "--name",
        "netexec-udp",
        "--port",
        "8081",
        "--protocol",
        "UDP",
    ]);
    let udp_ip = cluster_ip(c, "netexec-udp");
    let answer = poll("the UDP Service answers", || {
        // One datagram each way; dd reads it whole (bash would read a byte and lose the rest).
        let out = c.kubectl(&[
            "exec",
            &client,
            "--",
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/udp/{udp_ip}/8081; echo hostname >&3; \
                 timeout 2 dd bs=2048 count=1 status=none <&3"
            ),
        ]);
        let answer = stdout(&out);
        one_of(&pods, &answer).then_some(answer)
    });
    assert!(one_of(&pods, &answer), "{answer}");

    // UDP conntrack: datagrams from one source port stick to one pod; once that pod is
    // deleted its entry is flushed, so the same flow reaches another pod instead of vanishing.
    let ask = || udp_from_port(c, &client, &udp_ip, 8081, 40_123);
    let first = poll("UDP from a fixed port", || {
        Some(ask()).filter(|a| one_of(&pods, a))
    });
    for _ in 0..3 {
        assert_eq!(ask(), first, "one UDP flow changed pods");
    }
    c.kubectl_ok(&["delete", "pod", &first, "--wait=false"]);
    let next = poll("the UDP flow moves off the deleted pod", || {
        Some(ask()).filter(|a| !a.is_empty() && *a != first)
    });
    let now = names(&wait_ready(c, "app=netexec", 3));
    assert!(now.contains(&next), "{next} not in {now:?}");

    // Inspectable: rules named after the Service, and `kinet proxy rules`.
    let node = format!("{}-worker", c.name);
    let rules = c.proxy_rules(&node);
    for (svc, proto) in [("netexec", "tcp"), ("netexec-udp", "udp")] {
        assert!(
            rules_name_port(c.proxy_mode(), &rules, ("default", svc), proto, ""),
            "no rules for default/{svc} in\n{rules}"
        );
    }
    let out = kinet(
        &c.home,
        &["proxy", "rules", "--name", &c.name, "default/netexec"],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("default/netexec"), "{}", show(&out));
    assert!(stdout(&out).contains(&ip), "{}", show(&out));

    // Scale to 0: once the EndpointSlice is empty, a connection is refused at once (exit 7),
    // not left to time out (28).
    c.kubectl_ok(&["scale", "deployment", "netexec", "--replicas", "0"]);
    poll("the EndpointSlice empties", || {
        no_endpoints(c, "netexec").then_some(())
    });
    let tried = curl_tries(c, &client, &url, 1)[0];
    assert!(
        refused(&tried),
        "want connection refused at once: {tried:?}"
    );

    // Scale back to 3: served again.
    let scaled = Instant::now();
    c.kubectl_ok(&["scale", "deployment", "netexec", "--replicas", "3"]);
    let answer = poll("served again after scaling up", || {
        curls(c, &client, &url, 1)
            .into_iter()
            .next()
            .filter(|a| !a.is_empty())
    });
    let back = names(&wait_ready(c, "app=netexec", 3));
    assert!(one_of(&back, &answer), "{answer} not in {back:?}");
    eprintln!("served again {:?} after scaling up", scaled.elapsed());
}

/// Node and LoadBalancer addresses the test sends to must be its own underlay's.
pub(crate) fn own(c: &Cluster, ip: &str) -> String {
    let net = underlay(c);
    assert!(
        ip_in_cidr(ip, &net),
        "{ip} is not in the cluster's underlay {net}"
    );
    ip.to_string()
}

/// Each node's (name, InternalIP).
pub(crate) fn node_ips(c: &Cluster) -> Vec<(String, String)> {
    json(c, &["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ip = n["status"]["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str())
                .unwrap();
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                own(c, ip),
            )
        })
        .collect()
}

/// The outside namespace's own IPv4 address (not loopback).
pub(crate) fn outside_ip(c: &Cluster) -> String {
    let out = external(c, &["ip", "-4", "-o", "addr"]);
    assert!(out.status.success(), "{}", show(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().skip_while(|w| *w != "inet");
            f.nth(1)
        })
        .map(|a| a.split('/').next().unwrap().to_string())
        .find(|a| !a.starts_with("127."))
        .unwrap_or_else(|| panic!("no address in\n{}", show(&out)))
}

/// `/clientip` through the LoadBalancer from the outside namespace: the address part.
fn outside_clientip(c: &Cluster, lb: &str) -> Option<String> {
    let out = external(
        c,
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            &format!("http://{lb}/clientip"),
        ],
    );
    out.status
        .success()
        .then(|| stdout(&out).split(':').next().unwrap().to_string())
}

/// Runs kubectl (a `-w` command) until `pick` accepts one of its output lines; kills it.
fn watch_for(
    c: &Cluster,
    args: &[&str],
    timeout: Duration,
    mut pick: impl FnMut(&str) -> Option<String>,
) -> String {
    use std::io::BufRead;
    let mut child = c
        .kubectl_cmd(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    // The reader ends at EOF, once the child is killed.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(v) = pick(&line) {
                    break Some(v);
                }
                seen.push(line);
            }
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.unwrap_or_else(|| panic!("kubectl {args:?} never showed it:\n{}", seen.join("\n")))
}

fn node_ports_and_load_balancers_serve_from_outside_the_cluster(mode: ProxyMode) {
    let c = Cluster::up_in(mode, 3);
    let pods = netexec(&c, "netexec", 3);
    let nodes = node_ips(&c);
    assert_eq!(nodes.len(), 3);

    // NodePort: every node's InternalIP serves it, from the host and from outside.
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "netexec",
        "--name",
        "np",
        "--type",
        "NodePort",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let node_port = json(&c, &["get", "svc", "np"])["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap();
    for (name, ip) in &nodes {
        let url = format!("http://{ip}:{node_port}/hostname");
        let answer = poll(&format!("NodePort on {name}"), || host_curl(&url));
        assert!(one_of(&pods, &answer), "{name}: {answer}");
        // And from the outside namespace, another client on the underlay.
        let out = external(&c, &["curl", "-s", "--max-time", "2", &url]);
        assert!(out.status.success(), "{name} from outside\n{}", show(&out));
        assert!(one_of(&pods, &stdout(&out)), "{name}: {}", show(&out));
        // Every node's proxy publishes its sync metrics on kube-proxy's port.
        let metrics = host_curl(&format!("http://{ip}:10249/metrics")).unwrap_or_default();
        assert!(
            metrics.contains("kinet_proxy_sync_total "),
            "{name}: {metrics}"
        );
        assert!(
            metrics.contains("kinet_proxy_last_network_programming_seconds "),
            "{metrics}"
        );
        // kube-proxy's histogram, fed by the slices' trigger times: `np`'s slice counted.
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix("kubeproxy_network_programming_duration_seconds_count "))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(count.is_some_and(|n| n > 0), "{name}: {metrics}");
    }
    let slice = json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=np",
        ],
    );
    let stamped = &slice["items"][0]["metadata"]["annotations"]
        ["endpoints.kubernetes.io/last-change-trigger-time"];
    assert!(
        stamped.as_str().is_some_and(|t| t.ends_with('Z')),
        "{slice}"
    );

    // LoadBalancer: the allocator sets an address from the underlay pool.
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "netexec",
        "--name",
        "lb",
        "--type",
        "LoadBalancer",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    // `kubectl get svc -w` shows the EXTERNAL-IP once the allocator has set it.
    let shown = watch_for(&c, &["get", "svc", "lb", "-w"], SETTLE, |l| {
        let external = l.split_whitespace().nth(3)?;
        (l.starts_with("lb ") && external != "<pending>").then(|| external.to_string())
    });
    let lb = json(&c, &["get", "svc", "lb"])["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string)
        .expect("status.loadBalancer.ingress[0].ip");
    assert_eq!(shown, lb);
    let lb = own(&c, &lb);

    let url = format!("http://{lb}/hostname");
    let answer = poll("the LoadBalancer from the host", || host_curl(&url));
    assert!(one_of(&pods, &answer), "{answer}");
    let out = external(&c, &["curl", "-s", "--max-time", "2", &url]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(one_of(&pods, &stdout(&out)), "{}", show(&out));

    // Cluster policy masquerades outside clients; Local keeps their address.
    let outside = own(&c, &outside_ip(&c));
    let seen = outside_clientip(&c, &lb).expect("/clientip from outside");
    assert_ne!(seen, outside, "Cluster policy kept the outside address");

    // loadBalancerSourceRanges holding only the outside namespace: the host's connections
    // are dropped (curl times out, exit 28, where a refusal would be 7), the outside's
    // still served; without the ranges the host is served again.
    let ranges = |v: &str| {
        let patch = format!(r#"{{"spec":{{"loadBalancerSourceRanges":{v}}}}}"#);
        c.kubectl_ok(&["patch", "svc", "lb", "--type", "merge", "-p", &patch]);
    };
    ranges(&format!(r#"["{outside}/32"]"#));
    poll("the host, outside the ranges, is dropped", || {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "2", &url])
            .output()
            .unwrap();
        (out.status.code() == Some(28)).then_some(())
    });
    for _ in 0..3 {
        assert!(
            outside_clientip(&c, &lb).is_some(),
            "outside, in the ranges"
        );
    }
    ranges("null");
    poll("the host is served again", || host_curl(&url));
    c.kubectl_ok(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local"}}"#,
    ]);
    poll("/clientip shows the outside address", || {
        (outside_clientip(&c, &lb)? == outside).then_some(())
    });
    // Every later connection keeps it too.
    for _ in 0..5 {
        assert_eq!(outside_clientip(&c, &lb).as_deref(), Some(outside.as_str()));
    }

    // With one replica: the health-check port answers 200 (1 local endpoint) on its node and
    // 503 on the others, and the Local NodePort serves only there (the others drop).
    c.kubectl_ok(&["scale", "deployment", "netexec", "--replicas", "1"]);
    let pod = wait_ready(&c, "app=netexec", 1).remove(0);
    let home = pod["spec"]["nodeName"].as_str().unwrap().to_string();
    let svc = json(&c, &["get", "svc", "lb"]);
    let hc = svc["spec"]["healthCheckNodePort"]
        .as_u64()
        .expect("healthCheckNodePort");
    let lb_node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    for (name, ip) in &nodes {
        // The proxy's own health, where kube-proxy serves it: 200 once its syncs keep up.
        let url = format!("http://{ip}:{PROXY_HEALTHZ_PORT}/healthz");
        let out = std::process::Command::new("curl")
            .args(["-sf", "--max-time", "2", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", show(&out));
        let healthz: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(healthz["nodeEligible"], true, "{name}: {healthz}");

        let local = usize::from(*name == home);
        let want = if local > 0 { "200" } else { "503" };
        let url = format!("http://{ip}:{hc}/");
        let got = poll(&format!("health check on {name}: want {want}"), || {
            let out = std::process::Command::new("curl")
                .args(["-s", "--max-time", "2", "-w", "\n%{http_code}", &url])
                .output()
                .unwrap();
            stdout(&out).ends_with(want).then(|| stdout(&out))
        });
        let (body, _) = got.rsplit_once('\n').unwrap();
        let report: Value = serde_json::from_str(body).unwrap();
        assert_eq!(report["localEndpoints"], local, "{name}: {body}");
        assert_eq!(report["service"]["name"], "lb", "{name}: {body}");

        let url = format!("http://{ip}:{lb_node_port}/hostname");
        if local > 0 {
            let answer = poll(&format!("Local NodePort on {name}"), || host_curl(&url));
            assert_eq!(answer, pod["metadata"]["name"].as_str().unwrap());
        } else {
            let out = std::process::Command::new("curl")
                .args(["-s", "--max-time", "1", &url])
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "{name} has no endpoint of a Local Service but served\n{}",
                show(&out)
            );
        }
    }
}

/// A netexec pod on `node` with named ports `web` (8080/TCP) and `echo-udp` (8081/UDP).
fn pinned_netexec(c: &Cluster, name: &str, node: &str) {
    apply(
        c,
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: srv}}}}
spec:
  nodeName: {node}
  containers:
  - name: netexec
    image: {AGNHOST}
    command: [/agnhost, netexec, --http-port=8080, --udp-port=8081]
    ports:
    - {{name: web, containerPort: 8080}}
    - {{name: echo-udp, containerPort: 8081, protocol: UDP}}
"
        ),
    );
}

const SHAPES: &str = "apiVersion: v1
kind: Service
metadata: {name: multi}
spec:
  selector: {app: srv}
  ports:
  - {name: http, port: 80, targetPort: web}
  - {name: echo, port: 5353, targetPort: echo-udp, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  selector: {app: srv}
  internalTrafficPolicy: Local
  ports:
  - {name: http, port: 80, targetPort: web}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: srv}
  ports:
  - {name: http, port: 80, targetPort: web}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere}
spec:
  type: ExternalName
  externalName: example.invalid
";

/// An address of the cluster's underlay that nothing uses: `.10.10` of its /16 (nodes take
/// the lowest addresses, the outside namespace and LoadBalancer pool the highest).
fn unused_underlay_ip(c: &Cluster) -> String {
    let net = underlay(c);
    let (base, len) = net.split_once('/').unwrap();
    assert!(
        len.parse::<u32>().unwrap() <= 16,
        "underlay {net} too small"
    );
    let o: Vec<&str> = base.split('.').collect();
    own(c, &format!("{}.{}.10.10", o[0], o[1]))
}

/// Multiple ports with named targetPorts, internalTrafficPolicy Local, headless and
/// ExternalName Services (no rules), and last: every connection to a Service without
/// endpoints is refused at once, also the tenth in a row from one client.
fn named_ports_internal_policy_rule_free_services_and_prompt_refusals(mode: ProxyMode) {
    let c = Cluster::up_in(mode, 2);
    let (a, b) = (
        format!("{}-control-plane", c.name),
        format!("{}-worker", c.name),
    );
    pinned_netexec(&c, "srv-a", &a);
    pinned_netexec(&c, "srv-b", &b);
    apply(
        &c,
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{run: client}}}}
spec:
  nodeName: {a}
  containers:
  - {{name: client, image: {AGNHOST}, command: [/agnhost, pause]}}
"
        ),
    );
    apply(&c, SHAPES);
    wait_ready(&c, "app=srv", 2);
    wait_ready(&c, "run=client", 1);
    let both: BTreeSet<String> = ["srv-a", "srv-b"].map(String::from).into();

    // Two ports, each through its named targetPort.
    let multi = cluster_ip(&c, "multi");
    let url = format!("http://{multi}/hostname");
    poll("multi:80 answers", || {
        curls(&c, "client", &url, 1)
            .pop()
            .filter(|a| one_of(&both, a))
    });
    let seen: BTreeSet<String> = curls(&c, "client", &url, 20).into_iter().collect();
    assert_eq!(seen, both, "20 curls to multi:80");
    let answer = poll("multi:5353/UDP answers", || {
        Some(udp_from_port(&c, "client", &multi, 5353, 40_124)).filter(|a| one_of(&both, a))
    });
    assert!(one_of(&both, &answer));

    // internalTrafficPolicy Local: the client on `a` only reaches srv-a.
    let local_url = format!("http://{}/hostname", cluster_ip(&c, "local"));
    poll("local answers", || {
        curls(&c, "client", &local_url, 1)
            .pop()
            .filter(|a| !a.is_empty())
    });
    let answers = curls(&c, "client", &local_url, 10);
    assert!(answers.iter().all(|a| a == "srv-a"), "{answers:?}");

    // externalIPs: a pod reaches the Service on an address of the underlay that no node holds
    // (as in kube-proxy, the rules catch it on the way out of the client's node).
    let ext_ip = unused_underlay_ip(&c);
    apply(
        &c,
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: extip}}
spec:
  selector: {{app: srv}}
  externalIPs: [{ext_ip}]
  ports:
  - {{name: http, port: 8088, targetPort: web}}
"
        ),
    );
    let answer = poll("the externalIP answers", || {
        curls(&c, "client", &format!("http://{ext_ip}:8088/hostname"), 1)
            .pop()
            .filter(|a| one_of(&both, a))
    });
    assert!(one_of(&both, &answer));

    // Rules: chains per Service port, named after the port; nothing for headless and
    // ExternalName Services, on either node.
    for node in [&a, &b] {
        let rules = c.proxy_rules(node);
        for (svc, proto, port) in [
            ("multi", "tcp", "http"),
            ("multi", "udp", "echo"),
            ("local", "tcp", "http"),
        ] {
            assert!(
                rules_name_port(mode, &rules, ("default", svc), proto, port),
                "{node}: no rules for default/{svc}:{port}/{proto} in\n{rules}"
            );
        }
        for never in ["default/headless", "default/elsewhere"] {
            assert!(!rules.contains(never), "{node}: {never} in\n{rules}");
        }
    }

    // Without srv-a, the Local Service has no endpoint on `a`: its traffic is dropped there,
    // while `multi` still reaches srv-b.
    c.kubectl_ok(&["delete", "pod", "srv-a", "--wait=false"]);
    poll("srv-a leaves multi", || {
        let answers = curls(&c, "client", &url, 10);
        answers.iter().all(|a| a == "srv-b").then_some(())
    });
    let answers = curls(&c, "client", &local_url, 1);
    assert!(answers.iter().all(String::is_empty), "{answers:?}");

    // No endpoints at all: every connection is refused (exit 7), none left to time out.
    c.kubectl_ok(&["create", "service", "clusterip", "nothing", "--tcp=80:8080"]);
    let url = format!("http://{}/", cluster_ip(&c, "nothing"));
    poll("the Service is rejected", || {
        (curl_tries(&c, "client", &url, 1)[0].rc == 7).then_some(())
    });
    let tries = curl_tries(&c, "client", &url, 10);
    assert!(
        tries.iter().all(refused),
        "10 connections in a row, each must be refused at once: {tries:?}"
    );
}
