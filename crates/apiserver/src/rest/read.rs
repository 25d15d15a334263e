//! GET and LIST: served from the store's in-memory cache, as JSON (concatenated from the stored
//! bytes, so a large list costs a copy, not a re-serialisation) or as a server-side Table.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use bytes::{BufMut, BytesMut};
use kinet_selectors::{FieldSelector, LabelSelector};
use kinet_store::Stored;
use kinet_types::registry::Resource;
use kinet_types::{ApiError, Result};
use serde_json::{json, Value};

use super::{collection_prefix, meta, Api, Call, Format};
use crate::http::{bytes_reply, json_reply, Query, Reply};

/// A list's filters, from `labelSelector`, `fieldSelector`, and a watch on one name.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    name: Option<String>,
}

impl Filter {
    pub fn from_call(call: &Call) -> Result<Filter> {
        Filter::parse(call.resource(), &call.query, call.target.name.clone())
    }

    pub fn parse(resource: &Resource, query: &Query, name: Option<String>) -> Result<Filter> {
        let labels = match query.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::everything(),
        };
        let fields = FieldSelector::parse(resource, query.get("fieldSelector").unwrap_or(""))?;
        Ok(Filter {
            labels,
            fields,
            name,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty() && self.name.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = meta::metadata(obj)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.name
            .as_deref()
            .is_none_or(|n| meta::meta_str(obj, "name") == Some(n))
            && self.labels.matches(labels)
            && self.fields.matches(obj)
    }
}

/// The opaque `continue` token: where the next page starts.
fn encode_continue(rv: u64, last_key: &str) -> String {
    let token = json!({"rv": rv, "start": last_key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

fn decode_continue(token: &str) -> Result<String> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v["start"].as_str().map(str::to_string).ok_or_else(bad)
}

fn key_of(resource: &Resource, obj: &Value) -> String {
    super::object_key(
        resource,
        meta::meta_str(obj, "namespace"),
        meta::meta_str(obj, "name").unwrap_or_default(),
    )
}

/// One page of a filtered list.
pub struct Page {
    pub items: Vec<Arc<Stored>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

impl Api {
    pub fn get(&self, call: &Call) -> Result<Reply> {
        let stored = self
            .store
            .get(&call.key())
            .ok_or_else(|| ApiError::not_found(call.resource(), call.name()))?;
        Ok(self.render_one(call.resource(), call.format, &stored))
    }

    /// One object as the client asked for it.
    pub fn render_one(&self, resource: &Resource, format: Format, stored: &Stored) -> Reply {
        let stored = self.served_form(resource, stored);
        match format {
            Format::Json => bytes_reply(200, "application/json", stored.json.clone()),
            Format::Table if self.crds.served(resource).is_some() => {
                let metadata = json!({"resourceVersion": stored.rv.to_string()});
                let body = self.custom_table(
                    resource,
                    &[&stored.value],
                    &metadata,
                    kinet_printers::IncludeObject::Metadata,
                );
                bytes_reply(200, "application/json", body.unwrap_or_default())
            }
            Format::Table => {
                let table = kinet_printers::table(
                    resource,
                    &[&stored.value],
                    &stored.rv.to_string(),
                    chrono::Utc::now(),
                );
                json_reply(200, &table)
            }
        }
    }

    /// A stored object as the requested version serves it (custom resources are stored in
    /// their storage version; the None conversion rewrites apiVersion).
    pub fn served_form<'a>(&self, resource: &Resource, stored: &'a Stored) -> Cow<'a, Stored> {
        match self.crds.served(resource) {
            Some(served) => served.convert(stored),
            None => Cow::Borrowed(stored),
        }
    }

    /// A Table with a custom resource's printer columns; None for built-ins.
    pub fn custom_table(
        &self,
        resource: &Resource,
        objects: &[&Value],
        metadata: &Value,
        include: kinet_printers::IncludeObject,
    ) -> Option<Vec<u8>> {
        let served = self.crds.served(resource)?;
        Some(served.table(objects, metadata, include))
    }

    /// Lists a collection with the call's filters, `limit` and `continue`.
    pub fn page(&self, call: &Call) -> Result<Page> {
        let resource = call.resource();
        let filter = Filter::from_call(call)?;
        let (all, rv) = self
            .store
            .list(&collection_prefix(resource, call.namespace()));
        let start = call
            .query
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(decode_continue)
            .transpose()?;
        let limit = call
            .query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let mut matching = all.into_iter().filter(|s| filter.matches(&s.value));
        let mut items = Vec::new();
        let mut last_key = None;
        for stored in matching.by_ref() {
            let key = key_of(resource, &stored.value);
            if start.as_ref().is_some_and(|s| key.as_str() <= s.as_str()) {
                continue;
            }
            if limit.is_some_and(|l| items.len() == l) {
                // One more exists: this page ends at the previous item.
                let remaining = 1 + matching.count();
                return Ok(Page {
                    items,
                    rv,
                    continue_token: last_key.map(|k: String| encode_continue(rv, &k)),
                    remaining: filter.is_everything().then_some(remaining),
                });
            }
            last_key = Some(key);
            items.push(stored);
        }
        Ok(Page {
            items,
            rv,
            continue_token: None,
            remaining: None,
        })
    }

    pub fn list(&self, call: &Call) -> Result<Reply> {
        let resource = call.resource();
        let page = self.page(call)?;
        let mut list_meta = json!({"resourceVersion": page.rv.to_string()});
        if let Some(token) = &page.continue_token {
            list_meta["continue"] = json!(token);
        }
        if let Some(n) = page.remaining {
            list_meta["remainingItemCount"] = json!(n);
        }
        let items: Vec<Cow<Stored>> = page
            .items
            .iter()
            .map(|s| self.served_form(resource, s))
            .collect();
        match call.format {
            Format::Table => {
                let include =
                    kinet_printers::IncludeObject::from_param(call.query.get("includeObject"));
                let objects: Vec<&Value> = items.iter().map(|s| &s.value).collect();
                let body = self
                    .custom_table(resource, &objects, &list_meta, include)
                    .unwrap_or_else(|| {
                        kinet_printers::table_json(
                            resource,
                            &objects,
                            &list_meta,
                            include,
                            chrono::Utc::now(),
                        )
                    });
                Ok(bytes_reply(200, "application/json", body))
            }
            Format::Json => {
                let list_kind = match self.crds.served(resource) {
                    Some(served) => served.list_kind.clone(),
                    None => format!("{}List", resource.kind),
                };
                let head = json!({"kind": list_kind, "apiVersion": resource.api_version(), "metadata": list_meta});
                let head = serde_json::to_string(&head).map_err(ApiError::internal)?;
                let size: usize = items.iter().map(|s| s.json.len() + 1).sum();
                let mut body = BytesMut::with_capacity(head.len() + size + 16);
                body.put_slice(&head.as_bytes()[..head.len() - 1]);
                body.put_slice(b",\"items\":[");
                for (i, stored) in items.iter().enumerate() {
                    if i > 0 {
                        body.put_u8(b',');
                    }
                    body.put_slice(&stored.json);
                }
                body.put_slice(b"]}");
                Ok(bytes_reply(200, "application/json", body.freeze()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "core/pods/default/web-1");
        assert_eq!(decode_continue(&token).unwrap(), "core/pods/default/web-1");
        assert_eq!(decode_continue("%%%").unwrap_err().code, 400);
    }
}
