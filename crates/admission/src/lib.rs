//! Defaulting, validation and strict decoding of API objects, as kube-apiserver does them. No I/O.
//!
//! The API server calls, in order: [`canonicalize`] (the typed decode; its unknown fields feed
//! fieldValidation=Strict/Warn), [`default`], then [`validate`].

mod canonical;
mod decode;
mod duplicates;
mod go_null;
mod strict;
mod typed;

pub use canonical::{canonicalize, reencode, Canonical};
pub use duplicates::parse_json_with_duplicates;
pub use strict::{field_problems, strict_decoding_error};

mod defaults;
mod json;
pub mod limits;
pub mod priority;
pub mod quota;
mod resources;
mod validation;

pub use defaults::{default, default_ingress_class, default_with, image_tag, Settings};
pub use resources::ResourceList;
pub use validation::{selector_matches, validate, validate_ephemeral_containers_update};
