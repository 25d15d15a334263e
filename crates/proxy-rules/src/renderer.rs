//! Rendering that remembers: each Service's part of the table (its chains, sets and map
//! elements) is kept as a fragment, re-rendered only when the Service or its EndpointSlices
//! change, and the `Update` for the kernel is computed from the changed fragments alone. A
//! sync with 10,000 Services and one changed slice costs about as much as with 10, as in
//! kube-proxy's partial syncs. `render` is the same machinery run once, so full and partial
//! syncs cannot disagree.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

// Keys here are ours (names we render), so a fast hash is safe; SipHash was about 15 % of
// a whole render.
use foldhash::{HashMap, HashSet, HashSetExt};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{NodeInfo, ProxyConfig};
use crate::diff::{Change, Update};
use crate::groups::{Group, GroupIds};
use crate::input::{ports_with_endpoints, SERVICE_NAME_LABEL};
use crate::model::{
    Action, Chain, LookupKey, Map, MapEntry, MapKey, MapVerdict, Match, Proto, Ruleset, Set, SetKey,
};
use crate::render::{render_port, Groups};
use crate::skeleton::skeleton;

/// The node's desired proxy state. Pure: same inputs, same ruleset, whatever
/// the order of `services` and `slices`. Endpoint groups get ids in name order.
pub fn render(
    services: &[Service],
    slices: &[EndpointSlice],
    node: &NodeInfo,
    config: &ProxyConfig,
) -> Ruleset {
    render_with_ids(services, slices, node, config, &GroupIds::default())
}

/// [`render`] with the endpoint groups of `ids` keeping their ids (a [`Renderer`]'s
/// [`Renderer::group_ids`]: the table it holds, rendered whole); other groups get the
/// lowest free ids, in name order.
pub fn render_with_ids(
    services: &[Service],
    slices: &[EndpointSlice],
    node: &NodeInfo,
    config: &ProxyConfig,
    ids: &GroupIds,
) -> Ruleset {
    let mut r = Renderer::new(node, config);
    r.ids = ids.clone();
    r.sync(services, slices);
    assemble(r.skeleton, r.fragments.into_values().map(|(_, f)| f))
}

/// `(namespace, name)` of a Service.
pub type ServiceKey = (String, String);

/// A Service and all its EndpointSlices.
pub type ServiceObjects<'a> = (&'a Service, Vec<&'a EndpointSlice>);

fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// What a fragment was rendered from: resource versions when the objects have them (as
/// everything from the API does), else the objects themselves.
#[derive(Debug, PartialEq)]
enum Source {
    Versions(String, Vec<String>),
    Objects(Box<Service>, Vec<EndpointSlice>),
}

impl Source {
    /// Whether `svc` and `slices` are what this was made from (no copies made to tell).
    fn matches(&self, svc: &Service, slices: &[&EndpointSlice]) -> bool {
        match self {
            Source::Versions(v, vs) => {
                svc.metadata.resource_version.as_ref() == Some(v)
                    && vs.len() == slices.len()
                    && vs
                        .iter()
                        .zip(slices)
                        .all(|(v, s)| s.metadata.resource_version.as_ref() == Some(v))
            }
            Source::Objects(s, ss) => {
                **s == *svc
                    && ss.len() == slices.len()
                    && ss.iter().zip(slices).all(|(a, b)| a == *b)
            }
        }
    }

    fn of(svc: &Service, slices: &[&EndpointSlice]) -> Source {
        let versions: Option<Vec<String>> = slices
            .iter()
            .map(|s| s.metadata.resource_version.clone())
            .collect();
        match (&svc.metadata.resource_version, versions) {
            (Some(v), Some(vs)) => Source::Versions(v.clone(), vs),
            _ => Source::Objects(
                Box::new(svc.clone()),
                slices.iter().map(|s| (*s).clone()).collect(),
            ),
        }
    }
}

/// One Service's part of the table.
#[derive(Debug, Default, Clone)]
struct Fragment {
    chains: Vec<Chain>,
    /// Sets of its own (affinity).
    sets: Vec<Set>,
    /// The endpoints maps its groups are in, without elements: shared with other Services.
    maps: Vec<Map>,
    /// Elements it adds to the skeleton's sets (its ClusterIPs).
    set_elements: Vec<(String, Ipv4Addr)>,
    /// Elements it claims in the skeleton's maps (its endpoints too).
    map_elements: Vec<(String, MapKey, MapEntry)>,
    /// The endpoint groups it holds ids for.
    groups: Vec<Group>,
    /// Its ports left without an endpoint group id.
    refused: Vec<String>,
}

impl Fragment {
    /// Whether it is what `svc` and `slices` render to: made from them, and complete (a
    /// port refused a group id is tried again).
    fn is_current(&self, source: &Source, svc: &Service, slices: &[&EndpointSlice]) -> bool {
        self.refused.is_empty() && source.matches(svc, slices)
    }

    /// Where its chains and endpoint maps send UDP.
    fn udp_targets(&self) -> HashSet<SocketAddrV4> {
        let udp_maps: HashSet<&str> = self
            .maps
            .iter()
            .filter(|m| m.key == LookupKey::Random(Proto::Udp))
            .map(|m| m.name.as_str())
            .collect();
        let in_maps = self.map_elements.iter().filter_map(|(map, _, e)| match e {
            MapEntry {
                verdict: MapVerdict::Endpoint(to),
                ..
            } if udp_maps.contains(map.as_str()) => Some(*to),
            _ => None,
        });
        udp_dnat_targets(&self.chains).chain(in_maps).collect()
    }
}

/// UDP DNAT targets of some chains.
pub fn udp_dnat_targets(chains: &[Chain]) -> impl Iterator<Item = SocketAddrV4> + '_ {
    chains
        .iter()
        .flat_map(|c| &c.rules)
        .filter_map(|r| match r.action {
            Action::Dnat(to) if r.matches.contains(&Match::L4Proto(Proto::Udp)) => Some(to),
            _ => None,
        })
}

/// What one `Renderer::sync` found.
#[derive(Debug)]
pub struct Synced {
    /// The changes since the previous sync, or `None` when only a full load will do (the
    /// first sync, or a set whose definition changed).
    pub update: Option<Update>,
    /// UDP endpoints no longer reachable through the Services that changed: their
    /// conntrack entries should be flushed.
    pub removed_udp: Vec<SocketAddrV4>,
    /// How many Services were re-rendered or removed.
    pub services: usize,
    /// `ns/svc:port` of the re-rendered ports whose endpoints got no group id (all 65,535
    /// taken): they have no DNAT rule, and are rendered again at every sync that looks at
    /// them until an id is free.
    pub refused: Vec<String>,
}

/// Desired state for one node, kept per Service between syncs.
#[derive(Debug)]
pub struct Renderer {
    node: NodeInfo,
    config: ProxyConfig,
    skeleton: Ruleset,
    /// The skeleton with no chains and no elements: what a fragment renders into.
    shell: Ruleset,
    fragments: BTreeMap<ServiceKey, (Source, Fragment)>,
    shared: Shared,
    ids: GroupIds,
    synced: bool,
}

/// Elements several Services may put in the skeleton's sets and maps.
#[derive(Debug, Default)]
struct Shared {
    /// Who claims each map key, in name order; the first wins, as in one render. Nearly
    /// every key has one claimant: a vector of one is far smaller than a tree's node.
    claims: HashMap<(String, MapKey), Vec<(ServiceKey, MapEntry)>>,
    /// How many Services put each address in a skeleton set.
    set_refs: HashMap<(String, Ipv4Addr), usize>,
    /// Each endpoints map in use, and by how many Services.
    maps: HashMap<String, (Map, usize)>,
}

impl Renderer {
    pub fn new(node: &NodeInfo, config: &ProxyConfig) -> Renderer {
        let skeleton = skeleton(node, config);
        let mut shell = skeleton.clone();
        shell.chains.clear();
        shell.chain_index.clear();
        shell.sets.iter_mut().for_each(|s| s.elements.clear());
        shell.maps.iter_mut().for_each(|m| m.elements.clear());
        Renderer {
            node: node.clone(),
            config: config.clone(),
            skeleton,
            shell,
            fragments: BTreeMap::new(),
            shared: Shared::default(),
            ids: GroupIds::default(),
            synced: false,
        }
    }

    /// The ids of the endpoint groups of the Services it holds.
    pub fn group_ids(&self) -> &GroupIds {
        &self.ids
    }

    /// Whether this renderer was made for `node` and `config` (else make a new one).
    pub fn renders_for(&self, node: &NodeInfo, config: &ProxyConfig) -> bool {
        self.node == *node && self.config == *config
    }

    /// Brings the state to `services` and `slices`, re-rendering only the Services whose
    /// objects changed.
    pub fn sync<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Synced {
        // Everything borrowed and sorted by Service: one merge with the fragments (kept in
        // the same order) finds what changed, without a lookup or a copy per Service.
        let mut slices: Vec<(&str, &str, &EndpointSlice)> = slices
            .into_iter()
            .filter_map(|s| {
                let svc = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
                Some((namespace(&s.metadata), svc.as_str(), s))
            })
            .collect();
        slices.sort_unstable_by(|a, b| {
            (a.0, a.1, &a.2.metadata.name).cmp(&(b.0, b.1, &b.2.metadata.name))
        });
        let mut services: Vec<(&str, &str, &Service)> = services
            .into_iter()
            .map(|s| {
                let name = s.metadata.name.as_deref().unwrap_or_default();
                (namespace(&s.metadata), name, s)
            })
            .collect();
        services.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        services.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));

        let mut changed: Vec<(ServiceKey, Option<(Source, Fragment)>)> = Vec::new();
        let mut old = self.fragments.iter().peekable();
        let mut rest = &slices[..];
        for &(ns, name, svc) in &services {
            let start = rest.partition_point(|s| (s.0, s.1) < (ns, name));
            let len = rest[start..].partition_point(|s| (s.0, s.1) == (ns, name));
            let own: Vec<&EndpointSlice> = rest[start..start + len].iter().map(|s| s.2).collect();
            rest = &rest[start + len..];
            while let Some((k, _)) = old.next_if(|(k, _)| (k.0.as_str(), k.1.as_str()) < (ns, name))
            {
                changed.push((k.clone(), None));
            }
            let current = old.next_if(|(k, _)| (k.0.as_str(), k.1.as_str()) == (ns, name));
            if current.is_some_and(|(_, (source, f))| f.is_current(source, svc, &own)) {
                continue;
            }
            let fragment = render_service(
                &self.shell,
                &self.node,
                &self.config,
                &mut self.ids,
                svc,
                &own,
            );
            let key = (ns.to_string(), name.to_string());
            changed.push((key, Some((Source::of(svc, &own), fragment))));
        }
        changed.extend(old.map(|(k, _)| (k.clone(), None)));
        self.commit(changed)
    }

    /// Brings the state of the named Services only to what is given for each: the Service
    /// and all its EndpointSlices, or `None` when it is gone. The others are not looked at,
    /// so the cost is that of the change, whatever the number of Services (the sync loop
    /// learns the names from watch events). The first sync must be a [`Renderer::sync`].
    pub fn sync_services<'a>(
        &mut self,
        touched: impl IntoIterator<Item = (ServiceKey, Option<ServiceObjects<'a>>)>,
    ) -> Synced {
        let mut changed: Vec<(ServiceKey, Option<(Source, Fragment)>)> = Vec::new();
        for (key, now) in touched {
            let current = self.fragments.get(&key);
            match now {
                None if current.is_some() => changed.push((key, None)),
                None => {}
                Some((svc, mut own)) => {
                    own.sort_unstable_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
                    if current.is_some_and(|(source, f)| f.is_current(source, svc, &own)) {
                        continue;
                    }
                    let fragment = render_service(
                        &self.shell,
                        &self.node,
                        &self.config,
                        &mut self.ids,
                        svc,
                        &own,
                    );
                    changed.push((key, Some((Source::of(svc, &own), fragment))));
                }
            }
        }
        // The same order as a whole sync: shared map keys are claimed in name order.
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        changed.dedup_by(|a, b| a.0 == b.0);
        self.commit(changed)
    }

    /// Puts the re-rendered (or removed) Services in place and computes the update.
    fn commit(&mut self, changed: Vec<(ServiceKey, Option<(Source, Fragment)>)>) -> Synced {
        let services = changed.len();
        let mut delta = Delta::default();
        let mut full = !self.synced;
        let mut removed_udp: HashSet<SocketAddrV4> = HashSet::new();
        let mut refused = Vec::new();
        for (key, new) in changed {
            let old = match new {
                Some(n) => self.fragments.insert(key.clone(), n),
                None => self.fragments.remove(&key),
            };
            let empty = Fragment::default();
            let old_frag = old.as_ref().map_or(&empty, |(_, f)| f);
            let new_frag = self.fragments.get(&key).map_or(&empty, |(_, f)| f);
            // The first sync is a full load: no changes to compute.
            if self.synced {
                full |= delta.chains_and_sets(old_frag, new_frag);
                let gone = old_frag.udp_targets();
                removed_udp.extend(gone.difference(&new_frag.udp_targets()));
            }
            // A full load sends the whole table: no delta to record.
            let d = self.synced.then_some(&mut delta);
            self.shared.reclaim(&key, old_frag, new_frag, d);
            for g in old_frag
                .groups
                .iter()
                .filter(|g| !new_frag.groups.contains(g))
            {
                self.ids.release(g);
            }
            refused.extend(new_frag.refused.iter().cloned());
        }
        self.synced = true;
        let mut removed_udp: Vec<SocketAddrV4> = removed_udp.into_iter().collect();
        removed_udp.sort();
        Synced {
            update: (!full).then(|| delta.into_update(&self.skeleton, &self.shared)),
            removed_udp,
            services,
            refused,
        }
    }

    /// The whole table: the skeleton plus every fragment.
    pub fn ruleset(&self) -> Ruleset {
        assemble(
            self.skeleton.clone(),
            self.fragments.values().map(|(_, f)| f.clone()),
        )
    }
}

/// One Service's fragment, rendered into a copy of `shell`.
fn render_service(
    shell: &Ruleset,
    node: &NodeInfo,
    config: &ProxyConfig,
    ids: &mut GroupIds,
    svc: &Service,
    slices: &[&EndpointSlice],
) -> Fragment {
    let mut rs = shell.clone();
    let cluster_cidr = config.cluster_cidr();
    let mut groups = Groups {
        ids,
        held: Vec::new(),
        refused: Vec::new(),
    };
    for (sp, eps) in ports_with_endpoints([svc], slices.iter().copied(), &node.name) {
        render_port(&mut rs, &sp, &eps, cluster_cidr, &mut groups);
    }
    let maps = rs.maps[shell.maps.len()..]
        .iter()
        .map(|m| Map {
            elements: BTreeMap::new(),
            ..m.clone()
        })
        .collect();
    Fragment {
        chains: rs.chains,
        sets: rs.sets.split_off(shell.sets.len()),
        maps,
        set_elements: rs
            .sets
            .iter()
            .flat_map(|s| s.elements.iter().map(|ip| (s.name.clone(), *ip)))
            .collect(),
        map_elements: rs
            .maps
            .into_iter()
            .flat_map(|m| {
                let name = m.name;
                m.elements
                    .into_iter()
                    .map(move |(k, e)| (name.clone(), k, e))
            })
            .collect(),
        groups: groups.held,
        refused: groups.refused,
    }
}

impl Shared {
    /// Moves one Service's claims on shared set and map elements from `old` to `new`,
    /// noting in `d` (unless this is a full load) what each touched element was before.
    fn reclaim(
        &mut self,
        who: &ServiceKey,
        old: &Fragment,
        new: &Fragment,
        mut d: Option<&mut Delta>,
    ) {
        for m in &old.maps {
            if let Some(d) = d.as_deref_mut() {
                let present = self.maps.contains_key(&m.name);
                d.maps_before.entry(m.name.clone()).or_insert(present);
            }
            if let Some((_, n)) = self.maps.get_mut(&m.name) {
                *n -= 1;
                if *n == 0 {
                    self.maps.remove(&m.name);
                }
            }
        }
        for m in &new.maps {
            if let Some(d) = d.as_deref_mut() {
                let present = self.maps.contains_key(&m.name);
                d.maps_before.entry(m.name.clone()).or_insert(present);
            }
            match self.maps.get_mut(&m.name) {
                Some((_, n)) => *n += 1,
                None => {
                    self.maps.insert(m.name.clone(), (m.clone(), 1));
                }
            }
        }
        for (set, ip) in &old.set_elements {
            let k = (set.clone(), *ip);
            if let Some(d) = d.as_deref_mut() {
                d.set_before.entry(k.clone()).or_insert(true);
            }
            if let Some(n) = self.set_refs.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.set_refs.remove(&k);
                }
            }
        }
        for (set, ip) in &new.set_elements {
            let k = (set.clone(), *ip);
            if let Some(d) = d.as_deref_mut() {
                let present = self.set_refs.contains_key(&k);
                d.set_before.entry(k.clone()).or_insert(present);
            }
            *self.set_refs.entry(k).or_default() += 1;
        }
        if let Some(d) = d {
            for (map, key, _) in old.map_elements.iter().chain(&new.map_elements) {
                let k = (map.clone(), *key);
                let winner = self.winner(&k).cloned();
                d.map_before.entry(k).or_insert(winner);
            }
        }
        for (map, key, _) in &old.map_elements {
            let k = (map.clone(), *key);
            if let Some(c) = self.claims.get_mut(&k) {
                c.retain(|(w, _)| w != who);
                if c.is_empty() {
                    self.claims.remove(&k);
                }
            }
        }
        for (map, key, entry) in &new.map_elements {
            let c = self.claims.entry((map.clone(), *key)).or_default();
            match c.binary_search_by(|(w, _)| w.cmp(who)) {
                Ok(i) => c[i].1 = entry.clone(),
                Err(i) => c.insert(i, (who.clone(), entry.clone())),
            }
        }
    }

    fn winner(&self, k: &(String, MapKey)) -> Option<&MapEntry> {
        self.claims.get(k).and_then(|c| c.first()).map(|(_, e)| e)
    }
}

/// A touched map key: its winning entry before and after.
type MapChange<'a> = (&'a (String, MapKey), Option<MapEntry>, Option<&'a MapEntry>);

/// The skeleton with the fragments added in order (map keys: first claim wins).
fn assemble(mut rs: Ruleset, fragments: impl Iterator<Item = Fragment>) -> Ruleset {
    for f in fragments {
        for c in f.chains {
            rs.chain_index.insert(c.name.clone(), rs.chains.len());
            rs.chains.push(c);
        }
        for s in f.sets {
            rs.add_set(s);
        }
        for m in f.maps {
            rs.add_map(m);
        }
        for (set, ip) in f.set_elements {
            if let Some(s) = rs.set_mut(&set) {
                s.elements.insert(ip);
            }
        }
        for (map, key, entry) in f.map_elements {
            if let Some(m) = rs.map_mut(&map) {
                m.elements.entry(key).or_insert(entry);
            }
        }
    }
    rs
}

/// Changes collected over the Services of one sync, put in transaction order at the end.
#[derive(Default)]
struct Delta {
    add_sets: Vec<Change>,
    add_chains: Vec<Change>,
    rules: Vec<Change>,
    gone_chains: Vec<String>,
    del_sets: Vec<Change>,
    /// Whether each touched skeleton-set element was present before this sync.
    set_before: HashMap<(String, Ipv4Addr), bool>,
    /// The winning entry of each touched map key before this sync.
    map_before: HashMap<(String, MapKey), Option<MapEntry>>,
    /// Whether each endpoints map a changed Service used or uses existed before this sync.
    maps_before: HashMap<String, bool>,
}

impl Delta {
    /// Chain and own-set changes from `old` to `new`; true when a set's definition
    /// changed, which needs a full load.
    fn chains_and_sets(&mut self, old: &Fragment, new: &Fragment) -> bool {
        let old_chains: HashMap<&str, &Chain> =
            old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let new_names: HashSet<&str> = new.chains.iter().map(|c| c.name.as_str()).collect();
        for c in &new.chains {
            match old_chains.get(c.name.as_str()) {
                Some(o) if o.rules == c.rules => continue,
                Some(_) => self.rules.push(Change::FlushChain(c.name.clone())),
                None => self.add_chains.push(Change::AddChain(c.name.clone())),
            }
            self.rules.extend(c.rules.iter().map(|r| Change::AddRule {
                chain: c.name.clone(),
                rule: r.clone(),
            }));
        }
        self.gone_chains.extend(
            old.chains
                .iter()
                .filter(|c| !new_names.contains(c.name.as_str()))
                .map(|c| c.name.clone()),
        );
        let old_sets: HashMap<&str, &Set> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let new_sets: HashSet<&str> = new.sets.iter().map(|s| s.name.as_str()).collect();
        for s in &new.sets {
            match old_sets.get(s.name.as_str()) {
                Some(o) if *o == s => {}
                Some(_) => return true,
                None => self.add_sets.push(Change::AddSet(s.clone())),
            }
        }
        self.del_sets.extend(
            old.sets
                .iter()
                .filter(|s| !new_sets.contains(s.name.as_str()))
                .map(|s| Change::DeleteSet(s.name.clone())),
        );
        false
    }

    /// The update, in transaction order; `skeleton` says how its sets hold elements.
    fn into_update(self, skeleton: &Ruleset, r: &Shared) -> Update {
        let table = skeleton.table();
        let mut changes = self.add_sets;
        // Endpoints maps the first group came into, and those the last group left.
        let mut new_maps: Vec<&Map> = (self.maps_before.iter())
            .filter(|(_, before)| !**before)
            .filter_map(|(name, _)| r.maps.get(name).map(|(m, _)| m))
            .collect();
        new_maps.sort_by(|a, b| a.name.cmp(&b.name));
        changes.extend(new_maps.into_iter().cloned().map(Change::AddMap));
        let mut gone_maps: Vec<&str> = (self.maps_before.iter())
            .filter(|(name, before)| **before && !r.maps.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect();
        gone_maps.sort();
        changes.extend(self.add_chains);
        changes.extend(self.rules);
        let mut map_changes: Vec<MapChange> = self
            .map_before
            .iter()
            .map(|(k, before)| (k, before.clone(), r.winner(k)))
            .filter(|(_, before, after)| before.as_ref() != *after)
            .collect();
        map_changes.sort_by(|a, b| a.0.cmp(b.0));
        // A map deleted whole takes its elements with it.
        for ((map, key), before, _) in &map_changes {
            if before.is_some() && !gone_maps.contains(&map.as_str()) {
                changes.push(Change::DeleteMapElement {
                    map: map.clone(),
                    key: *key,
                });
            }
        }
        for ((map, key), _, after) in &map_changes {
            if let Some(entry) = after {
                changes.push(Change::AddMapElement {
                    map: map.clone(),
                    key: *key,
                    entry: (*entry).clone(),
                });
            }
        }
        let mut set_changes: Vec<(&(String, Ipv4Addr), bool)> = self
            .set_before
            .iter()
            .map(|(k, before)| (k, *before))
            .filter(|(k, before)| *before != r.set_refs.contains_key(*k))
            .collect();
        set_changes.sort();
        changes.extend(set_changes.into_iter().map(|((set, addr), before)| {
            let key = skeleton.set(set).map_or(SetKey::Addr, |s| s.key);
            let (set, addr) = (set.clone(), *addr);
            if before {
                Change::DeleteSetElement { set, key, addr }
            } else {
                Change::AddSetElement { set, key, addr }
            }
        }));
        changes.extend(self.gone_chains.iter().cloned().map(Change::FlushChain));
        changes.extend(self.gone_chains.into_iter().map(Change::DeleteChain));
        changes.extend(self.del_sets);
        changes.extend(
            gone_maps
                .into_iter()
                .map(|m| Change::DeleteSet(m.to_string())),
        );
        Update {
            table: table.to_string(),
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{trace, Packet, Verdict};

    fn objects() -> (Service, EndpointSlice) {
        let svc = serde_json::json!({
            "metadata": {"namespace": "default", "name": "web", "resourceVersion": "1"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]},
        });
        let slice = serde_json::json!({
            "metadata": {"namespace": "default", "name": "web-1", "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}],
        });
        (
            serde_json::from_value(svc).unwrap(),
            serde_json::from_value(slice).unwrap(),
        )
    }

    #[test]
    fn a_port_without_a_group_id_is_refused_rejected_and_tried_again() {
        let node = NodeInfo {
            name: "node-a".into(),
            node_ips: vec![],
            pod_cidr: None,
        };
        let mut r = Renderer::new(&node, &ProxyConfig::default());
        r.ids = GroupIds::exhausted();
        let (svc, slice) = objects();
        let synced = r.sync([&svc], [&slice]);
        assert_eq!(synced.refused, ["default/web:http"]);
        let rs = r.ruleset();
        let dnat = (rs.chains().iter().flat_map(|c| &c.rules))
            .any(|rule| matches!(rule.action, Action::DnatRandom { .. }));
        assert!(!dnat, "no DNAT rule without a group");
        let client = "10.244.2.1".parse().unwrap();
        let to = Packet::tcp(client, "10.96.0.20".parse().unwrap(), 80);
        assert_eq!(trace(&rs, &to), Verdict::Reject);
        // The same objects again: rendered again, as an id may have been freed since.
        let again = r.sync([&svc], [&slice]);
        assert_eq!((again.services, again.refused.len()), (1, 1));
    }
}
