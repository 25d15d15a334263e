//! Issue 12: images from a registry and from tarballs, with real kubectl. A registry on
//! loopback (served by this test) holds a busybox image the test builds; a Deployment of
//! `127.0.0.1:<port>/demo:1` pulls it, runs it and serves through a Service, and `kubectl
//! exec` sees the image's files. `kinet image load` of a docker-archive and of an OCI
//! layout run with `imagePullPolicy: Never`; a missing image goes ErrImagePull →
//! ImagePullBackOff with the kubelet's messages.

use kinet_testkit::oci::Image;
use kinet_testkit::registry::Registry;
use serde_json::json;

use crate::controllers::until;
use crate::harness::{kinet, show, stdout, Cluster};
use crate::pods::{apply, json};

const WAIT: u64 = 120;

/// busybox httpd on 8080 serving `page`.
fn web_image(page: &str) -> Image {
    Image::busybox(
        page,
        json!({
            "Entrypoint": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "Env": ["PATH=/bin"],
        }),
    )
}

fn container_status(c: &Cluster, selector: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = vec!["get", "pods"];
    args.extend(selector);
    let pods = json(c, &args);
    let s = &pods["items"][0]["status"]["containerStatuses"][0];
    if s.is_object() {
        Ok(s.clone())
    } else {
        Err(pods.to_string())
    }
}

fn running(c: &Cluster, selector: &[&str]) -> Result<serde_json::Value, String> {
    let s = container_status(c, selector)?;
    if s["state"]["running"].is_object() {
        Ok(s)
    } else {
        Err(s.to_string())
    }
}

#[test]
fn images_from_a_registry_and_from_tarballs() {
    let registry = Registry::start_blocking();
    let demo = web_image("hello from the registry");
    registry.push("demo", "1", &demo);
    let c = Cluster::up(1);

    // From the registry: pulled, run, served through a Service.
    let image = format!("{}/demo:1", registry.host());
    c.kubectl_ok(&["create", "deployment", "demo", "--image", &image]);
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "demo",
        "--port=80",
        "--target-port=8080",
    ]);
    let status = until(&c, "the demo pod running", WAIT, || {
        running(&c, &["-l", "app=demo"])
    });
    assert_eq!(
        status["imageID"],
        format!("{}/demo@{}", registry.host(), demo.manifest.digest)
    );
    let ip = json(&c, &["get", "service", "demo"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let control_plane = format!("{}-control-plane", c.name);
    until(&c, "the Service answers", 30, || {
        let out = c.node_exec(
            &control_plane,
            &["curl", "-s", "--max-time", "2", &format!("http://{ip}/")],
        );
        let body = stdout(&out);
        (body.trim() == "hello from the registry")
            .then_some(())
            .ok_or(show(&out))
    });
    // The image's own files, not the host's.
    assert_eq!(
        c.kubectl_ok(&["exec", "deploy/demo", "--", "cat", "/www/index.html"])
            .trim(),
        "hello from the registry"
    );
    let root = c.kubectl_ok(&["exec", "deploy/demo", "--", "ls", "/"]);
    assert!(!root.lines().any(|l| l == "work" || l == "usr"), "{root}");
    let described = c.kubectl_ok(&["describe", "pods", "-l", "app=demo"]);
    assert!(
        described.contains(&format!("Pulling image \"{image}\"")),
        "{described}"
    );
    assert!(
        described.contains(&format!("Successfully pulled image \"{image}\" in ")),
        "{described}"
    );
    let listed = stdout(&kinet(&c.home, &["image", "ls"]));
    assert!(
        listed.contains(&format!("{}/demo", registry.host())),
        "{listed}"
    );
    // Off a terminal, `kinet image pull` says how far it is with a line a layer.
    let pulled = kinet(&c.home, &["image", "pull", &image]);
    let n = demo.layers.len();
    assert!(
        pulled.status.success()
            && String::from_utf8_lossy(&pulled.stderr)
                .contains(&format!("{image}: layers {n}/{n}, ")),
        "{}",
        show(&pulled)
    );
    // The Node lists what it holds (its status is posted every 10 s).
    until(&c, "the Node listing the image", 30, || {
        let held = json(&c, &["get", "node", &control_plane])["status"]["images"].to_string();
        held.contains(&image).then_some(()).ok_or(held)
    });

    // From tarballs, never pulled.
    let dir = tempfile::tempdir().unwrap();
    let docker_tar = dir.path().join("docker.tar");
    std::fs::write(
        &docker_tar,
        web_image("from a docker archive").docker_archive_tar("offline/docker:1"),
    )
    .unwrap();
    let oci_tar = dir.path().join("oci.tar");
    std::fs::write(
        &oci_tar,
        web_image("from an OCI layout").oci_layout_tar("example.com/offline/oci:1"),
    )
    .unwrap();
    for tar in [&docker_tar, &oci_tar] {
        let out = kinet(&c.home, &["image", "load", tar.to_str().unwrap()]);
        assert!(out.status.success(), "{}", show(&out));
    }
    let never_pulled: Vec<String> = [
        ("from-docker", "offline/docker:1"),
        ("from-oci", "example.com/offline/oci:1"),
        ("never", "offline/absent:1"),
    ]
    .iter()
    .map(|(pod, image)| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}}}\nspec:\n  containers:\n  \
             - {{name: c, image: '{image}', imagePullPolicy: Never}}\n"
        )
    })
    .collect();
    apply(&c, &never_pulled.join("---\n"));
    for (pod, page) in [
        ("from-docker", "from a docker archive"),
        ("from-oci", "from an OCI layout"),
    ] {
        until(&c, &format!("{pod} running"), WAIT, || {
            running(&c, &["--field-selector", &format!("metadata.name={pod}")])
        });
        let body = c.kubectl_ok(&["exec", pod, "--", "cat", "/www/index.html"]);
        assert_eq!(body.trim(), page);
    }
    until(&c, "ErrImageNeverPull", WAIT, || {
        let s = container_status(&c, &["--field-selector", "metadata.name=never"])?;
        let w = &s["state"]["waiting"];
        (w["reason"] == "ErrImageNeverPull"
            && w["message"]
                == "Container image \"offline/absent:1\" is not present with pull policy of Never")
            .then_some(())
            .ok_or(s.to_string())
    });

    // A missing image: ErrImagePull, then ImagePullBackOff.
    let missing = format!("{}/missing:1", registry.host());
    c.kubectl_ok(&["run", "missing", "--image", &missing]);
    until(&c, "ImagePullBackOff", WAIT, || {
        let s = container_status(&c, &["--field-selector", "metadata.name=missing"])?;
        let w = &s["state"]["waiting"];
        let message = w["message"].as_str().unwrap_or("");
        (w["reason"] == "ImagePullBackOff"
            && message.starts_with(&format!(
                "Back-off pulling image \"{missing}\": ErrImagePull: failed to pull and unpack image"
            )))
        .then_some(())
        .ok_or(s.to_string())
    });
    let described = c.kubectl_ok(&["describe", "pod", "missing"]);
    for line in [
        format!("Failed to pull image \"{missing}\": failed to pull and unpack image"),
        "Error: ErrImagePull".to_string(),
        format!("Back-off pulling image \"{missing}\""),
        "Error: ImagePullBackOff".to_string(),
    ] {
        assert!(described.contains(&line), "{line}\n{described}");
    }
}

/// `kinet up --pull-real busybox`: the built-in name is pulled like any image (here from a
/// loopback mirror of docker.io), while other built-in names stay kinet's own.
#[test]
fn a_built_in_name_pulled_for_real() {
    let registry = Registry::start_blocking();
    registry.push(
        "library/busybox",
        "latest",
        &web_image("the registry's busybox"),
    );
    let c = Cluster::new();
    let mirror = format!("docker.io={}", registry.host());
    let out = c.kinet(&[
        "up",
        "--nodes",
        "1",
        "--offline-images",
        "--pull-real",
        "busybox",
        "--registry-mirror",
        &mirror,
    ]);
    assert!(out.status.success(), "{}", show(&out));
    c.kubectl_ok(&["run", "real", "--image", "busybox"]);
    let status = until(&c, "the pulled busybox running", WAIT, || {
        running(&c, &["-l", "run=real"])
    });
    assert!(
        status["imageID"]
            .as_str()
            .is_some_and(|id| id.contains("busybox@sha256:")),
        "{status}"
    );
    let page = c.kubectl_ok(&["exec", "real", "--", "cat", "/www/index.html"]);
    assert_eq!(page.trim(), "the registry's busybox");
    // kinet's own add-on images have no registry image.
    let refused = c.kinet(&["up", "--pull-real", "kinet-dns"]);
    assert!(
        !refused.status.success() && stdout(&refused).is_empty(),
        "{}",
        show(&refused)
    );
    assert!(show(&refused).contains("--pull-real \"kinet-dns\""));
}
