//! What a container is made of, as the agent (and the image store) hands it to the runtime.
//! Serialised to a file the shim and `kinet container-exec` read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A host file or directory shown read-only at `target` in a container of a kinet-made
/// image; writes to a directory go to the container's own layer. Only kinet-made images
/// carry these: never a pulled image's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBind {
    pub source: PathBuf,
    /// The path inside the container.
    pub target: String,
}

/// An image ready to run: a read-only flattened root directory and its host binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRoot {
    pub rootfs: PathBuf,
    pub host_binds: Vec<HostBind>,
}

/// A bind mount the caller asks for: the pod's managed files, the service-account token,
/// volumes (`sub_path` already resolved into `source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// The path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// Whose PID namespace the container's processes live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PidNamespace {
    /// A new one: the container's process is PID 1 (Kubernetes' default).
    Own,
    /// The pod's, held by the pause process (`shareProcessNamespace: true`).
    Pod,
    /// Another container's, by the host PID of its first process (an ephemeral container's
    /// `targetContainerName`).
    Container(u32),
}

/// The container's process and the credentials it runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// The argv; `argv[0]` is looked up on the container's `PATH` inside its root.
    pub argv: Vec<String>,
    /// The whole environment, in order.
    pub env: Vec<(String, String)>,
    /// The working directory (made if missing, as runc does).
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The capabilities, as names without `CAP_` (bounding, effective and permitted sets).
    pub capabilities: Vec<String>,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    /// The seccomp profile (older spec files have none: unconfined).
    #[serde(default)]
    pub seccomp: crate::seccomp::Profile,
    /// Whether stdin is a terminal the process should have as its controlling terminal.
    pub terminal: bool,
}

/// Everything the runtime needs to start one container instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The pause process: its network, UTS and IPC namespaces are the pod's.
    pub sandbox_pid: u32,
    pub pid_namespace: PidNamespace,
    pub image: ImageRoot,
    /// The instance's own directory: its writable layer (`upper`, `work`) and the mount
    /// point of its root (`rootfs`). The caller empties it for each new instance.
    pub dir: PathBuf,
    /// Bind mounts over the image, in order.
    pub mounts: Vec<BindMount>,
    pub process: Process,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// `privileged`: every capability, no masked or read-only paths.
    pub privileged: bool,
    /// Cgroup directories the container's process joins (one per v1 controller, or one v2).
    pub cgroups: Vec<PathBuf>,
}

impl ContainerSpec {
    /// The directory the container's root is mounted on.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}
