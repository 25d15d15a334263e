//! End-to-end tests: the real `kinet` binary, real processes, real kubectl.
//! One test binary so the harness is compiled once.

mod api_schema;
mod containers;
mod controllers;
mod crds;
mod dns;
mod durability;
mod egress;
mod etcd;
mod harness;
mod health;
mod images;
mod ingress;
mod interactive;
mod join;
mod kubectl_basics;
mod lifecycle;
mod netpol;
mod nodes;
mod pod_lifecycle;
mod pods;
mod prereqs;
mod proxy_mode;
mod rbac;
mod scale;
mod services;
mod stop;
mod volumes;
mod workloads;
