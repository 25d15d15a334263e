//! Deployment status and its Available/Progressing conditions, computed from the ReplicaSets.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Client, ResourceExt};

use super::plan::fenceposts;
use super::Error;
use crate::runtime::write_status;

/// Writes the status if it changed.
pub(super) async fn update(
    client: &Client,
    d: &Deployment,
    new: Option<&ReplicaSet>,
    olds: &[ReplicaSet],
    created: bool,
) -> Result<(), Error> {
    let status = compute(d, new, olds, created, Timestamp::now());
    if !same(d.status.as_ref(), &status) {
        write_status(client, d, &status).await?;
    }
    Ok(())
}

/// Equal apart from condition timestamps, so an unchanged status is not rewritten.
fn same(old: Option<&DeploymentStatus>, new: &DeploymentStatus) -> bool {
    let strip = |s: &DeploymentStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_update_time = None;
            c.last_transition_time = None;
        }
        s
    };
    old.is_some_and(|o| strip(o) == strip(new))
}

fn sum(
    rss: &[&ReplicaSet],
    f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32,
) -> i32 {
    rss.iter().filter_map(|rs| rs.status.as_ref()).map(f).sum()
}

/// The status the Deployment should report.
pub(super) fn compute(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    olds: &[ReplicaSet],
    created: bool,
    now: Timestamp,
) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let mut all: Vec<&ReplicaSet> = olds.iter().collect();
    all.extend(new);
    let replicas = sum(&all, |s| s.replicas);
    let ready = sum(&all, |s| s.ready_replicas.unwrap_or(0));
    let available = sum(&all, |s| s.available_replicas.unwrap_or(0));
    let updated = new.map(|rs| sum(&[rs], |s| s.replicas)).unwrap_or(0);
    let updated_available = new
        .map(|rs| sum(&[rs], |s| s.available_replicas.unwrap_or(0)))
        .unwrap_or(0);

    let rolling = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("Recreate");
    let max_unavailable = match (rolling, desired) {
        (false, _) | (_, 0) => 0,
        _ => {
            let ru = spec
                .strategy
                .as_ref()
                .and_then(|s| s.rolling_update.clone())
                .unwrap_or_default();
            fenceposts(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), desired)
                .map(|f| f.1.min(desired))
                .unwrap_or(0)
        }
    };
    let old_conditions = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions = Vec::new();
    let (st, reason, msg) = if available >= desired - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_string(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_string(),
        )
    };
    conditions.push(condition(
        &old_conditions,
        "Available",
        st,
        reason,
        msg,
        now,
    ));

    let new_name = new.map(|rs| rs.name_any()).unwrap_or_default();
    let had_progressing = old_conditions.iter().any(|c| c.type_ == "Progressing");
    let complete =
        new.is_some() && updated == desired && replicas == desired && updated_available == desired;
    let progressing = if spec.paused.unwrap_or(false) {
        Some((
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_string(),
        ))
    } else if new.is_none() {
        None
    } else if complete {
        Some((
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        ))
    } else if created {
        Some((
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{new_name}\""),
        ))
    } else if had_progressing {
        Some((
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        ))
    } else {
        Some((
            "True",
            "FoundNewReplicaSet",
            format!("Found new replica set \"{new_name}\""),
        ))
    };
    match progressing {
        Some((st, reason, msg)) => conditions.push(condition(
            &old_conditions,
            "Progressing",
            st,
            reason,
            msg,
            now,
        )),
        None => conditions.extend(
            old_conditions
                .iter()
                .find(|c| c.type_ == "Progressing")
                .cloned(),
        ),
    }

    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        conditions: Some(conditions),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        terminating_replicas: None,
    }
}

/// A condition, keeping the old timestamps where nothing changed (as `SetDeploymentCondition`).
fn condition(
    old: &[DeploymentCondition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    let prev = old.iter().find(|c| c.type_ == type_);
    let same_status = prev.is_some_and(|p| p.status == status);
    let same_all = same_status
        && prev.is_some_and(|p| {
            p.reason.as_deref() == Some(reason) && p.message.as_deref() == Some(message.as_str())
        });
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: if same_all {
            prev.and_then(|p| p.last_update_time.clone())
        } else {
            Some(Time(now))
        },
        last_transition_time: if same_status {
            prev.and_then(|p| p.last_transition_time.clone())
        } else {
            Some(Time(now))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {}}, "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}})).unwrap()
    }

    fn deploy(replicas: i32) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": replicas, "selector": {}, "template": {}}})).unwrap()
    }

    fn reason(s: &DeploymentStatus, t: &str) -> String {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .and_then(|c| c.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn status_table() {
        let now = Timestamp::now();
        // (desired, new, olds, created, want replicas/updated/available/unavailable, Available, Progressing)
        let cases = [
            (
                3,
                rs("new", 0, 0),
                vec![],
                true,
                (0, 0, 0, 3),
                "MinimumReplicasUnavailable",
                "NewReplicaSetCreated",
            ),
            (
                3,
                rs("new", 1, 0),
                vec![rs("old", 3, 3)],
                false,
                (4, 1, 3, 0),
                "MinimumReplicasAvailable",
                "FoundNewReplicaSet",
            ),
            (
                3,
                rs("new", 3, 3),
                vec![rs("old", 1, 1)],
                false,
                (4, 3, 4, 0),
                "MinimumReplicasAvailable",
                "FoundNewReplicaSet",
            ),
            (
                3,
                rs("new", 3, 3),
                vec![rs("old", 0, 0)],
                false,
                (3, 3, 3, 0),
                "MinimumReplicasAvailable",
                "NewReplicaSetAvailable",
            ),
            (
                4,
                rs("new", 4, 2),
                vec![],
                false,
                (4, 4, 2, 2),
                "MinimumReplicasUnavailable",
                "FoundNewReplicaSet",
            ),
        ];
        for (desired, new, olds, created, (r, u, a, un), avail, prog) in cases {
            let s = compute(&deploy(desired), Some(&new), &olds, created, now);
            let got = (
                s.replicas.unwrap(),
                s.updated_replicas.unwrap(),
                s.available_replicas.unwrap(),
                s.unavailable_replicas.unwrap(),
            );
            assert_eq!(got, (r, u, a, un), "{desired} {new:?}");
            assert_eq!(reason(&s, "Available"), avail);
            assert_eq!(reason(&s, "Progressing"), prog);
            assert_eq!(s.observed_generation, Some(2));
        }
    }

    #[test]
    fn progressing_after_found_and_timestamps_kept() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let mut d = deploy(3);
        d.status = Some(compute(
            &d,
            Some(&rs("new", 1, 0)),
            &[rs("old", 3, 3)],
            false,
            t0,
        ));
        let s = compute(
            &d,
            Some(&rs("new", 2, 1)),
            &[rs("old", 2, 2)],
            false,
            Timestamp::now(),
        );
        assert_eq!(reason(&s, "Progressing"), "ReplicaSetUpdated");
        let avail = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap();
        assert_eq!(
            avail.last_transition_time,
            Some(Time(t0)),
            "unchanged status keeps its transition time"
        );
        assert!(same(
            Some(&s),
            &compute(
                &Deployment {
                    status: Some(s.clone()),
                    ..d.clone()
                },
                Some(&rs("new", 2, 1)),
                &[rs("old", 2, 2)],
                false,
                Timestamp::now()
            )
        ));
    }
}
