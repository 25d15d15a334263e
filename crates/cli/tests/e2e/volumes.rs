//! Issue 12 item 5: pod volumes set up as the kubelet does, before the sandbox, under the
//! pod's folder: FailedMount while a ConfigMap is missing, then configMap, secret,
//! downwardAPI, emptyDir and hostPath volumes, and a ConfigMap update that reaches the file.
//! Containers see them at their mount paths, read with `kubectl exec … cat`.

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
    volumeMounts:
    - {{name: config, mountPath: /etc/app}}
    - {{name: config, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: creds, mountPath: /etc/creds}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: info, mountPath: /etc/podinfo}}
    - {{name: data, mountPath: /data}}
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

    let exec = |cmd: &str| c.kubectl_ok(&["exec", "vol", "--", "sh", "-c", cmd]);
    assert_eq!(exec("cat /etc/app/app.conf /etc/app.conf"), "v1v1");
    assert_eq!(exec("cat /etc/creds/password"), "s3cret");
    assert_eq!(exec("cat /etc/podinfo/labels"), "app=\"vol\"");
    // API data is read-only in the container; emptyDir and hostPath are writable.
    let write_config = c.kubectl(&["exec", "vol", "--", "sh", "-c", "echo x > /etc/app/new"]);
    assert!(!write_config.status.success());
    exec("echo kept > /scratch/f && echo from-pod > /data/hello");
    assert_eq!(read(&host_dir.join("hello")), "from-pod\n");
    assert_eq!(read(&vol("empty-dir", "scratch").join("f")), "kept\n");

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
    wait_for("the update inside the container", || {
        exec("cat /etc/app/app.conf") == "v2"
    });
    // A subPath mount keeps the file it was made from, as upstream.
    assert_eq!(exec("cat /etc/app.conf"), "v1");

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
