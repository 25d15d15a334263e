//! Named health checks, reported the way kube-apiserver's `healthz` package reports them
//! (`staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go`):
//!
//! - `/<endpoint>` runs every check. `ok` (200) when all pass; when one fails, 500 with one
//!   `[+]name ok` / `[-]name failed: reason withheld` line per check and `<endpoint> check failed`.
//! - `?verbose` lists the lines on success too, ending `<endpoint> check passed`.
//! - `?exclude=name` (repeatable) skips a check (`[+]name excluded: ok`) and warns about names
//!   that match no check.
//! - `/<endpoint>/<name>` runs one check: `ok`, or 500 `internal server error: <reason>`.
//!
//! [`Checks`] holds the checks; [`render`] and [`render_one`] are the pure reports.

mod registry;
mod report;

pub use registry::{CheckFuture, Checks, Endpoint};
pub use report::{render, render_one, split_path, Outcome, Query, Report};
