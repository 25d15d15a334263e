//! The kinet command: create, inspect and delete local clusters.

//!
//! This crate parses arguments and prints; the work is in kinet-cluster and kinet-bench.

mod bench;
mod datastore;
mod image;
mod images;
mod manifests;
mod status;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kinet_cluster::{dns_image, duration, state, up};

const DEFAULT_NAME: &str = "kinet";

#[derive(Parser)]
#[command(
    name = "kinet",
    version,
    about = "Local Kubernetes clusters in network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a cluster, or restart a stopped one, and wait until it is usable.
    Up {
        /// Cluster name: a DNS label of at most 20 characters.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Number of nodes, recorded at creation: one control plane (which runs pods too)
        /// and workers. Default 3; 0 starts only the control plane.
        #[arg(long)]
        nodes: Option<usize>,
        /// Cluster configuration file (recorded at creation).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Resolver for names outside cluster.local, IP or IP:port; repeatable. Recorded;
        /// given again on a restart it replaces the recorded list. None: such names are
        /// refused, so no query leaves the machine (with --egress: the host's resolvers).
        #[arg(long = "upstream-dns", value_name = "IP[:PORT]", value_parser = dns_image::parse_upstream)]
        upstream_dns: Vec<std::net::SocketAddr>,
        /// How pod traffic crosses nodes: a VXLAN overlay (default) or host-gw routes.
        /// Recorded at creation.
        #[arg(long, value_enum)]
        backend: Option<state::PodBackend>,
        /// Wait until the cluster is usable (nodes Ready, add-ons Available, cluster DNS
        /// answering), at most this long (kind's flag). `0s` returns once the control plane
        /// answers; the rest comes up in the background.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration::parse_duration)]
        wait: Duration,
        /// How long a node may go without a heartbeat before it is NotReady (default 40s).
        /// Recorded at creation.
        #[arg(long, value_name = "DURATION", value_parser = duration::parse_duration)]
        node_monitor_grace_period: Option<Duration>,
        /// How long pods stay bound to a NotReady or unreachable node before they are
        /// evicted (default 300). Recorded at creation.
        #[arg(long, value_name = "SECONDS")]
        default_toleration_seconds: Option<u64>,
        /// Let pods and nodes reach beyond the cluster, as in kind: a default route via the
        /// host, which masquerades their traffic in an nftables table of the cluster's own
        /// (needs `nft` and the host's net.ipv4.ip_forward=1, which kinet does not change);
        /// cluster DNS forwards to the host's resolvers unless --upstream-dns says otherwise.
        /// Recorded at creation; without it such traffic is dropped inside the cluster.
        #[arg(long)]
        egress: bool,
        #[command(flatten)]
        registries: image::RegistryArgs,
        /// Leave out the ingress controller add-on (IngressClass `kinet`). Recorded at creation.
        #[arg(long)]
        no_ingress: bool,
        /// Leave out cluster DNS (`kinet manifests dns` can provide it). Recorded at creation.
        #[arg(long)]
        no_dns: bool,
        /// Nodes run no service proxy (`kinet manifests proxy` can provide one). Recorded at
        /// creation.
        #[arg(long)]
        no_proxy: bool,
        /// Nodes enforce no NetworkPolicy (`kinet manifests policy` can). Recorded at creation.
        #[arg(long)]
        no_policy: bool,
        /// How Services become kernel rules: kube-proxy's `nftables` layout (default) or its
        /// `iptables` layout (`iptables-save | grep KUBE`). Recorded; given to a running or
        /// stopped cluster it switches, removing the old mode's rules. `ipvs` is refused.
        #[arg(long, value_name = "MODE", value_parser = kinet_cluster::proxy_mode::parse)]
        proxy_mode: Option<kinet_cluster::proxy_mode::ProxyMode>,
        #[command(flatten)]
        datastore: Box<datastore::DatastoreArgs>,
    },
    /// Stop a cluster and delete its state.
    Down {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Only stop it: keep certificates, port and data for the next `up`.
        #[arg(long)]
        keep_data: bool,
    },
    /// List clusters, or show one and whether its API server is ready.
    Status {
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the path of a cluster's kubeconfig.
    Kubeconfig {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// List the well-known images kinet runs without a registry.
    Images,
    /// Print an add-on (dns, proxy, policy, ingress) as YAML for `kubectl apply -f -` on any
    /// cluster: its workload, ServiceAccount and least-privilege RBAC.
    Manifests {
        #[command(subcommand)]
        what: manifests::ManifestsCommand,
    },
    /// Run a benchmark and print its figures (see docs/performance.md).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Nodes of a cluster.
    Node {
        #[command(subcommand)]
        what: NodeCommand,
    },
    /// On another host: trust the cluster's CA as the token pins it, obtain this node's
    /// client certificate through a CertificateSigningRequest (the kubelet's TLS bootstrap),
    /// then run the node agent here under a supervisor, and wait for the Node to be Ready.
    Join {
        /// The API server, as https://HOST:PORT.
        #[arg(long)]
        server: String,
        /// A token from `kinet token create`: K10<sha256 of the CA>::<id>.<secret>.
        #[arg(long)]
        token: String,
        /// The node's name (default: this host's name).
        #[arg(long)]
        node_name: Option<String>,
        /// Where this host's node state goes.
        #[arg(long, default_value = JOIN_STATE_DIR)]
        state_dir: PathBuf,
        /// This host's address toward the server (default: the source of the route to it).
        #[arg(long)]
        node_ip: Option<std::net::Ipv4Addr>,
        /// Wait until the Node is Ready, at most this long; `0s` returns once the agent runs.
        #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration::parse_duration)]
        wait: Duration,
    },
    /// On a joined host: stop the node agent and remove what it made here (pods, pod
    /// network, rules, state). The Node object stays for the cluster's admin.
    Leave {
        #[arg(long, default_value = JOIN_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// A joined host's node agent (started by `join-supervise`).
    #[command(hide = true)]
    JoinAgent {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Keep a joined host's agent running (started by `join`).
    #[command(hide = true)]
    JoinSupervise {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Bootstrap tokens that let nodes on other hosts join (`kinet join`).
    Token {
        #[command(subcommand)]
        what: TokenCommand,
    },
    /// The "outside" namespace: a client on the underlay that is not a node.
    External {
        #[command(subcommand)]
        what: ExternalCommand,
    },
    /// The service proxy's rules on the nodes.
    Proxy {
        #[command(subcommand)]
        what: ProxyCommand,
    },
    /// NetworkPolicy: the probe truth table and one verdict explained.
    Policy {
        #[command(subcommand)]
        what: PolicyCommand,
    },
    /// Run the control plane in the foreground (started by `up`).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        name: String,
        /// Which of the cluster's `--api-servers` (0, the first, by default).
        #[arg(long, default_value_t = 0)]
        index: usize,
    },
    /// Run a node's agent in the foreground (started by its supervisor inside the node's namespace).
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        name: String,
        #[arg(long)]
        node: String,
    },
    /// Keep a node's agent running, restarting it with back-off (started by `up`).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        name: String,
        #[arg(long)]
        node: String,
    },
    /// The image store all clusters share: pull, load tarballs, list, remove.
    Image {
        #[command(subcommand)]
        what: image::ImageCommand,
    },
    /// Run a built-in image's program in the foreground: what a container of that image runs.
    #[command(hide = true)]
    ImageRun {
        image: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A pod sandbox's pause process (started by the agent inside the pod's namespaces).
    #[command(hide = true)]
    Pause {
        #[arg(long)]
        hostname: String,
    },
    /// Run a command as one of a running container's processes (`kubectl exec`, probes).
    #[command(hide = true)]
    ContainerExec {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        spec: PathBuf,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// A container's shim: holds its stdio, writes its log (started by the agent).
    #[command(hide = true)]
    Shim(Shim),
}

/// `kinet shim`'s arguments, as `ShimArgs::argv` writes them.
#[derive(clap::Args)]
struct Shim {
    #[arg(long)]
    log: PathBuf,
    #[arg(long)]
    io_dir: PathBuf,
    #[arg(long)]
    stdin: bool,
    #[arg(long)]
    stdin_once: bool,
    #[arg(long)]
    tty: bool,
    #[arg(long)]
    spec: PathBuf,
}

impl From<Shim> for kinet_agent::pods::shim::ShimArgs {
    fn from(s: Shim) -> Self {
        Self {
            log: s.log,
            io_dir: s.io_dir,
            stdin: s.stdin,
            stdin_once: s.stdin_once,
            tty: s.tty,
            spec: s.spec,
        }
    }
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run a command inside a node's network namespace: `kinet node exec NODE -- ip -br addr`.
    Exec {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// The node: its full name (`<cluster>-worker`) or without the cluster prefix.
        node: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Make a joined node's certificates useless (the API server refuses their serials) and
    /// delete its Node.
    Revoke {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        node: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it as K10<sha256 of the cluster CA>::<id>.<secret>.
    Create {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// How long the token is valid; 0 never expires.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = duration::parse_duration)]
        ttl: Duration,
        /// A note shown by `kinet token list`.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the tokens with their time to live.
    List {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Delete a token (its id, or the whole token).
    Delete {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        token: String,
    },
}

#[derive(Subcommand)]
enum ExternalCommand {
    /// Run a command outside the cluster: `kinet external exec -- curl http://<lb-ip>/`.
    Exec {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ProxyCommand {
    /// Print the chains, sets and map elements a Service has in each node's table (live).
    Rules {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Only this node (full name or without the cluster prefix).
        #[arg(long)]
        node: Option<String>,
        /// The Service as <namespace>/<name>.
        service: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Probe every pod to every other pod from inside the source pod, and print the truth
    /// table beside the NetworkPolicy model's, differing cells marked.
    Matrix {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Only pods of this namespace (repeatable; default: all but kube-system).
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
        /// The port probed, as PORT[/tcp|udp].
        #[arg(long, default_value = "80/tcp")]
        port: String,
        /// Probe each pod through the ClusterIP of its own Service (one selecting only it,
        /// with that port), as the upstream e2e suite does, instead of its pod address.
        #[arg(long)]
        via_service: bool,
    },
    /// Packets dropped per policy on each node (the policy table's counters).
    Drops {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Whether a new connection from one pod to another is allowed, and which policy and
    /// rule decided it (the model; `matrix` probes the kernel).
    Why {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// The client pod, as <namespace>/<pod>.
        from: String,
        /// The server pod, as <namespace>/<pod>.
        to: String,
        /// PORT[/tcp|udp|sctp].
        #[arg(long, default_value = "80/tcp")]
        port: String,
    },
}

/// This host's name, the default node name (as the kubelet's `--hostname-override` default).
/// Where `kinet join` keeps a joined host's state.
const JOIN_STATE_DIR: &str = "/var/lib/kinet-agent";

fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_lowercase())
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    // The shim blocks signals for the whole process, so it runs before any runtime thread
    // exists (and needs none).
    if let Command::Shim(shim) = command {
        return kinet_agent::pods::shim::run(&shim.into());
    }
    // setns and unshare want a process with one thread.
    if let Command::ContainerExec { pid, spec, command } = command {
        return kinet_agent::pods::container_exec(pid, &spec, &command);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up {
            name,
            nodes,
            config,
            upstream_dns,
            backend,
            wait,
            node_monitor_grace_period,
            default_toleration_seconds,
            egress,
            registries,
            no_ingress,
            no_dns,
            no_proxy,
            no_policy,
            proxy_mode,
            datastore,
        } => {
            let report = up::up(up::UpArgs {
                name,
                nodes,
                config,
                upstream_dns,
                backend,
                wait,
                node_monitor_grace_period,
                default_toleration_seconds,
                egress,
                registries: registries.settings()?,
                no_ingress,
                no_dns,
                no_proxy,
                no_policy,
                proxy_mode,
                datastore: datastore.config()?,
                api_servers: datastore.api_servers,
            })
            .await?;
            status::print_up(&report);
            Ok(())
        }
        Command::Down { name, keep_data } => kinet_cluster::down::down(&name, keep_data).await,
        Command::Status { name } => status::status(name.as_deref()).await,
        Command::Images => {
            images::images();
            Ok(())
        }
        Command::Manifests { what } => manifests::print(what),
        Command::Kubeconfig { name } => {
            println!("{}", kinet_cluster::status::kubeconfig(&name)?.display());
            Ok(())
        }
        Command::Serve { name, index } => kinet_cluster::serve::serve(&name, index).await,
        Command::Agent { name, node } => kinet_cluster::agent::agent(&name, &node).await,
        Command::Supervise { name, node } => kinet_cluster::supervisor::run(&name, &node).await,
        Command::Image { what } => image::run(what).await,
        Command::ImageRun { image, args } => images::image_run(&image, &args).await,
        Command::Pause { hostname } => {
            kinet_agent::pods::pause::run(&kinet_agent::pods::pause::PauseArgs { hostname })
        }
        Command::Shim(_) | Command::ContainerExec { .. } => {
            unreachable!("the shim and container-exec run without a runtime")
        }
        Command::Node {
            what:
                NodeCommand::Exec {
                    name,
                    node,
                    command,
                },
        } => {
            let code = kinet_cluster::status::node_exec(&name, &node, &command)?;
            std::process::exit(code)
        }
        Command::Node {
            what: NodeCommand::Revoke { name, node },
        } => {
            let serials = kinet_cluster::tokens::revoke_node(&name, &node).await?;
            println!(
                "node {node:?} revoked: certificate serials {}",
                serials.join(", ")
            );
            Ok(())
        }
        Command::Join {
            server,
            token,
            node_name,
            state_dir,
            node_ip,
            wait,
        } => {
            let node = match node_name {
                Some(n) => n,
                None => host_name()?,
            };
            let opts = kinet_cluster::join::JoinOptions {
                server,
                token,
                node,
                state_dir,
                node_ip,
                wait,
            };
            let joined = kinet_cluster::join::join(&opts).await?;
            println!(
                "node {} joined ({}); kubeconfig: {}; `kinet leave --state-dir {}` undoes it",
                joined.node,
                joined.node_ip,
                joined.kubeconfig().display(),
                joined.state_dir.display()
            );
            Ok(())
        }
        Command::Leave { state_dir } => {
            let left = kinet_cluster::join::leave(&state_dir).await?;
            println!(
                "node {} left: its agent, pods and pod network are gone from this host",
                left.node
            );
            Ok(())
        }
        Command::JoinAgent { state_dir } => kinet_cluster::agent::joined_agent(&state_dir).await,
        Command::JoinSupervise { state_dir } => {
            kinet_cluster::supervisor::run_joined(&state_dir).await
        }
        Command::Token { what } => match what {
            TokenCommand::Create {
                name,
                ttl,
                description,
            } => {
                println!(
                    "{}",
                    kinet_cluster::tokens::create(&name, ttl, description.as_deref()).await?
                );
                Ok(())
            }
            TokenCommand::List { name } => {
                print!("{}", kinet_cluster::tokens::list(&name).await?);
                Ok(())
            }
            TokenCommand::Delete { name, token } => {
                kinet_cluster::tokens::delete(&name, &token).await
            }
        },
        Command::External {
            what: ExternalCommand::Exec { name, command },
        } => {
            let code = kinet_cluster::external::exec(&name, &command)?;
            std::process::exit(code)
        }
        Command::Proxy {
            what:
                ProxyCommand::Rules {
                    name,
                    node,
                    service,
                },
        } => {
            print!(
                "{}",
                kinet_cluster::proxy_rules::rules(&name, node.as_deref(), &service)?
            );
            Ok(())
        }
        Command::Policy {
            what:
                PolicyCommand::Matrix {
                    name,
                    namespaces,
                    port,
                    via_service,
                },
        } => {
            let m = kinet_cluster::policy::matrix(&name, &namespaces, &port, via_service).await?;
            print!("{}", m.render());
            if !m.mismatches().is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Policy {
            what: PolicyCommand::Drops { name },
        } => {
            print!("{}", kinet_cluster::policy::drops(&name).await?);
            Ok(())
        }
        Command::Policy {
            what:
                PolicyCommand::Why {
                    name,
                    from,
                    to,
                    port,
                },
        } => {
            print!(
                "{}",
                kinet_cluster::policy::why(&name, &from, &to, &port).await?
            );
            Ok(())
        }
        Command::Bench { what } => bench::run(what).await,
    }
}
