//! The compiler kept up to date change by change. A pod's change moves its own address and
//! named ports in or out of each compiled policy's sets at once (element by element: no
//! set is recomputed from the cluster), and marks its chains when it is on this node; a
//! namespace whose labels changed marks the policies with namespace selectors; a policy its
//! own sets and the chains of the local pods it selected or selects. [`Compiler::sync`]
//! recomputes what is marked, and plans the kernel's changes from the touched parts alone,
//! with the same [`plan`] a whole diff uses.
//!
//! The table it holds always equals [`crate::compile`] of the same cluster (a full compile is
//! this compiler with every local pod marked); tests hold the two and their plans equal over
//! random change sequences.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::compile::{
    drop_counter_name, frame, map_name, pod_chain, policy_members, policy_sets, RuleMembers,
};
use crate::input::{Cluster, Namespace, Pod, PodKey};
use crate::plan::{plan, Update};
use crate::policy::{Direction, Peer, Policy, PolicyId};
use crate::ruleset::{Chain, Ruleset, Set};
use crate::PolicyError;

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// A policy isolating local pods in one direction: those pods, what its rules' sets hold
/// per pod, and the sets.
#[derive(Debug, Clone)]
struct Part {
    pods: BTreeSet<PodKey>,
    members: Vec<RuleMembers>,
    sets: Vec<Set>,
}

/// A local pod isolated in one direction: its address, its isolating policies, its chain.
#[derive(Debug, Clone, PartialEq)]
struct PodChain {
    ip: Ipv4Addr,
    policies: Vec<PolicyId>,
    chain: Chain,
}

/// The parts and chains changed since the last sync, as they were before (`None`: absent).
#[derive(Debug, Clone, Default)]
struct Before {
    parts: BTreeMap<(Direction, PolicyId), Option<Vec<Set>>>,
    chains: BTreeMap<(Direction, PodKey), Option<PodChain>>,
}

/// One node's policy table over a cluster that changes.
#[derive(Debug, Clone)]
pub struct Compiler {
    cluster: Cluster,
    node: String,
    local_addrs: Vec<Ipv4Addr>,
    parts: BTreeMap<(Direction, PolicyId), Part>,
    chains: BTreeMap<(Direction, PodKey), PodChain>,
    dirty_pods: BTreeSet<PodKey>,
    dirty_policies: BTreeSet<PolicyId>,
    before: Before,
}

impl Compiler {
    /// The compiler of `node` (whose own addresses are `local_addrs`) over `cluster`; its
    /// first [`Compiler::sync`] compiles every local pod.
    pub fn new(cluster: Cluster, node: &str, local_addrs: &[Ipv4Addr]) -> Compiler {
        let dirty_pods = cluster
            .pods()
            .filter(|p| p.node == node)
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        Compiler {
            cluster,
            node: node.to_string(),
            local_addrs: local_addrs.to_vec(),
            parts: BTreeMap::new(),
            chains: BTreeMap::new(),
            dirty_pods,
            dirty_policies: BTreeSet::new(),
            before: Before::default(),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Adds or replaces a pod.
    pub fn set_pod(&mut self, pod: Pod) {
        let key = (pod.namespace.clone(), pod.name.clone());
        let old = self.cluster.pod(&key.0, &key.1);
        if old.is_some_and(|o| o.node == self.node) || pod.node == self.node {
            self.dirty_pods.insert(key.clone());
        }
        self.cluster.set_pod(pod);
        self.place(&key);
    }

    /// Removes a pod (absent is fine).
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let Some(old) = self.cluster.pod(namespace, name) else {
            return;
        };
        if old.node == self.node {
            self.dirty_pods.insert(key.clone());
        }
        self.cluster.remove_pod(namespace, name);
        self.place(&key);
    }

    /// Puts pod `key`, as the cluster now has it (or gone), in or out of the sets of every
    /// compiled part whose policy is unchanged (a changed one is recomputed whole).
    fn place(&mut self, key: &PodKey) {
        let c = &self.cluster;
        let pod = c.pod(&key.0, &key.1);
        for ((dir, id), part) in &mut self.parts {
            let Some(policy) = c
                .policies
                .get(id)
                .filter(|_| !self.dirty_policies.contains(id))
            else {
                continue;
            };
            let rules = policy.rules(*dir).unwrap_or_default();
            let mut changed = false;
            for (rule, members) in rules.iter().zip(&mut part.members) {
                changed |= members.update(c, policy, *dir, rule, key, pod);
            }
            if changed {
                self.before
                    .parts
                    .entry((*dir, id.clone()))
                    .or_insert_with(|| Some(part.sets.clone()));
                part.sets = policy_sets(policy, *dir, &part.members);
            }
        }
    }

    /// Adds or replaces a namespace; only a change of its labels matters.
    pub fn set_namespace(&mut self, ns: Namespace) {
        let same = self.namespace_labels(&ns.name) == ns.labels;
        self.cluster.set_namespace(ns);
        if !same {
            self.mark_namespace_selectors();
        }
    }

    pub fn remove_namespace(&mut self, name: &str) {
        let had_labels = !self.namespace_labels(name).is_empty();
        self.cluster.remove_namespace(name);
        if had_labels {
            self.mark_namespace_selectors();
        }
    }

    /// A namespace's labels as selectors see them: an unknown one has none.
    fn namespace_labels(&self, name: &str) -> BTreeMap<String, String> {
        self.cluster
            .namespace_labels(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Namespace labels only matter to peers with a namespace selector.
    fn mark_namespace_selectors(&mut self) {
        for (dir, id) in self.parts.keys() {
            let Some(policy) = self.cluster.policies.get(id) else {
                continue;
            };
            let rules = policy.rules(*dir).unwrap_or_default();
            let selects_namespaces = rules
                .iter()
                .flat_map(|r| r.peers.iter().flatten())
                .any(|p| matches!(p, Peer::Pods { namespaces, .. } if namespaces.is_some()));
            if selects_namespaces {
                self.dirty_policies.insert(id.clone());
            }
        }
    }

    /// Adds or replaces a policy. One that cannot be parsed is refused and, as if it did not
    /// exist, enforces nothing (as a compile of the cluster without it would).
    pub fn set_policy(&mut self, np: &NetworkPolicy) -> Result<(), PolicyError> {
        let parsed = Policy::parse(np);
        let id = PolicyId {
            namespace: np.metadata.namespace.clone().unwrap_or_default(),
            name: np.metadata.name.clone().unwrap_or_default(),
        };
        self.forget_policy(&id);
        let policy = parsed?;
        self.mark_selected(&policy);
        self.dirty_policies.insert(id.clone());
        self.cluster.policies.insert(id, policy);
        Ok(())
    }

    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        self.forget_policy(&PolicyId {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }

    fn forget_policy(&mut self, id: &PolicyId) {
        if let Some(old) = self.cluster.policies.remove(id) {
            self.mark_selected(&old);
        }
    }

    /// Marks the local pods `policy` selects (in either direction).
    fn mark_selected(&mut self, policy: &Policy) {
        let selected = self
            .cluster
            .pods_in(&policy.id.namespace)
            .filter(|p| p.node == self.node && policy.pod_selector.matches_labels(&p.labels))
            .map(|p| (p.namespace.clone(), p.name.clone()));
        self.dirty_pods.extend(selected);
    }

    /// Recomputes what the changes since the last sync marked; the kernel update from the
    /// table before them to the table now (`None` when nothing changed).
    pub fn sync(&mut self) -> Option<Update> {
        let before = self.refresh();
        let mut old = frame(&self.local_addrs);
        let mut new = frame(&self.local_addrs);
        for (key, was) in &before.parts {
            old.sets.extend(was.iter().flatten().cloned());
            new.sets
                .extend(self.parts.get(key).iter().flat_map(|p| p.sets.clone()));
        }
        let ids: BTreeSet<&PolicyId> = before.parts.keys().map(|(_, id)| id).collect();
        for id in ids {
            let present = |dir: Direction, after: bool| {
                let key = (dir, id.clone());
                match before.parts.get(&key) {
                    Some(was) if !after => was.is_some(),
                    _ => self.parts.contains_key(&key),
                }
            };
            if DIRECTIONS.iter().any(|d| present(*d, false)) {
                old.counters.insert(drop_counter_name(id));
            }
            if DIRECTIONS.iter().any(|d| present(*d, true)) {
                new.counters.insert(drop_counter_name(id));
            }
        }
        for (key, was) in &before.chains {
            add_chain(&mut old, key.0, was.as_ref());
            add_chain(&mut new, key.0, self.chains.get(key));
        }
        match plan(Some(&old), &new)? {
            Update::Load(_) => Some(Update::Load(self.ruleset())),
            changes => Some(changes),
        }
    }

    /// The whole table (for a whole load). Changes not yet synced are compiled first.
    pub fn ruleset(&mut self) -> Ruleset {
        self.refresh();
        let mut rs = frame(&self.local_addrs);
        for ((_, id), part) in &self.parts {
            rs.sets.extend(part.sets.iter().cloned());
            rs.counters.insert(drop_counter_name(id));
        }
        for ((dir, _), c) in &self.chains {
            add_chain(&mut rs, *dir, Some(c));
        }
        rs
    }

    /// Recomputes the marked chains, then the marked and new policies' sets; what they and
    /// the pods' changes since the last sync replaced.
    fn refresh(&mut self) -> Before {
        for key in std::mem::take(&mut self.dirty_pods) {
            for dir in DIRECTIONS {
                self.refresh_chain(dir, &key);
            }
        }
        for id in std::mem::take(&mut self.dirty_policies) {
            // A deleted policy's parts went with its pods' chains above.
            let Some(policy) = self.cluster.policies.get(&id) else {
                continue;
            };
            for dir in DIRECTIONS {
                let key = (dir, id.clone());
                if let Some(part) = self.parts.get_mut(&key) {
                    part.members = policy_members(&self.cluster, policy, dir);
                    let sets = policy_sets(policy, dir, &part.members);
                    self.before
                        .parts
                        .entry(key)
                        .or_insert_with(|| Some(part.sets.clone()));
                    part.sets = sets;
                }
            }
        }
        std::mem::take(&mut self.before)
    }

    /// The chain of local pod `key` in `dir`, and its membership in the parts of its
    /// isolating policies (a new part's sets are computed after).
    fn refresh_chain(&mut self, dir: Direction, key: &PodKey) {
        let before = &mut self.before;
        let c = &self.cluster;
        let pod = c.pod(&key.0, &key.1).filter(|p| p.node == self.node);
        let isolating: Vec<&Policy> = pod
            .map(|pod| {
                c.policies_in(&pod.namespace)
                    .filter(|p| p.selects(pod, dir))
                    .collect()
            })
            .unwrap_or_default();
        let now = pod.filter(|_| !isolating.is_empty()).map(|pod| PodChain {
            ip: pod.ip,
            policies: isolating.iter().map(|p| p.id.clone()).collect(),
            chain: pod_chain(pod, dir, &isolating),
        });
        let chain_key = (dir, key.clone());
        let was = match now {
            Some(now) => self.chains.insert(chain_key.clone(), now),
            None => self.chains.remove(&chain_key),
        };
        let old_ids = was.as_ref().map(|w| w.policies.clone()).unwrap_or_default();
        before.chains.entry(chain_key.clone()).or_insert(was);
        let new_ids = self
            .chains
            .get(&chain_key)
            .map(|c| c.policies.clone())
            .unwrap_or_default();
        for id in old_ids.iter().filter(|id| !new_ids.contains(id)) {
            let part_key = (dir, id.clone());
            let part = self
                .parts
                .get_mut(&part_key)
                .expect("a chain's policies have parts");
            before
                .parts
                .entry(part_key.clone())
                .or_insert_with(|| Some(part.sets.clone()));
            part.pods.remove(key);
            if part.pods.is_empty() {
                self.parts.remove(&part_key);
            }
        }
        for id in new_ids.into_iter().filter(|id| !old_ids.contains(id)) {
            let part_key = (dir, id);
            let part = self.parts.entry(part_key.clone()).or_insert_with(|| {
                before.parts.entry(part_key.clone()).or_insert(None);
                self.dirty_policies.insert(part_key.1.clone());
                Part {
                    pods: BTreeSet::new(),
                    members: Vec::new(),
                    sets: Vec::new(),
                }
            });
            part.pods.insert(key.clone());
        }
    }
}

/// Adds a pod's chain and its verdict-map element to `rs`.
fn add_chain(rs: &mut Ruleset, dir: Direction, c: Option<&PodChain>) {
    let Some(c) = c else { return };
    rs.maps
        .get_mut(map_name(dir))
        .expect("the frame has both maps")
        .insert(c.ip, c.chain.name.clone());
    rs.chains.push(c.chain.clone());
}
