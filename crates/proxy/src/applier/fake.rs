//! A recording fake of the kernel for the applier's tests: it keeps the table as the
//! kernel would (applying each transaction atomically, refusing what the kernel refuses
//! for missing objects), counts generations, records every call, and fails on demand.

use std::io;
use std::net::SocketAddrV4;

use kinet_proxy_rules::{Change, Loaded, LoadedBase, LoadedChain, Map, Set, Update};
use nix::errno::Errno;

use super::backend::NftBackend;
use crate::netlink::{loaded_forms, LoadedRule, NetlinkError};

#[derive(Debug, Default)]
pub struct FakeNft {
    /// The table as the kernel holds it (`None`: absent).
    pub table: Option<Loaded<LoadedRule>>,
    pub generation: u32,
    /// Every transaction sent, committed or refused.
    pub batches: Vec<Update>,
    pub reads: usize,
    pub flushed: Vec<SocketAddrV4>,
    pub resets: usize,
    /// Errors the next call of each kind returns instead of doing anything.
    pub fail_generation: Option<NetlinkError>,
    pub fail_read: Option<NetlinkError>,
    pub fail_apply: Option<NetlinkError>,
    pub fail_flush: Option<NetlinkError>,
    /// Someone else commits right after our next transaction.
    pub commit_after_apply: bool,
}

impl FakeNft {
    /// Someone else's transaction (`nft` by hand, another table's load).
    pub fn commit_by_other(&mut self, edit: impl FnOnce(&mut Option<Loaded<LoadedRule>>)) {
        edit(&mut self.table);
        self.generation += 1;
    }
}

fn refused(change: &Change, errno: i32) -> NetlinkError {
    NetlinkError::Rejected {
        what: format!("{change:?}"),
        source: io::Error::from_raw_os_error(errno),
        more: 0,
    }
}

/// The kernel finds objects by name.
trait Named {
    fn name(&self) -> &str;
}

impl Named for LoadedChain<LoadedRule> {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Set {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Map {
    fn name(&self) -> &str {
        &self.name
    }
}

fn index<T: Named>(objects: &[T], name: &str) -> Option<usize> {
    objects.iter().position(|o| o.name() == name)
}

fn find<'a, T: Named>(objects: &'a mut [T], name: &str) -> Option<&'a mut T> {
    objects.iter_mut().find(|o| o.name() == name)
}

/// One change as the kernel applies it to `table`.
fn change(table: &mut Option<Loaded<LoadedRule>>, c: &Change) -> Result<(), NetlinkError> {
    let enoent = || refused(c, Errno::ENOENT as i32);
    if let Change::AddTable(_) = c {
        table.get_or_insert_with(|| Loaded {
            chains: Vec::new(),
            sets: Vec::new(),
            maps: Vec::new(),
        });
        return Ok(());
    }
    if let Change::DeleteTable = c {
        *table = None;
        return Ok(());
    }
    let t = table.as_mut().ok_or_else(enoent)?;
    let einval = || refused(c, Errno::EINVAL as i32);
    match c {
        Change::AddTable(_) | Change::DeleteTable => unreachable!("handled above"),
        Change::AddSet(s) if index(&t.sets, &s.name).is_none() => t.sets.push(s.clone()),
        Change::AddMap(m) if index(&t.maps, &m.name).is_none() => t.maps.push(m.clone()),
        Change::AddChain(name) if index(&t.chains, name).is_none() => t.chains.push(LoadedChain {
            name: name.clone(),
            base: None,
            rules: Vec::new(),
        }),
        Change::AddBaseChain { name, base } if index(&t.chains, name).is_none() => {
            t.chains.push(LoadedChain {
                name: name.clone(),
                base: Some(LoadedBase::of(base).ok_or_else(einval)?),
                rules: Vec::new(),
            })
        }
        Change::AddSet(_)
        | Change::AddMap(_)
        | Change::AddChain(_)
        | Change::AddBaseChain { .. } => {}
        Change::FlushChain(name) => find(&mut t.chains, name).ok_or_else(enoent)?.rules.clear(),
        Change::AddRule { chain, rule } => {
            let forms = loaded_forms(rule);
            if forms.is_empty() {
                return Err(einval());
            }
            find(&mut t.chains, chain)
                .ok_or_else(enoent)?
                .rules
                .extend(forms);
        }
        Change::DeleteChain(name) => {
            let i = index(&t.chains, name).ok_or_else(enoent)?;
            if !t.chains[i].rules.is_empty() {
                return Err(refused(c, Errno::EBUSY as i32));
            }
            t.chains.remove(i);
        }
        Change::DeleteSet(name) => {
            t.sets.remove(index(&t.sets, name).ok_or_else(enoent)?);
        }
        Change::AddMapElement { map, key, entry } => {
            let m = find(&mut t.maps, map).ok_or_else(enoent)?;
            m.elements.insert(*key, entry.clone());
        }
        Change::DeleteMapElement { map, key } => {
            let m = find(&mut t.maps, map).ok_or_else(enoent)?;
            m.elements.remove(key).ok_or_else(enoent)?;
        }
        // Dynamic sets' elements are the packet path's: never read back.
        Change::AddSetElement { set, addr, .. } => {
            let s = find(&mut t.sets, set).ok_or_else(enoent)?;
            if s.timeout_secs.is_none() {
                s.elements.insert(*addr);
            }
        }
        Change::DeleteSetElement { set, addr, .. } => {
            let s = find(&mut t.sets, set).ok_or_else(enoent)?;
            if s.timeout_secs.is_none() && !s.elements.remove(addr) {
                return Err(enoent());
            }
        }
    }
    Ok(())
}

impl NftBackend for FakeNft {
    fn generation(&mut self) -> Result<u32, NetlinkError> {
        self.fail_generation.take().map_or(Ok(self.generation), Err)
    }

    fn read_table(&mut self, _table: &str) -> Result<Option<Loaded<LoadedRule>>, NetlinkError> {
        self.reads += 1;
        match self.fail_read.take() {
            Some(e) => Err(e),
            None => Ok(self.table.clone()),
        }
    }

    fn apply(&mut self, update: &Update) -> Result<(), NetlinkError> {
        self.batches.push(update.clone());
        if let Some(e) = self.fail_apply.take() {
            return Err(e);
        }
        // One transaction: all of it or nothing.
        let mut next = self.table.clone();
        for c in &update.changes {
            change(&mut next, c)?;
        }
        self.table = next;
        self.generation += 1;
        if std::mem::take(&mut self.commit_after_apply) {
            self.generation += 1;
        }
        Ok(())
    }

    fn flush_udp_to(&mut self, ep: SocketAddrV4) -> Result<usize, NetlinkError> {
        if let Some(e) = self.fail_flush.take() {
            return Err(e);
        }
        self.flushed.push(ep);
        Ok(1)
    }

    fn reset(&mut self) {
        self.resets += 1;
    }
}
