//! The forward cache: upstream responses kept for as long as their TTLs allow
//! (RFC 1035 for answers, RFC 2308 for negative ones). Time is an argument so
//! the tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use kinet_dns_zone::hickory_proto::op::{Message, Query, ResponseCode};
use kinet_dns_zone::hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// Caps as CoreDNS's cache plugin: one hour for answers, half that for denials.
const MAX_SUCCESS_TTL: u32 = 3600;
const MAX_DENIAL_TTL: u32 = 1800;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Key {
    name: Name,
    qtype: RecordType,
    class: DNSClass,
}

impl Key {
    pub fn of(q: &Query) -> Key {
        Key {
            name: q.name().to_lowercase(),
            qtype: q.query_type(),
            class: q.query_class(),
        }
    }
}

struct Entry {
    response: Message,
    stored: Instant,
    ttl: u32,
    /// Matches the eviction queue's copy; stale queue items are skipped.
    generation: u64,
}

/// A bounded map from question to response, evicting the oldest insert first.
pub struct Cache {
    map: HashMap<Key, Entry>,
    order: VecDeque<(Key, u64)>,
    capacity: usize,
    generation: u64,
}

impl Cache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The cached response with TTLs lowered by its age, or `None` when absent
    /// or expired.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Message> {
        let entry = self.map.get(key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            self.map.remove(key);
            return None;
        }
        let mut msg = entry.response.clone();
        for r in msg
            .answers
            .iter_mut()
            .chain(msg.authorities.iter_mut())
            .chain(msg.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(msg)
    }

    /// Keep `response` if it is cacheable; returns whether it was stored.
    pub fn insert(&mut self, key: Key, response: &Message, now: Instant) -> bool {
        let Some(ttl) = cache_ttl(response) else {
            return false;
        };
        if self.capacity == 0 {
            return false;
        }
        while self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let Some((old, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .map
                .get(&old)
                .is_some_and(|e| e.generation == generation)
            {
                self.map.remove(&old);
            }
        }
        self.generation += 1;
        let entry = Entry {
            response: response.clone(),
            stored: now,
            ttl,
            generation: self.generation,
        };
        self.order.push_back((key.clone(), self.generation));
        self.map.insert(key, entry);
        // Re-inserted keys leave stale queue items behind; drop them now and then.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
        true
    }
}

/// How long `response` may be cached, or `None` if it must not be: errors
/// other than NXDOMAIN, truncated answers, and denials without an SOA.
pub fn cache_ttl(response: &Message) -> Option<u32> {
    if response.truncation {
        return None;
    }
    let denial = || {
        response
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .map(|t| t.min(MAX_DENIAL_TTL))
    };
    let ttl = match response.response_code {
        ResponseCode::NXDomain => denial(),
        ResponseCode::NoError if response.answers.is_empty() => denial(),
        ResponseCode::NoError => response
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()
            .map(|t| t.min(MAX_SUCCESS_TTL)),
        _ => None,
    };
    ttl.filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_dns_zone::hickory_proto::rr::rdata::{A, SOA};
    use kinet_dns_zone::hickory_proto::rr::Record;
    use std::time::Duration;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn answer(q: &str, ttls: &[u32]) -> Message {
        let mut m = Message::response(7, kinet_dns_zone::hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(name(q), RecordType::A));
        for (i, t) in ttls.iter().enumerate() {
            let ip = std::net::Ipv4Addr::new(192, 0, 2, i as u8 + 1);
            m.add_answer(Record::from_rdata(name(q), *t, RData::A(A(ip))));
        }
        m
    }

    fn denial(rcode: ResponseCode, soa_ttl: u32, minimum: u32) -> Message {
        let mut m = answer("gone.example.", &[]);
        m.metadata.response_code = rcode;
        let soa = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, minimum);
        m.add_authority(Record::from_rdata(
            name("example."),
            soa_ttl,
            RData::SOA(soa),
        ));
        m
    }

    fn key(q: &str) -> Key {
        Key::of(&Query::query(name(q), RecordType::A))
    }

    #[test]
    fn ttl_rules() {
        assert_eq!(cache_ttl(&answer("a.example.", &[30, 10])), Some(10));
        assert_eq!(cache_ttl(&answer("a.example.", &[99999])), Some(3600));
        assert_eq!(cache_ttl(&answer("a.example.", &[0])), None);
        assert_eq!(cache_ttl(&denial(ResponseCode::NXDomain, 60, 20)), Some(20));
        assert_eq!(cache_ttl(&denial(ResponseCode::NoError, 15, 900)), Some(15));
        assert_eq!(cache_ttl(&answer("gone.example.", &[])), None, "no SOA");
        let mut fail = answer("a.example.", &[30]);
        fail.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(cache_ttl(&fail), None);
        let mut tc = answer("a.example.", &[30]);
        tc.metadata.truncation = true;
        assert_eq!(cache_ttl(&tc), None);
    }

    #[test]
    fn entries_age_and_expire() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        assert!(c.insert(key("A.Example."), &answer("a.example.", &[30, 10]), t0));
        let hit = c
            .get(&key("a.example."), t0 + Duration::from_secs(4))
            .unwrap();
        let ttls: Vec<u32> = hit.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, vec![26, 6], "TTLs count down, keys ignore case");
        assert!(c
            .get(&key("a.example."), t0 + Duration::from_secs(10))
            .is_none());
        assert_eq!(c.len(), 0, "expired entries are dropped on lookup");
    }

    #[test]
    fn oldest_insert_is_evicted_first() {
        let t0 = Instant::now();
        let mut c = Cache::new(2);
        c.insert(key("a."), &answer("a.", &[60]), t0);
        c.insert(key("b."), &answer("b.", &[60]), t0);
        // Refreshing "a" makes "b" the oldest.
        c.insert(key("a."), &answer("a.", &[60]), t0);
        c.insert(key("c."), &answer("c.", &[60]), t0);
        assert_eq!(c.len(), 2);
        assert!(c.get(&key("b."), t0).is_none());
        assert!(c.get(&key("a."), t0).is_some());
        assert!(c.get(&key("c."), t0).is_some());
        for i in 0..100 {
            let q = format!("n{i}.");
            c.insert(key(&q), &answer(&q, &[60]), t0);
        }
        assert_eq!(c.len(), 2);
        assert!(c.order.len() <= 4, "stale queue items are compacted");
        assert!(!Cache::new(0).insert(key("a."), &answer("a.", &[60]), t0));
    }
}
