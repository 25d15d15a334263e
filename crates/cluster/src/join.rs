//! `kinet join`: a host's trust and credentials, given nothing but the server URL and a join
//! token, in k3s's and the kubelet's TLS bootstrap order:
//!
//! 1. fetch `/cacerts` without trusting anything yet, and compare its SHA-256 with the hash the
//!    token pins; refuse to go on (and to send the token) if they differ;
//! 2. from then on trust only that CA, and authenticate with the bootstrap token;
//! 3. create a CertificateSigningRequest for `system:node:<name>` (signer
//!    `kubernetes.io/kube-apiserver-client-kubelet`), which the cluster approves and signs;
//! 4. write the node's kubeconfig (the issued certificate and the key that never left the host);
//! 5. record the node (name, its address toward the server) in `join.json` and start
//!    its agent under a supervisor, in the host's own network namespace, as `up` does for a
//!    namespaced node; wait for the Node to be Ready.
//!
//! [`leave`] undoes it on the host: the agent, its pods, the pod network (`cbr0`,
//! `flannel.1`, peer routes), the nftables tables, the cgroups and the state folder.
//!
//! ```text
//! <state-dir>/kubeconfig        the node's credentials (0600)
//! <state-dir>/join.json         the node's name and address
//! <state-dir>/logs/<node>.log   the supervisor's and agent's output
//! <state-dir>/agents/<node>.*   PID files and the supervisor's record
//! <state-dir>/nodes/<node>/     the pods' folders
//! <state-dir>/images/           the host's image store
//! ```

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kinet_pki::token::JoinToken;
use kinet_pki::{kubeconfig, Credentials};
use kube::api::PostParams;
use kube::runtime::wait::{await_condition, Condition};
use kube::{Api, Client, Config, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::nodes::agents::{self, AgentArgs};
use crate::progress::Step;
use crate::state::ClusterDir;

/// How long the cluster has to approve and sign the request.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);

/// The node's credentials, as the cluster issued them.
#[derive(Debug)]
pub struct Issued {
    /// The node's kubeconfig, with its client certificate.
    pub kubeconfig: PathBuf,
    /// The CSR that issued it.
    pub request: String,
}

/// A joined host's record, `<state-dir>/join.json`: what its agent needs besides its
/// kubeconfig.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joined {
    pub node: String,
    /// The host's address toward the server: the Node's InternalIP and VXLAN endpoint.
    pub node_ip: Ipv4Addr,
    #[serde(skip)]
    pub state_dir: PathBuf,
}

const RECORD: &str = "join.json";

impl Joined {
    /// The record in `state_dir` (made absolute, as the processes run from `/`).
    pub fn load(state_dir: &Path) -> Result<Joined> {
        let state_dir = std::path::absolute(state_dir)?;
        let path = state_dir.join(RECORD);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (has this host joined?)", path.display()))?;
        let mut joined: Joined =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        joined.state_dir = state_dir;
        Ok(joined)
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        kinet_pki::write_file(&self.state_dir.join(RECORD), &format!("{json}\n"), 0o644)?;
        Ok(())
    }

    /// The state folder, laid out as a cluster's, the node's label as its name.
    pub fn dir(&self) -> ClusterDir {
        ClusterDir {
            name: self.node.clone(),
            root: self.state_dir.clone(),
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    fn args(&self) -> AgentArgs {
        AgentArgs::joined(&self.state_dir)
    }
}

/// `kinet join`'s settings.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub server: String,
    pub token: String,
    pub node: String,
    pub state_dir: PathBuf,
    /// The host's address toward the server; found from the route to it when `None`.
    pub node_ip: Option<Ipv4Addr>,
    /// How long to wait for the Node to be Ready (zero: do not wait).
    pub wait: Duration,
}

/// Joins this host: credentials, then the node agent under its supervisor; returns once the
/// Node is Ready (or at once with a zero `wait`).
pub async fn join(opts: &JoinOptions) -> Result<Joined> {
    crate::process::require_kinet_name()?;
    let state_dir = std::path::absolute(&opts.state_dir)?;
    if let Ok(old) = Joined::load(&state_dir) {
        if agents::supervisor_as(&old.dir(), &old.node, &old.args()).is_some() {
            bail!(
                "this host already runs node {} from {}: `kinet leave --state-dir {}` first",
                old.node,
                state_dir.display(),
                state_dir.display()
            );
        }
    }
    let step = Step::start("Getting the node's certificate");
    let issued = credentials(&opts.server, &opts.token, &opts.node, &state_dir).await?;
    step.done();
    let node_ip = match opts.node_ip {
        Some(ip) => ip,
        None => route_source(&opts.server)?,
    };
    let joined = Joined {
        node: opts.node.clone(),
        node_ip,
        state_dir,
    };
    joined.save()?;
    let step = Step::start("Starting the node agent");
    let since = Timestamp::now();
    agents::stop_as(&joined.dir(), &joined.node, &joined.args())?;
    let _supervisor =
        agents::spawn_supervisor(&joined.dir(), &joined.node, &joined.args(), |_| {})?;
    step.done();
    if !opts.wait.is_zero() {
        let step = Step::start("Waiting for the node to be Ready");
        wait_ready(&joined, &issued.kubeconfig, since, opts.wait).await?;
        step.done();
    }
    Ok(joined)
}

/// Polls the node's own Node and Lease until an agent started at `since` made it Ready.
async fn wait_ready(
    joined: &Joined,
    kubeconfig: &Path,
    since: Timestamp,
    within: Duration,
) -> Result<()> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config =
        Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let node = nodes.get_opt(&joined.node).await.ok().flatten();
        let lease = leases.get_opt(&joined.node).await.ok().flatten();
        if node.is_some_and(|n| crate::nodes::ready_since(&n, lease.as_ref(), since)) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let log = joined.dir().agent_log(&joined.node);
            bail!(
                "node {} not Ready within {within:?}; its agent's log: {}",
                joined.node,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The local address the host's routes pick toward the server (no packet is sent: a UDP
/// socket is only connected), as flannel picks its public IP from the default route.
fn route_source(server: &str) -> Result<Ipv4Addr> {
    let url: http::Uri = server.parse().context("the server URL")?;
    let host = url.host().context("the server URL has no host")?;
    let target: SocketAddr = (host, url.port_u16().unwrap_or(443))
        .to_socket_addrs()?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{host} has no IPv4 address"))?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket
        .connect(target)
        .with_context(|| format!("no route to the server {target}"))?;
    match socket.local_addr()?.ip() {
        std::net::IpAddr::V4(ip) => Ok(ip),
        other => bail!("the route to {target} leaves from {other}, not IPv4"),
    }
}

/// `kinet leave`: stops the joined host's agent and removes what it made on the host; the
/// Node object stays for the cluster's admin (`kinet node revoke` or `kubectl delete node`),
/// as with `kubeadm reset`.
pub async fn leave(state_dir: &Path) -> Result<Joined> {
    let joined = Joined::load(state_dir)?;
    let dir = joined.dir();
    agents::stop_as(&dir, &joined.node, &joined.args())?;
    kinet_agent::pods::kill_all(&dir.node_dir(&joined.node));
    kinet_agent::pods::remove_cluster_cgroups(&dir.name).await;
    let netns = Path::new("/proc/self/ns/net");
    kinet_agent::network::remove(netns).await?;
    // The service proxy's rules in either mode (handing over to one removes the other's)
    // and the LoadBalancer addresses it may have announced.
    let path = netns.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for mode in [
            kinet_proxy::ProxyMode::Nftables,
            kinet_proxy::ProxyMode::Iptables,
        ] {
            kinet_proxy::hand_over(mode, &path, crate::agent::PROXY_TABLE)?;
        }
        kinet_proxy::LbAddresses::new(path).sync(&Default::default())?;
        Ok(())
    })
    .await??;
    kinet_agent::policy::remove_table(netns)?;
    std::fs::remove_dir_all(&joined.state_dir)
        .with_context(|| format!("removing {}", joined.state_dir.display()))?;
    Ok(joined)
}

/// Establishes trust in `server` from `token` and obtains node `node`'s client certificate,
/// written as a kubeconfig into `state_dir`.
pub async fn credentials(
    server: &str,
    token: &str,
    node: &str,
    state_dir: &Path,
) -> Result<Issued> {
    let token = JoinToken::parse(token).context("the join token")?;
    let url: http::Uri = server.parse().context("the server URL")?;
    let ca_pem = fetch_ca(&url).await?;
    if !token.pins(&ca_pem) {
        bail!(
            "the server's CA (sha256 {}) is not the one the join token pins (sha256 {}): \
             refusing to send the token to it",
            kinet_pki::token::ca_hash(&ca_pem),
            token.ca_hash
        );
    }
    let bootstrap = client(&url, &ca_pem, Credentials::Token(token.bearer())).await?;
    let (csr_pem, key_pem) = kinet_pki::csr::node_request(node)?;
    let request: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "metadata": {"generateName": "node-csr-"},
        "spec": {
            "request": base64(&csr_pem),
            "signerName": kinet_controllers::certificates::KUBELET_CLIENT_SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }))?;
    let csrs: Api<CertificateSigningRequest> = Api::all(bootstrap);
    let created = csrs
        .create(&PostParams::default(), &request)
        .await
        .map_err(refused)?;
    let name = created.name_any();
    let issued = tokio::time::timeout(
        ISSUE_TIMEOUT,
        await_condition(csrs, &name, issued_or_refused()),
    )
    .await
    .with_context(|| {
        format!("CertificateSigningRequest {name} was not signed within {ISSUE_TIMEOUT:?}")
    })??
    .with_context(|| format!("CertificateSigningRequest {name} was deleted"))?;
    let status = issued.status.unwrap_or_default();
    let Some(cert) = status.certificate else {
        let why = status
            .conditions
            .into_iter()
            .flatten()
            .map(|c| format!("{}: {}", c.type_, c.message.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        bail!("CertificateSigningRequest {name} was not issued ({why})");
    };
    let cert_pem = String::from_utf8(cert.0).context("the issued certificate")?;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let path = state_dir.join("kubeconfig");
    let text = kubeconfig(
        node,
        server,
        &ca_pem,
        &Credentials::ClientCert { cert_pem, key_pem },
    );
    kinet_pki::write_file(&path, &text, 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Issued {
        kubeconfig: path,
        request: name,
    })
}

/// The CA bundle from `/cacerts`, read before anything about the server is trusted: the
/// caller checks it against the token's hash before using it.
async fn fetch_ca(url: &http::Uri) -> Result<String> {
    let mut config = Config::new(url.clone());
    config.accept_invalid_certs = true;
    let untrusted = Client::try_from(config)?;
    let req = http::Request::get(kinet_apiserver::join::CACERTS_PATH).body(Vec::new())?;
    untrusted
        .request_text(req)
        .await
        .with_context(|| format!("fetching the cluster CA from {url}/cacerts"))
}

async fn client(url: &http::Uri, ca_pem: &str, creds: Credentials) -> Result<Client> {
    let text = kubeconfig("join", &url.to_string(), ca_pem, &creds);
    let kc: kube::config::Kubeconfig = serde_yaml_ng::from_str(&text)?;
    let config =
        Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// The server's answer to the token, said plainly.
fn refused(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if s.code == 401 => anyhow::anyhow!(
            "the server refused the join token ({}): it is unknown, deleted or expired; \
             create one with `kinet token create` on the server",
            s.message
        ),
        kube::Error::Api(s) if s.code == 403 => {
            anyhow::anyhow!(
                "the join token may not request a node certificate: {}",
                s.message
            )
        }
        e => anyhow::Error::from(e).context("creating the CertificateSigningRequest"),
    }
}

fn issued_or_refused() -> impl Condition<CertificateSigningRequest> {
    |csr: Option<&CertificateSigningRequest>| {
        let Some(status) = csr.and_then(|c| c.status.as_ref()) else {
            return false;
        };
        status.certificate.is_some()
            || status
                .conditions
                .iter()
                .flatten()
                .any(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
    }
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
