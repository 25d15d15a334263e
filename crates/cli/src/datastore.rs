//! `kinet up --datastore`: where the cluster's objects live.

use std::path::PathBuf;

use kinet_store::EtcdConfig;

#[derive(clap::Args)]
pub struct DatastoreArgs {
    /// Keep the cluster's objects in this etcd v3 cluster instead of SQLite, with
    /// kube-apiserver's key layout (`/registry/pods/<namespace>/<name>`). Recorded at creation.
    #[arg(long, value_name = "etcd://HOST:PORT[,HOST:PORT…]")]
    datastore: Option<String>,
    /// PEM of the CA that signed the etcd members' certificates (then reached over TLS).
    #[arg(long, value_name = "FILE", requires = "datastore")]
    etcd_cafile: Option<PathBuf>,
    /// PEM of kinet's client certificate for etcd.
    #[arg(long, value_name = "FILE", requires_all = ["datastore", "etcd_keyfile", "etcd_cafile"])]
    etcd_certfile: Option<PathBuf>,
    /// PEM of the key of that certificate.
    #[arg(long, value_name = "FILE", requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
}

impl DatastoreArgs {
    pub fn config(self) -> anyhow::Result<Option<EtcdConfig>> {
        let Some(url) = &self.datastore else {
            return Ok(None);
        };
        let parsed = EtcdConfig::parse(url).map_err(|e| anyhow::anyhow!("--datastore: {e}"))?;
        Ok(Some(EtcdConfig {
            ca_file: self.etcd_cafile,
            cert_file: self.etcd_certfile,
            key_file: self.etcd_keyfile,
            ..parsed
        }))
    }
}
