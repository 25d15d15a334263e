//! The checks a process registers, by name, and running them for one endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use crate::report::{render, render_one, Outcome, Query, Report};

/// One run of a check: `Err` carries the reason it failed.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Which endpoints a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Every endpoint (kube-apiserver's `/livez`, `/readyz` and `/healthz`, CoreDNS's
    /// `/health` and `/ready`): failing means the process should be restarted.
    Live,
    /// The readiness endpoint only: failing means it should not be sent traffic yet.
    Ready,
}

/// The readiness endpoints' names: kube-apiserver's `/readyz` and CoreDNS's `/ready`.
const READINESS: [&str; 2] = ["readyz", "ready"];

impl Endpoint {
    fn serves(self, endpoint: &str) -> bool {
        self == Endpoint::Live || READINESS.contains(&endpoint)
    }
}

#[derive(Clone)]
struct Check {
    name: String,
    endpoint: Endpoint,
    run: CheckFn,
}

/// Named checks shared by everything in one process; cheap to clone.
#[derive(Clone, Default)]
pub struct Checks {
    checks: Arc<RwLock<Vec<Check>>>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.snapshot().into_iter().map(|c| c.name).collect();
        f.debug_struct("Checks").field("names", &names).finish()
    }
}

impl Checks {
    /// Registers `check` under `name`, replacing any check of that name.
    pub fn add<F>(&self, name: &str, endpoint: Endpoint, check: F)
    where
        F: Fn() -> CheckFuture + Send + Sync + 'static,
    {
        let mut checks = self.checks.write().unwrap_or_else(PoisonError::into_inner);
        checks.retain(|c| c.name != name);
        checks.push(Check {
            name: name.to_string(),
            endpoint,
            run: Arc::new(check),
        });
    }

    fn snapshot(&self) -> Vec<Check> {
        self.checks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Answers `/<endpoint>` (`check` is `None`) or `/<endpoint>/<check>`; `None` when there
    /// is no such check (the server's 404).
    pub async fn report(
        &self,
        endpoint: &str,
        check: Option<&str>,
        query: &Query,
    ) -> Option<Report> {
        let checks: Vec<Check> = self
            .snapshot()
            .into_iter()
            .filter(|c| c.endpoint.serves(endpoint))
            .collect();
        if let Some(name) = check {
            let c = checks.iter().find(|c| c.name == name)?;
            return Some(render_one(&(c.run)().await));
        }
        let mut outcomes = Vec::with_capacity(checks.len());
        for c in &checks {
            let outcome = if query.exclude.contains(&c.name) {
                Outcome::Excluded
            } else {
                match (c.run)().await {
                    Ok(()) => Outcome::Ok,
                    Err(reason) => Outcome::Failed(reason),
                }
            };
            outcomes.push((c.name.clone(), outcome));
        }
        let mut unmatched: Vec<String> = query
            .exclude
            .iter()
            .filter(|n| !checks.iter().any(|c| &c.name == *n))
            .cloned()
            .collect();
        unmatched.sort();
        unmatched.dedup();
        Some(render(endpoint, &outcomes, &unmatched, query.verbose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn ok() -> CheckFuture {
        Box::pin(async { Ok(()) })
    }

    #[test]
    fn a_failing_check_fails_the_endpoints_it_belongs_to() {
        let checks = Checks::default();
        let broken = Arc::new(AtomicBool::new(false));
        checks.add("ping", Endpoint::Live, ok);
        let flag = broken.clone();
        checks.add("informer-sync", Endpoint::Ready, move || {
            let broken = flag.load(Ordering::SeqCst);
            Box::pin(async move {
                if broken {
                    Err("not synced".to_string())
                } else {
                    Ok(())
                }
            })
        });
        let q = Query::default();
        assert_eq!(
            block_on(checks.report("readyz", None, &q)).unwrap().status,
            200
        );
        broken.store(true, Ordering::SeqCst);
        let r = block_on(checks.report("readyz", None, &q)).unwrap();
        assert_eq!(r.status, 500);
        assert!(r.body.contains("[-]informer-sync failed"), "{}", r.body);
        // Readiness-only checks do not fail liveness.
        let live = block_on(checks.report("livez", None, &q)).unwrap();
        assert_eq!(live.status, 200);
        let one = block_on(checks.report("readyz", Some("informer-sync"), &q)).unwrap();
        assert_eq!(one.body, "internal server error: not synced\n");
        assert_eq!(
            block_on(checks.report("livez", Some("informer-sync"), &q)),
            None
        );
        let excluded = Query {
            verbose: false,
            exclude: vec!["informer-sync".into()],
        };
        assert_eq!(
            block_on(checks.report("readyz", None, &excluded))
                .unwrap()
                .status,
            200
        );
    }

    #[test]
    fn coredns_ready_is_a_readiness_endpoint_and_health_a_liveness_one() {
        let checks = Checks::default();
        checks.add("udp", Endpoint::Live, ok);
        checks.add("informer-sync", Endpoint::Ready, || {
            Box::pin(async { Err("not synced".into()) })
        });
        let q = Query::default();
        assert_eq!(
            block_on(checks.report("ready", None, &q)).unwrap().status,
            500
        );
        assert_eq!(
            block_on(checks.report("health", None, &q)).unwrap().status,
            200
        );
        assert_eq!(
            block_on(checks.report("health", Some("informer-sync"), &q)),
            None
        );
    }

    #[test]
    fn adding_a_name_again_replaces_it() {
        let checks = Checks::default();
        checks.add("etcd", Endpoint::Live, || {
            Box::pin(async { Err("old".into()) })
        });
        checks.add("etcd", Endpoint::Live, ok);
        let r = block_on(checks.report(
            "healthz",
            None,
            &Query {
                verbose: true,
                exclude: vec![],
            },
        ));
        assert_eq!(r.unwrap().body, "[+]etcd ok\nhealthz check passed\n");
    }
}
