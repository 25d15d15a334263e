//! Kubernetes protobuf request bodies to JSON.
//!
//! `kubectl create <generator>` sends objects as `application/vnd.kubernetes.protobuf`:
//! the magic `k8s\0` and a `runtime.Unknown` envelope around the object's message.
//! [`decode`] turns such a body into the JSON object kubectl would have sent as JSON,
//! applying Go's JSON rules (`omitempty`, pointers, inlining, field order, sorted maps)
//! to the values gogo-protobuf writes (every non-pointer field, zero or not).

mod envelope;
mod message;
mod schema;
mod special;
mod wire;

pub use envelope::{decode, MEDIA_TYPE};

use kinet_types::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}
