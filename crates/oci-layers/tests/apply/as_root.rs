//! What only root can create: other owners, device nodes, trusted xattrs.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use tar::{EntryType, Header};

use crate::support::{Layer, Scene, MTIME};

fn root() -> bool {
    kinet_testkit::root("ownership, device nodes, trusted xattrs")
}

fn header(kind: EntryType, mode: u32, uid: u64, gid: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(MTIME);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(0);
    h
}

#[test]
fn keeps_numeric_owners_and_setuid_bits() {
    if !root() {
        return;
    }
    let s = Scene::new();
    let mut file = header(EntryType::Regular, 0o4750, 1234, 5678);
    file.set_size(2);
    let layer = Layer::new()
        .raw(file, "bin/su", "", b"su")
        .raw(
            header(EntryType::Directory, 0o1777, 42, 43),
            "tmp/",
            "",
            b"",
        )
        .raw(
            header(EntryType::Symlink, 0o777, 7, 8),
            "link",
            "bin/su",
            b"",
        );
    s.apply(layer.tar()).unwrap();
    let su = std::fs::metadata(s.at("bin/su")).unwrap();
    assert_eq!(
        (su.uid(), su.gid(), su.permissions().mode() & 0o7777),
        (1234, 5678, 0o4750)
    );
    let tmp = std::fs::metadata(s.at("tmp")).unwrap();
    assert_eq!(
        (tmp.uid(), tmp.gid(), tmp.permissions().mode() & 0o7777),
        (42, 43, 0o1777)
    );
    let link = std::fs::symlink_metadata(s.at("link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (7, 8));
}

#[test]
fn makes_device_nodes_and_fifos() {
    if !root() {
        return;
    }
    let s = Scene::new();
    let mut null = header(EntryType::Char, 0o666, 0, 0);
    null.set_device_major(1).unwrap();
    null.set_device_minor(3).unwrap();
    let mut loop0 = header(EntryType::Block, 0o660, 0, 6);
    loop0.set_device_major(7).unwrap();
    loop0.set_device_minor(0).unwrap();
    let layer = Layer::new()
        .raw(null, "dev/null", "", b"")
        .raw(loop0, "dev/loop0", "", b"")
        .raw(header(EntryType::Fifo, 0o600, 0, 0), "run/fifo", "", b"");
    s.apply(layer.tar()).unwrap();
    let null = std::fs::metadata(s.at("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o777, 0o666);
    let loop0 = std::fs::metadata(s.at("dev/loop0")).unwrap();
    assert!(loop0.file_type().is_block_device());
    assert_eq!((loop0.rdev(), loop0.gid()), (rustix::fs::makedev(7, 0), 6));
    assert!(std::fs::metadata(s.at("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn keeps_xattrs_after_chown() {
    if !root() {
        return;
    }
    let s = Scene::new();
    let mut file = header(EntryType::Regular, 0o755, 1000, 1000);
    file.set_size(4);
    let cap: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let layer = Layer::new()
        .with_pax(
            &[
                ("SCHILY.xattr.security.capability", cap),
                ("SCHILY.xattr.user.note", b"hi"),
            ],
            file,
            "bin/ping",
            b"ping",
        )
        .with_pax(
            &[("SCHILY.xattr.trusted.overlay.opaque", b"y")],
            header(EntryType::Directory, 0o755, 0, 0),
            "opaque/",
            b"",
        );
    s.apply(layer.tar()).unwrap();
    let get = |path: &str, name: &str| {
        let mut buf = vec![0; 64];
        let n = rustix::fs::getxattr(s.at(path).as_path(), name, &mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    assert_eq!(get("bin/ping", "security.capability"), cap);
    assert_eq!(get("bin/ping", "user.note"), b"hi");
    assert_eq!(get("opaque", "trusted.overlay.opaque"), b"y");
    assert_eq!(std::fs::metadata(s.at("bin/ping")).unwrap().uid(), 1000);
}
