//! Facts about the machine, read from /proc and /etc: the parsers are pure, `detect` reads.

use crate::node::{Capacity, SystemInfo};

/// Pods per node. The kubelet's default `maxPods` is 110; kinet nodes have a /24 podCIDR
/// (253 pod addresses) and processes instead of containers, so they take 250, the largest
/// `maxPods` managed clusters allow for a /24 (AKS).
pub const DEFAULT_MAX_PODS: u32 = 250;

/// `MemTotal` from /proc/meminfo, in KiB.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `PRETTY_NAME` from os-release, unquoted.
pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix("PRETTY_NAME=")?.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some(v.to_string())
    })
}

/// Go's GOARCH name for Rust's target architecture, as `kubernetes.io/arch` uses.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The machine's capacity: all CPUs and memory (nodes share the host, as kind's do).
pub fn detect_capacity() -> Capacity {
    let cpu = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or(0);
    Capacity {
        cpu,
        memory_kib,
        pods: DEFAULT_MAX_PODS,
    }
}

/// The machine's system facts; `runtime_version` is e.g. "kinet://0.1.0".
pub fn detect_system(runtime_version: &str) -> SystemInfo {
    let os_image = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| parse_os_release(&t))
        .unwrap_or_else(|| "Linux".to_string());
    SystemInfo {
        os_image,
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
        architecture: go_arch(std::env::consts::ARCH).to_string(),
        container_runtime_version: runtime_version.to_string(),
        machine_id: read_trimmed("/etc/machine-id"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total() {
        let t = "MemFree:  10 kB\nMemTotal:       16318412 kB\n";
        assert_eq!(parse_meminfo(t), Some(16_318_412));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn os_release_pretty_name() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release(t).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(parse_os_release("ID=x\n"), None);
    }

    #[test]
    fn arch_names_follow_go() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }

    #[test]
    fn detection_reads_this_machine() {
        let c = detect_capacity();
        assert!(c.cpu >= 1 && c.memory_kib > 0 && c.pods == DEFAULT_MAX_PODS);
        let s = detect_system("kinet://test");
        assert!(!s.kernel_version.is_empty());
        assert_eq!(s.container_runtime_version, "kinet://test");
    }
}
