//! The store against a registry on loopback and tarballs made by the tests.

use std::fs;
use std::sync::Arc;

use kinet_oci_store::{import, pull, Credentials, Error, Lease, PullOptions, Store};
use kinet_testkit::oci::{self, Blob, Image, LayerBuilder};
use kinet_testkit::registry::Registry;
use serde_json::json;

fn two_layers() -> Image {
    let base = LayerBuilder::default()
        .dir("etc", 0o755)
        .file("etc/os-release", b"ID=kinet-test\n", 0o644)
        .file("etc/motd", b"old\n", 0o644)
        .file("etc/gone", b"whited out\n", 0o644)
        .dir("bin", 0o755)
        .build();
    let top = LayerBuilder::default()
        .dir("etc", 0o755)
        .file("etc/motd", b"new\n", 0o644)
        .file("etc/.wh.gone", b"", 0o644)
        .symlink("bin/true", "/bin/false")
        .build();
    Image::new(
        vec![base, top],
        json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/srv"}),
    )
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("images")).unwrap();
    (dir, store)
}

fn quiet(_: pull::Progress) {}

fn tmp_is_empty(store: &Store) -> bool {
    fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

#[tokio::test]
async fn pulls_unpacks_and_resolves() {
    let registry = Registry::start().await;
    let image = two_layers();
    registry.push("demo", "1", &image);
    let (_dir, store) = store();
    let name = format!("{}/demo:1", registry.host());
    let seen = std::sync::Mutex::new(Vec::new());
    let record = pull::pull(&store, &name, &PullOptions::default(), &|p| {
        seen.lock().unwrap().push(p)
    })
    .await
    .unwrap();
    assert_eq!(record.name, name);
    assert_eq!(record.manifest, image.manifest.digest);
    assert_eq!(record.config, image.config.digest);
    let total: u64 = image.layers.iter().map(|l| l.bytes.len() as u64).sum();
    assert_eq!(record.size(), total);
    let seen = seen.into_inner().unwrap();
    // First once the locks are held, then by chunk; layers counted as they land.
    assert_eq!(seen[0], pull::Progress::default());
    let last = *seen.last().unwrap();
    assert_eq!((last.done, last.total), (total, total));
    assert_eq!((last.layers_done, last.layers), (2, 2));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(seen
        .iter()
        .any(|p| p.layers_done == 1 && p.done < total && p.done > 0));

    let resolved = store.resolve(&name).unwrap().expect("pulled");
    assert_eq!(
        resolved.image_id,
        format!("{}/demo@{}", registry.host(), image.manifest.digest)
    );
    assert_eq!(
        resolved.config.cmd().as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_eq!(resolved.config.working_dir().as_deref(), Some("/srv"));
    let root = resolved.rootfs;
    assert_eq!(fs::read_to_string(root.join("etc/motd")).unwrap(), "new\n");
    assert_eq!(
        fs::read_to_string(root.join("etc/os-release")).unwrap(),
        "ID=kinet-test\n"
    );
    assert_eq!(
        fs::read_link(root.join("bin/true")).unwrap().to_str(),
        Some("/bin/false")
    );
    assert!(tmp_is_empty(&store));
    let listed: Vec<String> = store.list().unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(listed, [name]);
}

#[tokio::test]
async fn an_index_gives_this_platforms_image() {
    let registry = Registry::start().await;
    let image = two_layers();
    registry.push("multi", "manifest-only", &image);
    let foreign = format!("sha256:{}", "0".repeat(64));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_INDEX,
        "manifests": [
            {"mediaType": oci::OCI_MANIFEST, "digest": foreign, "size": 10,
             "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": oci::OCI_MANIFEST, "digest": image.manifest.digest,
             "size": image.manifest.bytes.len(),
             "platform": {"os": "linux", "architecture": oci::host_arch()}},
        ],
    });
    let index = Blob::new(oci::OCI_INDEX, serde_json::to_vec(&index).unwrap());
    registry.put_manifest("multi", "2", oci::OCI_INDEX, index.bytes.clone());
    let (_dir, store) = store();
    let name = format!("{}/multi:2", registry.host());
    let record = pull::pull(&store, &name, &PullOptions::default(), &quiet)
        .await
        .unwrap();
    // The digest reference names the index, as containerd's RepoDigests do.
    assert_eq!(record.digest, index.digest);
    assert_eq!(record.manifest, image.manifest.digest);
    assert!(store.resolve(&name).unwrap().is_some());
}

#[tokio::test]
async fn bearer_auth_with_pull_secret_credentials() {
    let registry = Registry::start_with_auth("alice", "wonderland").await;
    registry.push("private/app", "v1", &two_layers());
    let (_dir, store) = store();
    let name = format!("{}/private/app:v1", registry.host());
    let anonymous = pull::pull(&store, &name, &PullOptions::default(), &quiet).await;
    let err = anonymous
        .expect_err("anonymous pull of a private image")
        .to_string();
    assert!(
        err.starts_with(&format!("failed to pull and unpack image {name:?}")),
        "{err}"
    );

    let mut credentials = Credentials::default();
    let secret =
        json!({"auths": {registry.host(): {"username": "alice", "password": "wonderland"}}});
    credentials
        .add_docker_config(&serde_json::to_vec(&secret).unwrap())
        .unwrap();
    let opts = PullOptions {
        credentials,
        ..PullOptions::default()
    };
    pull::pull(&store, &name, &opts, &quiet).await.unwrap();
    assert!(store.resolve(&name).unwrap().is_some());
}

#[tokio::test]
async fn a_layer_with_the_wrong_digest_is_rejected() {
    let registry = Registry::start().await;
    let image = two_layers();
    registry.push("demo", "1", &image);
    let tampered = &image.layers[1];
    registry.put_blob(&tampered.digest, b"not the layer".to_vec());
    let (_dir, store) = store();
    let name = format!("{}/demo:1", registry.host());
    let err = pull::pull(&store, &name, &PullOptions::default(), &quiet)
        .await
        .expect_err("tampered layer");
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    assert!(err.to_string().contains(&tampered.digest), "{err}");
    assert!(!store.has_blob(&tampered.digest).unwrap());
    assert!(store.record(&name).unwrap().is_none());
    assert!(tmp_is_empty(&store));
}

#[tokio::test]
async fn a_missing_image_is_not_found() {
    let registry = Registry::start().await;
    let (_dir, store) = store();
    let name = format!("{}/nothing:here", registry.host());
    let err = pull::pull(&store, &name, &PullOptions::default(), &quiet)
        .await
        .expect_err("no such image")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "failed to pull and unpack image {name:?}: failed to resolve reference {name:?}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_pulls_download_once() {
    let registry = Registry::start().await;
    let image = two_layers();
    registry.push("demo", "1", &image);
    let (_dir, store) = store();
    let store = Arc::new(store);
    let name = format!("{}/demo:1", registry.host());
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (store, name) = (store.clone(), name.clone());
            tokio::spawn(
                async move { pull::pull(&store, &name, &PullOptions::default(), &quiet).await },
            )
        })
        .collect();
    for p in pulls {
        p.await.unwrap().unwrap();
    }
    // The config and each layer, once.
    assert_eq!(registry.blob_requests(), 1 + image.layers.len());
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(tmp_is_empty(&store));
}

/// `nginx:1.7.9`'s kind of manifest: schema 1, newest layer first, a throwaway entry.
#[tokio::test]
async fn pulls_schema1() {
    let registry = Registry::start().await;
    let image = two_layers();
    for blob in &image.layers {
        registry.put_blob(&blob.digest, blob.bytes.clone());
    }
    let compat = |v: serde_json::Value| json!({"v1Compatibility": v.to_string()});
    let manifest = json!({
        "schemaVersion": 1,
        "name": "legacy",
        "tag": "1.7.9",
        "architecture": oci::host_arch(),
        "fsLayers": [
            {"blobSum": image.layers[1].digest},
            {"blobSum": image.layers[0].digest},
            {"blobSum": image.layers[0].digest},
        ],
        "history": [
            compat(json!({"id": "c", "os": "linux", "config": {"Cmd": ["nginx", "-g", "daemon off;"]}})),
            compat(json!({"id": "b", "throwaway": true})),
            compat(json!({"id": "a"})),
        ],
    });
    registry.put_manifest(
        "legacy",
        "1.7.9",
        "application/vnd.docker.distribution.manifest.v1+json",
        serde_json::to_vec(&manifest).unwrap(),
    );
    let (_dir, store) = store();
    let name = format!("{}/legacy:1.7.9", registry.host());
    let record = pull::pull(&store, &name, &PullOptions::default(), &quiet)
        .await
        .unwrap();
    assert_eq!(record.layers.len(), 2);
    let resolved = store.resolve(&name).unwrap().unwrap();
    assert_eq!(resolved.config.cmd().as_ref().unwrap()[0], "nginx");
    assert_eq!(
        fs::read_to_string(resolved.rootfs.join("etc/motd")).unwrap(),
        "new\n"
    );
}

#[test]
fn imports_oci_layouts_and_docker_archives() {
    let (dir, store) = store();
    let image = two_layers();
    let oci_tar = dir.path().join("oci.tar");
    fs::write(&oci_tar, image.oci_layout_tar("example.com/team/app:2")).unwrap();
    let docker_tar = dir.path().join("docker.tar");
    fs::write(&docker_tar, image.docker_archive_tar("app:3")).unwrap();

    let oci_records = import::import(&store, &oci_tar).unwrap();
    assert_eq!(oci_records.len(), 1);
    assert_eq!(oci_records[0].name, "example.com/team/app:2");
    assert_eq!(oci_records[0].manifest, image.manifest.digest);
    let docker_records = import::import(&store, &docker_tar).unwrap();
    assert_eq!(docker_records.len(), 1);
    assert_eq!(docker_records[0].name, "docker.io/library/app:3");
    // The same config is the same image, whichever way it came.
    assert_eq!(docker_records[0].config, image.config.digest);
    for name in ["example.com/team/app:2", "app:3"] {
        let resolved = store.resolve(name).unwrap().expect(name);
        assert_eq!(
            fs::read_to_string(resolved.rootfs.join("etc/motd")).unwrap(),
            "new\n"
        );
    }
    assert!(tmp_is_empty(&store));

    let junk = dir.path().join("junk.tar");
    fs::write(
        &junk,
        LayerBuilder::default().file("hello", b"hi", 0o644).build(),
    )
    .unwrap();
    let err = import::import(&store, &junk).unwrap_err().to_string();
    assert!(err.contains("neither a docker-archive"), "{err}");
}

#[test]
fn an_archive_blob_with_the_wrong_content_is_rejected() {
    let (dir, store) = store();
    let image = two_layers();
    let mut tampered = image.clone();
    tampered.layers[0].bytes = image.layers[1].bytes.clone();
    let path = dir.path().join("oci.tar");
    fs::write(&path, tampered.oci_layout_tar("app:1")).unwrap();
    let err = import::import(&store, &path).unwrap_err();
    assert!(matches!(err, Error::Digest { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn removes_unused_images_and_refuses_used_ones() {
    let (dir, store) = store();
    let image = two_layers();
    let path = dir.path().join("docker.tar");
    fs::write(&path, image.docker_archive_tar("app:1")).unwrap();
    import::import(&store, &path).unwrap();
    fs::write(&path, image.docker_archive_tar("app:2")).unwrap();
    import::import(&store, &path).unwrap();
    let rootfs = store.resolve("app:1").unwrap().unwrap().rootfs;

    // Another name keeps the content.
    assert_eq!(store.remove("app:2").unwrap(), ["docker.io/library/app:2"]);
    assert!(rootfs.is_dir());

    store
        .lease(&Lease {
            holder: "test/pod/c".into(),
            image: image.config.digest.clone(),
            pid: std::process::id(),
        })
        .unwrap();
    let err = store.remove("app:1").unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(err.to_string().contains("test/pod/c"), "{err}");
    store.release("test/pod/c").unwrap();

    let short = &image.config.digest[7..19];
    assert_eq!(store.remove(short).unwrap(), ["docker.io/library/app:1"]);
    assert!(!rootfs.exists());
    let blobs = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
    assert!(matches!(store.remove("app:1"), Err(Error::NotFound(_))));
    let late = store.lease(&Lease {
        holder: "test/pod/late".into(),
        image: image.config.digest.clone(),
        pid: std::process::id(),
    });
    assert!(matches!(late, Err(Error::NotFound(_))), "{late:?}");
}
