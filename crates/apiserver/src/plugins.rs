//! The admission plugins that read stored objects: LimitRanger and Priority, over the stored
//! LimitRanges and PriorityClasses (ResourceQuota is in `quota`).

use std::sync::Arc;

use kinet_admission::{limits, priority};
use kinet_store::Stored;
use kinet_types::registry::{self, Resource};
use kinet_types::{ApiError, Result};
use serde_json::Value;

use crate::rest::{collection_prefix, meta, Api};

pub(crate) fn core(plural: &str) -> &'static Resource {
    registry::lookup("", "v1", plural).expect("a core resource")
}

pub(crate) fn forbidden(resource: &Resource, obj: &Value, why: &str) -> ApiError {
    let name = meta::meta_str(obj, "name").unwrap_or_default();
    ApiError::forbidden(format!(
        "{} {name:?} is forbidden: {why}",
        resource.qualified_resource()
    ))
}

impl Api {
    pub(crate) fn in_namespace(&self, resource: &Resource, namespace: &str) -> Vec<Arc<Stored>> {
        self.store
            .list(&collection_prefix(resource, Some(namespace)))
            .0
    }

    /// LimitRanger's defaults for a new pod's containers.
    pub(crate) fn default_limits(&self, resource: &Resource, obj: &mut Value, namespace: &str) {
        if (resource.group, resource.plural) != ("", "pods") {
            return;
        }
        let ranges = self.in_namespace(core("limitranges"), namespace);
        if !ranges.is_empty() {
            let ranges: Vec<&Value> = ranges.iter().map(|r| &r.value).collect();
            limits::default_pod(obj, &ranges);
        }
    }

    /// Priority: a new pod's priority from its PriorityClass; 403 for a class that does not exist.
    pub(crate) fn admit_priority(&self, resource: &Resource, obj: &mut Value) -> Result<()> {
        if (resource.group, resource.plural) != ("", "pods") {
            return Ok(());
        }
        let classes = registry::lookup("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("priorityclasses are served");
        let (stored, _) = self.store.list(&collection_prefix(classes, None));
        let stored: Vec<&Value> = stored.iter().map(|s| &s.value).collect();
        priority::admit(obj, &stored).map_err(|why| forbidden(resource, obj, &why))
    }

    /// LimitRanger's bounds on a new pod or claim: 403 naming the first range it breaks.
    pub(crate) fn check_limits(
        &self,
        resource: &Resource,
        obj: &Value,
        namespace: &str,
    ) -> Result<()> {
        let check = match (resource.group, resource.plural) {
            ("", "pods") => limits::check_pod,
            ("", "persistentvolumeclaims") => limits::check_claim,
            _ => return Ok(()),
        };
        for range in self.in_namespace(core("limitranges"), namespace) {
            if let Some(why) = check(obj, &range.value) {
                return Err(forbidden(resource, obj, &why));
            }
        }
        Ok(())
    }
}
