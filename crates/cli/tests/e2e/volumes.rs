//! Issue 12 item 5: pod volumes set up as the kubelet does, before the sandbox, under the
//! pod's folder: FailedMount while a ConfigMap is missing, then configMap, secret,
//! downwardAPI, emptyDir and hostPath volumes, and a ConfigMap update that reaches the file.
//! (Binding them into containers comes with the per-container root filesystems.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::Cluster;
use crate::pods::{apply, json, wait_ready};

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn volumes_wait_for_their_objects_then_follow_them() {
    let c = Cluster::up(1);
    let host_dir = c.home.join("host-data/made");
    let pod = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: vol, labels: {{app: vol}}}}
spec:
  containers:
  - name: web
    image: nginx
  volumes:
  - {{name: config, configMap: {{name: cfg}}}}
  - {{name: creds, secret: {{secretName: sec, defaultMode: 0400}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - name: info
    downwardAPI:
      items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]
  - {{name: data, hostPath: {{path: {}, type: DirectoryOrCreate}}}}
"#,
        host_dir.display()
    );
    apply(&c, &pod);
    let want = "MountVolume.SetUp failed for volume \"config\" : configmap \"cfg\" not found";
    wait_for("the FailedMount event", || {
        let events = json(
            &c,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=vol",
            ],
        );
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["reason"] == "FailedMount" && e["type"] == "Warning" && e["message"] == want)
    });
    let p = json(&c, &["get", "pod", "vol"]);
    assert_eq!(p["status"]["phase"], "Pending");
    let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
    assert_eq!(waiting, "ContainerCreating", "{p}");

    c.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=app.conf=v1"]);
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=s3cret",
    ]);
    let p = &wait_ready(&c, "app=vol", 1)[0];
    let node = p["spec"]["nodeName"].as_str().unwrap();
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let pod_dir = c
        .state_dir()
        .join("nodes")
        .join(node)
        .join("pods")
        .join(uid);
    let vol = |plugin: &str, name: &str| -> PathBuf {
        pod_dir
            .join("volumes")
            .join(format!("kubernetes.io~{plugin}"))
            .join(name)
    };
    let conf = vol("configmap", "config").join("app.conf");
    assert_eq!(read(&conf), "v1");
    assert_eq!(
        std::fs::read_link(&conf).unwrap(),
        Path::new("..data/app.conf")
    );
    let password = vol("secret", "creds").join("password");
    assert_eq!(read(&password), "s3cret");
    let mounts = || read(Path::new("/proc/self/mounts"));
    let secret_tmpfs = format!("tmpfs {} tmpfs", vol("secret", "creds").display());
    assert!(mounts().contains(&secret_tmpfs), "the secret is on a tmpfs");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&password).unwrap().permissions().mode() & 0o777,
        0o400
    );
    assert_eq!(
        read(&vol("downward-api", "info").join("labels")),
        "app=\"vol\""
    );
    assert!(vol("empty-dir", "scratch").is_dir());
    assert!(
        host_dir.is_dir(),
        "hostPath DirectoryOrCreate makes the directory"
    );

    c.kubectl_ok(&[
        "patch",
        "configmap",
        "cfg",
        "-p",
        r#"{"data":{"app.conf":"v2"}}"#,
    ]);
    wait_for("the updated ConfigMap in its volume", || {
        read(&conf) == "v2"
    });

    c.kubectl_ok(&["delete", "pod", "vol", "--wait=true"]);
    wait_for("the pod's volumes to go", || {
        !pod_dir.join("volumes").exists()
    });
    assert!(
        !mounts().contains(&secret_tmpfs),
        "the secret's tmpfs is unmounted"
    );
    assert!(host_dir.is_dir(), "hostPath data stays on the host");
}
