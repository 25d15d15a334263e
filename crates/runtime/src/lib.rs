//! kinet's container runtime: what turns a pod's container into an isolated process on its
//! own root filesystem, the way youki and crun do it for containerd.
//!
//! - pure plans, tested without root: [`mounts`] (the ordered mount list, masked and
//!   read-only paths), [`caps`] (the capability set), [`config`] (argv, environment and
//!   working directory from the image config and the Kubernetes container), [`user`]
//!   (users and groups from the image's own files), [`standin`]'s plan, [`cgroup`] settings,
//!   [`seccomp`]'s refused calls;
//! - side effects, as root: [`init`] (namespaces, overlayfs, `pivot_root`, credentials,
//!   seccomp, exec), [`cgroup::Cgroup`], [`standin::materialize`].
//!
//! The input is a [`ContainerSpec`]; images come as an [`ImageRoot`] (a read-only root
//! directory plus [`HostBind`]s, which only kinet-made images have).

pub mod caps;
pub mod cgroup;
pub mod config;
pub mod devices;
pub mod init;
pub mod mounts;
pub mod paths;
pub mod seccomp;
pub mod spec;
pub mod standin;
pub mod user;

pub use spec::{BindMount, ContainerSpec, HostBind, ImageRoot, PidNamespace, Process};
