//! The kinet command: create, inspect and delete local clusters.

mod addons;
mod agent;
mod bench;
mod dns_image;
mod down;
mod external;
mod images;
mod nodes;
mod probe;
mod process;
mod progress;
mod proxy_cmd;
mod serve;
mod state;
mod status;
mod up;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Create a cluster, or restart a stopped one, and wait until its API server is ready.
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
        /// refused, so no query leaves the machine.
        #[arg(long = "upstream-dns", value_name = "IP[:PORT]", value_parser = dns_image::parse_upstream)]
        upstream_dns: Vec<std::net::SocketAddr>,
        /// How pod traffic crosses nodes: a VXLAN overlay (default) or host-gw routes.
        /// Recorded at creation.
        #[arg(long, value_enum)]
        backend: Option<state::PodBackend>,
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
    /// Run a benchmark and print its figures (see docs/performance.md).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Nodes of a cluster.
    Node {
        #[command(subcommand)]
        what: NodeCommand,
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
    /// Run the control plane in the foreground (started by `up`).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        name: String,
    },
    /// Run a node's agent in the foreground (started by `up` inside the node's namespace).
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        name: String,
        #[arg(long)]
        node: String,
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
        #[arg(long)]
        hosts: PathBuf,
        #[arg(long)]
        resolv: PathBuf,
        #[arg(long)]
        service_account: Option<PathBuf>,
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
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

impl From<Shim> for kinet_agent::pods::shim::ShimArgs {
    fn from(s: Shim) -> Self {
        Self {
            log: s.log,
            io_dir: s.io_dir,
            stdin: s.stdin,
            stdin_once: s.stdin_once,
            tty: s.tty,
            argv: s.argv,
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
enum BenchCommand {
    /// The API server: creates with 1 and many clients, large lists, watch fan-out.
    Api {
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        #[arg(long, default_value_t = 200)]
        watch_events: usize,
    },
    /// Pods on a real 3-node cluster: start latency and throughput, network setup, memory,
    /// pod-to-pod TCP throughput against a raw veth pair (needs iperf3).
    Pods {
        /// Batch sizes (pods created at once).
        #[arg(long, value_delimiter = ',', default_value = "100,500")]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 100)]
        network_pods: usize,
    },
    /// The control loops: a large Deployment until bound, and pod readiness to EndpointSlices.
    Controllers {
        #[arg(long, default_value_t = 1000)]
        replicas: usize,
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// The service proxy (root): full and incremental syncs, connection rate, throughput.
    Proxy {
        /// Service counts for full syncs, ascending; the last is the large table.
        #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
        services: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Incremental samples.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Seconds per connection-rate run.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// MiB per throughput run.
        #[arg(long, default_value_t = 2048)]
        mib: usize,
    },
    /// Cluster DNS: kinet's server and Knot DNS under dnsperf, with 1k and 10k Services.
    Dns {
        /// Service counts, ascending.
        #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
        services: Vec<usize>,
        /// Seconds per dnsperf run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// CPU the server under test is pinned to.
        #[arg(long, default_value_t = 1)]
        server_cpu: usize,
        /// CPU dnsperf is pinned to.
        #[arg(long, default_value_t = 0)]
        client_cpu: usize,
        /// Internal: serve DNS from the API at this URL (the benchmark's child process).
        #[arg(long, hide = true)]
        serve_api: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    // The shim blocks signals for the whole process, so it runs before any runtime thread
    // exists (and needs none).
    if let Command::Shim(shim) = command {
        return kinet_agent::pods::shim::run(&shim.into());
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
        } => {
            up::up(up::UpArgs {
                name,
                nodes,
                config,
                upstream_dns,
                backend,
            })
            .await
        }
        Command::Down { name, keep_data } => down::down(&name, keep_data).await,
        Command::Status { name } => status::status(name.as_deref()).await,
        Command::Images => {
            images::images();
            Ok(())
        }
        Command::Kubeconfig { name } => status::kubeconfig(&name),
        Command::Serve { name } => serve::serve(&name).await,
        Command::Agent { name, node } => agent::agent(&name, &node).await,
        Command::ImageRun { image, args } => images::image_run(&image, &args).await,
        Command::Pause {
            hostname,
            hosts,
            resolv,
            service_account,
        } => kinet_agent::pods::pause::run(&kinet_agent::pods::pause::PauseArgs {
            hostname,
            hosts,
            resolv,
            service_account,
        }),
        Command::Shim(_) => unreachable!("the shim runs without a runtime"),
        Command::Node {
            what:
                NodeCommand::Exec {
                    name,
                    node,
                    command,
                },
        } => {
            let code = status::node_exec(&name, &node, &command)?;
            std::process::exit(code)
        }
        Command::External {
            what: ExternalCommand::Exec { name, command },
        } => {
            let code = external::exec(&name, &command)?;
            std::process::exit(code)
        }
        Command::Proxy {
            what:
                ProxyCommand::Rules {
                    name,
                    node,
                    service,
                },
        } => proxy_cmd::rules(&name, node.as_deref(), &service),
        Command::Bench {
            what:
                BenchCommand::Api {
                    objects,
                    clients,
                    watchers,
                    watch_events,
                },
        } => {
            bench::api::run(bench::api::Options {
                objects,
                clients,
                watchers,
                watch_events,
            })
            .await
        }
        Command::Bench {
            what:
                BenchCommand::Proxy {
                    services,
                    endpoints,
                    samples,
                    seconds,
                    mib,
                },
        } => {
            bench::proxy::run_bench(bench::proxy::Options {
                services,
                endpoints,
                samples,
                seconds,
                mib,
            })
            .await
        }
        Command::Bench {
            what:
                BenchCommand::Pods {
                    batches,
                    network_pods,
                },
        } => {
            bench::pods::run(bench::pods::Options {
                batches,
                network_pods,
            })
            .await
        }
        Command::Bench {
            what:
                BenchCommand::Controllers {
                    replicas,
                    services,
                    samples,
                },
        } => {
            bench::controllers::run(bench::controllers::Options {
                replicas,
                services,
                samples,
            })
            .await
        }
        Command::Bench {
            what:
                BenchCommand::Dns {
                    services,
                    seconds,
                    server_cpu,
                    client_cpu,
                    serve_api,
                },
        } => match serve_api {
            Some(url) => bench::dns::serve_child(&url).await,
            None => {
                bench::dns::run(bench::dns::Options {
                    services,
                    seconds,
                    server_cpu,
                    client_cpu,
                })
                .await
            }
        },
    }
}
