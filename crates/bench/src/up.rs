//! `kinet bench up`: how long `kinet up` takes until the cluster is usable (it returns only
//! once the nodes are Ready, the add-ons Available and cluster DNS answers from a node), and
//! how long `kinet down` takes, for each node count.

use std::time::Instant;

use anyhow::Result;

use super::cluster::BenchCluster;
use super::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct Options {
    /// Node counts, e.g. 1 and 3.
    pub nodes: Vec<usize>,
    /// Clusters made per node count.
    pub runs: usize,
}

pub fn run(opts: Options) -> Result<()> {
    println!(
        "kinet up until usable (DNS answering from a node), then kinet down; {} runs each:",
        opts.runs
    );
    for &n in &opts.nodes {
        let mut up = Samples::default();
        let mut down = Samples::default();
        for _ in 0..opts.runs {
            let start = Instant::now();
            let mut c = BenchCluster::up(n)?;
            up.push(start.elapsed());
            let start = Instant::now();
            c.down()?;
            down.push(start.elapsed());
        }
        println!(
            "  {n} node(s): up p50 {} ms, max {} ms; down p50 {} ms",
            ms(up.p50()),
            ms(up.quantile(1.0)),
            ms(down.p50())
        );
    }
    Ok(())
}
