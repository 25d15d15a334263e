//! `kinet bench policy`: the NetworkPolicy table in a node namespace of its own (root), as the
//! agent's enforcer programs it (compile, plan, one nfnetlink transaction).
//!
//! - Programming: with N pods (half on the benchmark's node) and P policies, the time from a
//!   changed cluster view to the kernel having committed it, p50/p99: a policy created (the
//!   policy's sets, counter and chain added in place) and a pod label changed (set elements
//!   only). The API watch delay is not in it.
//! - Connection rate: new TCP connections per second from a client pod to a server pod with
//!   no policy, and with P policies loaded, one of them isolating the server and allowing the
//!   client (the verdict maps and sets should keep it flat).
//! - Resync: the periodic check of a table no one touched (read back, compared, nothing
//!   sent) against a whole reload.
//! - Throughput: one TCP stream through that allowing policy against no policy.
//!
//! Everything lives in namespaces `kinet-b<pid>-*`, removed at the end (also on error).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kinet_policy::{
    compile, plan, Cluster, Compiler, ContainerPort, Namespace, Pod, Proto, Update,
};
use kinet_proxy::netlink::NftSocket;
use serde_json::json;

use super::proxy::{
    client_and_server, connect_rate, serve, throughput, Spaces, StopOnDrop, CLIENT_IP, SERVER_IP,
};
use super::stats::{ms, ratio, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    pub pods: usize,
    pub policies: usize,
    pub samples: usize,
    /// Seconds per connection-rate run.
    pub seconds: f64,
    /// MiB per throughput run.
    pub mib: usize,
}

const NODE: &str = "bench-node";
const NAMESPACES: usize = 10;
/// Rounds of no policy against every policy, alternating; the medians are compared.
const ROUNDS: usize = 5;
/// Time given to the kernel after a table load before traffic is measured.
const SETTLE: Duration = Duration::from_secs(2);

fn np(ns: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .expect("static policy")
}

fn labels(pairs: &[(&str, String)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn pod(ns: &str, name: &str, ip: Ipv4Addr, node: &str, l: &[(&str, String)]) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        labels: labels(l),
        ip,
        node: node.into(),
        ports: vec![ContainerPort {
            name: "http".into(),
            port: 8080,
            proto: Proto::Tcp,
        }],
    }
}

/// Policy `k`: pods `app=app-k` accept one tier of their namespace and a neighbouring
/// namespace, on 8080 and the named port.
fn policy(k: usize) -> NetworkPolicy {
    np(
        &format!("bench-{}", k % NAMESPACES),
        &format!("np-{k}"),
        json!({"podSelector": {"matchLabels": {"app": format!("app-{k}")}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": format!("t-{}", k % 3)}}},
                                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": format!("bench-{}", (k + 1) % NAMESPACES)}}}],
                            "ports": [{"port": 8080}, {"port": "http"}]}]}),
    )
}

/// `pods` pods (client and server on this node, half the rest too) and `policies` policies;
/// with any policy, the server is isolated and allows the client.
fn model(pods: usize, policies: usize) -> Cluster {
    let mut c = Cluster::new();
    for n in 0..NAMESPACES {
        let name = format!("bench-{n}");
        c.set_namespace(Namespace {
            labels: labels(&[("kubernetes.io/metadata.name", name.clone())]),
            name,
        });
    }
    let ip = |s: &str| s.parse().expect("static address");
    c.set_pod(pod(
        "bench-0",
        "client",
        ip(CLIENT_IP),
        NODE,
        &[("role", "client".into())],
    ));
    c.set_pod(pod(
        "bench-0",
        "server",
        ip(SERVER_IP),
        NODE,
        &[("app", "server".into())],
    ));
    for i in 0..pods.saturating_sub(2) {
        // Runs of ten per node, so each node holds pods of every namespace, app and tier.
        let node = if (i / 10) % 2 == 0 {
            NODE
        } else {
            "other-node"
        };
        let addr = Ipv4Addr::new(10, 245, (i / 250) as u8, 1 + (i % 250) as u8);
        let app = format!("app-{}", i % policies.max(1));
        let tier = format!("t-{}", i % 3);
        let l = [("app", app), ("tier", tier)];
        c.set_pod(pod(
            &format!("bench-{}", i % NAMESPACES),
            &format!("p-{i}"),
            addr,
            node,
            &l,
        ));
    }
    if policies > 0 {
        let server = np(
            "bench-0",
            "server-from-client",
            json!({"podSelector": {"matchLabels": {"app": "server"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": 8080}]}]}),
        );
        c.set_policy(&server).expect("static policy");
    }
    for k in 1..policies {
        c.set_policy(&policy(k)).expect("static policy");
    }
    c
}

/// The `s`-th pod (cycling) of `list` in namespace `ns`: a policy and its peers live there.
fn pick(list: &[(String, String)], ns: &str, s: usize) -> Result<(String, String)> {
    let of_ns: Vec<&(String, String)> = list.iter().filter(|(n, _)| n == ns).collect();
    match of_ns.len() {
        0 => bail!(
            "no pod of namespace {ns} on one of the nodes: too few --pods for each of the \
             {NAMESPACES} namespaces to have pods on both"
        ),
        n => Ok(of_ns[s % n].clone()),
    }
}

/// Syncs the compiler (the whole table when `loaded` is false) and commits: the time of
/// compile + plan, and of the kernel transaction.
fn program(
    sock: &mut NftSocket,
    loaded: &mut bool,
    comp: &mut Compiler,
) -> Result<(Duration, Duration)> {
    let start = Instant::now();
    let update = if *loaded {
        comp.sync()
    } else {
        Some(Update::Load(comp.ruleset()))
    };
    let Some(update) = update else {
        bail!("nothing changed");
    };
    if *loaded && matches!(update, Update::Load(_)) {
        bail!("a change replaced the whole table");
    }
    let planned = start.elapsed();
    let start = Instant::now();
    sock.apply_policy(&update)?;
    let kernel = start.elapsed();
    *loaded = true;
    Ok((planned, kernel))
}

/// The enforcer's periodic resync of a table no one touched: read back and compared
/// (nothing sent), against the whole reload it did before, in the same run.
fn resync(sock: &mut NftSocket, desired: &kinet_policy::Ruleset) -> Result<()> {
    let (mut verify, mut reload) = (Samples::default(), Samples::default());
    for _ in 0..3 {
        let start = Instant::now();
        if let Some(sent) = sock.resync_policy(desired)? {
            bail!("the resync of an untouched table sent {sent:?}");
        }
        verify.push(start.elapsed());
        let start = Instant::now();
        sock.apply_policy(&Update::Load(desired.clone()))?;
        reload.push(start.elapsed());
    }
    println!();
    println!(
        "Resync of the untouched table, median of 3: read back and compared, nothing sent: {} ms; \
         whole reload (the resync before): {} ms; {}× faster.",
        ms(verify.p50()),
        ms(reload.p50()),
        ratio(reload.p50(), verify.p50())
    );
    Ok(())
}

/// The agent's resident memory, in KiB.
fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    kib.ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))
}

/// What 1,000 more policies cost the enforcer: the API objects (as its reflector holds
/// them) and the compiler's state once they are synced, each selecting pods as the first
/// `policies` do. Measured as this process's resident growth.
fn memory_per_thousand(mut comp: Compiler, policies: usize) -> Result<()> {
    let before = rss_kib()?;
    let objects: Vec<NetworkPolicy> = (0..1000)
        .map(|k| {
            let mut np = policy(k % policies.max(1));
            np.metadata.name = Some(format!("more-{k}"));
            np
        })
        .collect();
    for np in &objects {
        comp.set_policy(np)?;
    }
    // Kept until measured, as the enforcer keeps its last update until committed.
    let _update = comp.sync();
    let after = rss_kib()?;
    println!();
    println!(
        "Enforcer memory per 1,000 policies (API objects + compiled state, resident growth): {:.1} MiB.",
        after.saturating_sub(before) as f64 / 1024.0
    );
    Ok(())
}

/// Compile + plan, kernel, and total samples of one kind of change.
#[derive(Default)]
struct Figures([Samples; 3]);

impl Figures {
    fn push(&mut self, (planned, kernel): (Duration, Duration)) {
        self.0[0].push(planned);
        self.0[1].push(kernel);
        self.0[2].push(planned + kernel);
    }

    fn row(&self, what: &str) -> String {
        let cell = |s: &Samples| format!("{} / {}", ms(s.p50()), ms(s.p99()));
        format!(
            "| {what} | {} | {} | {} |",
            cell(&self.0[0]),
            cell(&self.0[1]),
            cell(&self.0[2])
        )
    }
}

pub async fn run_bench(opts: Options) -> Result<()> {
    tokio::task::spawn_blocking(move || bench(opts)).await?
}

fn bench(opts: Options) -> Result<()> {
    let mut spaces = Spaces(Vec::new());
    let [node_ns, client, server] = client_and_server(&mut spaces)?;
    let mut sock = NftSocket::open_in(&node_ns.path())?;

    println!(
        "# kinet bench policy ({} pods, {} policies)",
        opts.pods, opts.policies
    );
    let mut comp = Compiler::new(model(opts.pods, opts.policies), NODE, &[]);
    let mut loaded = false;
    let (planned, kernel) = program(&mut sock, &mut loaded, &mut comp)?;
    let rs = comp.ruleset();
    println!();
    println!(
        "Whole table: {} sets, {} chains, {} pod-map elements; first load: compile {} ms, kernel {} ms.",
        rs.sets.len(),
        rs.chains.len(),
        rs.maps.values().map(|m| m.len()).sum::<usize>(),
        ms(planned),
        ms(kernel)
    );
    let others = |local: bool| -> Vec<(String, String)> {
        comp.cluster()
            .pods()
            .filter(|p| p.name.starts_with("p-") && (p.node == NODE) == local)
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect()
    };
    let (local, remote) = (others(true), others(false));
    let (mut created, mut relabelled) = (Figures::default(), Figures::default());
    // The baseline, in the same run: the same change compiled from nothing and diffed whole,
    // as the enforcer did before it compiled incrementally.
    let (mut created_full, mut relabelled_full) = (Samples::default(), Samples::default());
    let mut full = compile(comp.cluster(), NODE, &[]);
    let mut baseline = |comp: &Compiler, into: &mut Samples| {
        let start = Instant::now();
        let now = compile(comp.cluster(), NODE, &[]);
        std::hint::black_box(plan(Some(&full), &now));
        into.push(start.elapsed());
        full = now;
    };
    for s in 0..opts.samples {
        let k = opts.policies + s;
        let policy_k = policy(k);
        let ns_k = policy_k.metadata.namespace.clone().expect("namespaced");
        comp.set_policy(&policy_k)?;
        // The new policy selects a pod of this node: new sets, counter and chain.
        let (ns, name) = pick(&local, &ns_k, s)?;
        let mut p = comp.cluster().pod(&ns, &name).expect("pod").clone();
        p.labels.insert("app".into(), format!("app-{k}"));
        comp.set_pod(p);
        baseline(&comp, &mut created_full);
        created.push(program(&mut sock, &mut loaded, &mut comp)?);
        // A peer on the other node moves in or out of the new policy's tier: set elements only.
        let (ns, name) = pick(&remote, &ns_k, s)?;
        let mut q = comp.cluster().pod(&ns, &name).expect("pod").clone();
        let peer_tier = format!("t-{}", k % 3);
        let tier = match q.labels["tier"] == peer_tier {
            true => format!("t-{}", (k + 1) % 3),
            false => peer_tier,
        };
        q.labels.insert("tier".into(), tier);
        comp.set_pod(q);
        baseline(&comp, &mut relabelled_full);
        relabelled.push(program(&mut sock, &mut loaded, &mut comp)?);
    }
    println!();
    println!(
        "Change → committed in the kernel (compile + plan + one transaction), {} samples:",
        opts.samples
    );
    println!();
    println!("| change | compile + plan, p50 / p99 (ms) | kernel transaction | total |");
    println!("|---|---:|---:|---:|");
    println!(
        "{}",
        created.row("policy created (its sets, counter and chain added)")
    );
    println!("{}", relabelled.row("pod label changed (set elements)"));
    println!();
    println!("Baseline in the same run: the same changes compiled from nothing and diffed whole:");
    println!();
    println!("| change | full compile + plan, p50 / p99 (ms) | incremental is faster, p50 / p99 |");
    println!("|---|---:|---:|");
    for (what, full, incremental) in [
        ("policy created", &created_full, &created),
        ("pod label changed", &relabelled_full, &relabelled),
    ] {
        let (inc50, inc99) = (incremental.0[0].p50(), incremental.0[0].p99());
        println!(
            "| {what} | {} / {} | {}× / {}× |",
            ms(full.p50()),
            ms(full.p99()),
            ratio(full.p50(), inc50),
            ratio(full.p99(), inc99)
        );
    }

    resync(&mut sock, &comp.ruleset())?;

    let all = comp.cluster().clone();
    memory_per_thousand(comp, opts.policies)?;

    // Traffic: a server pod; no policy, then all of them.
    let stop = Arc::new(AtomicBool::new(false));
    let listener = server.run(|| TcpListener::bind("0.0.0.0:8080"))??;
    let stopper = StopOnDrop(stop.clone());
    let stop2 = stop.clone();
    std::thread::spawn(move || serve(listener, stop2));
    let none = model(opts.pods, 0);
    let to: SocketAddr = format!("{SERVER_IP}:8080").parse()?;
    let secs = opts.seconds;
    let mut load = |cluster: &Cluster| -> Result<()> {
        sock.apply_policy(&Update::Load(compile(cluster, NODE, &[])))?;
        // The kernel goes on working for a second or two after a large load returns; a stream
        // measured in that time measured the load, not the rules (0.78 against 1.08 after a wait).
        std::thread::sleep(SETTLE);
        Ok(())
    };
    let (mut r0, mut r1, mut t0, mut t1) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let bytes = opts.mib << 20;
    for _ in 0..ROUNDS {
        load(&none)?;
        r0.push(client.run(move || connect_rate(to, secs))??);
        t0.push(client.run(move || throughput(to, bytes))??);
        load(&all)?;
        r1.push(client.run(move || connect_rate(to, secs))??);
        t1.push(client.run(move || throughput(to, bytes))??);
    }
    let rounds: Vec<String> = t0
        .iter()
        .zip(&t1)
        .map(|(a, b)| format!("{a:.1}/{b:.1}"))
        .collect();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (r0, r1, t0, t1) = (
        median(&mut r0),
        median(&mut r1),
        median(&mut t0),
        median(&mut t1),
    );
    let n = opts.policies;
    println!();
    println!(
        "Client pod → server pod, median of {ROUNDS} alternating rounds, each {} s after its table loaded (one client thread, {secs} s; one stream of {} MiB):",
        SETTLE.as_secs(),
        opts.mib
    );
    println!();
    println!("| policies | conn/s | vs none | Gbit/s | vs none |");
    println!("|---|---:|---:|---:|---:|");
    println!("| none | {r0:.0} | 1.00 | {t0:.2} | 1.00 |");
    println!(
        "| {n}, one allowing the client | {r1:.0} | {:.2} | {t1:.2} | {:.2} |",
        r1 / r0,
        t1 / t0
    );
    println!();
    println!(
        "Streams by round, none/{n} (Gbit/s): {}.",
        rounds.join(", ")
    );
    drop(stopper);
    sock.apply_policy(&Update::Delete(kinet_policy::TABLE.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picking_from_a_namespace_without_pods_says_why() {
        let pods = [("bench-1".to_string(), "p-1".to_string())];
        assert_eq!(pick(&pods, "bench-1", 3).unwrap().1, "p-1");
        let e = pick(&pods, "bench-2", 0).unwrap_err().to_string();
        assert!(e.contains("too few --pods"), "{e}");
    }
}
