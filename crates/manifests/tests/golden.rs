//! Each add-on's YAML, as `kinet manifests` prints it, against a reviewed file.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p kinet-manifests --test golden`.

use std::path::PathBuf;

use kinet_manifests::dns::DnsAddon;
use kinet_manifests::proxy::ProxyAddon;
use kinet_manifests::{yaml, Addon};

fn check(name: &str, addon: Addon) {
    // The version is in the image references; the files hold a placeholder.
    let got = yaml(&addon.objects()).replace(env!("CARGO_PKG_VERSION"), "VERSION");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert!(
        got == want,
        "{name}: differs from {} (run with UPDATE_GOLDEN=1 to accept):\n{got}",
        path.display()
    );
}

#[test]
fn dns() {
    check(
        "dns",
        Addon::Dns(DnsAddon::new(vec!["192.0.2.53:53".parse().unwrap()])),
    );
}

#[test]
fn proxy_replacing_kube_proxy() {
    let addon = ProxyAddon {
        api_server: Some(("192.0.2.1".into(), 6443)),
        ..Default::default()
    };
    check("proxy", Addon::Proxy(addon));
}

#[test]
fn proxy_beside_kube_proxy() {
    let addon = ProxyAddon {
        beside_kube_proxy: true,
        ..Default::default()
    };
    check("proxy-beside-kube-proxy", Addon::Proxy(addon));
}

#[test]
fn policy() {
    check("policy", Addon::Policy);
}

#[test]
fn ingress() {
    check("ingress", Addon::Ingress);
}
