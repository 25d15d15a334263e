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
fn include_object_selects_the_row_object() {
    use chrono::TimeZone;
    use kinet_types::registry::lookup;
    use serde_json::json;
    let pods = lookup("", "v1", "pods").unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap();
    let pod = json!({"metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": "Pending"}});
    let meta = json!({"resourceVersion": "7"});
    let parse = |include| -> serde_json::Value {
        serde_json::from_slice(&crate::table_json(pods, &[&pod], &meta, include, now)).unwrap()
    };
    let partial = parse(crate::IncludeObject::Metadata);
    assert_eq!(partial, crate::table(pods, &[&pod], "7", now));
    assert_eq!(
        partial["rows"][0]["object"]["kind"],
        "PartialObjectMetadata"
    );
    assert!(partial["rows"][0]["object"].get("spec").is_none());
    let full = parse(crate::IncludeObject::Object);
    assert_eq!(full["rows"][0]["object"], pod);
    let none = parse(crate::IncludeObject::None);
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(
        crate::IncludeObject::from_param(Some("Object")),
        crate::IncludeObject::Object
    );
    assert_eq!(
        crate::IncludeObject::from_param(None),
        crate::IncludeObject::Metadata
    );
}
