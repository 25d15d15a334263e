//! Leader election: two candidates on one API server. One leads, the other follows; the
//! leader's death hands the Lease over, and a leader that sees another holder stops what it led.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kinet_controllers::leaderelection::{Elector, Role, Timing, CONTROLLER_MANAGER_LEASE};
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;

use crate::support::wait_for;

/// Short, so the test is quick; the ratios are kube-controller-manager's (lease > renew deadline
/// > retry period), which is what keeps two leaders from overlapping.
const QUICK: Timing = Timing {
    lease_duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    retry_period: Duration::from_millis(250),
};

/// How many candidates lead at once, and the most that ever did.
#[derive(Default)]
struct Leading {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// Held while a candidate leads.
struct Led(Arc<Leading>);

impl Led {
    fn start(leading: &Arc<Leading>) -> Led {
        let n = leading.now.fetch_add(1, Ordering::SeqCst) + 1;
        leading.most.fetch_max(n, Ordering::SeqCst);
        Led(leading.clone())
    }
}

impl Drop for Led {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn candidate(
    client: &kube::Client,
    identity: &str,
    leading: &Arc<Leading>,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<Role>) {
    let (elector, role) = Elector::new(
        client.clone(),
        "kube-system",
        CONTROLLER_MANAGER_LEASE,
        identity,
        QUICK,
    );
    let leading = leading.clone();
    let task = tokio::spawn(elector.run(move || Led::start(&leading)));
    (task, role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_candidates_leads_and_the_other_takes_over() -> anyhow::Result<()> {
    let api = kinet_testkit::TestApi::start().await?;
    let client = api.client()?;
    let leading = Arc::new(Leading::default());
    let names = ["server-a", "server-b"];
    let (mut tasks, roles): (Vec<_>, Vec<_>) = names
        .iter()
        .map(|n| candidate(&client, n, &leading))
        .unzip();
    let role = |i: usize| roles[i].borrow().clone();

    wait_for("one leader and one follower", 30, || async {
        let both = [role(0), role(1)];
        Ok(both.contains(&Role::Leader) && both.iter().any(|r| matches!(r, Role::Follower { .. })))
    })
    .await?;
    let leader = usize::from(role(1) == Role::Leader);
    let follower = 1 - leader;
    assert_eq!(
        role(follower),
        Role::Follower {
            holder: names[leader].into()
        }
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let spec = leases.get(CONTROLLER_MANAGER_LEASE).await?.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(names[leader]));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    let transitions = spec.lease_transitions.unwrap_or(0);

    // The leader dies without releasing the Lease: the follower leads once it runs out.
    tasks[leader].abort();
    wait_for("the follower to take over", 30, || async {
        Ok(role(follower) == Role::Leader)
    })
    .await?;
    let spec = leases.get(CONTROLLER_MANAGER_LEASE).await?.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(names[follower]));
    assert_eq!(spec.lease_transitions, Some(transitions + 1));

    // Another holder takes the Lease (as a server that won a partition would): the leader sees
    // it at its next renewal and stops what it led.
    let mut lease = leases.get(CONTROLLER_MANAGER_LEASE).await?;
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    leases
        .replace(CONTROLLER_MANAGER_LEASE, &PostParams::default(), &lease)
        .await?;
    wait_for("the leader to stop leading", 30, || async {
        Ok(leading.now.load(Ordering::SeqCst) == 0)
    })
    .await?;
    assert_ne!(role(follower), Role::Leader);
    // Once the intruder stops renewing, the candidate leads again.
    wait_for("leading again", 30, || async {
        Ok(role(follower) == Role::Leader)
    })
    .await?;

    assert_eq!(
        leading.most.load(Ordering::SeqCst),
        1,
        "two candidates led at once"
    );
    tasks[follower].abort();
    for t in tasks.drain(..) {
        let _ = t.await;
    }
    assert_eq!(
        leading.now.load(Ordering::SeqCst),
        0,
        "an aborted candidate still leads"
    );
    Ok(())
}
