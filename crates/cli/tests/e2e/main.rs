//! End-to-end tests: the real `kinet` binary, real processes, real kubectl.
//! One test binary so the harness is compiled once.

mod harness;
mod lifecycle;
mod stop;
