//! Pulls from registries with `oci-client`: manifest (index → this platform's manifest;
//! schema 1 converted), config, then each layer streamed to a temporary file, its digest
//! checked, and renamed into the blob store. Loopback registries speak plain HTTP, as
//! Docker treats 127.0.0.0/8; mirrors are tried before the registry itself.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use oci_client::client::{ClientConfig, ClientProtocol, LayerDescriptor};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::manifest::{self, Fetched, Platform, Schema1};
use crate::reference::{is_loopback, normalize, store_name};
use crate::{fsutil, unpack, Credentials, Error, Layer, Record, Store};

/// A cluster's registry settings (`kinet up --registry-mirror`, `--insecure-registry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Registry host → mirror hosts, tried in order before the registry itself.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registry hosts spoken to over plain HTTP (loopback ones always are).
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Pull only from loopback registries and mirrors, never from a registry beyond the
    /// host (air-gapped machines, and tests, which must not reach the internet).
    #[serde(default)]
    pub offline: bool,
    /// Built-in image names (`busybox`, `nginx`…) pulled from their registry like any other
    /// image instead of run as kinet's own root filesystem (`kinet up --pull-real`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_real: Vec<String>,
}

impl Settings {
    pub fn is_empty(&self) -> bool {
        *self == Settings::default()
    }

    /// Whether the built-in image `name` runs as kinet's own root (not pulled).
    pub fn serves_builtin(&self, name: &str) -> bool {
        !self.pull_real.iter().any(|n| n == name)
    }
}

/// Everything a pull needs besides the reference (what the agent hands `kinet image pull`
/// on its standard input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullOptions {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub credentials: Credentials,
    #[serde(skip, default = "Platform::host")]
    pub platform: Platform,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            settings: Settings::default(),
            credentials: Credentials::default(),
            platform: Platform::host(),
        }
    }
}

/// How far a pull is: bytes and layers in the store against the image's totals (`total`
/// is 0 while unknown, and for schema-1 images, whose manifests carry no sizes). The first
/// report, all zeros, comes once the pull holds its locks: what came before was waiting
/// for another pull of the same image.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    #[serde(default)]
    pub layers_done: usize,
    #[serde(default)]
    pub layers: usize,
}

/// Where a reference can be pulled from: its mirrors, then its own registry.
fn sources(reference: &Reference, settings: &Settings) -> Vec<Reference> {
    let mirrors = settings
        .mirrors
        .get(reference.registry())
        .into_iter()
        .flatten();
    mirrors
        .map(|mirror| {
            let repo = reference.repository().to_string();
            match (reference.tag(), reference.digest()) {
                (Some(t), Some(d)) => {
                    Reference::with_tag_and_digest(mirror.clone(), repo, t.into(), d.into())
                }
                (None, Some(d)) => Reference::with_digest(mirror.clone(), repo, d.into()),
                (t, None) => {
                    Reference::with_tag(mirror.clone(), repo, t.unwrap_or("latest").into())
                }
            }
        })
        .chain([reference.clone()])
        .filter(|r| {
            !settings.offline || is_loopback(r.registry()) || r.registry() != reference.registry()
        })
        .collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Pulls `image` into `store` and unpacks it; `progress` hears of every layer chunk.
/// Concurrent pulls of one name (from any process) wait for each other, and the later
/// ones find the content already there.
pub async fn pull(
    store: &Store,
    image: &str,
    opts: &PullOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Record, Error> {
    // reqwest is built without a default TLS provider; kinet uses ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reference = normalize(image)?;
    let name = store_name(&reference);
    let s = store.clone();
    let key = format!("pull {name}");
    let _locks = blocking(move || Ok((s.writer_lock()?, s.lock(&key, true)?))).await?;
    progress(Progress::default());
    let mut failure = None;
    let sources = sources(&reference, &opts.settings);
    if sources.is_empty() {
        return Err(Error::Registry {
            image: name.clone(),
            context: format!("failed to resolve reference {name:?}"),
            message: format!(
                "{} is beyond this host and the cluster pulls offline (kinet up --offline-images): load the image with kinet image load, or give the registry a mirror",
                reference.registry()
            ),
        });
    }
    for source in sources {
        let puller = Puller::new(store, &name, &source, opts);
        match puller.pull(progress).await {
            Ok(record) => return Ok(record),
            Err(e) => {
                tracing::debug!(image = %name, source = %source, error = %e, "pull failed");
                failure = Some(e);
            }
        }
    }
    Err(failure.expect("a reference has at least one source"))
}

/// One pull attempt from one source.
struct Puller<'a> {
    store: &'a Store,
    name: &'a str,
    source: &'a Reference,
    client: Client,
    auth: RegistryAuth,
    platform: &'a Platform,
}

impl<'a> Puller<'a> {
    fn new(store: &'a Store, name: &'a str, source: &'a Reference, opts: &'a PullOptions) -> Self {
        let registry = source.registry();
        let plain = is_loopback(registry) || opts.settings.insecure.iter().any(|h| h == registry);
        let client = Client::new(ClientConfig {
            protocol: if plain {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            ..Default::default()
        });
        let auth = match opts.credentials.for_registry(registry) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Puller {
            store,
            name,
            source,
            client,
            auth,
            platform: &opts.platform,
        }
    }

    fn failed(
        &self,
        context: String,
    ) -> impl FnOnce(oci_client::errors::OciDistributionError) -> Error + '_ {
        move |e| Error::Registry {
            image: self.name.to_string(),
            context,
            message: e.to_string(),
        }
    }

    /// Fetches and stores a manifest (or index) by `reference`; returns its digest.
    async fn manifest(
        &self,
        reference: &Reference,
        media_type: Option<&str>,
    ) -> Result<(String, Fetched), Error> {
        let resolving = format!("failed to resolve reference {:?}", self.name);
        let (body, digest) = self
            .client
            .pull_manifest_raw(reference, &self.auth, manifest::ACCEPTED)
            .await
            .map_err(self.failed(resolving))?;
        let fetched = manifest::parse(&body, media_type)?;
        self.store.put_blob(&body, None)?;
        Ok((digest, fetched))
    }

    async fn pull(&self, progress: &(dyn Fn(Progress) + Send + Sync)) -> Result<Record, Error> {
        let (digest, fetched) = self.manifest(self.source, None).await?;
        let (manifest_digest, fetched) = match fetched {
            Fetched::Index(index) => {
                let entry =
                    manifest::choose(&index, self.platform).ok_or_else(|| Error::Registry {
                        image: self.name.to_string(),
                        context: format!("failed to resolve reference {:?}", self.name),
                        message: format!(
                            "no match for platform {}/{} in manifest {digest}: not found",
                            self.platform.os, self.platform.architecture
                        ),
                    })?;
                let by_digest = self.source.clone_with_digest(entry.digest().to_string());
                let media_type = entry.media_type().to_string();
                self.manifest(&by_digest, Some(&media_type)).await?
            }
            other => (digest.clone(), other),
        };
        let record = match fetched {
            Fetched::Image(m) => {
                let layers: Vec<Layer> = m
                    .layers()
                    .iter()
                    .map(|l| Layer {
                        digest: l.digest().to_string(),
                        size: l.size(),
                        media_type: l.media_type().to_string(),
                    })
                    .collect();
                let config_digest = m.config().digest().to_string();
                let config = if self.store.has_blob(&config_digest)? {
                    self.store.read_blob(&config_digest)?
                } else {
                    let mut config = Vec::new();
                    self.client
                        .pull_blob(self.source, config_digest.as_str(), &mut config)
                        .await
                        .map_err(self.failed("failed to fetch the image config".into()))?;
                    self.store.put_blob(&config, Some(&config_digest))?;
                    config
                };
                self.layers(&layers, progress).await?;
                let diff_ids = manifest::parse_config(&config)?.rootfs().diff_ids().clone();
                let (store, id, l) = (self.store.clone(), config_digest.clone(), layers.clone());
                blocking(move || unpack::ensure_root(&store, &id, &diff_ids, &l)).await?;
                Record {
                    name: self.name.to_string(),
                    digest,
                    manifest: manifest_digest,
                    config: config_digest,
                    layers,
                }
            }
            Fetched::Schema1(image) => self.schema1(image, digest, progress).await?,
            Fetched::Index(_) => {
                return Err(Error::Manifest(format!(
                    "{manifest_digest}: an index inside an index"
                )))
            }
        };
        self.store.put_record(&record)?;
        Ok(record)
    }

    /// Schema 1: the diff_ids are known only once the layers are applied, and the config
    /// is made from the newest history entry.
    async fn schema1(
        &self,
        image: Schema1,
        digest: String,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Record, Error> {
        let mut layers: Vec<Layer> = image
            .layers
            .iter()
            .map(|d| Layer {
                digest: d.clone(),
                size: 0,
                media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            })
            .collect();
        self.layers(&layers, progress).await?;
        for layer in &mut layers {
            let path = self.store.blob(&layer.digest)?;
            layer.size = path.metadata().map_err(Error::io(&path))?.len();
        }
        let (store, l) = (self.store.clone(), layers.clone());
        let config_digest = blocking(move || {
            let (root, diff_ids) = unpack::unpack(&store, &l)?;
            let config = manifest::schema1_config(&image, diff_ids)?;
            let config_digest = store.put_blob(&config, None)?;
            unpack::install(&store, &config_digest, root)?;
            Ok(config_digest)
        })
        .await?;
        Ok(Record {
            name: self.name.to_string(),
            manifest: digest.clone(),
            digest,
            config: config_digest,
            layers,
        })
    }

    /// Streams every layer the store lacks into it.
    async fn layers(
        &self,
        layers: &[Layer],
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), Error> {
        let mut at = Progress {
            total: layers.iter().map(|l| l.size).sum(),
            layers: layers.len(),
            ..Progress::default()
        };
        progress(at);
        for layer in layers {
            if !self.store.has_blob(&layer.digest)? {
                let tmp = fsutil::unique(&self.store.tmp(), "blob");
                let result = self.layer(layer, &tmp, at, progress).await;
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                result?;
            }
            at.done += layer.size;
            at.layers_done += 1;
            progress(at);
        }
        Ok(())
    }

    async fn layer(
        &self,
        layer: &Layer,
        tmp: &Path,
        at: Progress,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), Error> {
        let file = tokio::fs::File::create(tmp).await.map_err(Error::io(tmp))?;
        let mut out = Counting {
            inner: file,
            at,
            progress,
        };
        let descriptor = LayerDescriptor {
            digest: &layer.digest,
            urls: &None,
        };
        // pull_blob checks the digest of what it wrote.
        self.client
            .pull_blob(self.source, &descriptor, &mut out)
            .await
            .map_err(self.failed(format!("failed to copy {}", layer.digest)))?;
        out.inner.sync_all().await.map_err(Error::io(tmp))?;
        out.inner.shutdown().await.map_err(Error::io(tmp))?;
        self.store.adopt_blob(tmp, &layer.digest)
    }
}

/// A writer that reports the bytes through it.
struct Counting<'a, W> {
    inner: W,
    at: Progress,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.at.done += n as u64;
            (this.progress)(this.at);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first() {
        let mut settings = Settings::default();
        settings
            .mirrors
            .insert("docker.io".into(), vec!["127.0.0.1:5001".into()]);
        let r = normalize("busybox:1.36").unwrap();
        let s: Vec<String> = sources(&r, &settings).iter().map(|r| r.whole()).collect();
        assert_eq!(
            s,
            [
                "127.0.0.1:5001/library/busybox:1.36",
                "docker.io/library/busybox:1.36"
            ]
        );
        let other = normalize("quay.io/x/y:1").unwrap();
        assert_eq!(sources(&other, &settings).len(), 1);
        settings.offline = true;
        let s: Vec<String> = sources(&r, &settings).iter().map(|r| r.whole()).collect();
        assert_eq!(s, ["127.0.0.1:5001/library/busybox:1.36"]);
        assert!(sources(&other, &settings).is_empty());
        let local = normalize("127.0.0.1:5000/demo:1").unwrap();
        assert_eq!(sources(&local, &settings).len(), 1);
    }
}
