//! The iptables mode against a real namespace: kube-proxy's chains loaded by
//! `iptables-restore`, partial syncs, the handover both ways, and nothing left behind.

use kinet_proxy::{hand_over, Applier, ApplyOutcome, IptablesApplier, ProxyMode};
use kinet_proxy_iptables::render;

use crate::objects::{config, node, service, slice};
use crate::support::{root, Netns};

fn kube_lines(ns: &Netns) -> Vec<String> {
    let mut out = ns.exec(&["iptables-save", "-t", "nat"]);
    out.push_str(&ns.exec(&["iptables-save", "-t", "filter"]));
    out.lines()
        .filter(|l| l.contains("KUBE"))
        .map(str::to_string)
        .collect()
}

#[test]
fn loads_changes_only_what_changed_and_hands_over_both_ways() {
    if !root() {
        return;
    }
    let ns = Netns::new("ipt");
    let svc = [service("default", "web", Some("10.96.0.20"), 80)];
    let one = [slice("default", "web", &["10.244.1.5"], 8080, "TCP")];
    let two = [slice(
        "default",
        "web",
        &["10.244.1.5", "10.244.1.6"],
        8080,
        "TCP",
    )];
    let mut ipt = IptablesApplier::new(ns.path());
    let out = ipt.apply(render(&svc, &one, &node(), &config())).unwrap();
    assert!(
        matches!(out, ApplyOutcome::Applied { full: true, .. }),
        "{out:?}"
    );
    let lines = kube_lines(&ns);
    assert!(
        lines.iter().any(|l| l.starts_with("-A KUBE-SERVICES")
            && l.contains("default/web:http cluster IP")
            && l.contains("-d 10.96.0.20/32")),
        "{lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("-A PREROUTING") && l.contains("KUBE-SERVICES")));

    let out = ipt.apply(render(&svc, &two, &node(), &config())).unwrap();
    assert!(
        matches!(
            out,
            ApplyOutcome::Applied {
                full: false,
                changes: 2,
                ..
            }
        ),
        "{out:?}"
    );
    let dnat = |lines: &[String]| lines.iter().filter(|l| l.contains("DNAT")).count();
    assert_eq!(dnat(&kube_lines(&ns)), 2);
    let out = ipt.apply(render(&svc, &two, &node(), &config())).unwrap();
    assert_eq!(out, ApplyOutcome::Unchanged);

    // A restarted proxy (nothing remembered) replaces what it finds, stale chains included.
    let mut restarted = IptablesApplier::new(ns.path());
    restarted
        .apply(render(&svc, &one, &node(), &config()))
        .unwrap();
    let lines = kube_lines(&ns);
    assert_eq!(dnat(&lines), 1, "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("-A PREROUTING"))
            .count(),
        1,
        "the jump is not duplicated"
    );

    // To nftables: the nftables table loads, then every KUBE chain and jump goes.
    let mut nft = Applier::new(ns.path(), "kinet");
    nft.reconcile(&kinet_proxy_rules::render(&svc, &one, &node(), &config()))
        .unwrap();
    hand_over(ProxyMode::Nftables, &ns.path(), "kinet").unwrap();
    assert_eq!(kube_lines(&ns), Vec::<String>::new());
    assert!(nft.list().unwrap().is_some());

    // And back: the nftables table goes once iptables is loaded.
    IptablesApplier::new(ns.path())
        .apply(render(&svc, &one, &node(), &config()))
        .unwrap();
    hand_over(ProxyMode::Iptables, &ns.path(), "kinet").unwrap();
    assert_eq!(nft.list().unwrap(), None);
    assert!(!kube_lines(&ns).is_empty());
}

/// Every golden file of kinet-proxy-iptables, loaded by the real `iptables-restore` into a
/// fresh namespace: each chain it declares and each rule it appends is then in
/// `iptables-save` (the load-balancer firewall's `KUBE-FW-` and `KUBE-PROXY-FIREWALL`
/// included).
#[test]
fn every_golden_file_loads_with_iptables_restore() {
    if !root() {
        return;
    }
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proxy-iptables/tests/golden");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let ns = Netns::new("iptg");
        ns.exec(&["iptables-restore", "--noflush", path.to_str().unwrap()]);
        let saved = kube_lines(&ns);
        let declared = text
            .lines()
            .filter_map(|l| l.strip_prefix(':'))
            .map(|d| format!(":{} ", d.split(' ').next().unwrap()));
        for chain in declared {
            assert!(
                saved.iter().any(|l| l.starts_with(&chain)),
                "{}: {chain} not loaded\n{saved:#?}",
                path.display()
            );
        }
        let rules = |lines: &mut dyn Iterator<Item = &str>| {
            lines.filter(|l| l.starts_with("-A KUBE-")).count()
        };
        assert_eq!(
            rules(&mut saved.iter().map(String::as_str)),
            rules(&mut text.lines()),
            "{}",
            path.display()
        );
        loaded += 1;
    }
    assert!(loaded >= 7, "only {loaded} golden files");
}
