//! The API server driven over HTTPS: node streaming, service-account tokens and mutated writes.
//! One test binary, because each binary links the whole API server.

mod admission_plugins;
mod conflicts;
mod controller_identities;
mod crds;
mod eviction;
mod fuzz_writes;
mod health;
mod multi_server;
mod node_stream;
mod service_account_tokens;
