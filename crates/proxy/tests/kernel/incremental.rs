//! The proxy's own path ends in the same kernel state as full loads: for a sequence of
//! changes (endpoints come and go, services appear and vanish, affinity, NodePorts, UDP,
//! no-endpoint services) the `Renderer`'s updates are applied as differences in one
//! namespace and the whole ruleset in another, and the two `nft list table` outputs must
//! agree after every step.

use kinet_proxy::{render, Applier, ApplyOutcome, Renderer};

use crate::objects::{config, node, steps};
use crate::support::{root, sorted_lines, Netns};

#[test]
fn differences_reach_the_same_state_as_full_loads() {
    if !root() {
        return;
    }
    let inc_ns = Netns::new("inc");
    let full_ns = Netns::new("full");
    let mut inc = Applier::new(inc_ns.path(), "kinet");
    let mut full = Applier::new(full_ns.path(), "kinet");
    let mut renderer = Renderer::new(&node(), &config());
    for (i, (svcs, slices)) in steps().iter().enumerate() {
        let synced = renderer.sync(svcs, slices);
        let outcome = inc.apply_synced(&renderer, synced).unwrap();
        let ApplyOutcome::Applied { full: was_full, .. } = outcome else {
            panic!("step {i}: nothing applied");
        };
        assert_eq!(was_full, i == 0, "step {i}: only the first load is full");
        full.force_full_sync();
        full.apply(&render(svcs, slices, &node(), &config()))
            .unwrap();
        let a = sorted_lines(&inc.list().unwrap().unwrap());
        let b = sorted_lines(&full.list().unwrap().unwrap());
        assert_eq!(a, b, "step {i}: incremental and full listings differ");
    }
}
