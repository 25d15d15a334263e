//! The Kubernetes CEL library functions Gateway API's rules call, with kube-apiserver's
//! semantics: `isIP` and `isCIDR` (k8s.io/apiserver/pkg/cel/library ip.go, cidr.go) and
//! `isURL` (urls.go: Go's `url.ParseRequestURI` accepts it).

use std::net::IpAddr;

use cel::common::types::{CelBool, CelString};
use cel::Env;

fn is_ip(s: &CelString<'_>) -> CelBool {
    CelBool::from(ip(s.inner()))
}

fn is_cidr(s: &CelString<'_>) -> CelBool {
    CelBool::from(cidr(s.inner()))
}

fn is_url(s: &CelString<'_>) -> CelBool {
    CelBool::from(request_uri(s.inner()))
}

pub(super) fn ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

pub(super) fn cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let bits = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => 32,
        Ok(IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    !len.starts_with('+') && len.parse::<u8>().is_ok_and(|l| l <= bits)
}

/// An absolute URI (`scheme:…`) or an absolute path, without spaces or a fragment.
pub(super) fn request_uri(s: &str) -> bool {
    if s.is_empty() || s.contains([' ', '#']) || s.chars().any(char::is_control) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
}

pub(super) fn register(env: &mut Env) {
    let declared = [
        cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP"),
        cel::add_overload!(env, fn is_cidr: (CelString) -> CelBool, name = "isCIDR"),
        cel::add_overload!(env, fn is_url: (CelString) -> CelBool, name = "isURL"),
    ];
    for d in declared {
        d.expect("the Kubernetes functions are declared once");
    }
}
