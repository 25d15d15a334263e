//! Label and field selectors: parsing and matching, as apimachinery does them. No I/O.
//!
//! - [`LabelSelector`]: the `labelSelector` query syntax (`k8s.io/apimachinery/pkg/labels`) and
//!   `metav1.LabelSelector` objects, with apimachinery's error texts and canonical `String()`;
//!   node selector terms ([`LabelSelector::from_requirements`]) and label sets
//!   ([`set_matches`]). Every label match in kinet goes through here.
//! - [`FieldSelector`]: the `fieldSelector` query syntax (`pkg/fields`), checked against the field
//!   labels kube-apiserver supports per kind, and matched against objects as the registries'
//!   `GetAttrs` do.

mod field;
mod field_attrs;
mod label;
mod label_parse;

pub use field::FieldSelector;
pub use label::{set_matches, LabelSelector, Labels};
