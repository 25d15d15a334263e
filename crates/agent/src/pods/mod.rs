//! The kubelet's pod side: every pod bound to this node gets a sandbox (network namespace on
//! `cbr0`, pause process), its containers run in it through `kinet_runtime` (each on its own
//! root filesystem), and its status is posted back. One worker task per pod (as the kubelet's pod workers), fed the pod's latest
//! version by the node's pod watch.
//!
//! - pure: [`files`] (hosts, resolv.conf, hostname), [`env`] (container environment),
//!   [`runspec`] (the runtime spec from the pod),
//!   [`status`] (phase, conditions, container statuses), [`volumes`]' payloads and mount plan;
//! - side effects: [`sandbox`], [`pause`] (the pause process itself), [`shim`] (the
//!   process holding a container's stdio and writing its log), [`process`],
//!   [`probe`], [`record`] (what survives an agent restart), [`worker`].

pub mod env;
pub mod files;
pub mod image;
pub mod kernel;
pub mod objects;
pub mod pause;
pub mod probe;
pub mod process;
pub mod record;
pub mod runspec;
pub mod sandbox;
pub mod shim;
pub mod status;
pub mod volumes;
mod worker;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kinet_controllers::events::Recorder;
use kinet_ipam::Ipv4Cidr;
use kinet_ipam::{PodIpState, PodIps};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

pub use files::ClusterDns;
pub use kernel::{Kernel, Linux};
pub use record::{kill_all, PodDirs, PodRecord};

/// What the pod runtime needs to know about its node and cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's name.
    pub node: String,
    /// The cluster's name (pod network namespaces are `kinet-<cluster>-pod-…`).
    pub cluster: String,
    /// The node's InternalIP (status.hostIP).
    pub host_ip: Ipv4Addr,
    /// The node's state directory (pods live in `pods/` under it).
    pub node_dir: PathBuf,
    /// The kinet binary, for `kinet pause`, the shim and built-in images.
    pub exe: PathBuf,
    /// Where kinet-made image roots live (`$KINET_HOME/images`, shared by clusters).
    pub images_dir: PathBuf,
    /// Cluster DNS settings for resolv.conf.
    pub dns: ClusterDns,
    /// The cluster CA, written as the service account's `ca.crt`.
    pub ca_pem: String,
    /// Registry mirrors, insecure registries and offline pulls (`kinet up` settings).
    pub registries: kinet_oci_store::Settings,
}

/// A container as the streaming API sees it.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    /// Its name.
    pub name: String,
    /// Whether it runs now.
    pub running: bool,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// While it runs: the file its shim writes its first process's host PID to.
    pub pid_file: Option<PathBuf>,
    /// The running instance's spec.
    pub spec_file: PathBuf,
    /// Filled in by [`Runtime::container`]: the argv prefix that runs a command in it.
    pub enter: Option<Vec<String>>,
    /// The current instance's log.
    pub log: Option<PathBuf>,
    /// The previous instance's log.
    pub previous_log: Option<PathBuf>,
    /// The running instance's stdin FIFO, if it takes stdin.
    pub stdin: Option<PathBuf>,
    /// The file naming the running instance's terminal, if it has one.
    pub tty: Option<PathBuf>,
}

/// A pod as the streaming API sees it.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    /// The pause process, if the sandbox runs.
    pub sandbox_pid: Option<u32>,
    /// Containers in spec order.
    pub containers: Vec<ContainerView>,
}

/// The node's pod runtime.
pub struct Runtime {
    client: Client,
    cfg: Config,
    kernel: Arc<dyn Kernel>,
    dirs: PodDirs,
    ipam: Mutex<PodIps>,
    recorder: Recorder,
    /// Every Service, for the containers' environment (the kubelet's service lister).
    services: Store<Service>,
    /// The ConfigMaps and Secrets pods read (volumes and environment).
    objects: objects::Objects,
    workers: Mutex<HashMap<String, watch::Sender<Option<Pod>>>>,
    views: Mutex<HashMap<(String, String), PodView>>,
    /// The image store, opened on first use.
    store: std::sync::OnceLock<kinet_oci_store::Store>,
}

impl Runtime {
    /// A runtime for the node whose pod addresses come from `pod_cidr`, acting on the
    /// machine through `kernel`. Reloads persisted IP allocations.
    pub fn new(
        client: Client,
        cfg: Config,
        kernel: Arc<dyn Kernel>,
        pod_cidr: Ipv4Cidr,
    ) -> Arc<Runtime> {
        let dirs = PodDirs::new(&cfg.node_dir);
        let saved: Option<PodIpState> = std::fs::read(dirs.ipam_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|s: &PodIpState| s.cidr == pod_cidr);
        let ipam = saved
            .and_then(|s| PodIps::from_state(s).ok())
            .or_else(|| PodIps::new(pod_cidr).ok())
            .expect("a node podCIDR is at most a /30");
        let recorder = Recorder::new(client.clone(), "kubelet");
        let (services, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(
                Api::<Service>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff(),
        );
        tokio::spawn(stream.for_each(|_| futures::future::ready(())));
        let objects = objects::Objects::new(client.clone());
        Arc::new(Runtime {
            client,
            cfg,
            kernel,
            dirs,
            ipam: Mutex::new(ipam),
            recorder,
            services,
            objects,
            workers: Mutex::default(),
            views: Mutex::default(),
            store: std::sync::OnceLock::new(),
        })
    }

    /// The streaming view of one container (`None`: the first).
    pub fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<(Option<u32>, ContainerView), String> {
        let views = self.views.lock().expect("views lock");
        let view = views
            .get(&(namespace.to_string(), pod.to_string()))
            .ok_or_else(|| format!("pod {namespace}/{pod} is not running on this node"))?;
        let c = match container {
            None => view.containers.first(),
            Some(name) => view.containers.iter().find(|c| c.name == name),
        };
        let c = c.ok_or_else(|| {
            format!(
                "container {} is not valid for pod {pod}",
                container.unwrap_or("")
            )
        })?;
        let mut c = c.clone();
        // Read now: the shim writes the PID just after the container is reported running.
        let pid = c.pid_file.as_deref().and_then(process::read_pid);
        c.enter = pid.map(|pid| process::enter_argv(&self.cfg.exe, pid, &c.spec_file));
        Ok((view.sandbox_pid, c))
    }

    /// The image store (opened once; a failure is tried again next time).
    fn store(&self) -> Result<&kinet_oci_store::Store, kinet_oci_store::Error> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = kinet_oci_store::Store::open(&self.cfg.images_dir)?;
        Ok(self.store.get_or_init(|| store))
    }

    fn set_view(&self, namespace: &str, pod: &str, view: Option<PodView>) {
        let key = (namespace.to_string(), pod.to_string());
        let mut views = self.views.lock().expect("views lock");
        match view {
            Some(v) => views.insert(key, v),
            None => views.remove(&key),
        };
    }

    fn allocate_ip(&self, uid: &str) -> anyhow::Result<Ipv4Addr> {
        let mut ipam = self.ipam.lock().expect("ipam lock");
        let ip = ipam.allocate(uid)?;
        self.save_ipam(&ipam)?;
        Ok(ip)
    }

    fn release_ip(&self, uid: &str) {
        let mut ipam = self.ipam.lock().expect("ipam lock");
        if ipam.release(uid).is_some() {
            if let Err(e) = self.save_ipam(&ipam) {
                tracing::warn!("saving IP allocations: {e}");
            }
        }
    }

    fn save_ipam(&self, ipam: &PodIps) -> anyhow::Result<()> {
        let path = self.dirs.ipam_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(ipam.state())?)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    /// Hands a pod's latest version (or its disappearance: `None`) to its worker, starting
    /// one for a pod not seen before.
    fn dispatch(self: &Arc<Self>, uid: &str, pod: Option<Pod>, adopt: Option<PodRecord>) {
        let mut workers = self.workers.lock().expect("workers lock");
        if let Some(tx) = workers.get(uid) {
            let _ = tx.send(pod);
            return;
        }
        let Some(pod) = pod else {
            if let Some(rec) = adopt {
                tokio::spawn(worker::clean_orphan(self.clone(), rec));
            }
            return;
        };
        let (tx, rx) = watch::channel(Some(pod.clone()));
        workers.insert(uid.to_string(), tx);
        tokio::spawn(worker::run(self.clone(), pod, rx, adopt));
    }

    /// The Services a pod in `namespace` sees in its environment: its namespace's, and
    /// `default/kubernetes`, as the kubelet's `getServiceEnvVarMap`.
    async fn services_for(&self, namespace: &str) -> Vec<Service> {
        let _ = self.services.wait_until_ready().await;
        self.services
            .state()
            .iter()
            .filter(|s| {
                let ns = s.metadata.namespace.as_deref();
                ns == Some(namespace)
                    || (ns == Some("default") && s.metadata.name.as_deref() == Some("kubernetes"))
            })
            .map(|s| (**s).clone())
            .collect()
    }

    /// A pod's cgroup, `kinet/<cluster>/<pod uid>`, relative to each hierarchy's root; its
    /// containers' are under it.
    fn pod_cgroup(&self, uid: &str) -> PathBuf {
        cluster_cgroup(&self.cfg.cluster).join(uid)
    }

    fn worker_done(&self, uid: &str) {
        self.workers.lock().expect("workers lock").remove(uid);
    }
}

/// Runs the pods bound to this node until cancelled: adopts what a previous agent left
/// (records on disk), then follows the node's pods.
pub async fn run(rt: Arc<Runtime>) {
    let mut leftovers: HashMap<String, PodRecord> = rt
        .dirs
        .load_all()
        .into_iter()
        .map(|r| (r.uid.clone(), r))
        .collect();
    let pods: Api<Pod> = Api::all(rt.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", rt.cfg.node));
    let mut events = watcher(pods, cfg).boxed();
    let mut listed: Option<BTreeSet<String>> = None;
    loop {
        match events.try_next().await {
            Ok(Some(watcher::Event::Init)) => listed = Some(BTreeSet::new()),
            Ok(Some(watcher::Event::InitApply(pod))) => {
                let uid = pod.uid().unwrap_or_default();
                if let Some(seen) = listed.as_mut() {
                    seen.insert(uid.clone());
                }
                let adopt = leftovers.remove(&uid);
                rt.dispatch(&uid, Some(pod), adopt);
            }
            Ok(Some(watcher::Event::InitDone)) => {
                let seen = listed.take().unwrap_or_default();
                let running: Vec<String> =
                    rt.workers.lock().expect("lock").keys().cloned().collect();
                for uid in running.into_iter().filter(|u| !seen.contains(u)) {
                    rt.dispatch(&uid, None, None);
                }
                for (uid, rec) in leftovers.drain() {
                    rt.dispatch(&uid, None, Some(rec));
                }
            }
            Ok(Some(watcher::Event::Apply(pod))) => {
                let uid = pod.uid().unwrap_or_default();
                rt.dispatch(&uid, Some(pod), None);
            }
            Ok(Some(watcher::Event::Delete(pod))) => {
                let uid = pod.uid().unwrap_or_default();
                rt.dispatch(&uid, None, None);
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("pod watch: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// A cluster's cgroups' parent, relative to each hierarchy's root.
fn cluster_cgroup(cluster: &str) -> PathBuf {
    PathBuf::from("kinet").join(cluster)
}

/// Removes a stopped cluster's cgroups (`kinet down`), giving killed containers two seconds
/// to leave them.
pub async fn remove_cluster_cgroups(cluster: &str) {
    let rel = cluster_cgroup(cluster);
    for _ in 0..20 {
        if kernel::remove_cgroup_tree(&rel) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tracing::warn!("cgroups of cluster {cluster} still hold processes");
}

/// `kinet container-exec --pid PID --spec SPEC -- CMD…`: runs `command` as one of the
/// processes of the container (its namespaces, working directory, user and capabilities)
/// and exits as it did. Must run with one thread.
pub fn container_exec(pid: u32, spec: &std::path::Path, command: &[String]) -> anyhow::Result<()> {
    let text = std::fs::read(spec)?;
    let spec: kinet_runtime::ContainerSpec = serde_json::from_slice(&text)?;
    kinet_runtime::init::enter(pid, &spec)?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command"))?;
    // Spawned, not executed: only a child lands in the container's PID namespace.
    let status = std::process::Command::new(program).args(args).status()?;
    shim::exit_as(status)
}
