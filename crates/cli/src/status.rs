//! Printing what `kinet up` and `kinet status` report.

use anyhow::Result;
use kinet_cluster::status::{self, ClusterStatus, Readiness};
use kinet_cluster::supervisor::AgentStatus;
use kinet_cluster::up::UpReport;

/// `kinet status`: all clusters as a table, or one in detail.
pub async fn status(name: Option<&str>) -> Result<()> {
    match name {
        None => {
            let (home, clusters) = status::list()?;
            if clusters.is_empty() {
                println!("No clusters under {}.", home.display());
                return Ok(());
            }
            println!("{:<22}{:<10}{:<8}NODES", "NAME", "STATUS", "PORT");
            for c in clusters {
                let state = if c.running { "running" } else { "stopped" };
                match c.info {
                    Ok(info) => {
                        println!("{:<22}{state:<10}{:<8}{}", info.name, info.port, info.nodes)
                    }
                    Err(e) => println!("{:<22}{state:<10}?       ? ({e})", c.name),
                }
            }
        }
        Some(name) => print_cluster(&status::describe(name).await?),
    }
    Ok(())
}

fn print_cluster(s: &ClusterStatus) {
    let info = &s.info;
    println!("Name:        {}", info.name);
    println!("Created:     {}", info.created);
    println!("API server:  https://127.0.0.1:{}", info.port);
    for (server, pid) in &s.other_servers {
        let state = pid.map_or("not running".to_string(), |pid| {
            format!("running (pid {pid})")
        });
        println!("             {} {state}", server.url());
    }
    println!("Nodes:       {}", info.nodes);
    if let (Some(cidr), Some(u)) = (info.underlay, &s.underlay) {
        println!(
            "Underlay:    {cidr}, gateway {} on host link {}",
            u.gateway, u.host_link
        );
        for node in &u.nodes {
            println!(
                "  {:<32}{:<16}{}",
                node.name,
                node.ip.to_string(),
                agent_line(&node.agent)
            );
            if let Some(error) = &node.agent.last_error {
                println!("      last error: {error}");
            }
        }
    }
    if info.egress {
        println!(
            "Egress:      on (masqueraded on the host by nftables table ip {})",
            kinet_cluster::egress::host_table(&info.name)
        );
    } else {
        println!("Egress:      isolated (pods and nodes reach only the cluster)");
    }
    println!("Proxy mode:  {}", info.proxy_mode);
    if let Some(config) = &info.config {
        println!("Config:      {}", config.display());
    }
    println!("Kubeconfig:  {}", s.kubeconfig.display());
    match s.control_plane {
        Some(pid) => println!("Status:      running (pid {pid})"),
        None => println!("Status:      stopped"),
    }
    match &s.ready {
        Some(Readiness::Code(200)) => println!("Ready:       yes (/readyz 200)"),
        Some(Readiness::Code(code)) => println!("Ready:       no (/readyz {code})"),
        Some(Readiness::Unreachable(e)) => println!("Ready:       no ({e})"),
        None => {}
    }
    if !s.quarantined.is_empty() {
        println!(
            "Quarantined: {} object(s) that did not decode at start, taken out of the store:",
            s.quarantined.len()
        );
        for file in &s.quarantined {
            println!("               {}", file.display());
        }
    }
}

/// `agent running (pid 7, 2 restarts)`, `agent failed (killed by SIGKILL)`.
fn agent_line(a: &AgentStatus) -> String {
    let mut details = Vec::new();
    if let Some(pid) = a.pid {
        details.push(format!("pid {pid}"));
    }
    if a.restarts > 0 {
        details.push(format!("{} restarts", a.restarts));
    }
    if a.pid.is_none() {
        details.extend(a.last_exit.clone());
    }
    if details.is_empty() {
        format!("agent {}", a.state)
    } else {
        format!("agent {} ({})", a.state, details.join(", "))
    }
}

/// The end of `kinet up`: where the cluster is and how to use it.
pub fn print_up(r: &UpReport) {
    match r.already_running {
        Some(pid) => println!(
            "Cluster \"{}\" is already running (pid {pid}, https://127.0.0.1:{}).",
            r.name, r.port
        ),
        None => {
            println!();
            println!(
                "Cluster \"{}\" is up: API server at https://127.0.0.1:{}",
                r.name, r.port
            );
        }
    }
    println!("Kubeconfig: {}", r.kubeconfig.display());
    println!("Use it with:");
    println!();
    println!("  export KUBECONFIG={}", r.kubeconfig.display());
    println!("  kubectl get ns");
}
