//! kinet's ingress controller, an add-on like cluster DNS: an ordinary API client that
//! watches Ingress, IngressClass, Service, EndpointSlice and Secret objects, compiles the
//! Ingresses of its class into a [`RouteTable`] (a pure function of those objects), and
//! proxies HTTP and HTTPS to the ready endpoints the table names.

pub mod backends;
pub mod class;
pub mod paths;
pub mod routes;

pub use routes::{Objects, Route, RouteTable, Verdict};

/// The controller name of kinet's IngressClass.
pub const CONTROLLER: &str = "kinet.dev/ingress";
