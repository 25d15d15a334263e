//! The well-known container images, built into kinet.
//!
//! kinet has no image registry yet: every container of these images runs on kinet's stand-in
//! root filesystem (`kinet_runtime::standin`: a few files kinet writes, the host's `/usr`
//! read-only, the kinet binary at `/kinet` for built-in servers). For the images tutorials and Kubernetes' e2e tests use, [`lookup`] finds the
//! image, [`plan`] decides from the pod's `command`/`args` whether the process is kinet's
//! in-process implementation ([`Plan::Builtin`], served by [`run_builtin`] behind
//! `kinet image-run`) or a host command ([`Plan::Exec`], for shell images and entrypoint
//! overrides).
//!
//! Pure parts (reference matching, planning, flag parsing, agnhost's answers, log lines)
//! are plain functions; sockets live in `server`, the images' loops beside their answers.

pub mod agnhost;
mod catalog;
mod flags;
mod gojson;
pub mod logfmt;
mod pause;
mod plan;
mod query;
mod reference;
mod run;
mod server;
pub mod web;

pub use catalog::{
    catalog, known_names, lookup, Builtin, Image, ImageKind, DNS_IMAGE, DNS_IMAGE_NAME,
    INGRESS_IMAGE, INGRESS_IMAGE_NAME, POLICY_IMAGE, POLICY_IMAGE_NAME, PROXY_IMAGE,
    PROXY_IMAGE_NAME,
};
pub use plan::{plan, Error, Plan};
pub use reference::repository_name;
pub use run::{run_builtin, start, Running, Signal};
pub use server::Bind;

/// The host programs shell images and `Plan::Exec` rely on (the images' own binaries are
/// not there: the stand-in root shows the host's `/usr`).
pub const HOST_TOOLS: &[&str] = &[
    "sh", "bash", "sleep", "wget", "nslookup", "cat", "echo", "env",
];
