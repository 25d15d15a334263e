//! Full, partial and cleanup transactions.

use kinet_proxy_iptables::{
    cleanup_restore, endpoint_chain, full_restore, partial_restore, render, PortChains, Saved,
};

use crate::cases::*;
use crate::common::*;

fn chain_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with(':')).collect()
}

#[test]
fn a_sync_without_changes_writes_nothing() {
    let (svcs, slices) = web();
    let a = render(&svcs, &slices, &node("node-a"), &config());
    let b = render(
        svcs.iter().rev(),
        slices.iter().rev(),
        &node("node-a"),
        &config(),
    );
    assert_eq!(partial_restore(&a, &b), None);
}

#[test]
fn a_partial_sync_writes_only_the_changed_chains() {
    let (mut svcs, mut slices) = web();
    let (tsvcs, tslices) = tutorial();
    svcs.extend(tsvcs);
    slices.extend(tslices);
    let before = render(&svcs, &slices, &node("node-a"), &config());
    // One endpoint of default/web leaves.
    let mut fewer = slices.clone();
    fewer[0].endpoints.remove(2);
    let after = render(&svcs, &fewer, &node("node-a"), &config());
    let text = partial_restore(&before, &after).expect("a change");
    let port = &kinet_proxy_rules::service_ports(&svcs[0])[0];
    let svc = PortChains::new(port).cluster;
    let sep = endpoint_chain(port, "10.244.2.8:8080".parse().unwrap());
    assert_eq!(
        chain_lines(&text),
        vec![format!(":{svc} - [0:0]"), format!(":{sep} - [0:0]")],
        "{text}"
    );
    assert!(text.starts_with("*nat\n"), "{text}");
    assert!(text.ends_with(&format!("-X {sep}\nCOMMIT\n")), "{text}");
    assert!(
        !text.contains("nginx"),
        "unchanged Services are not written:\n{text}"
    );
}

#[test]
fn a_removed_service_loses_its_chains_and_dispatch_rules() {
    let (svcs, slices) = tutorial();
    let before = render(&svcs, &slices, &node("node-a"), &config());
    let after = render(&svcs[1..], &slices[1..], &node("node-a"), &config());
    let text = partial_restore(&before, &after).expect("a change");
    let gone = PortChains::new(&kinet_proxy_rules::service_ports(&svcs[0])[0]).cluster;
    assert!(text.contains(&format!("-X {gone}\n")), "{text}");
    // KUBE-SERVICES is rewritten without the Service's rule.
    assert!(text.contains(":KUBE-SERVICES - [0:0]\n"));
    assert!(!text.contains("-A KUBE-SERVICES -m comment --comment \"default/nginx-service"));
}

#[test]
fn a_full_sync_replaces_what_a_previous_run_left() {
    let saved = Saved::parse(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-OLD - [0:0]\n:DOCKER - [0:0]\n\
         -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A PREROUTING -j DOCKER\n-A KUBE-SERVICES -j KUBE-SVC-OLD\nCOMMIT\n*mangle\n:KUBE-X - [0:0]\nCOMMIT\n",
    );
    assert_eq!(
        saved.chains.len(),
        1,
        "only filter and nat are kube-proxy's"
    );
    let (svcs, slices) = web();
    let text = full_restore(&render(&svcs, &slices, &node("node-a"), &config()), &saved);
    let nat = &text[text.find("*nat").unwrap()..];
    assert!(nat.contains(":KUBE-SVC-OLD - [0:0]\n") && nat.ends_with("-X KUBE-SVC-OLD\nCOMMIT\n"));
    assert!(nat.contains(
        "-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    ));
    assert!(
        !nat.contains("DOCKER"),
        "other programs' rules are left alone"
    );
    assert!(nat.contains(
        "-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    ));
}

#[test]
fn cleanup_removes_every_chain_and_jump() {
    let (svcs, slices) = tutorial();
    let full = full_restore(
        &render(&svcs, &slices, &node("node-a"), &config()),
        &Saved::default(),
    );
    // What iptables-save would show after that load: built-in chains hold the jumps.
    let loaded = full
        .replace("-I PREROUTING 1 ", "-A PREROUTING ")
        .replace("-I POSTROUTING 1 ", "-A POSTROUTING ")
        .replace("-I OUTPUT 1 ", "-A OUTPUT ")
        .replace("-I INPUT 1 ", "-A INPUT ")
        .replace("-I FORWARD 1 ", "-A FORWARD ");
    let saved = Saved::parse(&loaded);
    let text = cleanup_restore(&saved).expect("something to remove");
    let declared = chain_lines(&text).len();
    assert_eq!(text.matches("\n-X ").count(), declared);
    assert_eq!(
        text.matches("\n-D ").count(),
        kinet_proxy_iptables::jumps().len()
    );
    assert!(!text.contains("\n-A ") && !text.contains("\n-I "));
    assert_eq!(cleanup_restore(&Saved::default()), None);
}
