//! Issue 17: etcd as the store. A 3-member etcd on loopback holds one cluster, and the core of the
//! suite runs on it, all cases on that one cluster: kubectl basics, pods across nodes, Services
//! and DNS. The SIGKILL cases run on an etcd-backed cluster of their own with two API servers:
//! first the failover of `failover.rs`, then the durability case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kinet_testkit::etcd::EtcdCluster;

use crate::harness::{show, Cluster};
use crate::{dns, durability, failover, kubectl_basics, pods, services};

fn up_on(etcd: &EtcdCluster, nodes: usize) -> Cluster {
    Cluster::up_with(nodes, &["--datastore", &etcd.url()])
}

/// Removes what a case left in `default` (the cases reuse names) and waits until it is gone.
fn clean_default_namespace(c: &Cluster) {
    c.kubectl_ok(&[
        "delete",
        "deployments,statefulsets,pods",
        "--all",
        "--wait=true",
    ]);
    // The `kubernetes` Service stays.
    c.kubectl_ok(&[
        "delete",
        "services",
        "-l",
        "provider!=kubernetes",
        "--wait=true",
    ]);
}

#[test]
fn the_core_suite_runs_on_a_three_member_etcd() {
    let mut etcd = EtcdCluster::start(3).unwrap();
    let c = up_on(&etcd, 3);

    // First, while no other pod comes or goes: it counts the nodes' veths before and after.
    pods::pods_get_ips_reach_each_other_without_nat_and_clean_up_on(&c);
    services::cluster_ip_spreads_keeps_affinity_answers_udp_and_follows_scaling_on(&c);
    clean_default_namespace(&c);
    dns::cluster_dns_answers_the_kubernetes_records_on(&c);
    clean_default_namespace(&c);
    kubectl_basics::apply_get_and_change_with_kubectl_on(&c);
    clean_default_namespace(&c);
    kubectl_basics::watch_shows_changes_from_another_client_on(&c);

    // The objects are etcd's, under kube-apiserver's keys.
    let nodes = etcd.keys("/registry/nodes/").unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let system_pods = etcd.keys("/registry/pods/kube-system/").unwrap();
    assert!(!system_pods.is_empty());
    assert!(!etcd
        .keys("/registry/apps/deployments/kube-system/")
        .unwrap()
        .is_empty());

    // One member dies; the other two keep quorum and kinet keeps serving.
    etcd.kill(0);
    // A write in flight during the election of a new leader may fail, as on any etcd-backed
    // cluster; kubectl's retry then finds it created or creates it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = c.kubectl(&["create", "configmap", "after-a-member-died"]);
        if out.status.success() || show(&out).contains("already exists") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write after a member died\n{}",
            show(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    c.kubectl_ok(&["get", "configmap", "after-a-member-died"]);
    let stored = etcd.keys("/registry/configmaps/default/after").unwrap();
    assert_eq!(stored, ["/registry/configmaps/default/after-a-member-died"]);
}

#[test]
fn two_api_servers_survive_kill_9_and_acknowledged_creates_too() {
    let etcd = EtcdCluster::start(1).unwrap();
    let c = Cluster::up_with(1, &["--datastore", &etcd.url(), "--api-servers", "2"]);
    failover::the_other_server_takes_over_after_a_kill_9_on(&c);
    durability::acknowledged_creates_survive_kill_9_on(Arc::new(c));
}
