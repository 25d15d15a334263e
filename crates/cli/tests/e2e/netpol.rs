//! Issue 13: NetworkPolicy enforced in the kernel, on one shared 2-node cluster. The upstream
//! e2e model (namespaces x, y, z with pods a, b, c serving TCP and UDP on 80 and 81, ports
//! named `serve-<port>-<proto>`, one Service per pod), policies applied with real kubectl,
//! and `kinet policy matrix --via-service` probing every pair from inside the source pods
//! through the destination's Service ClusterIP, as upstream does: its expected table must
//! equal the upstream case's, and the observed one the expected. The cases not written out
//! here run from the table in `netpol/upstream.rs`. Policies must hold whichever proxy mode
//! translates the Services: the case runs in both.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{in_both_proxy_modes, show, stdout, Cluster, ProxyMode};
use crate::pods::{apply, wait_dns, wait_ready_in, AGNHOST};
use crate::services::{external, host_curl, outside_ip, own, poll};

mod upstream;

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

fn model_yaml() -> String {
    let mut docs = Vec::new();
    for ns in NAMESPACES {
        docs.push(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: \"{ns}\"}}"
        ));
        for pod in PODS {
            let container = |port: u16| {
                format!(
                    "  - name: cont-{port}\n    image: {AGNHOST}\n    command: [/agnhost, serve-hostname, --tcp, --udp, --http=false, --port, \"{port}\"]\n    ports: [{{containerPort: {port}, name: serve-{port}-tcp}}, {{containerPort: {port}, name: serve-{port}-udp, protocol: UDP}}]\n"
                )
            };
            docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: \"{ns}\", labels: {{pod: {pod}}}}}\nspec:\n  containers:\n{}{}",
                container(80),
                container(81)
            ));
            docs.push(format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s-{ns}-{pod}, namespace: \"{ns}\"}}\nspec:\n  selector: {{pod: {pod}}}\n  ports: [{{name: service-port-tcp-80, port: 80}}, {{name: service-port-tcp-81, port: 81}}, {{name: service-port-udp-80, port: 80, protocol: UDP}}, {{name: service-port-udp-81, port: 81, protocol: UDP}}]"
            ));
        }
    }
    docs.join("\n---\n")
}

/// An expected truth table, all allowed to start with; later settings override earlier
/// ones, as upstream's `Reachability` does. Patterns: `*`, `ns/*`, `ns/pod`.
struct Reach(BTreeMap<(String, String), bool>);

fn matches(pattern: &str, pod: &str) -> bool {
    pattern == "*"
        || pattern == pod
        || pattern
            .strip_suffix("/*")
            .is_some_and(|ns| pod.starts_with(&format!("{ns}/")))
}

impl Reach {
    fn all() -> Reach {
        let pods: Vec<String> = NAMESPACES
            .iter()
            .flat_map(|n| PODS.iter().map(move |p| format!("{n}/{p}")))
            .collect();
        Reach(
            pods.iter()
                .flat_map(|f| pods.iter().map(move |t| ((f.clone(), t.clone()), true)))
                .collect(),
        )
    }
    fn peer(mut self, from: &str, to: &str, v: bool) -> Reach {
        for ((f, t), cell) in self.0.iter_mut() {
            if f != t && matches(from, f) && matches(to, t) {
                *cell = v;
            }
        }
        self
    }
}

/// One table of `kinet policy matrix` output, as cells.
fn table(out: &str, title: &str) -> BTreeMap<(String, String), char> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(title)).skip(1);
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .skip(1)
        .map(String::from)
        .collect();
    let mut cells = BTreeMap::new();
    for l in lines.take_while(|l| !l.is_empty()) {
        let mut it = l.split('\t');
        let from = it.next().unwrap().trim().to_string();
        for (to, c) in header.iter().zip(it) {
            cells.insert((from.clone(), to.clone()), c.chars().next().unwrap());
        }
    }
    cells
}

/// Runs the matrix on `port` until observed equals expected (policies take a moment to
/// reach every node; upstream probes for up to 10 s too), and checks the expected table is
/// `want`.
fn check(c: &Cluster, case: &str, port: &str, want: &Reach) {
    let mut last = String::new();
    for _ in 0..5 {
        let out = c.kinet(&[
            "policy",
            "matrix",
            "-n",
            "x",
            "-n",
            "y",
            "-n",
            "z",
            "--port",
            port,
            "--via-service",
        ]);
        last = show(&out);
        let text = stdout(&out);
        let expected = table(&text, "Expected");
        let differs: Vec<_> = want
            .0
            .iter()
            .filter(|((f, t), v)| {
                f != t
                    && expected.get(&(f.clone(), t.clone())) != Some(&if **v { '.' } else { 'X' })
            })
            .collect();
        assert!(
            differs.is_empty(),
            "{case}: the model's table is not upstream's at {differs:?}\n{text}"
        );
        if out.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{case}: the kernel does not do what the model says\n{last}");
}

/// Whether `probe` gives `want` within a few tries (policies take a moment to reach nodes).
fn eventually(probe: impl Fn() -> bool, want: bool) -> bool {
    (0..10).any(|_| {
        let ok = probe() == want;
        if !ok {
            std::thread::sleep(Duration::from_millis(300));
        }
        ok
    })
}

/// Applies `yaml`, checks each `(case, port, expected table)`, then deletes the policies.
fn case(c: &Cluster, yaml: &str, checks: &[(&str, &str, Reach)]) {
    policy(c, yaml);
    for (name, port, want) in checks {
        check(c, name, port, want);
    }
    delete_policies(c);
}

fn policy(c: &Cluster, yaml: &str) {
    apply(c, yaml);
}

fn delete_policies(c: &Cluster) {
    for ns in NAMESPACES {
        c.kubectl_ok(&["delete", "networkpolicy", "--all", "-n", ns]);
    }
}

/// What a TCP connection from inside `ns/pod` (its first container) to `host:port` gets.
#[derive(Debug, PartialEq)]
enum Probe {
    /// serve-hostname sent its name.
    Answered,
    /// No answer within 2 s: the packets were dropped.
    TimedOut,
    Failed(String),
}

fn probe(c: &Cluster, ns: &str, pod: &str, target: &str) -> Probe {
    let (host, port) = target.split_once(':').unwrap();
    let out = c.kubectl(&[
        "exec",
        "-n",
        ns,
        pod,
        "--",
        "bash",
        "-c",
        &format!("timeout 2 bash -c 'cat </dev/tcp/{host}/{port}'"),
    ]);
    match out.status.code() {
        Some(0) if !stdout(&out).is_empty() => Probe::Answered,
        Some(124) => Probe::TimedOut,
        _ => Probe::Failed(show(&out)),
    }
}

/// `host:port` answers over TCP from inside `ns/pod`.
fn tcp_from(c: &Cluster, ns: &str, pod: &str, target: &str) -> bool {
    probe(c, ns, pod, target) == Probe::Answered
}

fn cluster_ip(c: &Cluster, ns: &str, svc: &str) -> String {
    c.kubectl_ok(&[
        "get",
        "svc",
        "-n",
        ns,
        svc,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])
}

in_both_proxy_modes!(network_policy_is_enforced_in_the_kernel_as_upstream_expects);

fn network_policy_is_enforced_in_the_kernel_as_upstream_expects(mode: ProxyMode) {
    let c = Cluster::up_in(mode, 2);
    wait_dns(&c);
    apply(&c, &model_yaml());
    for ns in NAMESPACES {
        wait_ready_in(&c, ns, "pod", 3);
    }
    let nodes: std::collections::BTreeSet<String> = c
        .kubectl_ok(&[
            "get",
            "pods",
            "-A",
            "-l",
            "pod",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ])
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(nodes.len(), 2, "the model spans both nodes: {nodes:?}");
    check(&c, "no policy", "80/tcp", &Reach::all());

    // Default deny ingress: x unreachable, and deleting the policy restores it.
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-ingress, namespace: \"x\"}\nspec: {podSelector: {}, policyTypes: [Ingress]}");
    check(
        &c,
        "default-deny-ingress",
        "80/tcp",
        &Reach::all().peer("*", "x/*", false),
    );
    // Through a ClusterIP, and across nodes: the policy sees the pod address after DNAT.
    let svc = cluster_ip(&c, "x", "s-x-a");
    assert!(
        !tcp_from(&c, "y", "a", &format!("{svc}:80")),
        "ClusterIP of x/a reachable under deny-ingress"
    );
    let drops = stdout(&c.kinet(&["policy", "drops"]));
    let counted = drops
        .lines()
        .filter(|l| l.contains(" x/deny-ingress "))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(counted > 0, "no drops counted for x/deny-ingress\n{drops}");
    // The enforcer's syncs are on the node's metrics port, beside the proxy's.
    let metrics = host_curl(&format!(
        "http://{}:10249/metrics",
        own(
            &c,
            &c.kubectl_ok(&[
                "get",
                "pod",
                "-n",
                "x",
                "a",
                "-o",
                "jsonpath={.status.hostIP}"
            ])
        )
    ))
    .unwrap_or_default();
    assert!(
        metrics.contains("kinet_policy_sync_total ") && metrics.contains("kinet_proxy_sync_total "),
        "{metrics}"
    );
    delete_policies(&c);
    check(&c, "deny-ingress deleted", "80/tcp", &Reach::all());
    assert!(tcp_from(&c, "y", "a", &format!("{svc}:80")));

    // Default deny all (ingress and egress).
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: \"x\"}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}",
        &[
            ("default-deny-all", "80/tcp", Reach::all().peer("*", "x/*", false).peer("x/*", "*", false)),
        ],
    );

    // namespaceSelector AND podSelector in one peer: only y/b reaches x/a.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: and, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}, podSelector: {matchLabels: {pod: b}}}]}]",
        &[
            ("ns AND pod selector", "80/tcp", Reach::all().peer("*", "x/a", false).peer("y/b", "x/a", true)),
        ],
    );

    // The same selectors as two peers (OR): all of y, and every b in x.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: or, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}}, {podSelector: {matchLabels: {pod: b}}}]}]",
        &[
            ("ns OR pod selector", "80/tcp", Reach::all().peer("*", "x/a", false).peer("y/*", "x/a", true).peer("x/b", "x/a", true)),
        ],
    );

    // ipBlock with except: the pod network but not y/a's address.
    let ya = c.kubectl_ok(&[
        "get",
        "pod",
        "-n",
        "y",
        "a",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    policy(&c, &format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: cidr, namespace: \"x\"}}\nspec:\n  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{ya}/32]}}}}]}}]"));
    check(
        &c,
        "ipBlock except",
        "80/tcp",
        &Reach::all().peer("y/a", "x/a", false),
    );
    delete_policies(&c);

    // Named port: only serve-81-tcp is allowed into x/a.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: named, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: serve-81-tcp}]}]",
        &[
            ("named port, 80", "80/tcp", Reach::all().peer("*", "x/a", false)),
            ("named port, 81", "81/tcp", Reach::all()),
        ],
    );

    // endPort: 81-90 allowed into x/a, 80 not.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: range, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: 81, endPort: 90}]}]",
        &[
            ("endPort, 80", "80/tcp", Reach::all().peer("*", "x/a", false)),
            ("endPort, 81", "81/tcp", Reach::all()),
        ],
    );

    // Any pod of the namespace (upstream case 12): an empty podSelector as the peer.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: any-pod, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {}}]}]",
        &[
            ("any pod selector", "80/tcp", Reach::all().peer("*", "x/a", false).peer("x/*", "x/a", true)),
        ],
    );

    // Allow-all stacked on deny-all (upstream cases 16 and 31): the union allows everything,
    // on every port.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: \"x\"}\nspec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-all, namespace: \"x\"}\nspec: {podSelector: {}, ingress: [{}]}",
        &[
            ("allow-all over deny-all, 80", "80/tcp", Reach::all()),
            ("allow-all over deny-all, 81", "81/udp", Reach::all()),
        ],
    );

    // Several ports of one rule (upstream case 14 with a second port): TCP 81 and UDP 80
    // from y only.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ports, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [\"y\"]}]}}], ports: [{port: 81}, {port: 80, protocol: UDP}]}]",
        &[
            ("ports from y, 81/tcp", "81/tcp", Reach::all().peer("*", "x/a", false).peer("y/*", "x/a", true)),
            ("ports from y, 80/udp", "80/udp", Reach::all().peer("*", "x/a", false).peer("y/*", "x/a", true)),
            ("ports from y, 80/tcp", "80/tcp", Reach::all().peer("*", "x/a", false)),
        ],
    );

    // UDP: deny UDP ingress to x/b except from z; TCP stays open.
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: udp, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: b}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}], ports: [{protocol: UDP, port: 80}]}]",
        &[
            ("UDP", "80/udp", Reach::all().peer("*", "x/b", false).peer("z/*", "x/b", true)),
        ],
    );

    // Egress denied except DNS: x/a resolves names but reaches no pod. Replies of the
    // connections others make to x/a still pass (conntrack), since its ingress is open.
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: dns-only, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]");
    check(
        &c,
        "egress DNS only",
        "80/tcp",
        &Reach::all().peer("x/a", "*", false),
    );
    let out = c.kubectl(&[
        "exec",
        "-n",
        "x",
        "a",
        "-c",
        "cont-80",
        "--",
        "nslookup",
        "s-y-b.y.svc.cluster.local",
    ]);
    assert!(
        out.status.success(),
        "DNS from x/a under egress deny\n{}",
        show(&out)
    );
    assert!(!tcp_from(
        &c,
        "x",
        "a",
        &format!("{}:80", cluster_ip(&c, "y", "s-y-b"))
    ));
    delete_policies(&c);

    // Within the namespace by podSelector (upstream case 3).
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x-a-allows-x-b, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]");
    check(
        &c,
        "pod selector within the namespace",
        "80/tcp",
        &Reach::all()
            .peer("*", "x/a", false)
            .peer("x/b", "x/a", true),
    );
    // An updated pod label moves x/c into a selector, and back out (upstream case 22; the
    // `pod` label stays, so that each Service keeps selecting its one pod).
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-updated, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod2: updated}}}]}]");
    c.kubectl_ok(&["label", "pod", "-n", "x", "c", "pod2=updated"]);
    check(
        &c,
        "pod relabelled into the selector",
        "80/tcp",
        &Reach::all()
            .peer("*", "x/a", false)
            .peer("x/b", "x/a", true)
            .peer("x/c", "x/a", true),
    );
    c.kubectl_ok(&["label", "pod", "-n", "x", "c", "pod2-"]);
    check(
        &c,
        "pod relabelled out again",
        "80/tcp",
        &Reach::all()
            .peer("*", "x/a", false)
            .peer("x/b", "x/a", true),
    );
    // Stacked: a second policy selecting x/a adds its rules (union).
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-z, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]",
        &[
            ("stacked policies", "80/tcp", Reach::all().peer("*", "x/a", false).peer("x/b", "x/a", true).peer("z/*", "x/a", true)),
        ],
    );

    // matchExpressions on namespaces, and a namespace label update (upstream cases 10, 23).
    case(
        &c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: not-x, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [\"x\"]}]}}]}]",
        &[
            ("namespace matchExpressions", "80/tcp", Reach::all().peer("x/*", "x/a", false)),
        ],
    );
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: updated-ns, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns2: updated}}}]}]");
    check(
        &c,
        "namespace label absent",
        "80/tcp",
        &Reach::all().peer("*", "x/a", false),
    );
    c.kubectl_ok(&["label", "namespace", "y", "ns2=updated"]);
    check(
        &c,
        "namespace labelled",
        "80/tcp",
        &Reach::all()
            .peer("*", "x/a", false)
            .peer("y/*", "x/a", true),
    );
    c.kubectl_ok(&["label", "namespace", "y", "ns2-"]);
    delete_policies(&c);

    // Egress by pod and namespace selector, probed through the ClusterIPs (upstream case 25).
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: to-y-b, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}, podSelector: {matchLabels: {pod: b}}}]}]");
    check(
        &c,
        "egress to y/b",
        "80/tcp",
        &Reach::all()
            .peer("x/a", "*", false)
            .peer("x/a", "y/b", true),
    );
    assert!(tcp_from(
        &c,
        "x",
        "a",
        &format!("{}:80", cluster_ip(&c, "y", "s-y-b"))
    ));
    assert!(!tcp_from(
        &c,
        "x",
        "a",
        &format!("{}:80", cluster_ip(&c, "y", "s-y-c"))
    ));
    delete_policies(&c);

    upstream::run_all(&c);

    // From outside the cluster: a NodePort with externalTrafficPolicy Local keeps the client's
    // address, which ipBlock matches.
    c.kubectl_ok(&[
        "patch",
        "svc",
        "-n",
        "x",
        "s-x-a",
        "-p",
        r#"{"spec":{"type":"NodePort","externalTrafficPolicy":"Local"}}"#,
    ]);
    let node_port = c.kubectl_ok(&[
        "get",
        "svc",
        "-n",
        "x",
        "s-x-a",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let host = own(
        &c,
        &c.kubectl_ok(&[
            "get",
            "pod",
            "-n",
            "x",
            "a",
            "-o",
            "jsonpath={.status.hostIP}",
        ]),
    );
    let outside = outside_ip(&c);
    let from_outside = || {
        let out = external(
            &c,
            &[
                "bash",
                "-c",
                &format!("timeout 2 bash -c 'cat </dev/tcp/{host}/{node_port}'"),
            ],
        );
        out.status.success() && !stdout(&out).is_empty()
    };
    assert!(
        eventually(from_outside, true),
        "NodePort of x/a unreachable from outside"
    );
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: pods-only, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16}}]}]");
    assert!(
        eventually(from_outside, false),
        "outside reached x/a though only pod addresses may"
    );
    policy(&c, &format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: outside, namespace: \"x\"}}\nspec:\n  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress: [{{from: [{{ipBlock: {{cidr: {outside}/32}}}}]}}]"));
    assert!(
        eventually(from_outside, true),
        "outside ({outside}) allowed by ipBlock but not reaching x/a"
    );
    delete_policies(&c);

    // The tutorial's case: only the ingress controller's pods reach the workload, on one port.
    policy(&c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: only-ingress, namespace: \"x\"}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}, podSelector: {matchLabels: {pod: a}}}], ports: [{port: 81}]}]");
    check(
        &c,
        "only the ingress controller, 80",
        "80/tcp",
        &Reach::all().peer("*", "x/c", false),
    );
    check(
        &c,
        "only the ingress controller, 81",
        "81/tcp",
        &Reach::all()
            .peer("*", "x/c", false)
            .peer("z/a", "x/c", true),
    );
    let why = stdout(&c.kinet(&["policy", "why", "z/a", "x/c", "--port", "81"]));
    assert!(
        why.contains("ALLOWED") && why.contains("x/only-ingress ingress[0]"),
        "{why}"
    );
    delete_policies(&c);

    only_the_frontend_reaches_the_backend(&c);
    // The table goes with the agents.
    let out = c.kinet(&["down"]);
    assert!(out.status.success(), "{}", show(&out));
}

/// The tutorial's case, in the default namespace: a policy lets only `tier=frontend` reach
/// `tier=backend` on 3306 (through its Service). The frontend connects; every other pod, of
/// this namespace or another, times out; deleting the policy restores access.
fn only_the_frontend_reaches_the_backend(c: &Cluster) {
    let pod = |name: &str, args: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{tier: {name}}}}}\nspec:\n  containers:\n  - {{name: main, image: \"{AGNHOST}\", args: [{args}]}}")
    };
    let docs = [
        pod("backend", "serve-hostname, --tcp, --http=false, --port, \"3306\""),
        pod("frontend", "pause"),
        pod("other", "pause"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: backend, labels: {tier: backend}}\nspec:\n  selector: {tier: backend}\n  ports: [{port: 3306}]".to_string(),
    ];
    apply(c, &docs.join("\n---\n"));
    wait_ready_in(c, "default", "tier", 3);
    let backend = format!("{}:3306", cluster_ip(c, "default", "backend"));
    let clients = [("default", "frontend"), ("default", "other"), ("x", "a")];
    let answered = |(ns, pod): &(&str, &str)| probe(c, ns, pod, &backend) == Probe::Answered;
    poll("every pod reaches the backend before any policy", || {
        clients.iter().all(answered).then_some(())
    });

    policy(c, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: backend-from-frontend}\nspec:\n  podSelector: {matchLabels: {tier: backend}}\n  ingress: [{from: [{podSelector: {matchLabels: {tier: frontend}}}], ports: [{port: 3306}]}]");
    poll("only the frontend reaches the backend", || {
        let got: Vec<Probe> = clients
            .iter()
            .map(|(ns, pod)| probe(c, ns, pod, &backend))
            .collect();
        (got == [Probe::Answered, Probe::TimedOut, Probe::TimedOut]).then_some(())
    });

    c.kubectl_ok(&["delete", "networkpolicy", "backend-from-frontend"]);
    poll("the deleted policy no longer isolates the backend", || {
        clients.iter().all(answered).then_some(())
    });
    c.kubectl_ok(&["delete", "pod,service", "-l", "tier", "--wait=false"]);
}
