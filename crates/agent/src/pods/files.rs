//! The files the kubelet writes for a pod and bind-mounts into it: the managed `/etc/hosts`,
//! `/etc/resolv.conf` from the pod's dnsPolicy and dnsConfig, and its hostname. Pure data.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

/// Where the cluster's DNS is, as the kubelet's `--cluster-dns` and `--cluster-domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The kube-dns Service IP (10.96.0.10).
    pub nameserver: Ipv4Addr,
    /// The cluster domain (cluster.local).
    pub domain: String,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            nameserver: Ipv4Addr::new(10, 96, 0, 10),
            domain: "cluster.local".into(),
        }
    }
}

/// The pod's hostname and, with a subdomain, its fully qualified name: the kubelet's
/// `GeneratePodHostNameAndDomain` (spec.hostname, else the pod name, cut to 63 bytes).
pub fn hostname(pod: &Pod, dns: &ClusterDns) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let host = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    let host: String = host.chars().take(63).collect();
    let host = host.trim_end_matches(['-', '.']).to_string();
    let fqdn = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|d| !d.is_empty())
        .map(|sub| {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            format!("{host}.{sub}.{ns}.svc.{}", dns.domain)
        });
    (host, fqdn)
}

/// The kubelet's managed hosts file (`managedHostsFileContent`).
pub fn hosts_file(pod: &Pod, pod_ip: Ipv4Addr, dns: &ClusterDns) -> String {
    let (host, fqdn) = hostname(pod, dns);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match fqdn {
        Some(fqdn) => out.push_str(&format!("{pod_ip}\t{fqdn}\t{host}\n")),
        None => out.push_str(&format!("{pod_ip}\t{host}\n")),
    }
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

/// `/etc/resolv.conf` for the pod, as the kubelet's `GetPodDNS` builds it. `host_resolv` is
/// the node's own resolv.conf, used by dnsPolicy `Default`.
pub fn resolv_conf(pod: &Pod, dns: &ClusterDns, host_resolv: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (mut servers, mut searches, mut options) = match policy {
        "None" => (Vec::new(), Vec::new(), Vec::new()),
        "Default" => parse_resolv(host_resolv),
        "ClusterFirst" if host_network => parse_resolv(host_resolv),
        _ => (
            vec![dns.nameserver.to_string()],
            vec![
                format!("{ns}.svc.{}", dns.domain),
                format!("svc.{}", dns.domain),
                dns.domain.clone(),
            ],
            vec![("ndots".to_string(), Some("5".to_string()))],
        ),
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for s in cfg.nameservers.iter().flatten() {
            if !servers.contains(s) {
                servers.push(s.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let value = o.value.clone();
            match options.iter_mut().find(|(n, _)| Some(n) == o.name.as_ref()) {
                Some(existing) => existing.1 = value,
                None => options.push((o.name.clone().unwrap_or_default(), value)),
            }
        }
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        let opts: Vec<String> = options
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => n.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

type Resolv = (Vec<String>, Vec<String>, Vec<(String, Option<String>)>);

fn parse_resolv(text: &str) -> Resolv {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                searches = words.map(str::to_string).collect();
            }
            Some("options") => options.extend(words.map(|w| match w.split_once(':') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (w.to_string(), None),
            })),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn hosts_has_localhost_pod_ip_and_aliases() {
        let p = pod(
            json!({"containers": [], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo.local", "bar.local"]}]}),
        );
        let text = hosts_file(&p, Ipv4Addr::new(10, 244, 1, 5), &ClusterDns::default());
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.244.1.5\tweb-1\n\n# Entries added by HostAliases.\n1.2.3.4\tfoo.local\tbar.local\n"
        );
    }

    #[test]
    fn hostname_and_subdomain_give_the_fqdn() {
        let p = pod(json!({"containers": [], "hostname": "db-0", "subdomain": "db"}));
        let (h, fqdn) = hostname(&p, &ClusterDns::default());
        assert_eq!(h, "db-0");
        assert_eq!(fqdn.as_deref(), Some("db-0.db.shop.svc.cluster.local"));
        let text = hosts_file(&p, Ipv4Addr::new(10, 244, 1, 5), &ClusterDns::default());
        assert!(text.ends_with("10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n"));
    }

    #[test]
    fn cluster_first_points_at_kube_dns() {
        let p = pod(json!({"containers": []}));
        assert_eq!(
            resolv_conf(&p, &ClusterDns::default(), "nameserver 192.0.2.53\n"),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_copies_the_node_and_none_takes_only_dns_config() {
        let host = "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n";
        let p = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(
            resolv_conf(&p, &ClusterDns::default(), host),
            "search example.org\nnameserver 192.0.2.53\noptions edns0\n"
        );
        let p = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["10.0.0.53"], "searches": ["a.example", "b.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            resolv_conf(&p, &ClusterDns::default(), host),
            "search a.example b.example\nnameserver 10.0.0.53\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_merges_into_cluster_first() {
        let p = pod(
            json!({"containers": [], "dnsConfig": {"searches": ["extra.example"],
            "options": [{"name": "ndots", "value": "1"}]}}),
        );
        assert_eq!(
            resolv_conf(&p, &ClusterDns::default(), ""),
            "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\nnameserver 10.96.0.10\noptions ndots:1\n"
        );
    }
}
