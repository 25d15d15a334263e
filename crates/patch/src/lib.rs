//! JSON patch, JSON merge patch, strategic merge patch and server-side apply merging. No I/O.
//!
//! The API server hands every PATCH body here together with the stored object and gets back the
//! patched object (or a kube-apiserver style error). Name and namespace checks, defaulting and
//! validation of the result stay with the API server.
//!
//! - [`json`]: RFC 6902 JSON patch and RFC 7386 JSON merge patch.
//! - [`strategic`]: apimachinery's strategic merge patch, driven by [`schema`].
//! - [`apply`]: a simplified server-side apply.
//! - [`decode`]: body decoding with Go-style error messages.

pub mod apply;
pub mod decode;
pub mod json;
pub mod schema;
pub mod strategic;

use kinet_types::{ApiError, Resource};
use serde_json::Value;

pub use apply::server_side_apply;
pub use json::{json_patch, merge_patch};
pub use strategic::strategic_merge;

/// The patch formats a PATCH request may carry, chosen by its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// The patch type for a Content-Type header value; parameters such as `; charset=utf-8`
    /// are ignored. `application/apply-patch+cbor` is not served, so it gives `None`.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type, as listed in kube-apiserver's 415 message.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The media types PATCH accepts, for an `UnsupportedMediaType` answer.
pub const ACCEPTED_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// Applies `patch` (raw request body) of the given type to `current` (the stored object) for
/// this resource. For [`PatchType::Apply`] the object exists; use [`server_side_apply`] directly
/// to create-or-update.
pub fn apply_patch(
    resource: &Resource,
    current: &Value,
    patch_type: PatchType,
    body: &[u8],
) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Json => json_patch(current, body),
        PatchType::Merge => merge_patch(current, body),
        PatchType::Strategic => strategic_merge(resource, current, body),
        PatchType::Apply => server_side_apply(resource, Some(current), body),
    }
}

#[cfg(test)]
mod tests;
