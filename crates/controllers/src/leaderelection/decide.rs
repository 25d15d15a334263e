//! One round of client-go's `tryAcquireOrRenew`, as a pure function of the stored Lease, what
//! this candidate observed before and the clocks. A holder's lease counts as expired once the
//! record has not changed for `leaseDurationSeconds` of this candidate's own monotonic clock
//! (the observed time), so the holder's wall clock never decides.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// kube-controller-manager's defaults (`--leader-elect-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a holder's lease lasts without renewal (15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a renewal before it gives up leading (10 s).
    pub renew_deadline: Duration,
    /// The wait between attempts, both to acquire and to renew (2 s).
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The last record seen and when (this candidate's clock): client-go's `observedRecord` and
/// `observedTime`.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    record: Option<(LeaseSpec, Instant)>,
}

impl Observed {
    /// Remembers `spec`, restarting its clock only when it differs from the one seen before.
    pub(crate) fn see(&mut self, spec: &LeaseSpec, now: Instant) {
        match &self.record {
            Some((seen, _)) if seen == spec => {}
            _ => self.record = Some((spec.clone(), now)),
        }
    }

    /// The holder named by the last record seen.
    pub fn holder(&self) -> Option<&str> {
        self.record
            .as_ref()
            .and_then(|(s, _)| s.holder_identity.as_deref())
            .filter(|h| !h.is_empty())
    }

    /// Whether the last record seen is still within its lease duration at `now`.
    fn valid(&self, now: Instant) -> bool {
        self.record.as_ref().is_some_and(|(spec, at)| {
            let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
            *at + Duration::from_secs(secs) > now
        })
    }
}

/// What to do with the Lease in this round.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// No Lease exists: create this one.
    Create(LeaseSpec),
    /// Write this over the stored Lease (a compare-and-swap on its resourceVersion).
    Update(LeaseSpec),
    /// Another candidate holds an unexpired lease.
    Follow { holder: String },
}

/// Decides one round for `identity`, given the stored Lease's spec (`None`: there is none).
pub fn decide(
    identity: &str,
    stored: Option<&LeaseSpec>,
    observed: &mut Observed,
    timing: Timing,
    now: Instant,
    wall: Timestamp,
) -> Step {
    let time = Some(MicroTime(wall));
    let mine = LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(timing.lease_duration.as_secs() as i32),
        acquire_time: time.clone(),
        renew_time: time,
        lease_transitions: Some(0),
        ..Default::default()
    };
    let Some(stored) = stored else {
        return Step::Create(mine);
    };
    observed.see(stored, now);
    let leading = observed.holder() == Some(identity);
    if let Some(holder) = observed.holder() {
        if !leading && observed.valid(now) {
            return Step::Follow {
                holder: holder.to_string(),
            };
        }
    }
    let transitions = stored.lease_transitions.unwrap_or(0);
    Step::Update(match leading {
        // A renewal keeps when it was acquired and how often it changed hands.
        true => LeaseSpec {
            acquire_time: stored.acquire_time.clone(),
            lease_transitions: Some(transitions),
            ..mine
        },
        false => LeaseSpec {
            lease_transitions: Some(transitions + 1),
            ..mine
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    fn wall(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(wall(0))),
            renew_time: Some(MicroTime(wall(renewed))),
            lease_transitions: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn no_lease_is_created_naming_the_candidate() {
        let step = decide(
            "a",
            None,
            &mut Observed::default(),
            T,
            Instant::now(),
            wall(5),
        );
        let Step::Create(spec) = step else {
            panic!("{step:?}")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(wall(5))));
        assert_eq!(spec.renew_time, spec.acquire_time);
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn a_live_holder_is_followed_until_its_record_stops_changing_for_the_lease_duration() {
        let t0 = Instant::now();
        let mut seen = Observed::default();
        let follow = Step::Follow { holder: "b".into() };
        assert_eq!(
            decide("a", Some(&held_by("b", 0)), &mut seen, T, t0, wall(0)),
            follow
        );
        // The holder renews at 10 s: its clock restarts then, whatever its renewTime says.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            decide("a", Some(&held_by("b", 10)), &mut seen, T, later, wall(10)),
            follow
        );
        let still = t0 + Duration::from_secs(24);
        assert_eq!(
            decide("a", Some(&held_by("b", 10)), &mut seen, T, still, wall(24)),
            follow
        );
        // 15 s after the last change seen, the lease is taken over and counted as a transition.
        let expired = t0 + Duration::from_secs(25);
        let step = decide(
            "a",
            Some(&held_by("b", 10)),
            &mut seen,
            T,
            expired,
            wall(25),
        );
        let Step::Update(spec) = step else {
            panic!("{step:?}")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.acquire_time, Some(MicroTime(wall(25))));
        assert_eq!(spec.lease_transitions, Some(4));
    }

    #[test]
    fn a_new_candidate_waits_a_full_lease_duration_even_for_an_old_renew_time() {
        // The stored renewTime is an hour old, but this candidate has only just seen it: the
        // holder's clock may differ from ours, so only our own observation counts.
        let t0 = Instant::now();
        let mut seen = Observed::default();
        let stale = held_by("b", -3600);
        assert!(matches!(
            decide("a", Some(&stale), &mut seen, T, t0, wall(0)),
            Step::Follow { .. }
        ));
        let after = t0 + Duration::from_secs(15);
        assert!(matches!(
            decide("a", Some(&stale), &mut seen, T, after, wall(15)),
            Step::Update(_)
        ));
    }

    #[test]
    fn the_holder_renews_keeping_its_acquire_time_and_transitions() {
        let mut seen = Observed::default();
        let step = decide(
            "a",
            Some(&held_by("a", 0)),
            &mut seen,
            T,
            Instant::now(),
            wall(2),
        );
        let Step::Update(spec) = step else {
            panic!("{step:?}")
        };
        assert_eq!(spec.acquire_time, Some(MicroTime(wall(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(wall(2))));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            ..held_by("", 0)
        };
        let mut seen = Observed::default();
        let step = decide("a", Some(&released), &mut seen, T, Instant::now(), wall(1));
        assert!(matches!(step, Step::Update(ref s) if s.holder_identity.as_deref() == Some("a")));
    }
}
