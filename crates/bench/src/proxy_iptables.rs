//! `kinet bench proxy --mode iptables|both`: kube-proxy's iptables mode in the benchmark's
//! node namespace, measured as its proxy runs it (`kinet_proxy::IptablesApplier`):
//!
//! - whole load: the render of every Service, then one `iptables-restore --noflush` into
//!   an empty namespace; and the periodic resync (every 30 s), which reads the chains back
//!   with `iptables-save` and rewrites all of them;
//! - incremental: one EndpointSlice changes; the whole render again (the iptables renderer
//!   keeps no per-Service state), then one `iptables-restore` of the changed chains only,
//!   as kube-proxy's partial sync.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kinet_proxy::{ApplyOutcome, IptablesApplier, ProxyConfig};
use kinet_proxy_iptables::{render, Tables};

use super::proxy::{incremental, node, objects, Options, Syncer};
use super::stats::ms;

/// The chains of `svcs` as the node's proxy renders them.
pub(crate) fn tables(svcs: &[Service], slices: &[EndpointSlice], config: &ProxyConfig) -> Tables {
    render(svcs, slices, &node(), config)
}

/// Loads `desired` and returns the kernel time; `want_full` says which kind of load the
/// applier must have done.
fn apply(applier: &mut IptablesApplier, desired: Tables, want_full: bool) -> Result<Duration> {
    match applier.apply(desired)? {
        ApplyOutcome::Applied { duration, full, .. } if full == want_full => Ok(duration),
        other => bail!("expected a full load: {want_full}, got {other:?}"),
    }
}

/// Rewrites everything, as after a resync: the whole `desired` loaded.
pub(crate) fn load_whole(applier: &mut IptablesApplier, desired: Tables) -> Result<Duration> {
    applier.force_resync();
    apply(applier, desired, true)
}

/// The whole-load and incremental tables of the iptables mode, in the namespace at `netns`.
pub(crate) fn syncs(netns: &Path, config: &ProxyConfig, opts: &Options) -> Result<()> {
    let mut applier = IptablesApplier::new(netns);
    println!();
    println!("iptables mode (`iptables-restore --noflush`, iptables-nft backend):");
    println!();
    println!("| Services | rules | render (ms) | iptables-restore whole load (ms) | resync: iptables-save + whole restore (ms) | idle CPU, resync every 30 s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in &opts.services {
        applier.remove_all()?;
        let (svcs, slices) = objects(n, opts.endpoints);
        let start = Instant::now();
        let t = tables(&svcs, &slices, config);
        let render_took = start.elapsed();
        let rules = t.rule_count();
        let whole = load_whole(&mut applier, t.clone())?;
        // The proxy's resync: render again, read the kernel back, rewrite everything.
        let start = Instant::now();
        load_whole(&mut applier, tables(&svcs, &slices, config))?;
        let resync = start.elapsed();
        let idle = resync.as_secs_f64() / 30.0 * 100.0;
        println!(
            "| {n} | {rules} | {} | {} | {} | {idle:.3}% |",
            ms(render_took),
            ms(whole),
            ms(resync)
        );
    }
    let mut syncer = IptSyncer {
        applier: &mut applier,
        config,
    };
    incremental(
        &mut syncer,
        "iptables mode",
        [
            "render (all Services)",
            "diff + iptables-restore (changed chains)",
        ],
        opts,
    )?;
    applier.remove_all()?;
    Ok(())
}

/// The iptables proxy: every Service rendered again, then only the changed chains loaded.
struct IptSyncer<'a> {
    applier: &'a mut IptablesApplier,
    config: &'a ProxyConfig,
}

impl Syncer for IptSyncer<'_> {
    fn load(&mut self, svcs: &[Service], slices: &[EndpointSlice]) -> Result<()> {
        load_whole(self.applier, tables(svcs, slices, self.config)).map(drop)
    }

    fn sync(
        &mut self,
        svcs: &[Service],
        slices: &[EndpointSlice],
        _changed: usize,
    ) -> Result<(Duration, Duration)> {
        let start = Instant::now();
        let t = tables(svcs, slices, self.config);
        let rendered = start.elapsed();
        Ok((rendered, apply(self.applier, t, false)?))
    }
}
