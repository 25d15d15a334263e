//! The API server driven over HTTPS: node streaming and service-account tokens. One test binary,
//! because each binary links the whole API server.

mod conflicts;
mod health;
mod node_stream;
mod service_account_tokens;
