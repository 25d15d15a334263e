//! A container's runtime spec from its pod, as the kubelet and containerd's CRI plugin build
//! the OCI spec: user from the image's files and the securityContext, capabilities,
//! privileged, read-only root, no_new_privs, the PID namespace, the pod's files, limits.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use kinet_controllers::scheduler::resources::parse_quantity;
use kinet_runtime::cgroup::Limits;
use kinet_runtime::seccomp::Profile;
use kinet_runtime::user::{self, Overrides};
use kinet_runtime::{BindMount, ContainerSpec, ImageRoot, PidNamespace, Process};

/// What the spec is made from, besides the pod.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub image: ImageRoot,
    /// The image config's `User`.
    pub image_user: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub sandbox_pid: u32,
    /// The first process of `targetContainerName` (an ephemeral container shares its PIDs).
    pub target_pid: Option<u32>,
    pub dir: PathBuf,
    pub mounts: Vec<BindMount>,
    pub cgroups: Vec<PathBuf>,
}

fn sc(c: &Container) -> SecurityContext {
    c.security_context.clone().unwrap_or_default()
}

fn id(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

/// The spec of `c` in `pod`; `Err` is a CreateContainerConfigError message.
pub fn container_spec(pod: &Pod, c: &Container, i: Inputs) -> Result<ContainerSpec, String> {
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = sc(c);
    let overrides = Overrides {
        run_as_user: id(csc.run_as_user.or(pod_sc.run_as_user)),
        run_as_group: id(csc.run_as_group.or(pod_sc.run_as_group)),
        // The kubelet adds fsGroup, so the container's processes reach its volumes.
        supplemental_groups: pod_sc
            .supplemental_groups
            .iter()
            .flatten()
            .chain(&pod_sc.fs_group)
            .filter_map(|g| id(Some(*g)))
            .collect(),
    };
    let read = |f: &str| {
        std::fs::read_to_string(kinet_runtime::paths::image_path(&i.image, f).unwrap_or_default())
            .unwrap_or_default()
    };
    let user = user::resolve(
        &i.image_user,
        &overrides,
        &read("/etc/passwd"),
        &read("/etc/group"),
    )
    .map_err(|e| e.to_string())?;
    if csc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true) && user.uid == 0 {
        return Err("container has runAsNonRoot and image will run as root".into());
    }
    let privileged = csc.privileged == Some(true);
    let caps = csc.capabilities.clone().unwrap_or_default();
    let capabilities = kinet_runtime::caps::capabilities(
        &caps.add.unwrap_or_default(),
        &caps.drop.unwrap_or_default(),
        privileged,
    )
    .map_err(|e| e.to_string())?;
    let mut env = i.env;
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push((
            "HOME".into(),
            user.home.clone().unwrap_or_else(|| "/".into()),
        ));
    }
    let seccomp = seccomp_profile(&pod_sc, &csc, privileged)?;
    let share = pod.spec.as_ref().and_then(|s| s.share_process_namespace) == Some(true);
    let pid_namespace = match (i.target_pid, share) {
        (Some(pid), _) => PidNamespace::Container(pid),
        (None, true) => PidNamespace::Pod,
        (None, false) => PidNamespace::Own,
    };
    Ok(ContainerSpec {
        sandbox_pid: i.sandbox_pid,
        pid_namespace,
        image: i.image,
        dir: i.dir,
        mounts: i.mounts,
        process: Process {
            argv: i.argv,
            env,
            cwd: c
                .working_dir
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "/".into()),
            uid: user.uid,
            gid: user.gid,
            groups: user.groups,
            capabilities,
            no_new_privileges: csc.allow_privilege_escalation == Some(false),
            seccomp,
            terminal: c.tty == Some(true),
        },
        read_only_root: csc.read_only_root_filesystem == Some(true),
        privileged,
        cgroups: i.cgroups,
    })
}

/// The container's seccomp profile: its own `seccompProfile`, else the pod's, else
/// `RuntimeDefault` (the kubelet's `--seccomp-default`); privileged containers run
/// unconfined unless they ask, as containerd runs them.
fn seccomp_profile(
    pod: &PodSecurityContext,
    c: &SecurityContext,
    privileged: bool,
) -> Result<Profile, String> {
    let asked = c
        .seccomp_profile
        .as_ref()
        .or(pod.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    match asked {
        Some("Unconfined") => Ok(Profile::Unconfined),
        Some("RuntimeDefault") => Ok(Profile::RuntimeDefault),
        None if privileged => Ok(Profile::Unconfined),
        None => Ok(Profile::RuntimeDefault),
        Some(other) => Err(format!(
            "failed to generate seccomp spec opts: seccomp profile type {other:?} is not supported by kinet (RuntimeDefault and Unconfined are)"
        )),
    }
}

/// The container's `resources.limits` as cgroup limits.
pub fn limits(c: &Container) -> Limits {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let get = |k: &str| {
        limits
            .and_then(|l| l.get(k))
            .and_then(|q| parse_quantity(&q.0))
    };
    Limits {
        memory: get("memory").map(|b| b as u64),
        cpu_millis: get("cpu").map(|c| (c * 1000.0).ceil() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> (Pod, Container) {
        let pod: Pod = serde_yaml_ng::from_str(yaml).unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn inputs() -> Inputs {
        let root = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        Inputs {
            image: ImageRoot {
                rootfs: root,
                host_binds: Vec::new(),
            },
            image_user: String::new(),
            argv: vec!["sh".into()],
            env: vec![("PATH".into(), "/bin".into())],
            sandbox_pid: 7,
            target_pid: None,
            dir: "/pods/u/containers/c".into(),
            mounts: Vec::new(),
            cgroups: Vec::new(),
        }
    }

    #[test]
    fn defaults_are_root_with_docker_capabilities_in_a_pid_namespace_of_its_own() {
        let (p, c) = pod("spec: {containers: [{name: c, image: busybox}]}");
        let s = container_spec(&p, &c, inputs()).unwrap();
        assert_eq!((s.process.uid, s.process.gid), (0, 0));
        assert_eq!(s.pid_namespace, PidNamespace::Own);
        assert!(s.process.capabilities.contains(&"NET_RAW".to_string()));
        assert!(!s.privileged && !s.read_only_root && !s.process.no_new_privileges);
        assert!(s.process.env.contains(&("HOME".into(), "/root".into())));
        assert_eq!(s.process.cwd, "/");
        assert_eq!(s.process.seccomp, Profile::RuntimeDefault);
    }

    #[test]
    fn seccomp_profiles_from_the_container_then_the_pod() {
        let spec = |yaml: &str| {
            let (p, c) = pod(yaml);
            container_spec(&p, &c, inputs()).map(|s| s.process.seccomp)
        };
        let pod_level = "spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers: [{name: c, image: busybox}]";
        assert_eq!(spec(pod_level), Ok(Profile::Unconfined));
        let container_wins = "spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers:
  - {name: c, image: busybox, securityContext: {seccompProfile: {type: RuntimeDefault}}}";
        assert_eq!(spec(container_wins), Ok(Profile::RuntimeDefault));
        let privileged = "spec:
  containers: [{name: c, image: busybox, securityContext: {privileged: true}}]";
        assert_eq!(spec(privileged), Ok(Profile::Unconfined));
        let localhost = "spec:
  containers:
  - {name: c, image: busybox, securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}}";
        assert!(spec(localhost).unwrap_err().contains("Localhost"));
    }

    #[test]
    fn security_context_and_shared_pids() {
        let (p, c) = pod("spec:
  shareProcessNamespace: true
  securityContext: {runAsUser: 1000, supplementalGroups: [3000], fsGroup: 4000}
  containers:
  - name: c
    image: busybox
    workingDir: /srv
    tty: true
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}");
        let s = container_spec(&p, &c, inputs()).unwrap();
        assert_eq!(
            (s.process.uid, s.process.gid, s.process.groups.clone()),
            (1000, 1000, vec![3000, 4000])
        );
        assert!(s.process.env.contains(&("HOME".into(), "/home/app".into())));
        assert_eq!(s.process.capabilities, ["NET_BIND_SERVICE"]);
        assert!(s.read_only_root && s.process.no_new_privileges && s.process.terminal);
        assert_eq!(s.pid_namespace, PidNamespace::Pod);
        assert_eq!(s.process.cwd, "/srv");
        let mut target = inputs();
        target.target_pid = Some(42);
        assert_eq!(
            container_spec(&p, &c, target).unwrap().pid_namespace,
            PidNamespace::Container(42)
        );
    }

    #[test]
    fn run_as_non_root_refuses_root_and_limits_parse() {
        let (p, c) = pod("spec:
  containers:
  - name: c
    image: busybox
    securityContext: {runAsNonRoot: true}
    resources: {limits: {memory: 32Mi, cpu: 250m}}");
        assert!(container_spec(&p, &c, inputs())
            .unwrap_err()
            .contains("runAsNonRoot"));
        assert_eq!(
            limits(&c),
            Limits {
                memory: Some(32 << 20),
                cpu_millis: Some(250)
            }
        );
        let (_, none) = pod("spec: {containers: [{name: c, image: busybox}]}");
        assert_eq!(limits(&none), Limits::default());
    }
}
