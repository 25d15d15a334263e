//! One test per upstream connectivity case, numbered as in
//! /work/shared/notes/netpol-upstream-cases.md (9-pod expectations).

use super::*;

fn deny_ingress() -> Value {
    json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []})
}
fn deny_all() -> Value {
    json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []})
}
fn a_from(peers: Value) -> Value {
    json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"from": peers}]})
}
fn a_from_y_on(port: Value) -> Value {
    json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"],
           "ingress": [{"from": [{"namespaceSelector": ns_is("y")}], "ports": [port]}]})
}
fn only_from_y_to_xa() -> Reach {
    Reach::all()
        .peer("x/*", "x/a", false)
        .peer("z/*", "x/a", false)
}
fn xa_to_ya() -> Value {
    json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"],
           "egress": [{"to": [{"namespaceSelector": ns_is("y"), "podSelector": pod_is("a")}]}]})
}
fn a_egress_to(block: Value) -> Value {
    json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": block}]}]})
}
fn a_ingress_ports(ports: Value) -> Value {
    json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"ports": ports}]})
}
fn from_ya_to_xa() -> Reach {
    Reach::all().to("x/a", false).peer("y/a", "x/a", true)
}

/// Applies `policies` in namespace x of a fresh model, in order, then checks each
/// (port, protocol, expected table).
fn case(policies: &[(&str, Value)], expect: Vec<(u16, Proto, Reach)>) {
    let mut c = model();
    for (name, spec) in policies {
        apply(&mut c, "x", name, spec.clone());
    }
    for (port, proto, want) in expect {
        check(&c, port, proto, &want);
    }
}

#[test]
fn c01_default_deny_ingress() {
    case(
        &[("deny-ingress", deny_ingress())],
        vec![(80, Tcp, Reach::all().to("x/*", false))],
    );
}

#[test]
fn c02_default_deny_all() {
    case(
        &[("deny-all", deny_all())],
        vec![(80, Tcp, Reach::all().to("x/*", false).from("x/*", false))],
    );
}

#[test]
fn c03_pod_selector_within_namespace() {
    case(
        &[(
            "x-a-allows-x-b",
            a_from(json!([{"podSelector": pod_is("b")}])),
        )],
        vec![(
            80,
            Tcp,
            Reach::all().to("x/a", false).peer("x/b", "x/a", true),
        )],
    );
}

#[test]
fn c04_allow_ingress_for_a_target() {
    case(
        &[
            ("deny-all", deny_ingress()),
            (
                "allow-all-to-a",
                a_from(json!([{"podSelector": {}, "namespaceSelector": {}}])),
            ),
        ],
        vec![(80, Tcp, Reach::all().to("x/b", false).to("x/c", false))],
    );
}

#[test]
fn c05_from_all_namespaces() {
    case(
        &[(
            "allow-from-another-ns",
            a_from(json!([{"namespaceSelector": {"matchLabels": {}}}])),
        )],
        vec![(80, Tcp, Reach::all())],
    );
}

#[test]
fn c06_only_from_another_namespace() {
    case(
        &[(
            "allow-client-a-via-ns-selector",
            a_from(json!([{"namespaceSelector": ns_is("y")}])),
        )],
        vec![(80, Tcp, only_from_y_to_xa())],
    );
}

#[test]
fn c07_pod_selector_match_expressions() {
    let mut c = model();
    let sel = json!({"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b"]}]});
    apply(
        &mut c,
        "x",
        "x-a-allows-x-b",
        a_from(json!([{"podSelector": sel}])),
    );
    tcp80(&c, Reach::all().to("x/a", false).peer("x/b", "x/a", true));
}

#[test]
fn c08_namespace_selector_match_expressions() {
    let mut c = model();
    let sel = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["y"]}]});
    apply(
        &mut c,
        "x",
        "allow-ns-y-match-selector",
        a_from(json!([{"namespaceSelector": sel}])),
    );
    tcp80(&c, only_from_y_to_xa());
}

#[test]
fn c09_pod_selector_or_namespace_selector() {
    let mut c = model();
    let peers = json!([{"namespaceSelector": ns_not_in("x")}, {"podSelector": pod_is("b")}]);
    apply(&mut c, "x", "allow-ns-y-match-selector", a_from(peers));
    tcp80(&c, Reach::all().peer("x/c", "x/a", false));
}

#[test]
fn c10_pod_selector_and_namespace_selector() {
    let mut c = model();
    let peers = json!([{"namespaceSelector": ns_not_in("x"), "podSelector": pod_is("b")}]);
    apply(
        &mut c,
        "x",
        "allow-ns-y-podselector-and-nsselector",
        a_from(peers),
    );
    tcp80(
        &c,
        Reach::all()
            .to("x/a", false)
            .peer("y/b", "x/a", true)
            .peer("z/b", "x/a", true),
    );
}

#[test]
fn c11_multiple_pod_and_namespace_selectors() {
    let mut c = model();
    let pods =
        json!({"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]});
    apply(
        &mut c,
        "x",
        "allow-ns-y-z-pod-b-c",
        a_from(json!([{"namespaceSelector": ns_not_in("x"), "podSelector": pods}])),
    );
    let want = Reach::all()
        .peer("x/*", "x/a", false)
        .peer("y/a", "x/a", false)
        .peer("z/a", "x/a", false);
    tcp80(&c, want);
}

#[test]
fn c12_any_pod_selectors() {
    case(
        &[(
            "allow-ns-x-pod-b-c",
            a_from(json!([{"podSelector": pod_is("b")}, {"podSelector": pod_is("c")}])),
        )],
        vec![(
            80,
            Tcp,
            Reach::all()
                .to("x/a", false)
                .peer("x/b", "x/a", true)
                .peer("x/c", "x/a", true),
        )],
    );
}

#[test]
fn c13_pod_in_another_namespace() {
    let mut c = model();
    let peers = json!([{"namespaceSelector": ns_is("y"), "podSelector": pod_is("a")}]);
    apply(
        &mut c,
        "x",
        "allow-ns-y-pod-a-via-namespace-pod-selector",
        a_from(peers),
    );
    tcp80(&c, from_ya_to_xa());
}

#[test]
fn c14_ports() {
    case(
        &[(
            "allow-client-a-via-ns-selector",
            a_from_y_on(json!({"protocol": "TCP", "port": 81})),
        )],
        vec![(81, Tcp, only_from_y_to_xa())],
    );
}

#[test]
fn c15_stacked_policies() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-client-a-via-ns-selector",
        a_from_y_on(json!({"protocol": "TCP", "port": 81})),
    );
    check(&c, 81, Tcp, &only_from_y_to_xa());
    tcp80(&c, Reach::all().to("x/a", false));
    apply(
        &mut c,
        "x",
        "allow-client-a-via-ns-selector-80",
        a_from_y_on(json!({"protocol": "TCP", "port": 80})),
    );
    tcp80(&c, only_from_y_to_xa());
}

#[test]
fn c16_allow_all() {
    case(
        &[(
            "allow-all",
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}),
        )],
        vec![(80, Tcp, Reach::all()), (81, Tcp, Reach::all())],
    );
}

#[test]
fn c17_ingress_on_one_named_port() {
    case(
        &[(
            "allow-all",
            json!({"podSelector": {}, "policyTypes": ["Ingress"],
                   "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
        )],
        vec![
            (81, Tcp, Reach::all()),
            (80, Tcp, Reach::all().to("x/*", false)),
        ],
    );
}

#[test]
fn c18_from_namespace_on_one_named_port() {
    case(
        &[(
            "allow-client-a-via-ns-selector-80",
            a_from_y_on(json!({"protocol": "TCP", "port": "serve-80-tcp"})),
        )],
        vec![
            (80, Tcp, only_from_y_to_xa()),
            (81, Tcp, Reach::all().to("x/a", false)),
        ],
    );
}

#[test]
fn c19_egress_on_one_named_port() {
    case(
        &[(
            "allow-egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
        )],
        vec![
            (80, Tcp, Reach::all()),
            (81, Tcp, Reach::all().from("x/*", false)),
        ],
    );
}

#[test]
fn c20_updated_policy() {
    let mut c = model();
    let name = "allow-all-mutate-to-deny-all";
    apply(
        &mut c,
        "x",
        name,
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}),
    );
    check(&c, 81, Tcp, &Reach::all());
    apply(&mut c, "x", name, deny_ingress());
    check(&c, 81, Tcp, &Reach::all().to("x/*", false));
}

#[test]
fn c21_updated_namespace() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-client-a-via-ns-selector",
        a_from(json!([{"namespaceSelector": {"matchLabels": {"ns2": "updated"}}}])),
    );
    tcp80(&c, Reach::all().to("x/a", false));
    c.set_namespace(Namespace {
        name: "y".into(),
        labels: labels(&[
            ("kubernetes.io/metadata.name", "y"),
            ("ns", "y"),
            ("ns2", "updated"),
        ]),
    });
    tcp80(&c, Reach::all().to("x/a", false).peer("y/*", "x/a", true));
}

#[test]
fn c22_updated_pod() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-client-a-via-pod-selector",
        a_from(json!([{"podSelector": {"matchLabels": {"pod": "b", "pod2": "updated"}}}])),
    );
    tcp80(&c, Reach::all().to("x/a", false));
    let mut b = c.pod("x", "b").unwrap().clone();
    b.labels = labels(&[("pod", "b"), ("pod2", "updated")]);
    c.set_pod(b);
    tcp80(&c, Reach::all().to("x/a", false).peer("x/b", "x/a", true));
}

#[test]
fn c23_deny_from_other_namespaces() {
    case(
        &[(
            "deny-empty-policy",
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {"matchLabels": {}}}]}]}),
        )],
        vec![(
            80,
            Tcp,
            Reach::all()
                .peer("y/*", "x/*", false)
                .peer("z/*", "x/*", false),
        )],
    );
}

#[test]
fn c24_deny_to_updated_pod() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "deny-ingress-via-label-selector",
        json!({"podSelector": {"matchLabels": {"target": "isolated"}}, "policyTypes": ["Ingress"], "ingress": []}),
    );
    tcp80(&c, Reach::all());
    let mut a = c.pod("x", "a").unwrap().clone();
    a.labels.insert("target".into(), "isolated".into());
    c.set_pod(a);
    tcp80(&c, Reach::all().to("x/a", false));
}

#[test]
fn c25_deny_egress_by_pod_selector() {
    case(
        &[(
            "deny-egress-pod-a",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": []}),
        )],
        vec![(80, Tcp, Reach::all().from("x/a", false))],
    );
}

#[test]
fn c26_deny_egress_from_namespace() {
    case(
        &[(
            "deny-egress-ns-x",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": []}),
        )],
        vec![(80, Tcp, Reach::all().from("x/*", false))],
    );
}

#[test]
fn c27_ingress_and_egress_together() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-client-a-via-pod-selector",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Egress", "Ingress"],
                 "ingress": [{"from": [{"podSelector": pod_is("b")}]}],
                 "egress": [{"ports": [{"port": 80}]}]}),
    );
    tcp80(&c, Reach::all().to("x/a", false).peer("x/b", "x/a", true));
    let want81 = Reach::all()
        .to("x/a", false)
        .from("x/a", false)
        .peer("x/b", "x/a", true);
    check(&c, 81, Tcp, &want81);
}

#[test]
fn c28_egress_denied_at_the_client_though_the_server_allows() {
    let mut c = model();
    apply(&mut c, "x", "allow-to-ns-y-pod-a", xa_to_ya());
    let from_xa = |sel: &str| {
        json!({"podSelector": pod_is(sel), "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": ns_is("x"), "podSelector": pod_is("a")}]}]})
    };
    apply(
        &mut c,
        "y",
        "allow-from-xa-on-ya-match-selector",
        from_xa("a"),
    );
    apply(
        &mut c,
        "y",
        "allow-from-xa-on-yb-match-selector",
        from_xa("b"),
    );
    let want = Reach::all()
        .from("x/a", false)
        .to("y/a", false)
        .peer("x/a", "y/a", true)
        .to("y/b", false);
    tcp80(&c, want);
}

#[test]
fn c29_egress_to_pod_in_another_namespace() {
    case(
        &[("allow-to-ns-y-pod-a", xa_to_ya())],
        vec![(
            80,
            Tcp,
            Reach::all().from("x/a", false).peer("x/a", "y/a", true),
        )],
    );
}

#[test]
fn c30_any_port_of_one_protocol() {
    case(
        &[(
            "allow-ingress-by-proto",
            a_ingress_ports(json!([{"protocol": "TCP"}])),
        )],
        vec![
            (80, Tcp, Reach::all()),
            (80, Udp, Reach::all().to("x/a", false)),
        ],
    );
}

/// Cases 31 and 32: a policy allowing only port 80 in `dir`, then an allow-all one beside it.
fn allow_all_takes_precedence(dir: &str, closed: Reach) {
    let spec = |rules: Value| {
        let mut v = json!({"podSelector": {}, "policyTypes": [dir]});
        v[dir.to_lowercase()] = rules;
        v
    };
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-port-80",
        spec(json!([{"ports": [{"port": 80}]}])),
    );
    check(&c, 81, Tcp, &closed);
    apply(&mut c, "x", "allow-all", spec(json!([{}])));
    check(&c, 81, Tcp, &Reach::all());
}

#[test]
fn c31_ingress_allow_all_takes_precedence() {
    allow_all_takes_precedence("Ingress", Reach::all().to("x/*", false));
}

#[test]
fn c32_egress_allow_all_takes_precedence() {
    allow_all_takes_precedence("Egress", Reach::all().from("x/*", false));
}

#[test]
fn c33_deleted_policies_stop_applying() {
    let mut c = model();
    apply(&mut c, "x", "deny-all", deny_all());
    tcp80(&c, Reach::all().from("x/*", false).to("x/*", false));
    c.remove_policy("x", "deny-all");
    tcp80(&c, Reach::all());
}

#[test]
fn c34_egress_to_cidr_block() {
    let mut c = model();
    let cidr = format!("{}/32", ip_of(&c, "y", "b"));
    apply(
        &mut c,
        "x",
        "allow-client-a-via-cidr-egress-rule",
        a_egress_to(json!({"cidr": cidr})),
    );
    tcp80(&c, Reach::all().from("x/a", false).peer("x/a", "y/b", true));
}

/// The /4 network holding x/b's address, as the newest upstream computes it.
fn xb_slash4(c: &Cluster) -> String {
    let ip = u32::from(ip_of(c, "x", "b")) & 0xf000_0000;
    format!("{}/4", Ipv4Addr::from(ip))
}

#[test]
fn c35_except_inside_egress_cidr() {
    let mut c = model();
    let block = json!({"cidr": xb_slash4(&c), "except": [format!("{}/32", ip_of(&c, "x", "b"))]});
    apply(
        &mut c,
        "x",
        "allow-client-a-via-cidr-egress-rule",
        a_egress_to(block),
    );
    tcp80(&c, Reach::all().peer("x/a", "x/b", false));
}

#[test]
fn c36_cidr_and_except_overlap_updated() {
    let mut c = model();
    let name = "allow-client-a-via-cidr-egress-rule";
    let (wide, xb) = (xb_slash4(&c), format!("{}/32", ip_of(&c, "x", "b")));
    apply(
        &mut c,
        "x",
        name,
        a_egress_to(json!({"cidr": wide, "except": [xb]})),
    );
    tcp80(&c, Reach::all().peer("x/a", "x/b", false));
    apply(&mut c, "x", name, a_egress_to(json!({"cidr": xb})));
    tcp80(&c, Reach::all().from("x/a", false).peer("x/a", "x/b", true));
}

#[test]
fn c37_ingress_and_egress_independent() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-egress-for-target",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{}]}),
    );
    tcp80(&c, Reach::all());
    apply(
        &mut c,
        "x",
        "deny-ingress-via-label-selector",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": []}),
    );
    tcp80(&c, Reach::all().to("x/a", false));
}

#[test]
fn c38_sctp_is_not_tcp() {
    case(
        &[
            ("deny-ingress", deny_ingress()),
            (
                "allow-only-sctp-ingress-on-port-81",
                a_ingress_ports(json!([{"protocol": "SCTP", "port": 81}])),
            ),
        ],
        vec![(81, Tcp, Reach::all().to("x/*", false))],
    );
}

/// Cases 39 and 40: a policy allowing only another protocol's port isolates x/a for TCP.
#[test]
fn c39_c40_a_port_of_another_protocol_isolates() {
    for (name, proto, port) in [
        ("allow-only-sctp-ingress-on-port-80", "SCTP", 80),
        ("allow-only-udp-ingress-on-port-81", "UDP", 81),
    ] {
        let ports = a_ingress_ports(json!([{"protocol": proto, "port": port}]));
        case(
            &[(name, ports)],
            vec![(81, Tcp, Reach::all().to("x/a", false))],
        );
    }
}

#[test]
fn c41_default_namespace_label_match_labels() {
    case(
        &[(
            "allow-client-a-via-ns-selector-for-immutable-ns-label",
            a_from(json!([{"namespaceSelector": ns_is("y")}])),
        )],
        vec![(80, Tcp, only_from_y_to_xa())],
    );
}

#[test]
fn c42_default_namespace_label_match_expressions_egress() {
    case(
        &[(
            "allow-ns-y-match-selector-for-immutable-ns-label",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": ns_not_in("y")}]}]}),
        )],
        vec![(80, Tcp, Reach::all().peer("x/a", "y/*", false))],
    );
}

/// Cases 43–48: default deny, ports, and namespace+pod selectors on UDP, then SCTP.
fn datagram_cases(proto: Proto) {
    let name = match proto {
        Udp => "UDP",
        _ => "SCTP",
    };
    let mut c = model();
    apply(&mut c, "x", "deny-all", deny_ingress());
    check(&c, 80, proto, &Reach::all().to("x/*", false));

    let mut c = model();
    apply(
        &mut c,
        "x",
        "allow-ingress-on-port-81-ns-x",
        a_from_y_on(json!({"protocol": name, "port": 81})),
    );
    check(&c, 81, proto, &only_from_y_to_xa());
    // The port is of `proto` only: TCP 81 to x/a is refused to everyone.
    check(&c, 81, Tcp, &Reach::all().to("x/a", false));

    let mut c = model();
    let peers = json!([{"namespaceSelector": ns_is("y"), "podSelector": pod_is("a")}]);
    apply(
        &mut c,
        "x",
        "allow-ns-y-pod-a-via-namespace-pod-selector",
        a_from(peers),
    );
    check(&c, 80, proto, &from_ya_to_xa());
}

#[test]
fn c43_to_45_udp() {
    datagram_cases(Udp);
}

#[test]
fn c46_to_48_sctp() {
    datagram_cases(Sctp);
}
