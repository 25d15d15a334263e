//! Optimistic concurrency over HTTPS: concurrent patches are each retried against the latest
//! object (kube-apiserver's GuaranteedUpdate) so none is lost, while a write carrying a stale
//! resourceVersion gets 409 Conflict and changes nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kinet_testkit::TestApi;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WRITERS: usize = 8;
const PATCHES: usize = 10;

fn conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"
        && s.message == "Operation cannot be fulfilled on configmaps \"shared\": the object has been modified; please apply your changes to the latest version and try again")
}

async fn create(cms: &Api<ConfigMap>) -> ConfigMap {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "shared"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_are_retried_and_none_is_lost() {
    let api = TestApi::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    create(&cms).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let cms = cms.clone();
            tokio::spawn(async move {
                for p in 0..PATCHES {
                    // A merge patch without a resourceVersion: the server reapplies it to the
                    // newest object whenever another writer got in first.
                    let patch = json!({"data": {format!("w{w}-p{p}"): "x"}});
                    cms.patch("shared", &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let data: BTreeMap<String, String> = cms.get("shared").await.unwrap().data.unwrap();
    assert_eq!(data.len(), WRITERS * PATCHES, "{data:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_resource_version_is_409_and_writes_nothing() {
    let api = TestApi::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    let first = create(&cms).await;

    // Concurrent updates from the same read: exactly one wins.
    let updates: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (cms, mut cm) = (cms.clone(), first.clone());
            cm.data = Some(BTreeMap::from([("winner".to_string(), w.to_string())]));
            tokio::spawn(async move { cms.replace("shared", &PostParams::default(), &cm).await })
        })
        .collect();
    let mut won = Vec::new();
    for u in updates {
        match u.await.unwrap() {
            Ok(cm) => won.push(cm),
            Err(e) => assert!(conflict(&e), "{e:?}"),
        }
    }
    assert_eq!(
        won.len(),
        1,
        "one update from the same resourceVersion wins"
    );
    let current = cms.get("shared").await.unwrap();
    assert_eq!(current, won[0]);

    // The first read is stale now, for an update and for a patch that names its rv.
    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("late".to_string(), "x".to_string())]));
    let err = cms
        .replace("shared", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(conflict(&err), "{err:?}");
    let patch = json!({
        "metadata": {"resourceVersion": first.metadata.resource_version},
        "data": {"late": "x"},
    });
    let err = cms
        .patch("shared", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert!(conflict(&err), "{err:?}");
    assert_eq!(cms.get("shared").await.unwrap(), current, "nothing written");
}
