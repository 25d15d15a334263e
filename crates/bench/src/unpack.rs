//! `kinet bench unpack`: applying an image layer with kinet-oci-layers against GNU `tar -x`
//! of the same layer, plain and gzip, in one run. The layer is synthetic but shaped like a
//! distribution's root filesystem: many small files, some large ones, directories,
//! symlinks and hardlinks.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};

use super::stats::{medians_row, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Uncompressed layer size.
    pub mib: usize,
    /// Extractions per tool and format.
    pub runs: usize,
}

pub async fn run(opts: Options) -> Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(&opts)).await?
}

fn run_blocking(opts: &Options) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("kinet-bench-unpack-")
        .tempdir()?;
    let plain = scratch.path().join("layer.tar");
    let files = write_layer(&plain, opts.mib << 20)?;
    let gzip = scratch.path().join("layer.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gzip)?,
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::fs::File::open(&plain)?, &mut enc)?;
    enc.finish()?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / f64::from(1 << 20));
    println!(
        "layer: {files} entries, {:.1} MiB tar, {:.1} MiB gzip; {} runs each, medians",
        size(&plain)?,
        size(&gzip)?,
        opts.runs
    );
    println!("| layer | kinet apply (ms) | tar -x (ms) | ratio |");
    println!("|---|---|---|---|");
    for (name, layer, tar_flag) in [("tar", &plain, "-xf"), ("tar.gz", &gzip, "-xzf")] {
        let (mut ours, mut theirs) = (Samples::default(), Samples::default());
        for i in 0..opts.runs {
            let dir = scratch.path().join(format!("kinet-{name}-{i}"));
            ours.push(timed(&dir, |d| {
                kinet_oci_layers::apply(d, std::fs::File::open(layer)?)?;
                Ok(())
            })?);
            let dir = scratch.path().join(format!("tar-{name}-{i}"));
            theirs.push(timed(&dir, |d| tar_x(tar_flag, layer, d))?);
        }
        println!("{}", medians_row(name, &ours, &theirs));
    }
    Ok(())
}

/// GNU `tar` extracting `layer` into `into`; `flag` is `-xf` or `-xzf`.
pub(crate) fn tar_x(flag: &str, layer: &Path, into: &Path) -> Result<()> {
    let out = Command::new("tar")
        .arg(flag)
        .arg(layer)
        .arg("-C")
        .arg(into)
        .output()?;
    if !out.status.success() {
        bail!("tar: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Times `extract` into a fresh `dir`, then removes it. Earlier runs' writes are flushed
/// first, so each run pays for its own work only: the unpacking, into the page cache.
pub(crate) fn timed(dir: &Path, extract: impl FnOnce(&Path) -> Result<()>) -> Result<Duration> {
    std::fs::create_dir_all(dir)?;
    rustix::fs::syncfs(std::fs::File::open(dir)?)?;
    let start = Instant::now();
    extract(dir).with_context(|| format!("extracting into {}", dir.display()))?;
    let took = start.elapsed();
    std::fs::remove_dir_all(dir)?;
    Ok(took)
}

/// Writes a tar of about `bytes` and returns its entry count.
pub(crate) fn write_layer(path: &Path, bytes: usize) -> Result<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut tar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    let (mut written, mut entries) = (0, 0);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h
    };
    while written < bytes {
        let dir = format!("usr/lib/pkg{entries:05}");
        tar.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            &dir,
            std::io::empty(),
        )?;
        entries += 1;
        for f in 0..20 {
            // Mostly small files, like a distribution's, and now and then a large one.
            // (About 2,000 files per 50 MiB, as in a Debian base image.)
            let size = match rng.random_range(0..1000) {
                0..=699 => rng.random_range(100..4096),
                700..=994 => rng.random_range(4096..65536),
                _ => rng.random_range(1 << 20..4 << 20),
            };
            let data = text(&mut rng, size);
            let name = format!("{dir}/file{f}");
            tar.append_data(
                &mut header(tar::EntryType::Regular, 0o644, size as u64),
                &name,
                &data[..],
            )?;
            written += size;
            entries += 1;
        }
        let mut link = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut link, format!("{dir}/link"), "file0")?;
        let mut hard = header(tar::EntryType::Link, 0o644, 0);
        tar.append_link(&mut hard, format!("{dir}/hard"), format!("{dir}/file1"))?;
        entries += 2;
    }
    tar.into_inner()?.flush()?;
    Ok(entries)
}

/// Text-like bytes, which compress about as well as binaries and scripts do.
fn text(rng: &mut impl Rng, size: usize) -> Vec<u8> {
    const WORDS: [&[u8]; 8] = [
        b"lib", b"main ", b"\x7fELF", b"return ", b"0x1f ", b"\n", b"config", b"usr/",
    ];
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        if rng.random_bool(0.3) {
            out.push(rng.random());
        } else {
            out.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())]);
        }
    }
    out.truncate(size);
    out
}
