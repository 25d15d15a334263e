use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::{sha256, Layer, Scene, MTIME};

fn base() -> Layer {
    Layer::new()
        .dir("./", 0o755)
        .dir("etc/", 0o755)
        .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .file("bin/tool", 0o4755, b"#!/bin/sh\n")
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/again", "bin/tool")
        .dir("var/", 0o700)
        .file("var/a", 0o600, b"a")
        .file("var/b", 0o600, b"b")
}

#[test]
fn creates_files_dirs_links_with_modes_and_mtimes() {
    let s = Scene::new();
    s.apply(base().tar()).unwrap();
    assert_eq!(
        s.tree(),
        [
            "bin/",
            "bin/again",
            "bin/sh",
            "bin/tool",
            "etc/",
            "etc/hosts",
            "var/",
            "var/a",
            "var/b"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(s.at("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    let tool = std::fs::metadata(s.at("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(tool.mtime() as u64, MTIME);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        std::fs::metadata(s.at("bin/again")).unwrap().ino(),
        tool.ino()
    );
    assert_eq!(
        std::fs::read_link(s.at("bin/sh")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(
        std::fs::symlink_metadata(s.at("bin/sh")).unwrap().mtime() as u64,
        MTIME
    );
    let var = std::fs::metadata(s.at("var")).unwrap();
    assert_eq!(var.permissions().mode() & 0o7777, 0o700);
    // Set after its children were written.
    assert_eq!(var.mtime() as u64, MTIME);
    // A parent the layer left out is made like tar makes it.
    assert_eq!(
        std::fs::metadata(s.at("bin")).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn diff_id_is_the_sha256_of_the_uncompressed_stream_however_compressed() {
    let mut tar = base().tar();
    // Writers pad to a record size; the padding is part of the diff_id.
    tar.extend([0u8; 8192]);
    let want = sha256(&tar);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let zst =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (name, layer) in [
        ("plain", tar.clone()),
        ("gzip", gz.finish().unwrap()),
        ("zstd", zst),
    ] {
        let s = Scene::new();
        let got = s.apply(layer).unwrap();
        assert_eq!(got.to_string(), want, "{name}");
        assert_eq!(s.tree().len(), 9, "{name}");
    }
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
    let s = Scene::new();
    s.apply(
        base()
            .dir("var/sub/", 0o755)
            .file("var/sub/deep", 0o644, b"")
            .tar(),
    )
    .unwrap();
    let upper = Layer::new()
        .file("etc/.wh.hosts", 0o644, b"")
        .file("bin/.wh.nothing-there", 0o644, b"")
        // Written before the opaque marker, in the same layer: it stays.
        .file("var/new", 0o644, b"new")
        .dir("var/sub/", 0o755)
        .file("var/.wh..wh..opq", 0o644, b"")
        // A same-layer file is never whited out, whichever comes first.
        .file("bin/fresh", 0o644, b"")
        .file("bin/.wh.fresh", 0o644, b"")
        .file(".wh.gone", 0o644, b"")
        .file(".wh..wh.plnk/1", 0o644, b"");
    let upper = upper.tar();
    s.apply(upper).unwrap();
    assert_eq!(
        s.tree(),
        [
            "bin/",
            "bin/again",
            "bin/fresh",
            "bin/sh",
            "bin/tool",
            "etc/",
            "var/",
            "var/new",
            "var/sub/"
        ]
    );
}

#[test]
fn whiteout_of_a_directory_removes_the_whole_tree() {
    let s = Scene::new();
    s.apply(base().tar()).unwrap();
    s.apply(Layer::new().file(".wh.var", 0o644, b"").tar())
        .unwrap();
    assert!(!s.at("var").exists());
}

#[test]
fn entries_replace_what_is_there_and_dirs_merge() {
    let s = Scene::new();
    s.apply(base().tar()).unwrap();
    let upper = Layer::new()
        // file over directory, directory over file, symlink over file
        .file("var", 0o640, b"now a file")
        .dir("etc/hosts/", 0o750)
        .symlink("bin/tool", "again")
        .dir("bin/", 0o711);
    s.apply(upper.tar()).unwrap();
    assert_eq!(std::fs::read_to_string(s.at("var")).unwrap(), "now a file");
    assert!(s.at("etc/hosts").is_dir());
    assert_eq!(
        std::fs::read_link(s.at("bin/tool")).unwrap().to_str(),
        Some("again")
    );
    // The hardlink kept the old file's inode.
    assert_eq!(
        std::fs::read_to_string(s.at("bin/again")).unwrap(),
        "#!/bin/sh\n"
    );
    // Dir over dir: children kept, attributes updated.
    assert!(s.at("bin/sh").is_symlink());
    assert_eq!(
        std::fs::metadata(s.at("bin")).unwrap().permissions().mode() & 0o777,
        0o711
    );
}

#[test]
fn a_truncated_layer_is_an_error() {
    let s = Scene::new();
    let tar = Layer::new().file("big", 0o644, &[1; 4096]).tar();
    let err = s.apply(tar[..2048].to_vec()).unwrap_err();
    assert!(matches!(err, kinet_oci_layers::Error::Read(_)), "{err}");
}

#[test]
fn a_missing_root_is_an_error() {
    let s = Scene::new();
    let err = kinet_oci_layers::apply(&s.at("nope"), &base().tar()[..]).unwrap_err();
    assert!(matches!(err, kinet_oci_layers::Error::Root { .. }), "{err}");
}
