use super::*;
use kinet_proxy::ProxyMode;
use std::collections::BTreeMap;

fn settings(mode: ProxyMode) -> NodeSettings {
    NodeSettings {
        proxy_mode: mode,
        node_monitor_grace_period_seconds: 12,
        service_proxy: true,
        network_policy: false,
        registries: kinet_oci_store::Settings {
            mirrors: BTreeMap::from([("docker.io".into(), vec!["127.0.0.1:5000".into()])]),
            insecure: vec!["registry.lab:5000".into()],
            offline: true,
            pull_real: vec!["busybox".into()],
        },
    }
}

#[test]
fn the_config_map_reads_back_and_is_readable_yaml() {
    let want = settings(ProxyMode::Iptables);
    let cm = config_map(&want);
    let text = &cm.data.as_ref().unwrap()[KEY];
    assert!(text.contains("proxyMode: iptables"), "{text}");
    assert!(text.contains("nodeMonitorGracePeriodSeconds: 12"), "{text}");
    assert!(text.contains("networkPolicy: false"), "{text}");
    assert_eq!(NodeSettings::from_config_map(&cm).unwrap(), want);
    let mut wrong = cm.clone();
    wrong.data = Some(BTreeMap::from([(KEY.into(), "proxyMode: ipvs".into())]));
    assert!(NodeSettings::from_config_map(&wrong).is_err());
    wrong.data = None;
    let e = NodeSettings::from_config_map(&wrong).unwrap_err();
    assert!(e.to_string().contains("has no key node.yaml"), "{e}");
}

#[test]
fn nodes_may_get_this_config_map_and_nothing_more() {
    let (role, binding) = rbac();
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].verbs, ["get"]);
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["configmaps".to_string()][..])
    );
    assert_eq!(
        rules[0].resource_names.as_deref(),
        Some(&[NAME.to_string()][..])
    );
    let subjects = binding.subjects.unwrap();
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", "system:nodes")
    );
    assert_eq!(binding.role_ref.name, ROLE);
}

/// A client acting as node `n1`, through the server's impersonation.
fn as_node(api: &kinet_testkit::TestApi) -> kube::Client {
    let mut config = kube::Config::new(api.url.parse().unwrap());
    config.root_cert = Some(vec![pem_der(&api.ca_pem)]);
    config.auth_info.token = Some(api.token.clone().into());
    config.auth_info.impersonate = Some("system:node:n1".into());
    config.auth_info.impersonate_groups = Some(vec!["system:nodes".into()]);
    kube::Client::try_from(config).unwrap()
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn published_once_updated_on_change_and_read_as_a_node() {
    let api = kinet_testkit::TestApi::start().await.unwrap();
    let admin = api.client().unwrap();
    let node = as_node(&api);
    assert!(read(&node).await.is_err(), "nothing published yet");

    publish(&admin, &settings(ProxyMode::Nftables))
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    let rv = cms.get(NAME).await.unwrap().metadata.resource_version;
    publish(&admin, &settings(ProxyMode::Nftables))
        .await
        .unwrap();
    assert_eq!(cms.get(NAME).await.unwrap().metadata.resource_version, rv);
    assert_eq!(read(&node).await.unwrap(), settings(ProxyMode::Nftables));

    publish(&admin, &settings(ProxyMode::Iptables))
        .await
        .unwrap();
    assert_eq!(read(&node).await.unwrap().proxy_mode, ProxyMode::Iptables);

    // Any other ConfigMap stays out of a node's reach.
    let mut other = config_map(&settings(ProxyMode::Nftables));
    other.metadata.name = Some("other".into());
    cms.create(&Default::default(), &other).await.unwrap();
    let node_cms: Api<ConfigMap> = Api::namespaced(node, NAMESPACE);
    match node_cms.get("other").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("a node read another ConfigMap: {other:?}"),
    }
}
