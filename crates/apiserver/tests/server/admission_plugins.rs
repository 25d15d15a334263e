//! The admission plugins that read stored objects, through kube-rs: LimitRanger's defaults land
//! on new pods, bounds and quotas refuse with kube-apiserver's 403 texts, concurrent creates
//! never overshoot a quota (in one namespace or several at once), an update is charged what it
//! adds, each quota's status follows what its namespace holds, and Priority
//! resolves PriorityClasses, the two built-in ones included.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Service};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kinet_testkit::TestApi;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn pod(name: &str, resources: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx", "resources": resources}]}}))
    .unwrap()
}

fn forbidden(err: kube::Error) -> String {
    match err {
        kube::Error::Api(s) if s.code == 403 && s.reason == "Forbidden" => s.message,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

async fn used(quotas: &Api<ResourceQuota>, name: &str, key: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = quotas.get(name).await.unwrap();
        let have = q
            .status
            .and_then(|s| s.used)
            .and_then(|u| u.get(key).map(|q| q.0.clone()));
        if have.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} used {key}: {have:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_ranges_default_and_bound_new_pods() {
    let api = TestApi::start().await.unwrap();
    let client = api.client().unwrap();
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let range = serde_json::from_value(json!({"metadata": {"name": "cpu"}, "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "200m"},
         "max": {"cpu": "1"}}]}}))
    .unwrap();
    ranges.create(&PostParams::default(), &range).await.unwrap();

    let made = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .unwrap();
    let res = made.spec.unwrap().containers[0].resources.clone().unwrap();
    assert_eq!(res.limits.unwrap()["cpu"].0, "500m");
    assert_eq!(res.requests.unwrap()["cpu"].0, "200m");
    assert_eq!(
        made.metadata.annotations.unwrap()["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
    );

    let err = pods
        .create(
            &PostParams::default(),
            &pod("big", json!({"limits": {"cpu": "2"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        forbidden(err),
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    assert!(pods.get_opt("big").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_refuse_what_goes_over_and_track_usage() {
    let api = TestApi::start().await.unwrap();
    let client = api.client().unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let quota = serde_json::from_value(json!({"metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "3", "requests.cpu": "1", "count/configmaps": "2"}}}))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used(&quotas, "compute", "pods", "0").await;

    let err = pods
        .create(&PostParams::default(), &pod("none", json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        forbidden(err),
        "pods \"none\" is forbidden: failed quota: compute: must specify requests.cpu for: c"
    );

    // Eight concurrent creates of 300m each: exactly three fit under 1 CPU, whatever the order.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let pods = pods.clone();
            tokio::spawn(async move {
                let p = pod(&format!("p{i}"), json!({"requests": {"cpu": "300m"}}));
                pods.create(&PostParams::default(), &p).await
            })
        })
        .collect();
    let mut refusals = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            refusals.push(forbidden(e));
        }
    }
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    // The three admitted reach both limits at once, so each refusal names both.
    for m in &refusals {
        assert!(
            m.ends_with(
                "is forbidden: exceeded quota: compute, requested: pods=1,requests.cpu=300m, \
                 used: pods=3,requests.cpu=900m, limited: pods=3,requests.cpu=1"
            ),
            "{m}"
        );
    }
    used(&quotas, "compute", "requests.cpu", "900m").await;
    used(&quotas, "compute", "pods", "3").await;

    // Deleting a pod gives its share back.
    let name = pods.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.delete(
        &name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    used(&quotas, "compute", "requests.cpu", "600m").await;

    for i in 0..2 {
        let cm = serde_json::from_value(json!({"metadata": {"name": format!("cm{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cm2"}})).unwrap();
    assert_eq!(
        forbidden(cms.create(&PostParams::default(), &cm).await.unwrap_err()),
        "configmaps \"cm2\" is forbidden: exceeded quota: compute, requested: count/configmaps=1, \
         used: count/configmaps=2, limited: count/configmaps=2"
    );
    used(&quotas, "compute", "count/configmaps", "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_in_two_namespaces_each_stop_at_their_quota() {
    let api = TestApi::start().await.unwrap();
    let client = api.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["left", "right"] {
        let made = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &made)
            .await
            .unwrap();
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
        let quota = serde_json::from_value(
            json!({"metadata": {"name": "few"}, "spec": {"hard": {"count/configmaps": "3"}}}),
        )
        .unwrap();
        quotas.create(&PostParams::default(), &quota).await.unwrap();
    }
    // Eight creates in each namespace, all at once and interleaved: three fit in each.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let ns = if i % 2 == 0 { "left" } else { "right" };
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            tokio::spawn(async move {
                let cm = serde_json::from_value(json!({"metadata": {"name": format!("cm{i}")}}))
                    .unwrap();
                (ns, cms.create(&PostParams::default(), &cm).await)
            })
        })
        .collect();
    let mut admitted = std::collections::BTreeMap::<&str, usize>::new();
    for t in tasks {
        match t.await.unwrap() {
            (ns, Ok(_)) => *admitted.entry(ns).or_default() += 1,
            (_, Err(e)) => assert!(forbidden(e).contains("exceeded quota: few"), "refusal"),
        }
    }
    assert_eq!(admitted, [("left", 3), ("right", 3)].into());
    for ns in ["left", "right"] {
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
        used(&quotas, "few", "count/configmaps", "3").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_is_charged_the_node_ports_it_adds() {
    let api = TestApi::start().await.unwrap();
    let client = api.client().unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client, "default");
    let quota = serde_json::from_value(json!({"metadata": {"name": "ports"},
        "spec": {"hard": {"services.nodeports": "1", "services.loadbalancers": "0"}}}))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used(&quotas, "ports", "services.nodeports", "0").await;
    let svc = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();

    let to = |kind: &str| Patch::Merge(json!({"spec": {"type": kind}}));
    let err = services
        .patch("web", &PatchParams::default(), &to("NodePort"))
        .await
        .unwrap_err();
    assert_eq!(
        forbidden(err),
        "services \"web\" is forbidden: exceeded quota: ports, requested: services.nodeports=2, \
         used: services.nodeports=0, limited: services.nodeports=1"
    );
    let err = services
        .patch("web", &PatchParams::default(), &to("LoadBalancer"))
        .await
        .unwrap_err();
    assert!(
        forbidden(err).contains("requested: services.loadbalancers=1,services.nodeports=2"),
        "a LoadBalancer is charged its balancer and node ports"
    );
    // A change that adds nothing quota'd goes through.
    let labelled = Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}}));
    services
        .patch("web", &PatchParams::default(), &labelled)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_classes_decide_pod_priority() {
    let api = TestApi::start().await.unwrap();
    let client = api.client().unwrap();
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let builtin = classes.get("system-node-critical").await.unwrap();
    assert_eq!(builtin.value, 2_000_001_000);
    let mut critical = pod("critical", json!({}));
    critical.spec.as_mut().unwrap().priority_class_name = Some("system-cluster-critical".into());
    let made = pods
        .create(&PostParams::default(), &critical)
        .await
        .unwrap();
    assert_eq!(made.spec.unwrap().priority, Some(2_000_000_000));

    let mut unknown = pod("unknown", json!({}));
    unknown.spec.as_mut().unwrap().priority_class_name = Some("gold".into());
    assert_eq!(
        forbidden(
            pods.create(&PostParams::default(), &unknown)
                .await
                .unwrap_err()
        ),
        "pods \"unknown\" is forbidden: no PriorityClass with name gold was found"
    );
    let plain = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .unwrap();
    assert_eq!(plain.spec.unwrap().priority, Some(0));
}
