//! Crafted layers that try to write outside the root. Each must land inside it, or fail,
//! and leave `outside` as it was.

use crate::support::{Layer, Scene};

#[test]
fn dot_dot_and_absolute_names_stay_inside() {
    let s = Scene::new();
    let layer = Layer::new()
        .file("../outside/x", 0o644, b"x")
        .file("../../etc/x", 0o644, b"x")
        .file("/abs/x", 0o644, b"x")
        .dir("../../../", 0o777);
    s.apply(layer.tar()).unwrap();
    assert_eq!(
        s.tree(),
        ["abs/", "abs/x", "etc/", "etc/x", "outside/", "outside/x"]
    );
    s.assert_outside_untouched();
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let s = Scene::new();
    let outside = s.outside();
    let layer = Layer::new()
        .dir("run/", 0o755)
        .symlink("var/run", "/run")
        .file("var/run/pid", 0o644, b"1")
        .symlink("out", outside.to_str().unwrap())
        .file("out/x", 0o644, b"x");
    s.apply(layer.tar()).unwrap();
    assert_eq!(std::fs::read_to_string(s.at("run/pid")).unwrap(), "1");
    // The dangling link's target was made inside the root.
    let inside = s.root().join(outside.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(inside.join("x")).unwrap(), "x");
    s.assert_outside_untouched();
}

#[test]
fn a_symlink_planted_in_a_lower_layer_is_not_followed_out() {
    let s = Scene::new();
    let outside = s.outside();
    s.apply(
        Layer::new()
            .symlink("evil", outside.to_str().unwrap())
            .symlink("up", "../..")
            .tar(),
    )
    .unwrap();
    let layer = Layer::new()
        .file("evil/x", 0o644, b"x")
        .file("up/outside/y", 0o644, b"y")
        .file("evil/.wh.keep", 0o644, b"")
        .file("up/outside/.wh.keep", 0o644, b"")
        .file("evil/.wh..wh..opq", 0o644, b"");
    s.apply(layer.tar()).unwrap();
    s.assert_outside_untouched();
    // The final component is a symlink: it is replaced, never written through.
    s.apply(Layer::new().file("evil", 0o644, b"plain").tar())
        .unwrap();
    assert_eq!(std::fs::read_to_string(s.at("evil")).unwrap(), "plain");
    s.assert_outside_untouched();
}

#[test]
fn hardlinks_only_reach_files_inside_the_root() {
    let s = Scene::new();
    let keep = s.outside().join("keep");
    // Nothing named like that inside the root: the link fails.
    let err = s
        .apply(Layer::new().hardlink("pw", "../../etc/passwd").tar())
        .unwrap_err();
    assert!(
        matches!(err, kinet_oci_layers::Error::Entry { .. }),
        "{err}"
    );
    let err = s
        .apply(Layer::new().hardlink("k", keep.to_str().unwrap()).tar())
        .unwrap_err();
    assert!(
        matches!(err, kinet_oci_layers::Error::Entry { .. }),
        "{err}"
    );
    // Through a planted symlink, the target is looked up inside the root.
    let layer = Layer::new()
        .symlink("evil", s.outside().to_str().unwrap())
        .hardlink("k2", "evil/keep")
        .tar();
    assert!(s.apply(layer).is_err());
    // Same name inside the root: that is what gets linked.
    let layer = Layer::new()
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .hardlink("pw", "../../etc/passwd")
        .tar();
    s.apply(layer).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.at("pw")).unwrap(),
        "root:x:0:0::/root:/bin/sh\n"
    );
    s.assert_outside_untouched();
}
