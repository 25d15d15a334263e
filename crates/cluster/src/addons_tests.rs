use super::*;
use kube::api::ListParams;
use std::net::SocketAddr;

fn up(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn kubeadm_shaped_objects() {
    let addon = DnsAddon::new(vec![up("192.0.2.1:53")]);
    let d = deployment(&addon);
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let labels = spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(labels["k8s-app"], "kube-dns");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("coredns"));
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    let tolerations = pod.tolerations.as_ref().unwrap();
    assert!(tolerations.iter().any(|t| t.key.as_deref()
        == Some("node-role.kubernetes.io/control-plane")
        && t.effect.as_deref() == Some("NoSchedule")));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(kinet_images::DNS_IMAGE));
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["--zone", "cluster.local", "--upstream", "192.0.2.1:53"]
    );
    let ready = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/ready"));
    assert_eq!(
        ready.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9153)
    );
    // The image's own flag parser takes the arguments the Deployment passes.
    let config = crate::dns_image::dns_config(c.args.as_deref().unwrap()).unwrap();
    assert_eq!(config.upstreams, [up("192.0.2.1:53")]);

    let s = service(&addon);
    let spec = s.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    let ports: Vec<(String, i32, String)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".into(), 53, "UDP".into()),
            ("dns-tcp".into(), 53, "TCP".into()),
            ("metrics".into(), 9153, "TCP".into())
        ]
    );
    assert!(DnsAddon::new(vec![])
        .args()
        .iter()
        .all(|a| a != "--upstream"));
}

#[tokio::test]
async fn deploys_once_and_follows_upstream_changes() {
    let api = kinet_testkit::TestApi::start().await.unwrap();
    let client = api.client().unwrap();
    let none = DnsAddon::new(vec![]);
    ensure_cluster_dns(&client, &none).await.unwrap();
    ensure_cluster_dns(&client, &none).await.unwrap();

    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let listed = deploys.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let rv = listed.items[0].metadata.resource_version.clone();
    let svc: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let dns = svc.get("kube-dns").await.unwrap();
    assert_eq!(
        dns.spec.unwrap().cluster_ip.as_deref(),
        Some(DNS_SERVICE_IP)
    );
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    sas.get("coredns").await.unwrap();

    // Unchanged: no write.
    ensure_cluster_dns(&client, &none).await.unwrap();
    let again = deploys.get(DEPLOYMENT).await.unwrap();
    assert_eq!(again.metadata.resource_version, rv);

    // `kinet up --upstream-dns` on a restart: the arguments follow.
    let with = DnsAddon::new(vec![up("192.0.2.53:53")]);
    ensure_cluster_dns(&client, &with).await.unwrap();
    let patched = deploys.get(DEPLOYMENT).await.unwrap();
    let c = &patched.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["--zone", "cluster.local", "--upstream", "192.0.2.53:53"]
    );
    assert!(c.readiness_probe.is_some());
}
