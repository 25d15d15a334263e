//! `kinet images`: the well-known images kinet runs without a registry, and
//! `kinet image-run`: the process a container of a built-in image is.

use kinet_images::{Builtin, Image, ImageKind};

/// The catalog as an aligned table, like `kubectl get` prints.
pub fn table(images: &[Image]) -> String {
    let rows: Vec<[String; 4]> = images
        .iter()
        .map(|i| {
            let ports = if i.ports.is_empty() {
                "<none>".to_string()
            } else {
                i.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let runs = match i.kind {
                ImageKind::Builtin(_) => "built in".to_string(),
                ImageKind::Shell { .. } => "shell".to_string(),
            };
            [i.name.to_string(), ports, runs, i.description.to_string()]
        })
        .collect();
    aligned(["IMAGE", "PORTS", "RUNS AS", "DESCRIPTION"], &rows)
}

/// Rows under a header, columns padded to their widest cell, as `kubectl get` prints.
pub fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(str::to_string);
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("   ").trim_end().to_string() + "\n"
        })
        .collect()
}

/// How these images run, under the table.
const NOTE: &str = "
These names are served by kinet itself, offline, from any registry and tag. Each runs on
kinet's stand-in root filesystem ($KINET_HOME/images/kinet-standin-*): a few files kinet
writes (/etc/passwd, /etc/group, nsswitch.conf, ld.so.cache, /tmp), the host's /usr shown
read-only (writes stay in the container's own layer) and, for built-in servers, the kinet
binary at /kinet. Nothing else of the host is visible in a container. To run the registry's
image of one of these names instead, create the cluster with `kinet up --pull-real NAME`
(repeatable; with `--registry-mirror docker.io=MIRROR` on machines without internet).
";

pub fn images() {
    print!("{}{NOTE}", table(kinet_images::catalog()));
}

/// Runs a built-in image's program in this process until it ends (the container's process).
pub async fn image_run(image: &str, args: &[String]) -> anyhow::Result<()> {
    kinet_cluster::serve::init_logging();
    match kinet_images::lookup(image).map(|i| i.kind) {
        Some(ImageKind::Builtin(Builtin::Dns)) => {
            kinet_cluster::dns_image::run_dns_image(args).await
        }
        Some(ImageKind::Builtin(Builtin::Ingress)) => {
            kinet_cluster::ingress_image::run_ingress_image(args).await
        }
        Some(ImageKind::Builtin(Builtin::Proxy)) => {
            kinet_cluster::proxy_image::run_proxy_image(args).await
        }
        Some(ImageKind::Builtin(Builtin::Policy)) => {
            kinet_cluster::policy_image::run_policy_image(args).await
        }
        _ => kinet_images::run_builtin(image, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_image_with_ports() {
        let out = table(kinet_images::catalog());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("IMAGE   "), "{out}");
        assert_eq!(lines.len(), kinet_images::catalog().len() + 1);
        let nginx = lines
            .iter()
            .find(|l| l.starts_with("nginx "))
            .expect("nginx listed");
        assert!(
            nginx.contains("80") && nginx.contains("built in"),
            "{nginx}"
        );
        let busybox = lines
            .iter()
            .find(|l| l.starts_with("busybox "))
            .expect("busybox listed");
        assert!(busybox.contains("shell"), "{busybox}");
        assert!(NOTE.contains("/usr") && NOTE.contains("/kinet"));
    }
}
