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
    /// Run this many API servers (`kinet serve`) on the datastore, 1 to 5, each on its own
    /// addresses on the cluster's port: 127.0.0.1, 127.0.0.2, … for the host (the kubeconfig
    /// names the first) and the underlay's .0.1, .255.1, .255.2, … for the nodes, whose agents
    /// fail over between them. Recorded at creation.
    #[arg(long, value_name = "N", requires = "datastore")]
    pub api_servers: Option<usize>,
}

impl DatastoreArgs {
    pub fn config(&self) -> anyhow::Result<Option<EtcdConfig>> {
        let Some(url) = &self.datastore else {
            return Ok(None);
        };
        let parsed = EtcdConfig::parse(url).map_err(|e| anyhow::anyhow!("--datastore: {e}"))?;
        Ok(Some(EtcdConfig {
            ca_file: self.etcd_cafile.clone(),
            cert_file: self.etcd_certfile.clone(),
            key_file: self.etcd_keyfile.clone(),
            ..parsed
        }))
    }
}
