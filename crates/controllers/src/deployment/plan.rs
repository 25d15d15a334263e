//! Pure rollout arithmetic: the pod-template-hash, maxSurge/maxUnavailable fenceposts and how
//! far one rolling-update step may scale the new and old ReplicaSets, as upstream's
//! `deployment/rolling.go` and `util/deployment_util.go` compute them.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const HASH_LABEL: &str = "pod-template-hash";

/// A stable hash of the template (FNV-1a 32 of its canonical JSON, plus the collision count),
/// printed with apimachinery's `SafeEncodeString` alphabet, so names look like upstream's.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    strip_hash_label(&mut t);
    let mut bytes = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    let h = kinet_types::hash::fnv1a_32(bytes);
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Drops the hash label (and an emptied label map), so templates compare as upstream's
/// `EqualIgnoreHash` does.
pub fn strip_hash_label(t: &mut PodTemplateSpec) {
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(HASH_LABEL);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
    }
}

/// Whether two templates are equal apart from the hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    strip_hash_label(&mut a);
    strip_hash_label(&mut b);
    a == b
}

/// An int or a percentage of `total`, rounded up or down (`intstr.GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: {s:?}"))?;
            let x = pct * i64::from(total);
            Ok((if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            }) as i32)
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas: surge rounds up, unavailable rounds
/// down, and both zero would deadlock, so unavailable becomes 1.
pub fn fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&quarter), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&quarter), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// A ReplicaSet as the rollout sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// The new ReplicaSet's next size (`NewRSNewReplicas`): grow toward `desired` without the total
/// exceeding `desired + surge`; shrink straight to `desired` if above it.
pub fn new_rs_target(desired: i32, surge: i32, new: Counts, olds: &[Counts]) -> i32 {
    if new.replicas >= desired {
        return desired;
    }
    let current: i32 = new.replicas + olds.iter().map(|o| o.replicas).sum::<i32>();
    let max_total = desired + surge;
    if current >= max_total {
        return new.replicas;
    }
    new.replicas + (max_total - current).min(desired - new.replicas)
}

/// The old ReplicaSets' next sizes (`reconcileOldReplicaSets`): remove unavailable old pods
/// first, then available ones, never going below `desired - unavailable` available pods.
/// `olds` must be sorted oldest first.
pub fn old_rs_targets(desired: i32, unavailable: i32, new: Counts, olds: &[Counts]) -> Vec<i32> {
    let mut targets: Vec<i32> = olds.iter().map(|o| o.replicas).collect();
    let old_total: i32 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let all = new.replicas + old_total;
    let min_available = desired - unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return targets;
    }
    // Unhealthy old pods cost no availability.
    for (t, o) in targets.iter_mut().zip(olds) {
        let unhealthy = (o.replicas - o.available).max(0).min(budget);
        *t -= unhealthy;
        budget -= unhealthy;
    }
    let available: i32 = new.available
        + olds
            .iter()
            .zip(&targets)
            .map(|(o, t)| o.available.min(*t))
            .sum::<i32>();
    let mut scale_down = (available - min_available).min(budget).max(0);
    for t in targets.iter_mut() {
        let n = (*t).min(scale_down);
        *t -= n;
        scale_down -= n;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(replicas: i32, available: i32) -> Counts {
        Counts {
            replicas,
            available,
        }
    }

    #[test]
    fn fencepost_table() {
        let s = |v: &str| IntOrString::String(v.into());
        let cases = [
            (None, None, 10, (3, 2)),
            (None, None, 1, (1, 0)),
            (
                Some(IntOrString::Int(0)),
                Some(IntOrString::Int(0)),
                5,
                (0, 1),
            ),
            (Some(s("50%")), Some(s("50%")), 3, (2, 1)),
            (Some(IntOrString::Int(2)), Some(s("0%")), 4, (2, 0)),
            (Some(s("100%")), Some(IntOrString::Int(0)), 3, (3, 0)),
        ];
        for (surge, unavail, desired, want) in cases {
            assert_eq!(
                fenceposts(surge.as_ref(), unavail.as_ref(), desired),
                Ok(want),
                "{surge:?} {unavail:?} {desired}"
            );
        }
        assert!(fenceposts(Some(&s("x%")), None, 3).is_err());
    }

    #[test]
    fn new_rs_table() {
        // (desired, surge, new, olds, want)
        let cases = [
            (3, 1, c(0, 0), vec![], 3),
            (3, 1, c(0, 0), vec![c(3, 3)], 1),
            (3, 1, c(1, 0), vec![c(3, 3)], 1),
            (3, 1, c(1, 1), vec![c(2, 2)], 2),
            (3, 0, c(0, 0), vec![c(3, 3)], 0),
            (3, 1, c(5, 5), vec![], 3),
            (10, 3, c(0, 0), vec![c(10, 10)], 3),
        ];
        for (desired, surge, new, olds, want) in cases {
            assert_eq!(
                new_rs_target(desired, surge, new, &olds),
                want,
                "{desired} {surge} {new:?} {olds:?}"
            );
        }
    }

    #[test]
    fn old_rs_table() {
        // (desired, unavailable, new, olds, want)
        let cases = [
            // New pods not yet available: only the surge room, nothing below min available.
            (3, 0, c(1, 0), vec![c(3, 3)], vec![3]),
            // One new pod available: one old pod may go.
            (3, 0, c(1, 1), vec![c(3, 3)], vec![2]),
            // maxUnavailable 1 lets one old pod go before any new pod is ready.
            (3, 1, c(1, 0), vec![c(3, 3)], vec![2]),
            // Unavailable old pods go first, oldest set first.
            (3, 0, c(3, 3), vec![c(2, 0), c(1, 1)], vec![0, 0]),
            (4, 1, c(0, 0), vec![c(2, 1), c(2, 2)], vec![1, 2]),
            (3, 1, c(3, 3), vec![], vec![]),
        ];
        for (desired, unavail, new, olds, want) in cases {
            assert_eq!(
                old_rs_targets(desired, unavail, new, &olds),
                want,
                "{desired} {unavail} {new:?} {olds:?}"
            );
        }
    }

    #[test]
    fn hash_is_stable_and_ignores_its_label() {
        let t: PodTemplateSpec = serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}})).unwrap();
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), "x".into());
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&labelled, None));
        assert!(equal_ignore_hash(&t, &labelled));
        assert!(
            h.len() >= 8
                && h.chars()
                    .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)),
            "{h}"
        );
        let mut other = t.clone();
        other.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(h, template_hash(&other, None));
        assert!(!equal_ignore_hash(&t, &other));
        assert_ne!(h, template_hash(&t, Some(1)));
    }
}
