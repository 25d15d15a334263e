//! `kinet bench …`: the benchmarks' flags; kinet-bench runs them and prints their figures.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
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
        /// Where the servers keep their objects: sqlite, etcd (a private one on loopback, Debian's
        /// `etcd` on the PATH), or both (the table on SQLite, then etcd against it).
        #[arg(long, default_value = "sqlite")]
        datastore: kinet_bench::api::Datastores,
    },
    /// Pods on a real 3-node cluster: start latency and throughput, network setup, memory,
    /// pod-to-pod TCP throughput against a raw veth pair (needs iperf3).
    Pods {
        /// Batch sizes (pods created at once).
        #[arg(long, value_delimiter = ',', default_value = "100,500")]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 100)]
        network_pods: usize,
        /// Interleaved iperf3 rounds over every path (raw veth, VXLAN and host-gw pairs).
        #[arg(long, default_value_t = 3)]
        throughput_rounds: usize,
    },
    /// `kinet up` until the cluster is usable, and `kinet down`, per node count (root).
    Up {
        /// Node counts.
        #[arg(long, value_delimiter = ',', default_value = "1,3")]
        nodes: Vec<usize>,
        /// Clusters made per node count.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Node failures measured (a worker's agent killed), each on a 3-node cluster of
        /// its own; 0 skips them.
        #[arg(long, default_value_t = 3)]
        failures: usize,
        /// The failure clusters' --node-monitor-grace-period, in seconds.
        #[arg(long, default_value_t = 5)]
        grace_seconds: u64,
    },
    /// A host joining (root): `kinet join` until its Node is Ready and a pod on it serves,
    /// beside `kinet up --nodes 1` in the same run.
    Join {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Two API servers on one etcd (root; Debian's `etcd` on the PATH): kill -9 of the one the
    /// agent uses until the other answers and a new pod on the node is Ready, beside the same
    /// pod with both up.
    Failover {
        #[arg(long, default_value_t = 5)]
        runs: usize,
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
        /// The proxy modes measured side by side: nftables, iptables, or both.
        #[arg(long, default_value = "nftables", value_parser = proxy_modes)]
        mode: ProxyModes,
        /// Service counts of the live cluster for pod Ready → traffic, ascending.
        #[arg(long, value_delimiter = ',', default_values_t = [10, 10000])]
        ready_services: Vec<usize>,
        /// Pod Ready → traffic samples (scale-ups) per count; 0 skips the live cluster.
        #[arg(long, default_value_t = 20)]
        ready_samples: usize,
    },
    /// NetworkPolicy (root): change → enforced p50/p99, connection rate and throughput with
    /// policies against none.
    Policy {
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        #[arg(long, default_value_t = 500)]
        policies: usize,
        #[arg(long, default_value_t = 100)]
        samples: usize,
        /// Seconds per connection-rate run.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// MiB per throughput run.
        #[arg(long, default_value_t = 2048)]
        mib: usize,
    },
    /// Image layers: kinet's unpacker against `tar -x` of the same layer, plain and gzip.
    Unpack {
        /// Uncompressed layer size in MiB.
        #[arg(long, default_value_t = 50)]
        mib: usize,
        /// Extractions per tool and format.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Containers (root): image load against `tar -x`, container start through the runtime
    /// against a host process in the same sandbox, pod start, disk and memory per pod.
    Containers {
        /// The large image's synthetic layer, uncompressed, in MiB.
        #[arg(long, default_value_t = 50)]
        mib: usize,
        /// Imports and container starts per variant.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Pods started one at a time per image.
        #[arg(long, default_value_t = 20)]
        pods: usize,
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
    /// The ingress controller against nginx as a reverse proxy on the same route (needs wrk
    /// and nginx-light): requests/s and latency, change → served, memory per Ingress.
    Ingress {
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Ingress changes timed until served.
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// Ingresses created for the memory figure.
        #[arg(long, default_value_t = 1000)]
        ingresses: usize,
        /// CPU both proxies are pinned to.
        #[arg(long, default_value_t = 1)]
        proxy_cpu: usize,
        /// CPU wrk and the endpoints are pinned to.
        #[arg(long, default_value_t = 0)]
        client_cpu: usize,
        /// Internal: serve Ingresses from the API at this URL (the benchmark's child process).
        #[arg(long, hide = true)]
        serve_api: Option<String>,
        /// Internal: the child's HTTP and HTTPS ports.
        #[arg(long, hide = true, default_value = "0,0")]
        serve_ports: String,
    },
}

pub async fn run(what: BenchCommand) -> anyhow::Result<()> {
    match what {
        BenchCommand::Up {
            nodes,
            runs,
            failures,
            grace_seconds,
        } => {
            kinet_bench::up::run(kinet_bench::up::Options {
                nodes,
                runs,
                failures,
                grace: std::time::Duration::from_secs(grace_seconds),
            })
            .await
        }
        BenchCommand::Join { runs } => {
            kinet_bench::join::run(kinet_bench::join::Options { runs }).await
        }
        BenchCommand::Failover { runs } => {
            kinet_bench::failover::run(kinet_bench::failover::Options { runs }).await
        }
        BenchCommand::Api {
            objects,
            clients,
            watchers,
            watch_events,
            datastore,
        } => {
            kinet_bench::api::run(kinet_bench::api::Options {
                objects,
                clients,
                watchers,
                watch_events,
                datastore,
            })
            .await
        }
        BenchCommand::Proxy {
            services,
            endpoints,
            samples,
            seconds,
            mib,
            mode,
            ready_services,
            ready_samples,
        } => {
            kinet_bench::proxy::run_bench(kinet_bench::proxy::Options {
                services,
                endpoints,
                samples,
                seconds,
                mib,
                modes: mode.0,
                ready_services,
                ready_samples,
            })
            .await
        }
        BenchCommand::Policy {
            pods,
            policies,
            samples,
            seconds,
            mib,
        } => {
            kinet_bench::policy::run_bench(kinet_bench::policy::Options {
                pods,
                policies,
                samples,
                seconds,
                mib,
            })
            .await
        }
        BenchCommand::Pods {
            batches,
            network_pods,
            throughput_rounds,
        } => {
            kinet_bench::pods::run(kinet_bench::pods::Options {
                batches,
                network_pods,
                throughput_rounds,
            })
            .await
        }
        BenchCommand::Controllers {
            replicas,
            services,
            samples,
        } => {
            kinet_bench::controllers::run(kinet_bench::controllers::Options {
                replicas,
                services,
                samples,
            })
            .await
        }
        BenchCommand::Unpack { mib, runs } => {
            kinet_bench::unpack::run(kinet_bench::unpack::Options { mib, runs }).await
        }
        BenchCommand::Containers { mib, runs, pods } => {
            kinet_bench::containers::run(kinet_bench::containers::Options { mib, runs, pods }).await
        }
        BenchCommand::Dns {
            services,
            seconds,
            server_cpu,
            client_cpu,
            serve_api,
        } => match serve_api {
            Some(url) => kinet_bench::dns::serve_child(&url).await,
            None => {
                kinet_bench::dns::run(kinet_bench::dns::Options {
                    services,
                    seconds,
                    server_cpu,
                    client_cpu,
                })
                .await
            }
        },
        BenchCommand::Ingress {
            seconds,
            changes,
            ingresses,
            proxy_cpu,
            client_cpu,
            serve_api,
            serve_ports,
        } => match serve_api {
            Some(url) => kinet_bench::ingress::serve_child(&url, &serve_ports).await,
            None => {
                kinet_bench::ingress::run(kinet_bench::ingress::Options {
                    seconds,
                    changes,
                    ingresses,
                    proxy_cpu,
                    client_cpu,
                })
                .await
            }
        },
    }
}

/// `kinet bench proxy --mode`: one proxy mode, or `both`.
#[derive(Debug, Clone)]
pub struct ProxyModes(Vec<kinet_cluster::proxy_mode::ProxyMode>);

fn proxy_modes(s: &str) -> Result<ProxyModes, String> {
    use kinet_cluster::proxy_mode::ProxyMode;
    match s {
        "both" => Ok(ProxyModes(vec![ProxyMode::Nftables, ProxyMode::Iptables])),
        one => Ok(ProxyModes(vec![one.parse()?])),
    }
}
