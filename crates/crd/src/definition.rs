//! A CustomResourceDefinition's own checks, as kube-apiextensions-apiserver's validation gives
//! them, and the served versions read from a valid one.

use kinet_types::FieldError;
use serde_json::Value;

use crate::columns::PrinterColumn;
use crate::path::{child, index};

/// One served version of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub name: String,
    pub storage: bool,
    /// `openAPIV3Schema`.
    pub schema: Value,
    pub status: bool,
    /// `.spec.replicas`-style paths of the scale subresource: spec, status and label selector.
    pub scale: Option<ScalePaths>,
    pub columns: Vec<PrinterColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What a definition declares, with kube-apiserver's defaults for the names.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub group: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// The served versions, in the order the definition lists them.
    pub versions: Vec<Version>,
    /// The version objects are stored in.
    pub storage: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Definition {
    /// Reads a definition that passed [`validate_definition`].
    pub fn from_object(crd: &Value) -> Definition {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let kind = names["kind"].as_str().unwrap_or_default().to_string();
        let text = |v: &Value, default: String| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .unwrap_or(default)
        };
        let all: Vec<&Value> = spec["versions"].as_array().into_iter().flatten().collect();
        let storage = all
            .iter()
            .find(|v| v["storage"] == true)
            .and_then(|v| v["name"].as_str())
            .unwrap_or_default()
            .to_string();
        let versions = all
            .into_iter()
            .filter(|v| v["served"] == true)
            .map(|v| Version {
                name: v["name"].as_str().unwrap_or_default().to_string(),
                storage: v["storage"] == true,
                schema: v["schema"]["openAPIV3Schema"].clone(),
                status: v["subresources"].get("status").is_some(),
                scale: v["subresources"].get("scale").map(|s| ScalePaths {
                    spec_replicas: s["specReplicasPath"].as_str().unwrap_or_default().into(),
                    status_replicas: s["statusReplicasPath"].as_str().unwrap_or_default().into(),
                    label_selector: s["labelSelectorPath"].as_str().map(str::to_string),
                }),
                columns: PrinterColumn::list(&v["additionalPrinterColumns"]),
            })
            .collect();
        Definition {
            group: spec["group"].as_str().unwrap_or_default().to_string(),
            list_kind: text(&names["listKind"], format!("{kind}List")),
            singular: text(&names["singular"], kind.to_lowercase()),
            plural: names["plural"].as_str().unwrap_or_default().to_string(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced: spec["scope"] == "Namespaced",
            kind,
            versions,
            storage,
        }
    }

    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// `status.acceptedNames`, as the naming controller reports them.
    pub fn accepted_names(&self) -> Value {
        let mut names = serde_json::json!({
            "kind": self.kind, "listKind": self.list_kind,
            "plural": self.plural, "singular": self.singular,
        });
        if !self.short_names.is_empty() {
            names["shortNames"] = self.short_names.clone().into();
        }
        if !self.categories.is_empty() {
            names["categories"] = self.categories.clone().into();
        }
        names
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Every problem with a definition, with kube-apiserver's field paths and messages.
pub fn validate_definition(crd: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    } else if !group.split('.').all(is_dns_label) {
        errors.push(FieldError::invalid(
            "spec.group",
            group,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        None | Some("") => errors.push(FieldError::required("spec.scope", "")),
        Some(other) => errors.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    check_names(names, &mut errors);
    check_versions(spec, &mut errors);
    errors
}

fn check_names(names: &Value, errors: &mut Vec<FieldError>) {
    for field in ["plural", "singular"] {
        let value = names[field].as_str().unwrap_or_default();
        if value.is_empty() && field == "plural" {
            errors.push(FieldError::required("spec.names.plural", ""));
        } else if !value.is_empty() && !is_dns_label(value) {
            errors.push(FieldError::invalid(
                format!("spec.names.{field}"),
                value,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            ));
        }
    }
    if names["kind"].as_str().unwrap_or_default().is_empty() {
        errors.push(FieldError::required("spec.names.kind", ""));
    }
    for (i, short) in strings(&names["shortNames"]).iter().enumerate() {
        if !is_dns_label(short) {
            errors.push(FieldError::invalid(
                index("spec.names.shortNames", i),
                short.as_str(),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            ));
        }
    }
}

fn check_versions(spec: &Value, errors: &mut Vec<FieldError>) {
    let versions: Vec<&Value> = spec["versions"].as_array().into_iter().flatten().collect();
    if versions.is_empty() {
        errors.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    let listed: Vec<Value> = versions.iter().map(|v| v["name"].clone()).collect();
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            listed.clone(),
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions.iter().any(|v| v["served"] == true) {
        errors.push(FieldError::invalid(
            "spec.versions",
            listed,
            "must have at least one served version",
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let path = index("spec.versions", i);
        let name = v["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errors.push(FieldError::required(child(&path, "name"), ""));
        } else if !is_dns_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            errors.push(FieldError::invalid(child(&path, "name"), name, DNS1035));
        } else if seen.contains(&name) {
            errors.push(FieldError::duplicate(child(&path, "name"), name));
        }
        seen.push(name);
        let schema_path = child(&path, "schema.openAPIV3Schema");
        match v["schema"].get("openAPIV3Schema") {
            Some(schema) if schema.is_object() => {
                // Sorted as upstream sorts them: its schema maps have no order.
                let mut found = Vec::new();
                structural(schema, &schema_path, true, &mut found);
                junctors::check_complete(schema, &schema_path, &mut found);
                found.sort_by_cached_key(ToString::to_string);
                errors.extend(found);
                crate::rules::check_definition(schema, &schema_path, errors);
            }
            _ => errors.push(FieldError::required(&schema_path, "schemas are required")),
        }
        check_subresources(&v["subresources"], &child(&path, "subresources"), errors);
        check_columns(
            &v["additionalPrinterColumns"],
            &child(&path, "additionalPrinterColumns"),
            errors,
        );
    }
}

/// The structural-schema rules: a type everywhere (unless int-or-string or preserving unknown
/// fields), properties and additionalProperties never together, the x-kubernetes extensions
/// used consistently, and junctors that only validate values.
fn structural(schema: &Value, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool);
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let int_or_string = flag("x-kubernetes-int-or-string") == Some(true);
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    if preserve == Some(false) {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    if root && ty != "object" {
        errors.push(FieldError::invalid(
            child(path, "type"),
            ty,
            "must be object at the root",
        ));
    } else if int_or_string && !ty.is_empty() {
        errors.push(FieldError::invalid(
            child(path, "type"),
            ty,
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    } else if ty.is_empty() && !int_or_string && preserve != Some(true) {
        errors.push(FieldError::required(
            child(path, "type"),
            "must not be empty for specified object fields",
        ));
    }
    if flag("x-kubernetes-embedded-resource") == Some(true) {
        if ty != "object" {
            errors.push(FieldError::required(
                child(path, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else if schema.get("properties").is_none() && preserve != Some(true) {
            errors.push(FieldError::required(
                child(path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            ));
        }
    }
    if schema.get("properties").is_some() && schema.get("additionalProperties").is_some() {
        errors.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if ty == "array" && schema.get("items").is_none() {
        errors.push(FieldError::required(
            child(path, "items"),
            "must be specified",
        ));
    }
    junctors::check(schema, path, errors);
    for (name, sub) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        structural(sub, &format!("{path}.properties[{name}]"), false, errors);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = schema.get(key).filter(|s| s.is_object()) {
            structural(sub, &child(path, key), false, errors);
        }
    }
}

fn check_subresources(subresources: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(scale) = subresources.get("scale") else {
        return;
    };
    let scale_path = child(path, "scale");
    for (field, prefix) in [
        ("specReplicasPath", ".spec."),
        ("statusReplicasPath", ".status."),
    ] {
        match scale[field].as_str() {
            None | Some("") => errors.push(FieldError::required(child(&scale_path, field), "")),
            Some(p) if !p.starts_with(prefix) => errors.push(FieldError::invalid(
                child(&scale_path, field),
                p,
                &format!(
                    "should be a json path under {}",
                    prefix.trim_end_matches('.')
                ),
            )),
            Some(_) => {}
        }
    }
}

fn check_columns(columns: &Value, path: &str, errors: &mut Vec<FieldError>) {
    const TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
    for (i, col) in columns.as_array().into_iter().flatten().enumerate() {
        let here = index(path, i);
        for field in ["name", "jsonPath"] {
            if col[field].as_str().unwrap_or_default().is_empty() {
                errors.push(FieldError::required(child(&here, field), ""));
            }
        }
        match col["type"].as_str() {
            Some(t) if TYPES.contains(&t) => {}
            None | Some("") => errors.push(FieldError::required(child(&here, "type"), "")),
            Some(t) => errors.push(FieldError::not_supported(child(&here, "type"), t, TYPES)),
        }
    }
}

mod junctors;

#[cfg(test)]
mod tests;
