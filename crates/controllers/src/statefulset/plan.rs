//! Pure: which one step a StatefulSet takes next, from its spec and its pods by ordinal, as
//! upstream's `stateful_set_control.go` decides it. OrderedReady creates, scales down and
//! updates one pod at a time and waits for each to be Running and Ready; Parallel creates and
//! deletes all at once. Rolling updates replace pods from the highest ordinal down to the
//! partition, one at a time; OnDelete leaves that to the user.

use std::collections::BTreeMap;

/// What the plan needs to know of one existing pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// The `controller-revision-hash` label.
    pub revision: String,
    pub terminating: bool,
    /// Succeeded or Failed: upstream deletes it so it is made again.
    pub finished: bool,
    pub running_and_ready: bool,
}

/// The spec fields the plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub replicas: usize,
    pub parallel: bool,
    /// `Some(partition)` for RollingUpdate, `None` for OnDelete.
    pub rolling_partition: Option<usize>,
}

/// One action on the pod with this ordinal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the pod from the template of this revision.
    Create(usize, String),
    Delete(usize),
}

/// The steps to take now (empty while waiting for pods to settle).
pub fn plan(
    spec: &Spec,
    pods: &BTreeMap<usize, PodState>,
    current: &str,
    update: &str,
) -> Vec<Step> {
    let mut steps = Vec::new();
    // Ordinals below the partition stay at the current revision; the rest get the update.
    let revision_for = |i: usize| match spec.rolling_partition {
        Some(p) if i < p => current.to_string(),
        _ => update.to_string(),
    };
    for i in 0..spec.replicas {
        match pods.get(&i) {
            None => steps.push(Step::Create(i, revision_for(i))),
            Some(p) if p.finished && !p.terminating => steps.push(Step::Delete(i)),
            Some(p) if !spec.parallel && (p.terminating || !p.running_and_ready) => {
                // Wait for this one before touching any higher ordinal.
                return steps;
            }
            Some(_) => {}
        }
        if !spec.parallel && !steps.is_empty() {
            return steps;
        }
    }
    if !steps.is_empty() {
        return steps;
    }
    // Scale down: the condemned, highest ordinal first.
    let condemned: Vec<(usize, &PodState)> = pods
        .range(spec.replicas..)
        .rev()
        .map(|(i, p)| (*i, p))
        .collect();
    if !condemned.is_empty() {
        if spec.parallel {
            return condemned
                .iter()
                .filter(|(_, p)| !p.terminating)
                .map(|(i, _)| Step::Delete(*i))
                .collect();
        }
        return match condemned.iter().find(|(_, p)| p.terminating) {
            Some(_) => vec![],
            None => vec![Step::Delete(condemned[0].0)],
        };
    }
    let Some(partition) = spec.rolling_partition else {
        return vec![];
    };
    // A rolling update waits until every pod is up, then replaces the highest stale one.
    let settled = pods.values().all(|p| !p.terminating && p.running_and_ready);
    if !settled {
        return vec![];
    }
    (partition..spec.replicas)
        .rev()
        .find(|i| pods.get(i).is_some_and(|p| p.revision != update))
        .map(Step::Delete)
        .into_iter()
        .collect()
}

/// Whether the rollout is done: every wanted pod exists at the update revision.
pub fn rolled_out(spec: &Spec, pods: &BTreeMap<usize, PodState>, update: &str) -> bool {
    pods.len() == spec.replicas
        && (0..spec.replicas).all(|i| pods.get(&i).is_some_and(|p| p.revision == update))
}

/// The ordinal in a pod name `<set>-<n>`, if the name is one of this set's.
pub fn ordinal(set: &str, pod: &str) -> Option<usize> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(rev: &str) -> PodState {
        PodState {
            revision: rev.into(),
            terminating: false,
            finished: false,
            running_and_ready: true,
        }
    }

    fn pending(rev: &str) -> PodState {
        PodState {
            running_and_ready: false,
            ..ready(rev)
        }
    }

    fn spec(replicas: usize, parallel: bool, partition: Option<usize>) -> Spec {
        Spec {
            replicas,
            parallel,
            rolling_partition: partition,
        }
    }

    fn pods(list: &[(usize, PodState)]) -> BTreeMap<usize, PodState> {
        list.iter().cloned().collect()
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_and_waits() {
        let s = spec(3, false, Some(0));
        assert_eq!(
            plan(&s, &pods(&[]), "a", "a"),
            vec![Step::Create(0, "a".into())]
        );
        assert_eq!(plan(&s, &pods(&[(0, pending("a"))]), "a", "a"), vec![]);
        assert_eq!(
            plan(&s, &pods(&[(0, ready("a"))]), "a", "a"),
            vec![Step::Create(1, "a".into())]
        );
        // web-1 deleted by hand: it comes back with the same ordinal before anything else.
        assert_eq!(
            plan(&s, &pods(&[(0, ready("a")), (2, ready("a"))]), "a", "a"),
            vec![Step::Create(1, "a".into())]
        );
    }

    #[test]
    fn parallel_creates_all_at_once() {
        let s = spec(3, true, Some(0));
        assert_eq!(
            plan(&s, &pods(&[(1, pending("a"))]), "a", "a"),
            vec![Step::Create(0, "a".into()), Step::Create(2, "a".into())]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_first_one_at_a_time() {
        let s = spec(1, false, Some(0));
        let all = pods(&[(0, ready("a")), (1, ready("a")), (2, ready("a"))]);
        assert_eq!(plan(&s, &all, "a", "a"), vec![Step::Delete(2)]);
        let mut going = all.clone();
        going.get_mut(&2).unwrap().terminating = true;
        assert_eq!(plan(&s, &going, "a", "a"), vec![]);
        assert_eq!(
            plan(&spec(1, true, Some(0)), &all, "a", "a"),
            vec![Step::Delete(2), Step::Delete(1)]
        );
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let s = spec(3, false, Some(1));
        let all = pods(&[(0, ready("a")), (1, ready("a")), (2, ready("a"))]);
        assert_eq!(plan(&s, &all, "a", "b"), vec![Step::Delete(2)]);
        // The replacement of web-2 is made at the update revision.
        let two_gone = pods(&[(0, ready("a")), (1, ready("a"))]);
        assert_eq!(
            plan(&s, &two_gone, "a", "b"),
            vec![Step::Create(2, "b".into())]
        );
        let two_new = pods(&[(0, ready("a")), (1, ready("a")), (2, ready("b"))]);
        assert_eq!(plan(&s, &two_new, "a", "b"), vec![Step::Delete(1)]);
        let one_new = pods(&[(0, ready("a")), (1, ready("b")), (2, ready("b"))]);
        assert_eq!(plan(&s, &one_new, "a", "b"), vec![]);
        assert!(!rolled_out(&s, &one_new, "b"));
        // Below the partition a deleted pod comes back at the current revision.
        assert_eq!(
            plan(&s, &pods(&[(1, ready("b")), (2, ready("b"))]), "a", "b"),
            vec![Step::Create(0, "a".into())]
        );
    }

    #[test]
    fn on_delete_never_replaces_and_finished_pods_are_remade() {
        let s = spec(2, false, None);
        let all = pods(&[(0, ready("a")), (1, ready("a"))]);
        assert_eq!(plan(&s, &all, "a", "b"), vec![]);
        let mut failed = all.clone();
        failed.get_mut(&0).unwrap().finished = true;
        assert_eq!(plan(&s, &failed, "a", "b"), vec![Step::Delete(0)]);
    }

    #[test]
    fn ordinals_come_from_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-01"), None);
        assert_eq!(ordinal("web", "webx-1"), None);
        assert_eq!(ordinal("web", "web-a"), None);
    }
}
