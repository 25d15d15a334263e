use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::ByteString;
use serde_json::json;

use super::*;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                     "labels": {"app": "web", "tier": "front"}, "annotations": {"note": "say \"hi\""}},
        "spec": {"containers": [{"name": "c", "image": "nginx",
                                 "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}],
                 "volumes": volumes}
    }))
    .unwrap()
}

struct World {
    config_maps: BTreeMap<String, ConfigMap>,
    secrets: BTreeMap<String, Secret>,
    tokens: BTreeMap<TokenRequest, String>,
    allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

impl World {
    fn new() -> World {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg"},
            "data": {"app.conf": "port=80", "mode": "prod"},
            "binaryData": {"logo": "AAE="}
        }))
        .unwrap();
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "password".to_string(),
                ByteString(b"s3cret".to_vec()),
            )])),
            ..Default::default()
        };
        let q = k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        World {
            config_maps: BTreeMap::from([("cfg".to_string(), cm)]),
            secrets: BTreeMap::from([("db".to_string(), secret)]),
            tokens: BTreeMap::from([(
                TokenRequest {
                    audience: "vault".into(),
                    expiration_seconds: 600,
                },
                "tok".to_string(),
            )]),
            allocatable: BTreeMap::from([("cpu".to_string(), q("2".into()))]),
        }
    }

    fn sources<'a>(&'a self, pod: &'a Pod) -> Sources<'a> {
        Sources {
            pod,
            config_maps: &self.config_maps,
            secrets: &self.secrets,
            tokens: &self.tokens,
            allocatable: &self.allocatable,
        }
    }

    fn files(
        &self,
        volume: serde_json::Value,
    ) -> Result<BTreeMap<String, (String, u32)>, PayloadError> {
        let p = pod(json!([volume]));
        let v = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let payload = payload::payload(v, &self.sources(&p)).expect("a projection")?;
        Ok(payload
            .into_iter()
            .map(|(k, f)| (k, (String::from_utf8_lossy(&f.data).into_owned(), f.mode)))
            .collect())
    }
}

fn files(list: &[(&str, &str, u32)]) -> BTreeMap<String, (String, u32)> {
    list.iter()
        .map(|(k, v, m)| (k.to_string(), (v.to_string(), *m)))
        .collect()
}

#[test]
fn config_map_keys_items_modes_and_optional() {
    let w = World::new();
    let all = w
        .files(json!({"name": "v", "configMap": {"name": "cfg"}}))
        .unwrap();
    assert_eq!(
        all,
        files(&[
            ("app.conf", "port=80", 0o644),
            ("logo", "\u{0}\u{1}", 0o644),
            ("mode", "prod", 0o644)
        ])
    );
    let items = json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600,
        "items": [{"key": "app.conf", "path": "conf/app.conf"}, {"key": "mode", "path": "m", "mode": 0o400},
                  {"key": "mode", "path": "again"}]}});
    assert_eq!(
        w.files(items).unwrap(),
        files(&[
            ("again", "prod", 0o600),
            ("conf/app.conf", "port=80", 0o600),
            ("m", "prod", 0o400)
        ])
    );
    let missing_key =
        json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}});
    assert_eq!(
        w.files(missing_key).unwrap_err().to_string(),
        "configmap references non-existent config key: nope"
    );
    let absent = json!({"name": "v", "configMap": {"name": "other"}});
    assert_eq!(
        w.files(absent).unwrap_err().to_string(),
        "configmap \"other\" not found"
    );
    let optional = json!({"name": "v", "configMap": {"name": "other", "optional": true}});
    assert_eq!(w.files(optional).unwrap(), files(&[]));
}

#[test]
fn secret_values_are_decoded_and_missing_ones_named() {
    let w = World::new();
    let v = json!({"name": "v", "secret": {"secretName": "db", "defaultMode": 0o400}});
    assert_eq!(w.files(v).unwrap(), files(&[("password", "s3cret", 0o400)]));
    let absent = json!({"name": "v", "secret": {"secretName": "nope"}});
    assert_eq!(
        w.files(absent).unwrap_err().to_string(),
        "secret \"nope\" not found"
    );
    let key = json!({"name": "v", "secret": {"secretName": "db", "items": [{"key": "user", "path": "u"}]}});
    assert_eq!(
        w.files(key).unwrap_err().to_string(),
        "references non-existent secret key: user"
    );
}

#[test]
fn downward_api_fields_and_resources() {
    let w = World::new();
    let v = json!({"name": "v", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}, "mode": 0o400},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu-limit", "resourceFieldRef": {"resource": "limits.cpu"}},
        {"path": "cpu-milli", "resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
        {"path": "cpu", "resourceFieldRef": {"resource": "requests.cpu"}}
    ]}});
    assert_eq!(
        w.files(v.clone()).unwrap(),
        files(&[
            ("annotations", "note=\"say \\\"hi\\\"\"", 0o644),
            ("cpu", "1", 0o644),
            // No limit: the node's allocatable.
            ("cpu-limit", "2", 0o644),
            ("cpu-milli", "250", 0o644),
            ("labels", "app=\"web\"\ntier=\"front\"", 0o644),
            ("mem", "64", 0o644),
            ("name", "web", 0o644),
            ("tier", "front", 0o400),
        ])
    );
    assert!(needs_allocatable(&pod(json!([v.clone()]))));
    let bad = json!({"name": "v", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}}]}});
    assert_eq!(
        w.files(bad).unwrap_err().to_string(),
        "unsupported fieldPath: spec.nodeName"
    );
}

#[test]
fn projected_sources_merge_in_order_with_the_volume_default_mode() {
    let w = World::new();
    let v = json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}},
        {"configMap": {"name": "cfg", "items": [{"key": "mode", "path": "namespace"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        {"secret": {"name": "db", "items": [{"key": "password", "path": "pw", "mode": 0o400}]}},
        {"secret": {"name": "absent", "optional": true}}
    ]}});
    assert_eq!(
        w.files(v.clone()).unwrap(),
        files(&[
            ("namespace", "shop", 0o440),
            ("pw", "s3cret", 0o400),
            ("token", "tok", 0o440)
        ])
    );
    let p = pod(json!([v]));
    assert!(any(&p) && !needs_allocatable(&p));
    assert!(!any(&pod(json!([]))));
    assert_eq!(
        token_requests(&p),
        [TokenRequest {
            audience: "vault".into(),
            expiration_seconds: 600
        }]
    );
    assert_eq!(
        references(&p),
        (
            vec!["cfg".to_string()],
            vec!["absent".to_string(), "db".to_string()]
        )
    );
}

#[test]
fn set_up_lays_volumes_out_like_the_kubelet_and_follows_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host-data");
    let p = pod(json!([
        {"name": "cache", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "cfg"}},
        {"name": "data", "hostPath": {"path": host.to_str().unwrap(), "type": "DirectoryOrCreate"}}
    ]));
    let mut w = World::new();
    let got = set_up(tmp.path(), &w.sources(&p)).unwrap();
    let config = tmp.path().join("volumes/kubernetes.io~configmap/config");
    let cache = tmp.path().join("volumes/kubernetes.io~empty-dir/cache");
    assert_eq!(
        got["config"],
        Mountable {
            path: config.clone(),
            read_only: true
        }
    );
    assert_eq!(
        got["cache"],
        Mountable {
            path: cache.clone(),
            read_only: false
        }
    );
    assert_eq!(
        got["data"],
        Mountable {
            path: host.clone(),
            read_only: false
        }
    );
    assert!(host.is_dir());
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o777
    );
    assert_eq!(
        std::fs::read_to_string(config.join("mode")).unwrap(),
        "prod"
    );

    w.config_maps
        .get_mut("cfg")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .insert("mode".into(), "dev".into());
    set_up(tmp.path(), &w.sources(&p)).unwrap();
    assert_eq!(std::fs::read_to_string(config.join("mode")).unwrap(), "dev");

    w.config_maps.clear();
    let err = set_up(tmp.path(), &w.sources(&p)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"config\" : configmap \"cfg\" not found"
    );
    tear_down(tmp.path()).unwrap();
    assert!(!tmp.path().join("volumes").exists());
    assert!(host.is_dir(), "hostPath data belongs to the host");
}

#[test]
fn memory_volumes_are_tmpfs_mounts_removed_at_tear_down() {
    if !kinet_testkit::root("tmpfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = pod(json!([
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "creds", "secret": {"secretName": "db"}}
    ]));
    let w = World::new();
    let got = set_up(tmp.path(), &w.sources(&p)).unwrap();
    // Twice: the second finds the tmpfs mounts there and leaves them.
    set_up(tmp.path(), &w.sources(&p)).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let mount_of = |dir: &std::path::Path| {
        let lines: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(dir.to_str().unwrap()))
            .collect();
        assert_eq!(lines.len(), 1, "mounted once: {lines:?}");
        lines[0].to_string()
    };
    let shm = &got["shm"].path;
    let line = mount_of(shm);
    assert!(
        line.starts_with("tmpfs ") && line.contains("size=1024k"),
        "{line}"
    );
    assert!(
        std::fs::write(shm.join("big"), vec![0u8; 2 << 20]).is_err(),
        "size limit"
    );
    // Secrets stay in memory, never on the node's disk.
    let creds = &got["creds"].path;
    assert!(mount_of(creds).starts_with("tmpfs "));
    assert_eq!(
        std::fs::read_to_string(creds.join("password")).unwrap(),
        "s3cret"
    );
    tear_down(tmp.path()).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(tmp.path().to_str().unwrap()), "{mounts}");
}

#[test]
fn fs_group_modes_follow_the_kubelet() {
    assert_eq!(ownership::mode(0o644, false, true), 0o644);
    assert_eq!(ownership::mode(0o600, false, false), 0o660);
    assert_eq!(ownership::mode(0o400, false, true), 0o440);
    assert_eq!(ownership::mode(0o755, true, true), 0o2755);
    assert_eq!(ownership::mode(0o777, true, false), 0o2777);
    assert_eq!(ownership::mode(0o700, true, false), 0o2770);
}

#[test]
fn fs_group_owns_volume_files_but_not_host_paths() {
    if !kinet_testkit::root("chown") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host-data");
    let mut p = pod(json!([
        {"name": "cache", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "cfg", "defaultMode": 0o600}},
        {"name": "data", "hostPath": {"path": host.to_str().unwrap(), "type": "DirectoryOrCreate"}}
    ]));
    p.spec.as_mut().unwrap().security_context =
        Some(k8s_openapi::api::core::v1::PodSecurityContext {
            fs_group: Some(2345),
            ..Default::default()
        });
    let w = World::new();
    let got = set_up(tmp.path(), &w.sources(&p)).unwrap();
    let cache = std::fs::metadata(&got["cache"].path).unwrap();
    assert_eq!((cache.gid(), cache.mode() & 0o7777), (2345, 0o2777));
    let conf = std::fs::metadata(got["config"].path.join("mode")).unwrap();
    assert_eq!((conf.gid(), conf.mode() & 0o777), (2345, 0o640));
    assert_ne!(std::fs::metadata(&host).unwrap().gid(), 2345);
    tear_down(tmp.path()).unwrap();
}
