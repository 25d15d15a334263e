//! Encoded responses to questions the server answered itself, reused while the
//! cluster view stays at the same generation.
//!
//! The key is the whole query except its ID (flags, counts, question in the
//! client's case, EDNS record), plus the transport, so a hit is exactly the
//! response `respond` would build again: only the ID differs. A client that
//! randomises case (0x20) or sends per-query EDNS options simply misses.
//! Knot and NSD get their speed from precompiled answers; this is the same idea
//! for a zone that changes under watches.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use kinet_dns_zone::hickory_proto::op::ResponseCode;

use crate::metrics::Proto;

const SHARDS: usize = 16;
const HEADER_LEN: usize = 12;
/// Longer queries (large EDNS options) are not worth keeping.
const MAX_KEY: usize = 300;
/// Larger responses (big headless Services over TCP, up to 64 KiB) are rebuilt each
/// time, so the cache's memory stays bounded by entries × this.
const MAX_RESPONSE: usize = 1232;

/// What a hit gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cached {
    pub rcode: ResponseCode,
    pub truncated: bool,
    /// The response; its first two bytes (the ID) are the caller's to set.
    pub bytes: Box<[u8]>,
}

struct Shard {
    generation: u64,
    entries: HashMap<Box<[u8]>, Cached>,
}

pub(crate) struct AnswerCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

/// The cache key of a query, or `None` when it is not one we keep: not a
/// plain one-question query, or too long.
pub(crate) fn key(query: &[u8], proto: Proto) -> Option<Vec<u8>> {
    let mut k = KeyBuf::new();
    k.set(query, proto).map(<[u8]>::to_vec)
}

/// Room for one key on the stack, so a lookup needs no allocation.
pub(crate) struct KeyBuf([u8; MAX_KEY]);

impl KeyBuf {
    pub(crate) fn new() -> Self {
        KeyBuf([0; MAX_KEY])
    }

    /// The key of `query` (see [`key`]), borrowed from this buffer.
    pub(crate) fn set(&mut self, query: &[u8], proto: Proto) -> Option<&[u8]> {
        if !cacheable(query) {
            return None;
        }
        let n = query.len() - 1;
        self.0[0] = proto as u8;
        self.0[1..n].copy_from_slice(&query[2..]);
        Some(&self.0[..n])
    }
}

fn cacheable(query: &[u8]) -> bool {
    if query.len() < HEADER_LEN || query.len() > MAX_KEY {
        return false;
    }
    let flags = query[2];
    let opcode = (flags >> 3) & 0x0f;
    let counts = &query[4..HEADER_LEN];
    // QR=0, QUERY, one question, no answer/authority records, at most the OPT record.
    flags & 0x80 == 0
        && opcode == 0
        && counts[..6] == [0, 1, 0, 0, 0, 0]
        && counts[6] == 0
        && counts[7] <= 1
}

impl AnswerCache {
    /// Room for about `capacity` responses; 0 turns the cache off.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        AnswerCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        generation: 0,
                        entries: HashMap::new(),
                    })
                })
                .collect(),
            per_shard,
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The response kept for `key` at `generation`, with `id` set.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8], generation: u64, id: [u8; 2]) -> Option<Cached> {
        let mut out = Vec::new();
        let (rcode, truncated) = self.get_into(key, generation, id, &mut out)?;
        Some(Cached {
            rcode,
            truncated,
            bytes: out.into_boxed_slice(),
        })
    }

    /// Copies the response kept for `key` at `generation` into `out` (replacing
    /// what it held) with `id` set; returns its rcode and TC flag. No allocation
    /// when `out` has room, so a hit costs a hash lookup and a copy.
    pub(crate) fn get_into(
        &self,
        key: &[u8],
        generation: u64,
        id: [u8; 2],
        out: &mut Vec<u8>,
    ) -> Option<(ResponseCode, bool)> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(key);
        if shard.generation != generation {
            return None;
        }
        let hit = shard.entries.get(key)?;
        out.clear();
        out.extend_from_slice(&hit.bytes);
        out[..2].copy_from_slice(&id);
        Some((hit.rcode, hit.truncated))
    }

    /// Keeps `value` for `key`, answered at `generation`. Entries of older
    /// generations are dropped first; a full shard evicts one entry.
    pub(crate) fn insert(&self, key: Vec<u8>, generation: u64, value: Cached) {
        if self.per_shard == 0 || !(HEADER_LEN..=MAX_RESPONSE).contains(&value.bytes.len()) {
            return;
        }
        let mut shard = self.shard(&key);
        if shard.generation != generation {
            // A response computed before a change may arrive after it; never keep it
            // under the newer generation.
            if generation < shard.generation {
                return;
            }
            shard.entries.clear();
            shard.generation = generation;
        }
        if shard.entries.len() >= self.per_shard {
            // Evict one entry, the first in hash order (an arbitrary one): a full
            // shard stays full, so with more names than room the hit rate stays
            // room / names instead of dropping with every clear.
            let victim = shard.entries.keys().next().cloned();
            if let Some(victim) = victim {
                shard.entries.remove(&victim);
            }
        }
        shard.entries.insert(key.into_boxed_slice(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, arcount: u8) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, arcount]);
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    fn cached(id: u16) -> Cached {
        let mut bytes = id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        Cached {
            rcode: ResponseCode::NoError,
            truncated: false,
            bytes: bytes.into_boxed_slice(),
        }
    }

    #[test]
    fn keys_ignore_only_the_id() {
        let a = key(&query(1, "web.default.svc.cluster.local", 0), Proto::Udp).unwrap();
        let b = key(&query(2, "web.default.svc.cluster.local", 0), Proto::Udp).unwrap();
        assert_eq!(a, b);
        let tcp = key(&query(1, "web.default.svc.cluster.local", 0), Proto::Tcp).unwrap();
        assert_ne!(a, tcp);
        let upper = key(&query(1, "WEB.default.svc.cluster.local", 0), Proto::Udp).unwrap();
        assert_ne!(a, upper);
        let mut no_rd = query(1, "web.default.svc.cluster.local", 0);
        no_rd[2] = 0;
        assert_ne!(a, key(&no_rd, Proto::Udp).unwrap());
        // Responses, other opcodes, several questions, answers in the query: not kept.
        let mut resp = query(1, "a.b", 0);
        resp[2] |= 0x80;
        assert_eq!(key(&resp, Proto::Udp), None);
        let mut notify = query(1, "a.b", 0);
        notify[2] = 4 << 3;
        assert_eq!(key(&notify, Proto::Udp), None);
        let mut two = query(1, "a.b", 0);
        two[5] = 2;
        assert_eq!(key(&two, Proto::Udp), None);
        assert_eq!(key(&query(1, "a.b", 2), Proto::Udp), None);
        assert!(key(&query(1, "a.b", 1), Proto::Udp).is_some());
        assert_eq!(key(&[0; 5], Proto::Udp), None);
    }

    #[test]
    fn hits_carry_the_callers_id_until_the_view_moves() {
        let cache = AnswerCache::new(100);
        let k = key(&query(1, "a.b", 0), Proto::Udp).unwrap();
        assert_eq!(cache.get(&k, 7, [0, 9]), None);
        cache.insert(k.clone(), 7, cached(1));
        let hit = cache.get(&k, 7, [0xab, 0xcd]).unwrap();
        assert_eq!(&hit.bytes[..2], &[0xab, 0xcd]);
        assert_eq!(&hit.bytes[2..], &cached(1).bytes[2..]);
        // The stored copy keeps its bytes; each hit gets its own ID.
        assert_eq!(&cache.get(&k, 7, [0, 1]).unwrap().bytes[..2], &[0, 1]);
        assert_eq!(cache.get(&k, 8, [0, 1]), None);
        // An answer computed at an older generation is not kept under a newer one.
        cache.insert(k.clone(), 8, cached(2));
        cache.insert(k.clone(), 7, cached(3));
        assert_eq!(cache.get(&k, 7, [0, 1]), None);
        assert!(cache.get(&k, 8, [0, 1]).is_some());
    }

    #[test]
    fn large_responses_are_not_kept() {
        let cache = AnswerCache::new(100);
        let k = key(&query(1, "huge.b", 0), Proto::Tcp).unwrap();
        let mut big = cached(1);
        big.bytes = vec![0; MAX_RESPONSE + 1].into_boxed_slice();
        cache.insert(k.clone(), 1, big);
        assert_eq!(cache.get(&k, 1, [0, 0]), None);
    }

    #[test]
    fn bounded_and_switchable_off() {
        let cache = AnswerCache::new(SHARDS);
        for i in 0..1000 {
            let k = key(&query(1, &format!("s{i}.b"), 0), Proto::Udp).unwrap();
            cache.insert(k, 1, cached(1));
        }
        let kept: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap().entries.len())
            .sum();
        assert_eq!(kept, SHARDS);
        let off = AnswerCache::new(0);
        let k = key(&query(1, "a.b", 0), Proto::Udp).unwrap();
        off.insert(k.clone(), 1, cached(1));
        assert_eq!(off.get(&k, 1, [0, 0]), None);
    }
}
