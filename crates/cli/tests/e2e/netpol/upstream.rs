//! The upstream connectivity cases the hand-written steps of `netpol.rs` do not already
//! run, as one table, numbered as in the shared notes (9-pod expectations). Each case runs
//! its steps on the shared x/y/z model, then its policies are deleted and its labels undone.

use super::{check, delete_policies, policy, Reach};
use crate::harness::Cluster;

/// One step of a case.
enum Step {
    /// A NetworkPolicy `(namespace, name, spec)` created or replaced; the spec may name pod
    /// addresses as `{x/b}` (the pod's address), or `{x/b/4}` (its /4 network).
    Policy(&'static str, &'static str, &'static str),
    /// `kubectl label <args>`.
    Label(&'static [&'static str]),
    /// The matrix on a port, against the expected table.
    Expect(&'static str, fn() -> Reach),
}
use Step::{Expect, Label, Policy};

struct Case {
    name: &'static str,
    steps: &'static [Step],
    /// `kubectl label` arguments undoing the case's labels.
    undo: &'static [&'static [&'static str]],
}

fn to(pod: &str, v: bool) -> Reach {
    Reach::all().peer("*", pod, v)
}
fn from(pod: &str, v: bool) -> Reach {
    Reach::all().peer(pod, "*", v)
}
fn only_from_y_to_xa() -> Reach {
    Reach::all()
        .peer("x/*", "x/a", false)
        .peer("z/*", "x/a", false)
}

const CASES: &[Case] = &[
    Case {
        name: "04 allow ingress for a target",
        steps: &[
            Policy("x", "deny-all", "{podSelector: {}, policyTypes: [Ingress]}"),
            Policy("x", "allow-all-to-a", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {}, namespaceSelector: {}}]}]}"),
            Expect("80/tcp", || to("x/b", false).peer("*", "x/c", false)),
        ],
        undo: &[],
    },
    Case {
        name: "05 from all namespaces",
        steps: &[
            Policy("x", "allow-from-another-ns", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {}}}]}]}"),
            Expect("80/tcp", Reach::all),
        ],
        undo: &[],
    },
    Case {
        name: "06 only from another namespace",
        steps: &[
            Policy("x", "allow-client-a-via-ns-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}}]}]}"),
            Expect("80/tcp", only_from_y_to_xa),
        ],
        undo: &[],
    },
    Case {
        name: "07 pod selector with matchExpressions",
        steps: &[
            Policy("x", "x-a-allows-x-b", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b]}]}}]}]}"),
            Expect("80/tcp", || to("x/a", false).peer("x/b", "x/a", true)),
        ],
        undo: &[],
    },
    Case {
        name: "08 namespace selector with matchExpressions",
        steps: &[
            Policy("x", "allow-ns-y-match-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [\"y\"]}]}}]}]}"),
            Expect("80/tcp", only_from_y_to_xa),
        ],
        undo: &[],
    },
    Case {
        name: "09 pod selector or namespace selector",
        steps: &[
            Policy("x", "allow-ns-y-match-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [\"x\"]}]}}, {podSelector: {matchLabels: {pod: b}}}]}]}"),
            Expect("80/tcp", || Reach::all().peer("x/c", "x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "10 pod selector and namespace selector",
        steps: &[
            Policy("x", "allow-ns-y-podselector-and-nsselector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [\"x\"]}]}, podSelector: {matchLabels: {pod: b}}}]}]}"),
            Expect("80/tcp", || to("x/a", false).peer("y/b", "x/a", true).peer("z/b", "x/a", true)),
        ],
        undo: &[],
    },
    Case {
        name: "11 multiple pod and namespace selectors",
        steps: &[
            Policy("x", "allow-ns-y-z-pod-b-c", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [\"x\"]}]}, podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}}]}]}"),
            Expect("80/tcp", || Reach::all().peer("x/*", "x/a", false).peer("y/a", "x/a", false).peer("z/a", "x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "12 any pod selectors",
        steps: &[
            Policy("x", "allow-ns-x-pod-b-c", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}, {podSelector: {matchLabels: {pod: c}}}]}]}"),
            Expect("80/tcp", || to("x/a", false).peer("x/b", "x/a", true).peer("x/c", "x/a", true)),
        ],
        undo: &[],
    },
    Case {
        name: "13 a pod of another namespace",
        steps: &[
            Policy("x", "allow-ns-y-pod-a-via-namespace-pod-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}, podSelector: {matchLabels: {pod: a}}}]}]}"),
            Expect("80/tcp", || to("x/a", false).peer("y/a", "x/a", true)),
        ],
        undo: &[],
    },
    Case {
        name: "15 stacked policies with overlapping podSelectors",
        steps: &[
            Policy("x", "allow-client-a-via-ns-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}}], ports: [{protocol: TCP, port: 81}]}]}"),
            Expect("81/tcp", only_from_y_to_xa),
            Expect("80/tcp", || to("x/a", false)),
            Policy("x", "allow-client-a-via-ns-selector-80", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}}], ports: [{protocol: TCP, port: 80}]}]}"),
            Expect("80/tcp", only_from_y_to_xa),
        ],
        undo: &[],
    },
    Case {
        name: "17 ingress on one named port",
        steps: &[
            Policy("x", "allow-all", "{podSelector: {}, policyTypes: [Ingress], ingress: [{ports: [{port: serve-81-tcp}]}]}"),
            Expect("81/tcp", Reach::all),
            Expect("80/tcp", || to("x/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "18 from a namespace on one named port",
        steps: &[
            Policy("x", "allow-client-a-via-ns-selector-80", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}}], ports: [{protocol: TCP, port: serve-80-tcp}]}]}"),
            Expect("80/tcp", only_from_y_to_xa),
            Expect("81/tcp", || to("x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "19 egress on one named port",
        steps: &[
            Policy("x", "allow-egress", "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: serve-80-tcp}]}]}"),
            Expect("80/tcp", Reach::all),
            Expect("81/tcp", || from("x/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "20 updated policy",
        steps: &[
            Policy("x", "allow-all-mutate-to-deny-all", "{podSelector: {}, policyTypes: [Ingress], ingress: [{}]}"),
            Expect("81/tcp", Reach::all),
            Policy("x", "allow-all-mutate-to-deny-all", "{podSelector: {}, policyTypes: [Ingress], ingress: []}"),
            Expect("81/tcp", || to("x/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "24 ingress denied to an updated pod",
        steps: &[
            Policy("x", "deny-ingress-via-label-selector", "{podSelector: {matchLabels: {target: isolated}}, policyTypes: [Ingress], ingress: []}"),
            Expect("80/tcp", Reach::all),
            Label(&["pod", "-n", "x", "a", "target=isolated"]),
            Expect("80/tcp", || to("x/a", false)),
        ],
        undo: &[&["pod", "-n", "x", "a", "target-"]],
    },
    Case {
        name: "26 egress denied from a whole namespace",
        steps: &[
            Policy("x", "deny-egress-ns-x", "{podSelector: {}, policyTypes: [Egress], egress: []}"),
            Expect("80/tcp", || from("x/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "27 ingress and egress together",
        steps: &[
            Policy("x", "allow-client-a-via-pod-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress, Ingress], ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}], egress: [{ports: [{port: 80}]}]}"),
            Expect("80/tcp", || to("x/a", false).peer("x/b", "x/a", true)),
            Expect("81/tcp", || to("x/a", false).peer("x/a", "*", false).peer("x/b", "x/a", true)),
        ],
        undo: &[],
    },
    Case {
        name: "28 egress denied at the client though the server allows",
        steps: &[
            Policy("x", "allow-to-ns-y-pod-a", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}, podSelector: {matchLabels: {pod: a}}}]}]}"),
            Policy("y", "allow-from-xa-on-ya-match-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"x\"}}, podSelector: {matchLabels: {pod: a}}}]}]}"),
            Policy("y", "allow-from-xa-on-yb-match-selector", "{podSelector: {matchLabels: {pod: b}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"x\"}}, podSelector: {matchLabels: {pod: a}}}]}]}"),
            Expect("80/tcp", || from("x/a", false).peer("*", "y/a", false).peer("x/a", "y/a", true).peer("*", "y/b", false)),
        ],
        undo: &[],
    },
    Case {
        name: "29 egress to a pod of another namespace",
        steps: &[
            Policy("x", "allow-to-ns-y-pod-a", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}, podSelector: {matchLabels: {pod: a}}}]}]}"),
            Expect("80/tcp", || from("x/a", false).peer("x/a", "y/a", true)),
        ],
        undo: &[],
    },
    Case {
        name: "30 any port of one protocol",
        steps: &[
            Policy("x", "allow-ingress-by-proto", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{ports: [{protocol: TCP}]}]}"),
            Expect("80/tcp", Reach::all),
            Expect("80/udp", || to("x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "32 egress allow-all takes precedence",
        steps: &[
            Policy("x", "allow-egress-port-80", "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 80}]}]}"),
            Expect("81/tcp", || from("x/*", false)),
            Policy("x", "allow-egress", "{podSelector: {}, policyTypes: [Egress], egress: [{}]}"),
            Expect("81/tcp", Reach::all),
        ],
        undo: &[],
    },
    Case {
        name: "34 egress to a CIDR block",
        steps: &[
            Policy("x", "allow-client-a-via-cidr-egress-rule", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: '{y/b}/32'}}]}]}"),
            Expect("80/tcp", || from("x/a", false).peer("x/a", "y/b", true)),
        ],
        undo: &[],
    },
    Case {
        name: "35-36 except inside the block, then a block overlapping the except",
        steps: &[
            Policy("x", "allow-client-a-via-cidr-egress-rule", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: '{x/b/4}', except: ['{x/b}/32']}}]}]}"),
            Expect("80/tcp", || Reach::all().peer("x/a", "x/b", false)),
            Policy("x", "allow-client-a-via-cidr-egress-rule", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: '{x/b}/32'}}]}]}"),
            Expect("80/tcp", || from("x/a", false).peer("x/a", "x/b", true)),
        ],
        undo: &[],
    },
    Case {
        name: "37 ingress and egress controlled independently",
        steps: &[
            Policy("x", "allow-egress-for-target", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{}]}"),
            Expect("80/tcp", Reach::all),
            Policy("x", "deny-ingress-via-label-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: []}"),
            Expect("80/tcp", || to("x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "38 SCTP is not TCP",
        steps: &[
            Policy("x", "deny-ingress", "{podSelector: {}, policyTypes: [Ingress], ingress: []}"),
            Policy("x", "allow-only-sctp-ingress-on-port-81", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{ports: [{protocol: SCTP, port: 81}]}]}"),
            Expect("81/tcp", || to("x/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "39 a policy allowing SCTP isolates",
        steps: &[
            Policy("x", "allow-only-sctp-ingress-on-port-80", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{ports: [{protocol: SCTP, port: 80}]}]}"),
            Expect("81/tcp", || to("x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "40 UDP only allows no TCP",
        steps: &[
            Policy("x", "allow-only-udp-ingress-on-port-81", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{ports: [{protocol: UDP, port: 81}]}]}"),
            Expect("81/tcp", || to("x/a", false)),
        ],
        undo: &[],
    },
    Case {
        name: "42 egress by namespace matchExpressions on the default label",
        steps: &[
            Policy("x", "allow-ns-y-match-selector-for-immutable-ns-label", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [\"y\"]}]}}]}]}"),
            Expect("80/tcp", || Reach::all().peer("x/a", "y/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "43 UDP default deny ingress",
        steps: &[
            Policy("x", "deny-all", "{podSelector: {}, policyTypes: [Ingress], ingress: []}"),
            Expect("80/udp", || to("x/*", false)),
        ],
        undo: &[],
    },
    Case {
        name: "44 UDP ports",
        steps: &[
            Policy("x", "allow-ingress-on-port-81-ns-x", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}}], ports: [{protocol: UDP, port: 81}]}]}"),
            Expect("81/udp", only_from_y_to_xa),
        ],
        undo: &[],
    },
    Case {
        name: "45 UDP from a pod of another namespace",
        steps: &[
            Policy("x", "allow-ns-y-pod-a-via-namespace-pod-selector", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \"y\"}}, podSelector: {matchLabels: {pod: a}}}]}]}"),
            Expect("80/udp", || to("x/a", false).peer("y/a", "x/a", true)),
        ],
        undo: &[],
    },
];

/// `spec` with `{ns/pod}` replaced by the pod's address and `{ns/pod/4}` by its /4 network.
fn with_addresses(c: &Cluster, spec: &str) -> String {
    let mut out = spec.to_string();
    for ns in super::NAMESPACES {
        for pod in super::PODS {
            let (plain, slash4) = (format!("{{{ns}/{pod}}}"), format!("{{{ns}/{pod}/4}}"));
            if !out.contains(&plain) && !out.contains(&slash4) {
                continue;
            }
            let ip: std::net::Ipv4Addr = c
                .kubectl_ok(&[
                    "get",
                    "pod",
                    "-n",
                    ns,
                    pod,
                    "-o",
                    "jsonpath={.status.podIP}",
                ])
                .parse()
                .expect("a pod address");
            let net = std::net::Ipv4Addr::from(u32::from(ip) & 0xf000_0000);
            out = out
                .replace(&slash4, &format!("{net}/4"))
                .replace(&plain, &ip.to_string());
        }
    }
    out
}

/// Runs every case of the table on the shared model.
pub(super) fn run_all(c: &Cluster) {
    for case in CASES {
        for step in case.steps {
            match step {
                Policy(ns, name, spec) => policy(
                    c,
                    &format!(
                        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: \"{ns}\"}}\nspec: {}",
                        with_addresses(c, spec)
                    ),
                ),
                Label(args) => {
                    c.kubectl_ok(&[&["label"][..], args].concat());
                }
                Expect(port, want) => check(c, case.name, port, &want()),
            }
        }
        delete_policies(c);
        for args in case.undo {
            c.kubectl_ok(&[&["label"][..], args].concat());
        }
    }
}
