//! CustomResourceDefinitions as kube-apiextensions-apiserver treats them. No I/O.
//!
//! - [`definition`]: a CRD's own validation (names, group, versions, structural schemas) and
//!   the versions it serves.
//! - [`validate`], [`prune`], [`defaults`]: a custom resource checked against its version's
//!   structural schema, in the order the server applies them: prune, default, validate.
//! - [`rules`]: CEL validation rules (`x-kubernetes-validations`), compiled once per schema.
//! - [`columns`]: `additionalPrinterColumns` evaluated with kubectl's JSONPath subset.

pub mod columns;
pub mod defaults;
pub mod definition;
mod path;
pub mod prune;
pub mod rules;
pub mod validate;

pub use columns::PrinterColumn;
pub use definition::{validate_definition, Definition, Version};
