//! Pure placement: which node a pod goes to, or why none fits, worded as kube-scheduler words it.
//!
//! Filters run in kube-scheduler's order (NodeUnschedulable, TaintToleration, NodeAffinity,
//! NodeResourcesFit) and a node is charged to the first one that rejects it (NodeResourcesFit
//! may give several reasons, as upstream). Among the nodes left, the one with the fewest pods
//! wins, ties broken by name, which spreads replicas evenly and deterministically.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

use kinet_selectors::{set_matches, LabelSelector};

use super::resources::{pod_requests, Allocatable, Resources};

/// The taint a node without a Ready=True condition is treated as carrying.
pub use crate::nodelifecycle::health::NOT_READY_TAINT;
/// The taint `spec.unschedulable` stands for.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// What the scheduler needs to know of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Spec taints, plus `not-ready:NoSchedule` when the node is not Ready.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Allocatable,
}

impl NodeInfo {
    /// Reads a Node object.
    pub fn from_node(node: &Node) -> NodeInfo {
        let spec = node.spec.clone().unwrap_or_default();
        let mut taints = spec.taints.unwrap_or_default();
        if !node_ready(node) && !taints.iter().any(|t| t.key == NOT_READY_TAINT) {
            taints.push(Taint {
                key: NOT_READY_TAINT.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.unschedulable.unwrap_or(false),
            allocatable: Allocatable::from_node(node),
        }
    }
}

/// Whether the node's Ready condition is True.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a node was rejected (empty: it fits); the text is kube-scheduler's.
fn reject_reasons(
    spec: &PodSpec,
    request: &Resources,
    node: &NodeInfo,
    used: &Resources,
) -> Vec<String> {
    match static_reject(spec, node) {
        Some(r) => vec![r],
        None => node
            .allocatable
            .misfits(request, used)
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

/// The filters that do not depend on what else runs on the node.
fn static_reject(spec: &PodSpec, node: &NodeInfo) -> Option<String> {
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if node.unschedulable {
        let t = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerations.iter().any(|tol| tolerates(tol, &t)) {
            return Some("node(s) were unschedulable".into());
        }
    }
    let untolerated = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)));
    if let Some(t) = untolerated {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ));
    }
    if !matches_node_selector_and_affinity(spec, &node.name, &node.labels) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    None
}

/// Whether a toleration tolerates a taint, as `v1helper.ToleratesTaint`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    let effect = tol.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub fn matches_node_selector_and_affinity(
    spec: &PodSpec,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if let Some(sel) = &spec.node_selector {
        if !set_matches(sel, labels) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        // Terms are ORed; an empty list matches nothing.
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, node_name, labels)),
    }
}

fn term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    // A term with no requirements matches no node (as upstream).
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    requirements_match(exprs, labels) && fields.iter().all(|r| field_matches(r, node_name))
}

/// `matchFields` on `metadata.name`: `In` or `NotIn` with exactly one value, as upstream's
/// `nodeSelectorRequirementsAsFieldSelector` allows (node names are not label values).
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match (r.key.as_str(), r.operator.as_str(), values) {
        ("metadata.name", "In", [v]) => v == node_name,
        ("metadata.name", "NotIn", [v]) => v != node_name,
        _ => false,
    }
}

/// The AND of node selector requirements; an invalid one matches nothing, as upstream's
/// `nodeSelectorRequirementsAsSelector` error does.
fn requirements_match(reqs: &[NodeSelectorRequirement], labels: &BTreeMap<String, String>) -> bool {
    let reqs = reqs.iter().map(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        (r.key.as_str(), r.operator.as_str(), values)
    });
    LabelSelector::from_requirements(reqs).is_ok_and(|sel| sel.matches_labels(labels))
}

/// Picks a node for a pod: among the feasible nodes, the one with the fewest of the pod's
/// siblings (`siblings`: pods of the same controller per node, the spreading upstream's
/// default topology-spread constraint gives replicas), then the fewest pods (`used`, what the
/// pods already bound to each node request), ties by name. `Err` carries the FailedScheduling
/// message.
pub fn place(
    spec: &PodSpec,
    nodes: &[NodeInfo],
    used: &HashMap<String, Resources>,
    siblings: &HashMap<String, u64>,
) -> Result<String, String> {
    if nodes.is_empty() {
        return Err("no nodes available to schedule pods".into());
    }
    let request = pod_requests(spec);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(&NodeInfo, (u64, u64))> = None;
    let mut resolvable = 0;
    for node in nodes {
        let on_node = used.get(&node.name).copied().unwrap_or_default();
        let rejected = reject_reasons(spec, &request, node, &on_node);
        if !rejected.is_empty() {
            // Only a lack of room could be solved by evicting someone.
            if static_reject(spec, node).is_none() {
                resolvable += 1;
            }
            for reason in rejected {
                *reasons.entry(reason).or_default() += 1;
            }
            continue;
        }
        let n = (siblings.get(&node.name).copied().unwrap_or(0), on_node.pods);
        let better = match best {
            None => true,
            Some((b, bn)) => (n, &node.name) < (bn, &b.name),
        };
        if better {
            best = Some((node, n));
        }
    }
    if let Some((node, _)) = best {
        return Ok(node.name.clone());
    }
    Err(fit_error(nodes.len(), &reasons, resolvable))
}

/// `FitError.Error()`: counts per reason, sorted as strings, then the preemption verdict.
/// kinet never preempts, so nodes short of room report no victims, as upstream does when
/// no lower-priority pod could make room.
fn fit_error(total: usize, reasons: &BTreeMap<String, usize>, resolvable: usize) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    let mut preemption = Vec::new();
    if total > resolvable {
        preemption.push(format!(
            "{} Preemption is not helpful for scheduling",
            total - resolvable
        ));
    }
    if resolvable > 0 {
        preemption.push(format!(
            "{resolvable} No preemption victims found for incoming pod"
        ));
    }
    preemption.sort();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {}.",
        parts.join(", "),
        preemption.join(", ")
    )
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
