//! Issue 17, item 4, "Add-ons elsewhere": a kinet cluster made with none of kinet's own
//! add-ons (`--no-dns --no-proxy --no-policy --no-ingress`), treated as any cluster. The
//! output of `kinet manifests proxy|dns|policy|ingress` is applied with kubectl, and the add-ons
//! then run as pods: the proxy and the policy enforcer as host-network DaemonSets, DNS and
//! ingress as Deployments. The DNS case (which also reaches a Service by name, through the
//! pod proxy), a NetworkPolicy and the ingress tutorial pass against them, on one cluster.

use crate::harness::{kinet, show, stdout, Cluster};
use crate::pods::{apply, json, wait_ready_in};
use crate::services::{node_ips, own, poll};

/// `kinet manifests <args>` applied with kubectl.
fn apply_manifests(c: &Cluster, args: &[&str]) {
    let mut all = vec!["manifests"];
    all.extend(args);
    let out = kinet(&c.home, &all);
    assert!(out.status.success(), "{}", show(&out));
    apply(c, &stdout(&out));
}

/// `host:port` of the API server as the nodes reach it (their kubeconfig's server).
fn api_server(c: &Cluster) -> String {
    let node = json(c, &["get", "nodes"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let kubeconfig = c.state_dir().join(format!("nodes/{node}/kubeconfig"));
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("a server in the node kubeconfig");
    server.trim_start_matches("https://").to_string()
}

#[test]
fn kinet_manifests_run_the_add_ons_on_a_cluster_without_its_own() {
    let c = Cluster::up_with(
        2,
        &["--no-dns", "--no-proxy", "--no-policy", "--no-ingress"],
    );
    // Nothing of kinet's own: no DNS Deployment, no proxy rules in the nodes.
    let dns = c.kubectl(&["get", "deployment", "-n", "kube-system", "coredns"]);
    assert!(!dns.status.success(), "{}", show(&dns));
    for (node, _) in node_ips(&c) {
        let table = c.node_exec(&node, &["nft", "list", "table", "ip", "kinet"]);
        assert!(!table.status.success(), "{node}'s agent programs Services");
    }

    // The proxy first: until it runs, nothing serves the `kubernetes` Service.
    apply_manifests(&c, &["proxy", "--api-server", &api_server(&c)]);
    apply_manifests(&c, &["policy"]);
    apply_manifests(&c, &["dns"]);
    apply_manifests(&c, &["ingress"]);
    wait_ready_in(&c, "kube-system", "k8s-app=kinet-proxy", 2);
    wait_ready_in(&c, "kube-system", "k8s-app=kinet-policy", 2);
    // The pods, not the agents, program each node.
    for (node, _) in node_ips(&c) {
        poll("the pod proxy's and enforcer's tables", || {
            let tables = stdout(&c.node_exec(&node, &["nft", "list", "tables"]));
            (tables.contains("table ip kinet\n") && tables.contains("kinet-policy")).then_some(())
        });
    }

    // DNS, and `web` (3 pods of `db`) by name through the pod proxy's ClusterIP.
    crate::dns::cluster_dns_answers_the_kubernetes_records_on(&c);
    network_policy_through_the_pod_enforcer(&c);
    services_of_other_proxies_are_left_alone(&c);

    let lb = poll("the ingress Service's address", || {
        let svc = json(&c, &["get", "svc", "-n", "kinet-ingress", "kinet-ingress"]);
        svc["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    });
    wait_ready_in(
        &c,
        "kinet-ingress",
        "app.kubernetes.io/name=kinet-ingress",
        1,
    );
    crate::ingress::tutorial(&c, &own(&c, &lb));
}

/// Denying ingress to `db` cuts `client` off `web`; deleting the policy restores it.
fn network_policy_through_the_pod_enforcer(c: &Cluster) {
    let reaches = || {
        let out = c.kubectl(&[
            "exec",
            "client",
            "--",
            "curl",
            "-s",
            "--max-time",
            "1",
            "http://web/hostname",
        ]);
        stdout(&out).starts_with("db-")
    };
    assert!(reaches(), "web does not answer before any policy");
    apply(
        c,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-db}\nspec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}",
    );
    poll("the policy cuts web off", || (!reaches()).then_some(()));
    c.kubectl_ok(&["delete", "networkpolicy", "deny-db"]);
    poll("web answers again", || reaches().then_some(()));
}

/// The pod proxy serves the Services without `service.kubernetes.io/service-proxy-name`, as
/// kube-proxy does, and leaves those labelled for another proxy alone.
fn services_of_other_proxies_are_left_alone(c: &Cluster) {
    let service = |name: &str, labels: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec: {{selector: {{app: db}}, ports: [{{port: 80, targetPort: 8080}}]}}")
    };
    // The labelled one first: the proxy's watch sees it before the other.
    apply(
        c,
        &service(
            "other-proxy",
            "service.kubernetes.io/service-proxy-name: other",
        ),
    );
    apply(c, &service("ours", ""));
    let ip = |name: &str| {
        json(c, &["get", "svc", name])["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (other, ours) = (ip("other-proxy"), ip("ours"));
    let (node, _) = node_ips(c).remove(0);
    let table = poll("the unlabelled Service's rules", || {
        let table = stdout(&c.node_exec(&node, &["nft", "list", "table", "ip", "kinet"]));
        table.contains(&format!("{ours} ")).then_some(table)
    });
    assert!(
        !table.contains(&format!("{other} ")),
        "the Service of another proxy is programmed:\n{table}"
    );
}
