//! The Kubernetes API vocabulary every kinet crate shares.
//!
//! - [`registry`]: which resources exist, their group/version/kind, scope, short names and
//!   subresources. Discovery, routing, validation and printing all read this one table.
//! - [`gotime`]: Go's `time.Time.String()`, which Kubernetes components print.
//! - [`schedule`]: CronJob schedules.
//! - [`quantity`]: `resource.Quantity`, exact, with Go's canonical text.
//! - [`hash`]: FNV-1a, for names that must be stable across processes and releases.
//! - [`wellknown`]: well-known labels, the cluster's address ranges and ports.
//! - [`validation`]: the string formats of `k8s.io/apimachinery/pkg/util/validation` (names,
//!   label keys and values, ports, IPs) with kube-apiserver's exact messages.
//! - [`error`]: API errors rendered as `metav1.Status` with kube-apiserver's codes, reasons and
//!   message formats.
//!
//! Nothing here does I/O.

pub mod error;
pub mod gotime;
pub mod hash;
pub mod quantity;
pub mod registry;
pub mod schedule;
pub mod validation;
pub mod wellknown;

pub use error::{ApiError, FieldError, FieldErrorKind, Result};
pub use registry::{Resource, Scope, RESOURCES};
