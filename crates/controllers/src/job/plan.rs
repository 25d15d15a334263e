//! Pure: what a Job does next from its spec and the pods it owns, as upstream's
//! `job_controller.go` decides it: how many pods to run, and when the Job is Complete or
//! Failed (backoffLimit, activeDeadlineSeconds).

/// The spec fields the plan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub parallelism: i64,
    /// `None` is a work queue: done once any pod succeeded and none is left running.
    pub completions: Option<i64>,
    pub backoff_limit: i64,
    pub active_deadline_seconds: Option<i64>,
    pub suspend: bool,
}

/// What the Job's pods show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub active: i64,
    pub succeeded: i64,
    /// Failed pods, plus container restarts of `OnFailure` pods (upstream counts both).
    pub failed: i64,
}

/// The outcome of one look at a Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep running: create (positive) or delete (negative) this many pods.
    Run(i64),
    Complete,
    /// Failed with this reason and message; active pods are deleted.
    Failed(&'static str, &'static str),
}

/// The verdict at `elapsed` seconds after the Job started.
pub fn verdict(spec: &Spec, counts: &Counts, elapsed: i64) -> Verdict {
    if counts.failed > spec.backoff_limit {
        return Verdict::Failed(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
    }
    if spec
        .active_deadline_seconds
        .is_some_and(|d| elapsed >= d && !spec.suspend)
    {
        return Verdict::Failed(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
    }
    let wanted = match spec.completions {
        Some(c) if counts.succeeded >= c => return Verdict::Complete,
        Some(c) => spec.parallelism.min(c - counts.succeeded),
        None if counts.succeeded > 0 && counts.active == 0 => return Verdict::Complete,
        // Once one pod of a work queue succeeded, no new ones start.
        None if counts.succeeded > 0 => counts.active,
        None => spec.parallelism,
    };
    let wanted = if spec.suspend { 0 } else { wanted.max(0) };
    Verdict::Run(wanted - counts.active)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(completions: Option<i64>, parallelism: i64) -> Spec {
        Spec {
            parallelism,
            completions,
            backoff_limit: 6,
            active_deadline_seconds: None,
            suspend: false,
        }
    }

    fn counts(active: i64, succeeded: i64, failed: i64) -> Counts {
        Counts {
            active,
            succeeded,
            failed,
        }
    }

    #[test]
    fn completions_run_parallelism_at_a_time_then_complete() {
        let s = spec(Some(3), 2);
        assert_eq!(verdict(&s, &counts(0, 0, 0), 0), Verdict::Run(2));
        assert_eq!(verdict(&s, &counts(2, 0, 0), 1), Verdict::Run(0));
        // One left to do: only one runs.
        assert_eq!(verdict(&s, &counts(2, 2, 0), 5), Verdict::Run(-1));
        assert_eq!(verdict(&s, &counts(0, 3, 0), 9), Verdict::Complete);
    }

    #[test]
    fn work_queue_completes_when_one_succeeded_and_the_rest_ended() {
        let s = spec(None, 3);
        assert_eq!(verdict(&s, &counts(0, 0, 0), 0), Verdict::Run(3));
        assert_eq!(verdict(&s, &counts(2, 1, 0), 0), Verdict::Run(0));
        assert_eq!(verdict(&s, &counts(0, 1, 0), 0), Verdict::Complete);
    }

    #[test]
    fn backoff_limit_and_deadline_fail_the_job() {
        let mut s = spec(Some(1), 1);
        s.backoff_limit = 2;
        assert_eq!(verdict(&s, &counts(1, 0, 2), 0), Verdict::Run(0));
        assert!(matches!(
            verdict(&s, &counts(1, 0, 3), 0),
            Verdict::Failed("BackoffLimitExceeded", _)
        ));
        s.active_deadline_seconds = Some(10);
        assert_eq!(verdict(&s, &counts(1, 0, 0), 9), Verdict::Run(0));
        assert!(matches!(
            verdict(&s, &counts(1, 0, 0), 10),
            Verdict::Failed("DeadlineExceeded", _)
        ));
    }

    #[test]
    fn suspended_runs_nothing() {
        let mut s = spec(Some(2), 2);
        s.suspend = true;
        assert_eq!(verdict(&s, &counts(2, 0, 0), 0), Verdict::Run(-2));
    }
}
