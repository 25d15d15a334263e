//! The kinet command: create, inspect and delete local clusters.

mod agent;
mod bench;
mod down;
mod images;
mod nodes;
mod probe;
mod process;
mod progress;
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
    /// The control loops: a large Deployment until bound, and pod readiness to EndpointSlices.
    Controllers {
        #[arg(long, default_value_t = 1000)]
        replicas: usize,
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up {
            name,
            nodes,
            config,
        } => {
            up::up(up::UpArgs {
                name,
                nodes,
                config,
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
    }
}
