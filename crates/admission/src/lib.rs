//! Defaulting, validation and strict decoding of API objects, as kube-apiserver does them. No I/O.
//!
//! The API server calls, in order: [`decode_check`], [`unknown_fields`] (for
//! fieldValidation=Strict/Warn), [`default`], then [`validate`].

mod decode;
mod strict;
mod typed;

pub use decode::decode_check;
pub use strict::{strict_decoding_error, unknown_fields};

mod defaults;
mod json;
mod validation;

pub use defaults::{default, default_with, image_tag, Settings};
pub use validation::{selector_matches, validate, validate_ephemeral_containers_update};
