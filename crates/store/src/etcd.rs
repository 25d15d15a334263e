//! etcd v3 backend, with kube-apiserver's mapping: keys `/registry/<resource>/<namespace>/<name>`
//! (grouped resources under `/registry/<group>/<resource>/…`), resourceVersion = `mod_revision`,
//! every write a one-key `Txn` guarded by the key's `mod_revision`, and one prefix watch from a
//! revision with `prev_kv`. Values are kinet's JSON, not kube-apiserver's protobuf, so the data is
//! readable with `etcdctl get` but not interchangeable with a real kube-apiserver's.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    TlsOptions, Txn, TxnOp, WatchOptions, WatchResponseStream,
};

pub use crate::etcd_config::EtcdConfig;
use futures::future::join_all;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::backend::{Backend, Change, Changes, Loaded, Op, Outcome, Row};
use crate::StoreError;

/// Where every object lives in etcd.
const PREFIX: &str = "/registry/";
/// Objects read per range request when loading (each page at the same revision).
const PAGE: i64 = 500;
/// Retries of a health probe's read after the first (waiting 0.1, 0.2, 0.4 s).
const PROBE_RETRIES: u32 = 3;
/// Large enough for a page of big objects or a watch response with many events.
const MAX_MESSAGE: usize = 256 << 20;

fn connect_options(config: &EtcdConfig) -> Result<ConnectOptions, StoreError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_require_leader(true);
    let Some(ca) = &config.ca_file else {
        return Ok(options);
    };
    let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
    match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(cert)?,
                std::fs::read(key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Backend(
                "an etcd client certificate needs both its certificate and key files".into(),
            ))
        }
    }
    Ok(options.with_tls(tls))
}

/// The store key of an etcd key, and back: `core/pods/ns/a` is `/registry/pods/ns/a`, and
/// `apps/deployments/ns/a` is `/registry/apps/deployments/ns/a`.
pub(crate) fn etcd_key(key: &str) -> String {
    format!("{PREFIX}{}", key.strip_prefix("core/").unwrap_or(key))
}

pub(crate) fn store_key(etcd: &[u8]) -> Option<String> {
    let rest = std::str::from_utf8(etcd).ok()?.strip_prefix(PREFIX)?;
    let first = rest.split('/').next()?;
    // API groups are the built-in ones without a dot and every dotted one (CRDs).
    let grouped = first.contains('.') || kinet_types::RESOURCES.iter().any(|r| r.group == first);
    Some(match grouped {
        true => rest.to_string(),
        false => format!("core/{rest}"),
    })
}

/// The etcd implementation of [`Backend`]. It runs its gRPC client on a runtime of its own, so
/// the store's threads can call it synchronously.
pub struct EtcdBackend {
    rt: Runtime,
    client: Client,
    closed: watch::Sender<bool>,
}

impl EtcdBackend {
    /// Connects to the cluster and checks that it answers.
    pub fn connect(config: &EtcdConfig) -> Result<EtcdBackend, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kinet-etcd")
            .enable_all()
            .build()?;
        let options = connect_options(config)?;
        let urls = config.urls();
        let connected = run(&rt, async move {
            let mut client = Client::connect(urls, Some(options)).await?;
            client.status().await?;
            Ok::<_, StoreError>(client)
        });
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                // Dropping a runtime blocks, which the caller's own runtime would not allow.
                rt.shutdown_background();
                return Err(e);
            }
        };
        let (closed, _) = watch::channel(false);
        Ok(EtcdBackend { rt, client, closed })
    }

    fn run<F: Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        run(&self.rt, fut)
    }
}

/// Runs `fut` on `rt` from any thread, even one inside another runtime (the API server's).
fn run<F: Future + Send>(rt: &Runtime, fut: F) -> F::Output
where
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        Err(_) => rt.block_on(fut),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(|| rt.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
    }
}

fn rev(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

fn header_rev(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| rev(h.revision()))
}

/// The end of the key range of every key with `PREFIX` (etcd's `WithPrefix`).
fn prefix_end() -> Vec<u8> {
    let mut end = PREFIX.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

impl Backend for EtcdBackend {
    fn load_all(&self) -> Result<Loaded, StoreError> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE);
        self.run(async move {
            let mut rows = Vec::new();
            let mut from = PREFIX.as_bytes().to_vec();
            let mut at = 0;
            loop {
                let options = GetOptions::new()
                    .with_range(prefix_end())
                    .with_limit(PAGE)
                    .with_revision(at as i64);
                let resp = kv.get(from.clone(), Some(options)).await?;
                at = header_rev(resp.header()).max(at);
                for item in resp.kvs() {
                    if let Some(key) = store_key(item.key()) {
                        rows.push(Row {
                            key,
                            rev: rev(item.mod_revision()),
                            value: Bytes::copy_from_slice(item.value()),
                        });
                    }
                }
                match (resp.more(), resp.kvs().last()) {
                    (true, Some(last)) => {
                        from = last.key().to_vec();
                        from.push(0);
                    }
                    _ => return Ok(Loaded { rows, rev: at }),
                }
            }
        })
    }

    fn commit(&self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        let txns = ops.iter().map(|op| {
            let key = etcd_key(op.key());
            let (expect, then) = match op {
                Op::Put { value, expect, .. } => {
                    (*expect, TxnOp::put(key.clone(), value.to_vec(), None))
                }
                Op::Delete { expect, .. } => (*expect, TxnOp::delete(key.clone(), None)),
            };
            let expect = i64::try_from(expect).unwrap_or(i64::MAX);
            let txn = Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, expect)])
                .and_then([then]);
            let mut kv = self.client.kv_client();
            async move {
                let resp = kv.txn(txn).await?;
                Ok::<_, StoreError>(match resp.succeeded() {
                    true => Outcome::Done(header_rev(resp.header())),
                    false => Outcome::Conflict,
                })
            }
        });
        // Concurrent Txns: etcd batches them into one Raft proposal.
        let txns: Vec<_> = txns.collect();
        self.run(join_all(txns)).into_iter().collect()
    }

    fn watch(&self, after: u64) -> Result<Box<dyn Changes>, StoreError> {
        if *self.closed.borrow() {
            return Err(StoreError::Closed);
        }
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let options = WatchOptions::new()
            .with_range(prefix_end())
            .with_start_revision(i64::try_from(after + 1).unwrap_or(i64::MAX))
            .with_prev_key()
            .with_progress_notify();
        let stream = self.run(async move { client.watch(PREFIX, Some(options)).await })?;
        let (_, stream) = stream.split();
        Ok(Box::new(EtcdChanges {
            rt: self.rt.handle().clone(),
            stream,
            closed: self.closed.subscribe(),
            after,
        }))
    }

    fn compact(&self, at: u64) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        self.run(async move { kv.compact(at, None).await })?;
        Ok(())
    }

    fn probe(&self) -> Result<u64, StoreError> {
        // A linearizable read of one key (kube-apiserver's health check reads `health`): its
        // header carries the cluster's latest revision, where a member's own status may lag.
        // Read-only, so it is retried, as clientv3 retries reads, when the balancer picked a
        // member that just died.
        let mut tries = 0;
        loop {
            let mut kv = self.client.kv_client();
            match self.run(async move { kv.get("health", None).await }) {
                Ok(read) => return Ok(header_rev(read.header())),
                Err(e) if tries == PROBE_RETRIES => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_millis(100 << tries)),
            }
            tries += 1;
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// One etcd watch stream.
struct EtcdChanges {
    rt: tokio::runtime::Handle,
    stream: WatchResponseStream,
    closed: watch::Receiver<bool>,
    /// Events at or before this revision were asked not to come.
    after: u64,
}

impl Changes for EtcdChanges {
    fn next(&mut self) -> Result<Vec<Change>, StoreError> {
        loop {
            let (stream, closed) = (&mut self.stream, &mut self.closed);
            let message = self.rt.block_on(async {
                tokio::select! {
                    m = stream.message() => Some(m),
                    _ = closed.wait_for(|c| *c) => None,
                }
            });
            let resp = match message {
                None => return Err(StoreError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(None)) => return Err(StoreError::Backend("etcd ended the watch".into())),
                Some(Ok(Some(resp))) => resp,
            };
            if resp.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    requested: self.after + 1,
                    compacted: rev(resp.compact_revision()),
                });
            }
            if resp.canceled() {
                return Err(StoreError::Backend(format!(
                    "etcd cancelled the watch: {}",
                    resp.cancel_reason()
                )));
            }
            let changes: Vec<Change> = resp.events().iter().filter_map(change).collect();
            if let Some(last) = changes.last() {
                self.after = last.rev;
                return Ok(changes);
            }
            // A creation notice or progress notification: nothing to apply.
        }
    }
}

fn change(event: &etcd_client::Event) -> Option<Change> {
    let kv = event.kv()?;
    let bytes = |kv: &etcd_client::KeyValue| Bytes::copy_from_slice(kv.value());
    Some(Change {
        rev: rev(kv.mod_revision()),
        key: store_key(kv.key())?,
        value: match event.event_type() {
            EventType::Put => Some(bytes(kv)),
            EventType::Delete => None,
        },
        prev: event.prev_kv().map(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kube_apiservers_layout() {
        let cases = [
            ("core/pods/default/web", "/registry/pods/default/web"),
            ("core/nodes/n1", "/registry/nodes/n1"),
            (
                "apps/deployments/default/web",
                "/registry/apps/deployments/default/web",
            ),
            (
                "discovery.k8s.io/endpointslices/default/web-abc",
                "/registry/discovery.k8s.io/endpointslices/default/web-abc",
            ),
            (
                "stable.example.com/crontabs/default/c",
                "/registry/stable.example.com/crontabs/default/c",
            ),
        ];
        for (store, etcd) in cases {
            assert_eq!(etcd_key(store), etcd);
            assert_eq!(store_key(etcd.as_bytes()).as_deref(), Some(store));
        }
        assert_eq!(store_key(b"compact_rev_key"), None);
    }
}
