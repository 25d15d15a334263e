//! RBAC authorization as kube-apiserver does it, with no I/O.
//!
//! - [`attributes`]: who asks to do what (kube-apiserver's `authorizer.Attributes`), and the
//!   403 message text.
//! - [`rules`]: whether one `PolicyRule` allows a request, and whether rules cover others
//!   (the escalation check).
//! - [`graph`]: every binding resolved to its role's rules and indexed by subject: the cache
//!   the server consults on each request.
//! - [`aggregate`]: the rules of aggregated ClusterRoles.
//! - [`node`]: the Node authorizer, limiting agents to their own node's objects.
//! - [`bootstrap`]: kube-apiserver's default roles and bindings; [`controllers`]: the control
//!   loops' identities and roles among them.

pub mod aggregate;
pub mod attributes;
pub mod bootstrap;
pub mod controllers;
pub mod graph;
pub mod node;
pub mod rules;

pub use attributes::{Attributes, UserInfo};
pub use graph::{Decision, Graph};

/// The group kube-apiserver lets do anything, before any authorizer runs.
pub const MASTERS: &str = "system:masters";
/// Every authenticated user's group.
pub const AUTHENTICATED: &str = "system:authenticated";
/// Anonymous requests' group.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The node agents' group.
pub const NODES: &str = "system:nodes";
/// The API group of this crate's objects.
pub const GROUP: &str = "rbac.authorization.k8s.io";
