//! Links `kinet` as a fixed-address executable.

fn main() {
    // Every pod starts `kinet` several times (pause, shim, built-in images). As a PIE each
    // start applies ~135k relocations, and copying the 2.7 MB of pages they write took a
    // third of those processes' CPU time in a 500-pod burst. Without PIE those pages stay
    // shared in the page cache, as kubelet and containerd (Go, non-PIE by default) ship.
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
