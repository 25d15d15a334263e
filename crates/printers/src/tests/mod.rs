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

#[test]
fn table_json_is_the_table_serialised() {
    use chrono::TimeZone;
    use kinet_types::registry::lookup;
    use serde_json::json;
    let pods = lookup("", "v1", "pods").unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap();
    let pod = json!({"metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}});
    let bytes = crate::table_json(pods, &[&pod], &json!({"resourceVersion": "7"}), now);
    let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed, crate::table(pods, &[&pod], "7", now));
}
