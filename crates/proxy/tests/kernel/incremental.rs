//! The proxy's own path ends in the same kernel state as whole loads and repairs: for a
//! sequence of changes (endpoints come and go, services appear and vanish, affinity,
//! NodePorts, UDP, no-endpoint services) the `Renderer`'s updates are applied in one
//! namespace, the whole ruleset is loaded afresh in a second and repaired from the previous
//! step's table in a third; the three `nft list table` outputs must agree after every
//! step, and a resync of each finds nothing to change.

use kinet_proxy::{Applier, ApplyOutcome};
use kinet_proxy_rules::render_with_ids;

use crate::objects::{config, node, steps, Proxy};
use crate::support::{root, sorted_lines, Netns};

#[test]
fn differences_reach_the_same_state_as_whole_loads_and_repairs() {
    if !root() {
        return;
    }
    let inc_ns = Netns::new("inc");
    let whole_ns = Netns::new("whole");
    let rep_ns = Netns::new("rep");
    let mut inc = Proxy::new(&inc_ns);
    let mut whole = Applier::new(whole_ns.path(), "kinet");
    let mut rep = Applier::new(rep_ns.path(), "kinet");
    for (i, (svcs, slices)) in steps().iter().enumerate() {
        let outcome = inc.load(svcs, slices);
        let ApplyOutcome::Applied { full, .. } = outcome else {
            panic!("step {i}: nothing applied");
        };
        assert_eq!(
            full,
            i == 0,
            "step {i}: only the first load reads the table"
        );
        // Endpoint groups keep the numbers the proxy's renderer gave them.
        let ids = inc.renderer.group_ids();
        let rs = render_with_ids(svcs, slices, &node(), &config(), ids);
        whole.delete().unwrap();
        whole.reconcile(&rs).unwrap();
        rep.reconcile(&rs).unwrap();
        let a = sorted_lines(&inc.applier.list().unwrap().unwrap());
        let b = sorted_lines(&whole.list().unwrap().unwrap());
        let c = sorted_lines(&rep.list().unwrap().unwrap());
        assert_eq!(a, b, "step {i}: incremental and whole listings differ");
        assert_eq!(c, b, "step {i}: repaired and whole listings differ");
        for (applier, who) in [(&mut inc.applier, "incremental"), (&mut rep, "repaired")] {
            let again = applier.reconcile(&rs).unwrap();
            assert!(
                matches!(again, ApplyOutcome::Applied { changes: 0, .. }),
                "step {i}: resync of the {who} table sent {again:?}"
            );
        }
    }
}
