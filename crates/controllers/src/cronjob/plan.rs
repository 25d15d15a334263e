//! Pure: when a CronJob runs next and what it does with the Jobs it already has, as upstream's
//! `cronjob_controllerv2.go` decides it. Every function takes `now`, so the schedule is tested
//! with a made-up clock.

use chrono::{DateTime, Utc};
use kinet_types::schedule::Schedule;

/// What to do at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due; look again at this time.
    Wait(DateTime<Utc>),
    /// Start the Job for this scheduled time (after deleting the active ones if `replace`).
    Start {
        scheduled: DateTime<Utc>,
        replace: bool,
    },
    /// A run was due but concurrencyPolicy Forbid holds it back while a Job is active.
    Skip(DateTime<Utc>),
    /// The due run is older than `startingDeadlineSeconds`: missed.
    Missed(DateTime<Utc>),
}

/// The spec fields the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub schedule: &'a Schedule,
    pub suspend: bool,
    /// `Allow`, `Forbid` or `Replace`.
    pub concurrency: &'a str,
    pub starting_deadline_seconds: Option<i64>,
}

/// The decision at `now`, given the last scheduled time (or the CronJob's creation) and
/// whether any of its Jobs is still active.
pub fn decide(spec: &Spec, last: DateTime<Utc>, active: bool, now: DateTime<Utc>) -> Decision {
    let next = spec
        .schedule
        .next_after(now)
        .unwrap_or(now + chrono::Duration::days(366));
    if spec.suspend {
        return Decision::Wait(next);
    }
    let (due, _missed) = spec.schedule.latest_due(last, now);
    let Some(due) = due else {
        return Decision::Wait(next);
    };
    if spec
        .starting_deadline_seconds
        .is_some_and(|d| (now - due).num_seconds() > d)
    {
        return Decision::Missed(due);
    }
    match spec.concurrency {
        "Forbid" if active => Decision::Skip(next),
        "Replace" => Decision::Start {
            scheduled: due,
            replace: active,
        },
        _ => Decision::Start {
            scheduled: due,
            replace: false,
        },
    }
}

/// The Job's name for a scheduled time: `<cronjob>-<minutes since the epoch>`, as upstream, so
/// a retried start finds the Job it already made.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp() / 60)
}

/// Which finished Jobs to delete: all but the newest `keep`, given (name, finish time).
pub fn beyond_history(mut finished: Vec<(String, i64)>, keep: usize) -> Vec<String> {
    finished.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    finished.into_iter().skip(keep).map(|(n, _)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    fn every_minute() -> Schedule {
        Schedule::parse("*/1 * * * *").unwrap()
    }

    fn spec<'a>(schedule: &'a Schedule, concurrency: &'a str) -> Spec<'a> {
        Spec {
            schedule,
            suspend: false,
            concurrency,
            starting_deadline_seconds: None,
        }
    }

    #[test]
    fn waits_for_the_next_minute_then_starts_it() {
        let s = every_minute();
        let created = at(9, 0, 20);
        assert_eq!(
            decide(&spec(&s, "Allow"), created, false, at(9, 0, 40)),
            Decision::Wait(at(9, 1, 0))
        );
        assert_eq!(
            decide(&spec(&s, "Allow"), created, false, at(9, 1, 0)),
            Decision::Start {
                scheduled: at(9, 1, 0),
                replace: false
            }
        );
        // Once started, lastScheduleTime is 9:01 and nothing is due until 9:02.
        assert_eq!(
            decide(&spec(&s, "Allow"), at(9, 1, 0), true, at(9, 1, 30)),
            Decision::Wait(at(9, 2, 0))
        );
        // After a long outage only the latest missed run starts.
        assert_eq!(
            decide(&spec(&s, "Allow"), at(9, 1, 0), false, at(9, 7, 30)),
            Decision::Start {
                scheduled: at(9, 7, 0),
                replace: false
            }
        );
    }

    #[test]
    fn concurrency_policies() {
        let s = every_minute();
        let (last, now) = (at(9, 0, 0), at(9, 1, 5));
        assert_eq!(
            decide(&spec(&s, "Forbid"), last, true, now),
            Decision::Skip(at(9, 2, 0))
        );
        assert_eq!(
            decide(&spec(&s, "Replace"), last, true, now),
            Decision::Start {
                scheduled: at(9, 1, 0),
                replace: true
            }
        );
        assert_eq!(
            decide(&spec(&s, "Allow"), last, true, now),
            Decision::Start {
                scheduled: at(9, 1, 0),
                replace: false
            }
        );
    }

    #[test]
    fn suspend_and_starting_deadline() {
        let s = every_minute();
        let mut sp = spec(&s, "Allow");
        sp.suspend = true;
        assert_eq!(
            decide(&sp, at(9, 0, 0), false, at(9, 5, 5)),
            Decision::Wait(at(9, 6, 0))
        );
        sp.suspend = false;
        sp.starting_deadline_seconds = Some(3);
        assert_eq!(
            decide(&sp, at(9, 0, 0), false, at(9, 5, 5)),
            Decision::Missed(at(9, 5, 0))
        );
    }

    #[test]
    fn names_and_history() {
        assert_eq!(job_name("hello", at(0, 0, 0)), "hello-29538720");
        let finished = vec![("a".into(), 1), ("c".into(), 3), ("b".into(), 2)];
        assert_eq!(beyond_history(finished.clone(), 1), vec!["b", "a"]);
        assert!(beyond_history(finished, 3).is_empty());
    }
}
