//! API errors, rendered as `metav1.Status` with the codes, reasons and messages kube-apiserver
//! gives (k8s.io/apimachinery/pkg/api/errors and pkg/util/validation/field).

use serde_json::{json, Value};

use crate::registry::Resource;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The kind of a field validation error; each has kube-apiserver's cause reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    /// Invalid, with a value Go prints with `%#v` (a struct such as a ValidationRule): the
    /// text is shown as it is, unquoted.
    InvalidShown(String),
    /// The value is not one of the listed supported values.
    NotSupported(Vec<String>),
    Duplicate,
    Forbidden,
    TooLong(usize),
    /// A list longer than its maximum: (actual, maximum).
    TooMany(usize, usize),
    NotFound,
}

/// One invalid field, as `field.Error` in apimachinery.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// Dotted path such as `spec.ports[0].port`.
    pub field: String,
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        value: Option<Value>,
        detail: &str,
    ) -> Self {
        FieldError {
            kind,
            field: field.into(),
            value,
            detail: detail.to_string(),
        }
    }
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }
    pub fn invalid(field: impl Into<String>, value: impl Into<Value>, detail: &str) -> Self {
        Self::new(FieldErrorKind::Invalid, field, Some(value.into()), detail)
    }
    /// An invalid value that kube-apiserver prints as a Go struct literal.
    pub fn invalid_shown(field: impl Into<String>, shown: impl Into<String>, detail: &str) -> Self {
        Self::new(
            FieldErrorKind::InvalidShown(shown.into()),
            field,
            None,
            detail,
        )
    }
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&str],
    ) -> Self {
        let supported = supported.iter().map(|s| s.to_string()).collect();
        Self::new(
            FieldErrorKind::NotSupported(supported),
            field,
            Some(value.into()),
            "",
        )
    }
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, Some(value.into()), "")
    }
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(FieldErrorKind::TooLong(max), field, None, "")
    }
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::new(FieldErrorKind::TooMany(actual, max), field, None, "")
    }
    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::NotFound, field, Some(value.into()), "")
    }

    /// The cause reason, e.g. `FieldValueInvalid`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid | FieldErrorKind::InvalidShown(_) => "FieldValueInvalid",
            FieldErrorKind::NotSupported(_) => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong(_) => "FieldValueTooLong",
            FieldErrorKind::TooMany(..) => "FieldValueTooMany",
            FieldErrorKind::NotFound => "FieldValueNotFound",
        }
    }

    /// The message without the field, e.g. `Invalid value: 70000: must be between 1 and 65535, inclusive`.
    pub fn body(&self) -> String {
        let value = self.value.as_ref().map(format_value).unwrap_or_default();
        let head = match &self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid => format!("Invalid value: {value}"),
            FieldErrorKind::InvalidShown(shown) => format!("Invalid value: {shown}"),
            FieldErrorKind::NotSupported(valid) => {
                let quoted: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    quoted.join(", ")
                )
            }
            FieldErrorKind::Duplicate => format!("Duplicate value: {value}"),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooLong(max) => format!("Too long: may not be more than {max} bytes"),
            FieldErrorKind::TooMany(actual, max) => {
                format!("Too many: {actual}: must have at most {max} items")
            }
            FieldErrorKind::NotFound => format!("Not found: {value}"),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// How apimachinery prints a bad value: `%q` for strings, `%v` for numbers and bools, and Go's
/// `%#v` for string slices and maps (`[]string{"a"}`, `map[string]string{"k":"v"}`).
fn format_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let items: Vec<String> = items
                .iter()
                .map(|i| format!("{:?}", i.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        Value::Object(map) if map.values().all(Value::is_string) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// An error the API answers with. Serialises to `metav1.Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status, if any.
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 for an object: `pods "x" not found`.
    pub fn not_found(resource: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", resource.qualified_resource()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    /// 404 for a path that names nothing.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn method_not_allowed(verb: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on resources of kind {what:?}"),
        )
    }

    /// 409 on create of an existing name.
    pub fn already_exists(resource: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", resource.qualified_resource()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    /// 409 on a stale resourceVersion.
    pub fn conflict(resource: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified_resource()
            ),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    /// 429 with `causes` (`{reason, message}`) and, when not zero, `retryAfterSeconds`.
    pub fn too_many_requests(message: impl Into<String>, retry_after: u32, causes: Value) -> Self {
        let mut details = json!({"causes": causes});
        if retry_after > 0 {
            details["retryAfterSeconds"] = json!(retry_after);
        }
        Self::new(429, "TooManyRequests", message).with_details(details)
    }

    /// 410 for a watch or list from a compacted resourceVersion.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": content_type}]}))
    }

    /// 422 with one cause per invalid field: `Service "web" is invalid: spec.ports[0].port: …`.
    pub fn invalid(resource: &Resource, name: &str, errors: &[FieldError]) -> Self {
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let summary = match rendered.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field}))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!(
                "{} {name:?} is invalid: {summary}",
                resource.qualified_kind()
            ),
        )
        .with_details(
            json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn invalid_single_and_many_causes() {
        let svc = lookup("", "v1", "services").unwrap();
        let one = ApiError::invalid(
            svc,
            "web",
            &[FieldError::invalid(
                "spec.ports[0].port",
                70000,
                "must be between 1 and 65535, inclusive",
            )],
        );
        assert_eq!(one.code, 422);
        assert_eq!(
            one.message,
            "Service \"web\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let status = one.to_status();
        assert_eq!(
            status["details"]["causes"][0]["field"],
            "spec.ports[0].port"
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueInvalid"
        );

        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let many = ApiError::invalid(
            deploy,
            "web",
            &[
                FieldError::required("spec.selector", ""),
                FieldError::not_supported(
                    "spec.strategy.type",
                    "Bogus",
                    &["Recreate", "RollingUpdate"],
                ),
            ],
        );
        assert_eq!(
            many.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.strategy.type: Unsupported value: \"Bogus\": supported values: \"Recreate\", \"RollingUpdate\"]"
        );
    }

    #[test]
    fn go_renderings_of_slices_and_maps() {
        let e = FieldError::invalid(
            "spec.clusterIPs",
            serde_json::json!(["10.96.0.50"]),
            "provided IP is already allocated",
        );
        assert_eq!(e.to_string(), "spec.clusterIPs: Invalid value: []string{\"10.96.0.50\"}: provided IP is already allocated");
        let e = FieldError::invalid(
            "spec.template.metadata.labels",
            serde_json::json!({"app": "x"}),
            "`selector` does not match template `labels`",
        );
        assert_eq!(e.body(), "Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`");
    }

    #[test]
    fn not_found_names_the_qualified_resource() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let e = ApiError::not_found(deploy, "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["details"]["kind"], "deployments");
        assert_eq!(e.to_status()["code"], 404);
    }
}
