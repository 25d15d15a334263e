//! What the node's Ready condition says, from the state of what a pod needs from the node:
//! its pod network (`cbr0`, the overlay and routes to the other nodes) and the service
//! proxy's rules. Pure data; the agent's tasks update it and the heartbeat posts it.

/// The state of one thing the node needs before it is Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Being set up.
    Pending,
    /// In place.
    Ok,
    /// Failed, and why (retried).
    Failed(String),
}

/// What the Ready condition depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The pod network.
    pub network: Check,
    /// The service proxy's rules.
    pub proxy: Check,
}

/// A node condition's status, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// "True" or "False".
    pub status: &'static str,
    /// The kubelet's reason: `KubeletReady` or `KubeletNotReady`.
    pub reason: &'static str,
    /// What is wrong, in the kubelet's words where it has them.
    pub message: String,
}

impl Readiness {
    /// Nothing set up yet.
    pub fn starting() -> Readiness {
        Readiness {
            network: Check::Pending,
            proxy: Check::Pending,
        }
    }

    /// The Ready condition, worded as the kubelet's `ReadyCondition` setter words it: every
    /// unmet requirement listed (aggregated as `[a, b]` when there are several).
    pub fn verdict(&self) -> Verdict {
        let mut errors = Vec::new();
        match &self.network {
            Check::Ok => {}
            Check::Pending => errors.push(network_error("cni plugin not initialized")),
            Check::Failed(why) => errors.push(network_error(why)),
        }
        match &self.proxy {
            Check::Ok => {}
            Check::Pending => errors.push("service proxy not ready: rules not synced yet".into()),
            Check::Failed(why) => errors.push(format!("service proxy not ready: {why}")),
        }
        match errors.len() {
            0 => Verdict {
                status: "True",
                reason: "KubeletReady",
                message: "kubelet is posting ready status".into(),
            },
            n => Verdict {
                status: "False",
                reason: "KubeletNotReady",
                message: if n == 1 {
                    errors.remove(0)
                } else {
                    format!("[{}]", errors.join(", "))
                },
            },
        }
    }
}

impl Check {
    /// From a sync loop's last outcome (the proxy's): none yet, OK, or why it failed.
    pub fn from_outcome(last: &Option<Result<(), String>>) -> Check {
        match last {
            None => Check::Pending,
            Some(Ok(())) => Check::Ok,
            Some(Err(why)) => Check::Failed(why.clone()),
        }
    }
}

/// Carries a sync loop's outcomes into one part of the readiness until the loop is gone.
pub async fn follow(
    mut outcomes: tokio::sync::watch::Receiver<Option<Result<(), String>>>,
    tx: tokio::sync::watch::Sender<Readiness>,
    part: fn(&mut Readiness) -> &mut Check,
) {
    loop {
        let now = Check::from_outcome(&outcomes.borrow_and_update());
        report(&tx, part, now);
        if outcomes.changed().await.is_err() {
            return;
        }
    }
}

/// Sets one part of the readiness that `tx` publishes, waking the heartbeat only when it
/// changed (a failure retried with the same error is not news).
pub fn report(
    tx: &tokio::sync::watch::Sender<Readiness>,
    part: fn(&mut Readiness) -> &mut Check,
    now: Check,
) {
    tx.send_if_modified(|r| {
        let slot = part(r);
        let changed = *slot != now;
        *slot = now;
        changed
    });
}

fn network_error(why: &str) -> String {
    format!(
        "container runtime network not ready: NetworkReady=false \
         reason:NetworkPluginNotReady message:Network plugin returns error: {why}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_network_and_proxy_are_in_place() {
        let mut r = Readiness::starting();
        let v = r.verdict();
        assert_eq!((v.status, v.reason), ("False", "KubeletNotReady"));
        assert_eq!(
            v.message,
            "[container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
             message:Network plugin returns error: cni plugin not initialized, \
             service proxy not ready: rules not synced yet]"
        );
        r.network = Check::Ok;
        assert_eq!(
            r.verdict().message,
            "service proxy not ready: rules not synced yet"
        );
        r.proxy = Check::Ok;
        let v = r.verdict();
        assert_eq!(
            (v.status, v.reason, v.message.as_str()),
            ("True", "KubeletReady", "kubelet is posting ready status")
        );
    }

    #[test]
    fn sync_outcomes_map_to_checks() {
        assert_eq!(Check::from_outcome(&None), Check::Pending);
        assert_eq!(Check::from_outcome(&Some(Ok(()))), Check::Ok);
        assert_eq!(
            Check::from_outcome(&Some(Err("nft: busy".into()))),
            Check::Failed("nft: busy".into())
        );
    }

    #[test]
    fn a_failure_says_why() {
        let r = Readiness {
            network: Check::Ok,
            proxy: Check::Failed("running nft: No such file or directory (os error 2)".into()),
        };
        let v = r.verdict();
        assert_eq!(v.status, "False");
        assert_eq!(
            v.message,
            "service proxy not ready: running nft: No such file or directory (os error 2)"
        );
        let r = Readiness {
            network: Check::Failed("creating cbr0: permission denied".into()),
            proxy: Check::Ok,
        };
        assert!(r
            .verdict()
            .message
            .ends_with("Network plugin returns error: creating cbr0: permission denied"));
    }
}
