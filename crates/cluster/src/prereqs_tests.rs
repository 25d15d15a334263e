use super::*;

/// A host described by data.
#[derive(Default)]
struct Fake {
    programs: Vec<&'static str>,
    paths: Vec<String>,
    proc_modules: Option<String>,
    config: Option<String>,
    index: Option<(String, String)>,
}

impl Lookup for Fake {
    fn program(&self, name: &str) -> bool {
        self.programs.contains(&name)
    }
    fn exists(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }
    fn proc_modules(&self) -> Option<String> {
        self.proc_modules.clone()
    }
    fn kernel_config(&self) -> Option<String> {
        self.config.clone()
    }
    fn module_index(&self) -> Option<(String, String)> {
        self.index.clone()
    }
}

const VXLAN: Needs = Needs {
    vxlan: true,
    egress: false,
    iptables: false,
};
const HOST_GW: Needs = Needs {
    vxlan: false,
    egress: false,
    iptables: false,
};

fn all_programs() -> Vec<&'static str> {
    PROGRAMS.iter().map(|p| p.name).collect()
}

/// Every feature built in, br_netfilter loaded: nothing is missing.
fn complete() -> Fake {
    Fake {
        programs: all_programs(),
        paths: vec!["/proc/sys/net/bridge/bridge-nf-call-iptables".into()],
        config: Some(
            KERNEL_FEATURES
                .iter()
                .map(|f| format!("{}=y\n", f.config))
                .collect(),
        ),
        ..Fake::default()
    }
}

fn whats(missing: &[Missing]) -> Vec<&str> {
    missing.iter().map(|m| m.what.as_str()).collect()
}

#[test]
fn a_complete_host_lacks_nothing() {
    assert_eq!(check(&complete(), VXLAN), []);
    assert!(require(&complete(), VXLAN).is_ok());
}

#[test]
fn each_missing_program_names_its_package() {
    let mut host = complete();
    host.programs.retain(|p| *p != "unshare" && *p != "ip");
    let missing = check(&host, VXLAN);
    assert_eq!(whats(&missing), ["program unshare", "program ip"]);
    assert!(missing[0].fix.contains("apt-get install util-linux"));
    assert!(
        missing[1].fix.contains("apt-get install iproute2"),
        "{missing:?}"
    );
    let err = require(&host, VXLAN).unwrap_err().to_string();
    assert!(
        err.contains("program ip is missing: kinet puts LoadBalancer"),
        "{err}"
    );
    assert!(err.contains("program unshare is missing"), "{err}");
}

#[test]
fn nft_is_needed_only_for_egress() {
    let mut host = complete();
    host.programs.retain(|p| *p != "nft");
    assert_eq!(check(&host, VXLAN), []);
    let egress = Needs {
        egress: true,
        ..VXLAN
    };
    let missing = check(&host, egress);
    assert_eq!(whats(&missing), ["program nft"]);
    assert!(missing[0].fix.contains("apt-get install nftables"));
}

#[test]
fn iptables_is_needed_only_in_iptables_mode() {
    let host = complete();
    assert_eq!(check(&host, VXLAN), []);
    let iptables = Needs {
        iptables: true,
        ..VXLAN
    };
    let missing = check(&host, iptables);
    assert_eq!(
        whats(&missing),
        [
            "program iptables-restore",
            "program iptables-save",
            "program prlimit"
        ]
    );
    assert!(missing[0].fix.contains("apt-get install iptables"));
}

#[test]
fn ip_vs_counts_only_when_the_kernel_shows_it() {
    let mut host = complete();
    assert!(!kernel_has(&host, &IP_VS), "not in the configuration");
    host.config = None;
    assert!(!kernel_has(&host, &IP_VS), "unknowable is absent");
    host.index = Some((
        String::new(),
        "kernel/net/netfilter/ipvs/ip_vs.ko.zst: kernel/net/netfilter/nf_conntrack.ko.zst\n".into(),
    ));
    assert!(kernel_has(&host, &IP_VS), "a loadable module");
    let loaded = Fake {
        paths: vec!["/sys/module/ip_vs".into()],
        ..Fake::default()
    };
    assert!(kernel_has(&loaded, &IP_VS));
}

#[test]
fn every_program_kinet_runs_is_listed_once_with_a_package() {
    let mut names = all_programs();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), PROGRAMS.len());
    for p in PROGRAMS {
        assert!(!p.package.is_empty() && !p.why.is_empty(), "{p:?}");
    }
}

#[test]
fn a_feature_the_config_lacks_is_missing() {
    let mut host = complete();
    host.config = Some(
        host.config
            .unwrap()
            .replace("CONFIG_VXLAN=y", "# CONFIG_VXLAN is not set"),
    );
    let missing = check(&host, VXLAN);
    assert_eq!(whats(&missing), ["kernel feature vxlan (CONFIG_VXLAN)"]);
    assert!(missing[0].fix.contains("built without CONFIG_VXLAN"));
    // host-gw does not need VXLAN.
    assert_eq!(check(&host, HOST_GW), []);
}

#[test]
fn a_loadable_module_counts_unless_it_must_already_be_loaded() {
    let mut host = complete();
    host.config = Some(host.config.unwrap().replace("=y", "=m"));
    host.paths.clear();
    let missing = check(&host, VXLAN);
    assert_eq!(
        whats(&missing),
        ["kernel feature br_netfilter (CONFIG_BRIDGE_NETFILTER)"]
    );
    assert!(
        missing[0].fix.contains("modprobe br_netfilter"),
        "{missing:?}"
    );
}

#[test]
fn loaded_modules_count_without_a_config() {
    let host = Fake {
        programs: all_programs(),
        paths: vec![
            "/proc/sys/net/bridge/bridge-nf-call-iptables".into(),
            "/sys/module/vxlan".into(),
        ],
        proc_modules: Some("veth 40960 0 - Live 0x0\nbridge 1 0 - Live 0x0\n".into()),
        // nf_tables and nft_nat are not loaded: the module index decides.
        index: Some((
            "kernel/net/netfilter/nf_tables.ko\n".into(),
            "kernel/net/netfilter/nft_nat.ko.zst: kernel/net/netfilter/nf_tables.ko\n".into(),
        )),
        ..Fake::default()
    };
    assert_eq!(check(&host, VXLAN), []);
}

#[test]
fn the_module_index_decides_when_there_is_no_config() {
    let host = Fake {
        programs: all_programs(),
        paths: vec!["/proc/sys/net/bridge/bridge-nf-call-iptables".into()],
        index: Some((
            "kernel/drivers/net/veth.ko\nkernel/net/bridge/bridge.ko\n".into(),
            "kernel/net/netfilter/nf_tables.ko:\n".into(),
        )),
        ..Fake::default()
    };
    assert_eq!(
        whats(&check(&host, VXLAN)),
        [
            "kernel feature nft_nat (CONFIG_NFT_NAT)",
            "kernel feature vxlan (CONFIG_VXLAN)"
        ]
    );
}

#[test]
fn an_opaque_kernel_gets_the_benefit_of_the_doubt() {
    let host = Fake {
        programs: all_programs(),
        paths: vec!["/proc/sys/net/bridge/bridge-nf-call-iptables".into()],
        ..Fake::default()
    };
    assert_eq!(check(&host, VXLAN), []);
}
