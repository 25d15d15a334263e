//! `kinet image pull|load|ls|rm`: the image store every cluster under `$KINET_HOME` shares
//! (crate `kinet-oci-store`), as `crictl pull|images|rmi` and `kind load image-archive`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use kinet_agent::pods::image::PullLine;
use kinet_oci_store::{import, pull, PullOptions, Record, Settings, Store};

/// `kinet up`'s registry settings, recorded at creation.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Pull REGISTRY's images from MIRROR first (`docker.io=127.0.0.1:5000`); repeatable.
    #[arg(long = "registry-mirror", value_name = "REGISTRY=MIRROR")]
    mirrors: Vec<String>,
    /// Speak plain HTTP to this registry (loopback registries always do); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure: Vec<String>,
    /// Pull only from loopback registries and mirrors, never beyond this host.
    #[arg(long)]
    offline_images: bool,
    /// Pull the registry's image of this built-in name (`busybox`, `nginx`…, see `kinet
    /// images`) instead of running kinet's own; repeatable.
    #[arg(long = "pull-real", value_name = "NAME")]
    pull_real: Vec<String>,
}

impl RegistryArgs {
    pub fn settings(self) -> anyhow::Result<Settings> {
        for name in &self.pull_real {
            // kinet's own add-on images exist nowhere else.
            let pullable = kinet_images::lookup(name)
                .is_some_and(|i| i.name == name.as_str() && !i.name.starts_with("kinet-"));
            anyhow::ensure!(
                pullable,
                "--pull-real {name:?}: not a built-in image name with a registry image \
                 (see `kinet images`)"
            );
        }
        let mut settings = Settings {
            insecure: self.insecure,
            offline: self.offline_images,
            pull_real: self.pull_real,
            ..Settings::default()
        };
        for m in self.mirrors {
            let (registry, mirror) = m
                .split_once('=')
                .filter(|(r, m)| !r.is_empty() && !m.is_empty())
                .with_context(|| format!("--registry-mirror {m:?}: expected REGISTRY=MIRROR"))?;
            settings
                .mirrors
                .entry(registry.to_string())
                .or_default()
                .push(mirror.to_string());
        }
        Ok(settings)
    }
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Pull an image from its registry (loopback registries speak plain HTTP).
    Pull {
        image: String,
        /// `plain` (a progress line) or `json` (one JSON object a line, as the agent reads).
        #[arg(long, default_value = "plain")]
        progress: String,
        /// Read mirrors, insecure registries and credentials as JSON on standard input.
        #[arg(long, hide = true)]
        options_stdin: bool,
    },
    /// Import docker-archive (`docker save`) and OCI-layout tarballs, as `kind load image-archive`.
    Load {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images in the store.
    #[command(alias = "list")]
    Ls,
    /// Remove images by name or image id (prefix); an image a container uses stays.
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

fn store() -> anyhow::Result<Store> {
    let home = kinet_cluster::state::absolute_home()?;
    Ok(Store::for_home(&home)?)
}

pub async fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    let store = store()?;
    match cmd {
        ImageCommand::Pull {
            image,
            progress,
            options_stdin,
        } => pull_image(&store, &image, &progress, options_stdin).await,
        ImageCommand::Load { files } => {
            for file in files {
                let s = store.clone();
                let f = file.clone();
                let records = tokio::task::spawn_blocking(move || import::import(&s, &f))
                    .await?
                    .with_context(|| format!("loading {}", file.display()))?;
                for r in records {
                    println!("Loaded image: {} ({})", r.name, r.config);
                }
            }
            Ok(())
        }
        ImageCommand::Ls => {
            print!("{}", table(&store.list()?));
            Ok(())
        }
        ImageCommand::Rm { images } => {
            for image in images {
                for name in store.remove(&image)? {
                    println!("Deleted: {name}");
                }
            }
            Ok(())
        }
    }
}

async fn pull_image(
    store: &Store,
    image: &str,
    progress: &str,
    options_stdin: bool,
) -> anyhow::Result<()> {
    let opts: PullOptions = if options_stdin {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        serde_json::from_slice(&input).context("reading the pull options")?
    } else {
        PullOptions::default()
    };
    let json = progress == "json";
    let tty = std::io::stderr().is_terminal();
    let last = std::sync::Mutex::new((Instant::now(), pull::Progress::default()));
    let report = |p: pull::Progress| {
        let mut last = last.lock().expect("progress lock");
        let (at, before) = *last;
        let first = p == pull::Progress::default();
        let layer_landed = p.layers_done != before.layers_done;
        // On a terminal, one line redrawn at most every 200 ms; elsewhere, a line a layer.
        // JSON gets the first report (the pull holds its locks) and the terminal's pace.
        let due = match (json, tty) {
            (true, _) => first || layer_landed || at.elapsed().as_millis() >= 200,
            (false, true) => layer_landed || at.elapsed().as_millis() >= 200,
            (false, false) => layer_landed,
        };
        if !due {
            return;
        }
        *last = (Instant::now(), p);
        if json {
            let line = serde_json::to_string(&PullLine::Progress(p)).expect("json");
            println!("{line}");
            return;
        }
        let line = progress_line(image, p);
        match tty {
            true => eprint!("\r{line}   "),
            false => eprintln!("{line}"),
        }
    };
    let started = Instant::now();
    let record = pull::pull(store, image, &opts, &report).await?;
    if json {
        println!("{}", serde_json::to_string(&PullLine::Pulled(record))?);
    } else {
        if tty {
            eprintln!();
        }
        println!(
            "Image is up to date for {} ({}, {:.1}s)",
            record.digest_reference(),
            human_size(record.size()),
            started.elapsed().as_secs_f64()
        );
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// `IMAGE: layers 1/3, 1.20MB of 3.40MB`.
fn progress_line(image: &str, p: pull::Progress) -> String {
    format!(
        "{image}: layers {}/{}, {} of {}",
        p.layers_done,
        p.layers,
        human_size(p.done),
        human_size(p.total)
    )
}

/// Sizes as crictl prints them: decimal units, three significant digits.
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 || unit == 0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{}", units[unit])
}

/// `crictl images`' columns: IMAGE, TAG, IMAGE ID, SIZE.
fn table(records: &[Record]) -> String {
    let rows: Vec<[String; 4]> = records
        .iter()
        .map(|r| {
            let (repo, tag) = match r.name.split_once('@') {
                Some((repo, _)) => (repo.to_string(), "<none>".to_string()),
                None => match r.name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                    Some((repo, tag)) => (repo.to_string(), tag.to_string()),
                    None => (r.name.clone(), "<none>".to_string()),
                },
            };
            [repo, tag, r.short_id().to_string(), human_size(r.size())]
        })
        .collect();
    crate::images::aligned(["IMAGE", "TAG", "IMAGE ID", "SIZE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_layers_and_bytes() {
        let p = pull::Progress {
            done: 1_200_000,
            total: 3_400_000,
            layers_done: 1,
            layers: 3,
        };
        assert_eq!(
            progress_line("127.0.0.1:5000/demo:1", p),
            "127.0.0.1:5000/demo:1: layers 1/3, 1.20MB of 3.40MB"
        );
    }

    #[test]
    fn pull_real_takes_built_in_names_only() {
        let args = |names: &[&str]| RegistryArgs {
            mirrors: vec![],
            insecure: vec![],
            offline_images: false,
            pull_real: names.iter().map(|n| n.to_string()).collect(),
        };
        let s = args(&["busybox", "nginx"]).settings().unwrap();
        assert!(!s.serves_builtin("busybox") && !s.serves_builtin("nginx"));
        assert!(s.serves_builtin("httpd"));
        for bad in ["kinet-dns", "nosuch", "busybox:1.36"] {
            let err = args(&[bad]).settings().unwrap_err().to_string();
            assert!(err.contains("--pull-real"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_as_crictl() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1_234, "1.23kB"),
            (45_600_000, "45.6MB"),
            (123_456_789, "123MB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want);
        }
    }

    #[test]
    fn lists_like_crictl_images() {
        let record = |name: &str| Record {
            name: name.into(),
            digest: String::new(),
            manifest: String::new(),
            config: format!("sha256:{}", "ab".repeat(32)),
            layers: vec![kinet_oci_store::Layer {
                digest: String::new(),
                size: 1_982_256,
                media_type: String::new(),
            }],
        };
        let t = table(&[
            record("127.0.0.1:5000/demo:1"),
            record("docker.io/library/busybox:latest"),
        ]);
        assert_eq!(
            t,
            "IMAGE                       TAG      IMAGE ID        SIZE\n\
             127.0.0.1:5000/demo         1        ababababababa   1.98MB\n\
             docker.io/library/busybox   latest   ababababababa   1.98MB\n"
        );
    }
}
