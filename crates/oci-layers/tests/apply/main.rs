//! `apply` against real directories: what layers change, what they must never reach, and
//! (as root) ownership, device nodes and xattrs.

mod as_root;
mod changes;
mod escapes;
mod support;
