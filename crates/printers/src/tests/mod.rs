//! Table-driven cell tests per kind and golden kubectl-style renderings.

mod golden;
mod kinds;
mod pods;

use chrono::{DateTime, Utc};
use kinet_types::{registry::lookup, Resource};

/// The fixed "now" every test measures ages against.
pub(crate) fn now() -> DateTime<Utc> {
    crate::duration::parse_time("2025-01-10T12:00:00Z").unwrap()
}

pub(crate) fn res(group: &str, plural: &str) -> &'static Resource {
    lookup(group, "v1", plural).unwrap()
}
