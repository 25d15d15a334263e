//! What kinet needs from the host before `up` creates anything: the programs it runs and the
//! kernel features its network uses. The lists are data: a requirement that goes away is one
//! entry removed. The service proxy and the nodes' masquerade load nftables over netlink and
//! delete stale conntrack entries the same way, so `nft` and `conntrack` are tools to look
//! with, not to run a cluster (only `--egress` loads the host's table with `nft`).
//!
//! [`check`] is pure over a [`Lookup`]; [`HostLookup`] answers from `PATH`, `/proc`, `/sys`
//! and `/lib/modules` without loading anything (no `modprobe`).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A program kinet executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    /// Why kinet runs it.
    pub why: &'static str,
    /// The Debian/Ubuntu package that ships it.
    pub package: &'static str,
    /// Only a cluster made with `--egress` runs it.
    pub egress_only: bool,
}

/// Every program a cluster with nodes runs (`Command::new` across the workspace).
pub const PROGRAMS: &[Program] = &[
    Program {
        name: "nsenter",
        why: "starts node agents, pod sandboxes and `kubectl exec` inside their namespaces",
        package: "util-linux",
        egress_only: false,
    },
    Program {
        name: "unshare",
        why: "gives each pod sandbox its own UTS, IPC and mount namespaces",
        package: "util-linux",
        egress_only: false,
    },
    Program {
        name: "setsid",
        why: "gives `kubectl exec -t` a controlling terminal",
        package: "util-linux",
        egress_only: false,
    },
    Program {
        name: "setpriv",
        why: "ties each container's life to its shim (parent-death signal)",
        package: "util-linux",
        egress_only: false,
    },
    Program {
        name: "ip",
        why: "puts LoadBalancer addresses on each node's kinet-lb link",
        package: "iproute2",
        egress_only: false,
    },
    Program {
        name: "nft",
        why: "loads the host's masquerade table for --egress",
        package: "nftables",
        egress_only: true,
    },
];

/// What `--proxy-mode iptables` runs in each node (the iptables-nft backend).
pub const IPTABLES_PROGRAMS: &[Program] = &[
    Program {
        name: "iptables-restore",
        why: "loads the service proxy's chains in --proxy-mode iptables",
        package: "iptables",
        egress_only: false,
    },
    Program {
        name: "iptables-save",
        why: "reads back the service proxy's chains in --proxy-mode iptables",
        package: "iptables",
        egress_only: false,
    },
    Program {
        name: "prlimit",
        why: "lifts iptables-save's stack limit (it overflows at about 10,000 Services)",
        package: "util-linux",
        egress_only: false,
    },
];

/// A kernel feature the cluster's network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFeature {
    /// The module that provides it (its name under /sys/module and in /proc/modules).
    pub module: &'static str,
    /// Its kernel configuration symbol.
    pub config: &'static str,
    pub why: &'static str,
    /// A path that exists only while the feature is loaded, for features nothing loads on
    /// demand (kinet writes this sysctl; netlink and nftables autoload the others).
    pub loaded_path: Option<&'static str>,
    /// Only the VXLAN pod backend needs it.
    pub vxlan_only: bool,
}

pub const KERNEL_FEATURES: &[KernelFeature] = &[
    KernelFeature {
        module: "veth",
        config: "CONFIG_VETH",
        why: "links the nodes to the underlay and each pod to its node",
        loaded_path: None,
        vxlan_only: false,
    },
    KernelFeature {
        module: "bridge",
        config: "CONFIG_BRIDGE",
        why: "the underlay switch and each node's pod bridge cbr0",
        loaded_path: None,
        vxlan_only: false,
    },
    KernelFeature {
        module: "br_netfilter",
        config: "CONFIG_BRIDGE_NETFILTER",
        why: "lets Service rules see pod-to-pod traffic on one bridge (bridge-nf-call-iptables)",
        loaded_path: Some("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        vxlan_only: false,
    },
    KernelFeature {
        module: "nf_tables",
        config: "CONFIG_NF_TABLES",
        why: "holds the service proxy's rules and the nodes' masquerade",
        loaded_path: None,
        vxlan_only: false,
    },
    KernelFeature {
        module: "nft_nat",
        config: "CONFIG_NFT_NAT",
        why: "Service DNAT and pod masquerade in nftables",
        loaded_path: None,
        vxlan_only: false,
    },
    KernelFeature {
        module: "vxlan",
        config: "CONFIG_VXLAN",
        why: "carries pod traffic between nodes (the default --backend vxlan)",
        loaded_path: None,
        vxlan_only: true,
    },
];

/// IPVS: kube-proxy's ipvs mode balances Services with it. kinet does not build that mode
/// (it could not be tested here); `--proxy-mode ipvs` is refused naming this module.
pub const IP_VS: KernelFeature = KernelFeature {
    module: "ip_vs",
    config: "CONFIG_IP_VS",
    why: "kube-proxy's ipvs mode balances Services with it",
    loaded_path: Some("/proc/net/ip_vs"),
    vxlan_only: false,
};

/// Read-only questions about the host.
pub trait Lookup {
    /// Whether `name` is an executable file in a `PATH` directory.
    fn program(&self, name: &str) -> bool;
    fn exists(&self, path: &str) -> bool;
    /// `/proc/modules`, if readable.
    fn proc_modules(&self) -> Option<String>;
    /// The running kernel's configuration (`/proc/config.gz` or `/boot/config-<release>`).
    fn kernel_config(&self) -> Option<String>;
    /// `modules.builtin` and `modules.dep` of the running kernel, if installed.
    fn module_index(&self) -> Option<(String, String)>;
}

/// One unmet requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// `program conntrack` or `kernel feature vxlan (CONFIG_VXLAN)`.
    pub what: String,
    pub why: &'static str,
    /// How to get it.
    pub fix: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is missing: kinet {}; {}",
            self.what, self.why, self.fix
        )
    }
}

/// `up` stops here when the host lacks something; every missing item is listed.
#[derive(Debug, thiserror::Error)]
#[error("this host lacks what kinet needs:\n{}", list(.0))]
pub struct MissingPrerequisites(pub Vec<Missing>);

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(|m| format!("  - {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the cluster being started uses beyond what every cluster with nodes needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The pod backend is VXLAN.
    pub vxlan: bool,
    /// `--egress`: the host masquerades pod traffic.
    pub egress: bool,
    /// `--proxy-mode iptables`: the nodes run iptables-restore.
    pub iptables: bool,
}

/// Everything in the lists the host lacks for a cluster that `needs` this, programs first.
pub fn check(lookup: &impl Lookup, needs: Needs) -> Vec<Missing> {
    let iptables = if needs.iptables {
        IPTABLES_PROGRAMS
    } else {
        &[]
    };
    let mut missing: Vec<Missing> = PROGRAMS
        .iter()
        .chain(iptables)
        .filter(|p| needs.egress || !p.egress_only)
        .filter(|p| !lookup.program(p.name))
        .map(|p| Missing {
            what: format!("program {}", p.name),
            why: p.why,
            fix: format!("install it: apt-get install {}", p.package),
        })
        .collect();
    let kernel = KernelFacts::gather(lookup);
    for feature in KERNEL_FEATURES
        .iter()
        .filter(|f| needs.vxlan || !f.vxlan_only)
    {
        if let Some(fix) = kernel.lacks(lookup, feature) {
            missing.push(Missing {
                what: format!("kernel feature {} ({})", feature.module, feature.config),
                why: feature.why,
                fix,
            });
        }
    }
    missing
}

/// Whether the kernel has `feature` loaded, built in or as a module (what `modprobe -n`
/// tells), strictly: unknowable counts as absent.
pub fn kernel_has(lookup: &impl Lookup, feature: &KernelFeature) -> bool {
    let kernel = KernelFacts::gather(lookup);
    kernel.loaded(lookup, feature)
        || matches!(kernel.built(feature), Some(Built::In | Built::Module))
}

/// `check` as an error for `up`.
pub fn require(lookup: &impl Lookup, needs: Needs) -> Result<(), MissingPrerequisites> {
    let missing = check(lookup, needs);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingPrerequisites(missing))
    }
}

/// How a module is present in the kernel's configuration or module index.
#[derive(Debug, PartialEq, Eq)]
enum Built {
    In,
    Module,
    No,
}

struct KernelFacts {
    loaded: Vec<String>,
    config: Option<String>,
    index: Option<(String, String)>,
}

impl KernelFacts {
    fn gather(lookup: &impl Lookup) -> KernelFacts {
        let loaded = lookup
            .proc_modules()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        KernelFacts {
            loaded,
            config: lookup.kernel_config(),
            index: lookup.module_index(),
        }
    }

    /// How `feature` is built, from the configuration, else from the module index; `None`
    /// when neither is available.
    fn built(&self, feature: &KernelFeature) -> Option<Built> {
        if let Some(config) = &self.config {
            let value = config.lines().find_map(|l| {
                l.strip_prefix(feature.config)
                    .and_then(|rest| rest.strip_prefix('='))
            });
            return Some(match value {
                Some("y") => Built::In,
                Some("m") => Built::Module,
                _ => Built::No,
            });
        }
        let (builtin, dep) = self.index.as_ref()?;
        let file = format!("/{}.ko", feature.module);
        let listed = |text: &str| {
            text.lines().any(|l| {
                let path = l.split(':').next().unwrap_or_default();
                // modules.dep may name compressed modules (vxlan.ko.zst).
                path.ends_with(&file) || path.contains(&format!("{file}."))
            })
        };
        Some(if listed(builtin) {
            Built::In
        } else if listed(dep) {
            Built::Module
        } else {
            Built::No
        })
    }

    fn loaded(&self, lookup: &impl Lookup, feature: &KernelFeature) -> bool {
        self.loaded.iter().any(|m| m == feature.module)
            || lookup.exists(&format!("/sys/module/{}", feature.module))
            || feature.loaded_path.is_some_and(|p| lookup.exists(p))
    }

    /// Why `feature` is missing (how to get it), or `None` if present or unknowable. A host
    /// that shows neither its configuration nor its module index gets the benefit of the
    /// doubt: a built-in feature need not appear under /sys/module.
    fn lacks(&self, lookup: &impl Lookup, feature: &KernelFeature) -> Option<String> {
        let load = format!("load it: modprobe {}", feature.module);
        if let Some(path) = feature.loaded_path {
            if lookup.exists(path) {
                return None;
            }
            return Some(match self.built(feature) {
                Some(Built::No) => rebuild(feature),
                _ => format!("{load} (and add it to /etc/modules-load.d to keep it)"),
            });
        }
        if self.loaded(lookup, feature) {
            return None;
        }
        match self.built(feature)? {
            Built::In | Built::Module => None,
            Built::No => Some(rebuild(feature)),
        }
    }
}

fn rebuild(feature: &KernelFeature) -> String {
    format!(
        "the running kernel was built without {}: use a distribution kernel \
         (on Ubuntu the module is in linux-modules-extra-$(uname -r))",
        feature.config
    )
}

/// The real host, without side effects.
pub struct HostLookup {
    path: Vec<PathBuf>,
    release: Option<String>,
}

impl HostLookup {
    /// Programs are looked up in this process's `PATH`, as `Command::new` does.
    pub fn new() -> HostLookup {
        let path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|r| r.trim().to_string());
        HostLookup { path, release }
    }
}

impl Default for HostLookup {
    fn default() -> Self {
        HostLookup::new()
    }
}

impl Lookup for HostLookup {
    fn program(&self, name: &str) -> bool {
        use std::os::unix::fs::PermissionsExt;
        self.path.iter().any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }

    fn proc_modules(&self) -> Option<String> {
        std::fs::read_to_string("/proc/modules").ok()
    }

    fn kernel_config(&self) -> Option<String> {
        if let Ok(gz) = std::fs::File::open("/proc/config.gz") {
            let mut text = String::new();
            if flate2::read::GzDecoder::new(gz)
                .read_to_string(&mut text)
                .is_ok()
            {
                return Some(text);
            }
        }
        std::fs::read_to_string(format!("/boot/config-{}", self.release.as_deref()?)).ok()
    }

    fn module_index(&self) -> Option<(String, String)> {
        let dir = Path::new("/lib/modules").join(self.release.as_deref()?);
        Some((
            std::fs::read_to_string(dir.join("modules.builtin")).ok()?,
            std::fs::read_to_string(dir.join("modules.dep")).ok()?,
        ))
    }
}

#[cfg(test)]
#[path = "prereqs_tests.rs"]
mod tests;
