//! One query in, one response out: the cluster zone from the shared view,
//! everything else from the cache or the upstreams (REFUSED when none).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use kinet_dns_zone::hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use kinet_dns_zone::hickory_proto::rr::RecordType;
use kinet_dns_zone::{answer, respond, respond_fast, truncate, ClusterView, DEFAULT_UDP_PAYLOAD};

use crate::answers::{self, AnswerCache, Cached, KeyBuf};
use crate::cache::{Cache, Key};
use crate::forward;
use crate::metrics::{Metrics, Proto};

/// The view every query reads; watch events write it in place, so a reader
/// sees either the state before an event or after it, never a gap.
pub type SharedView = Arc<RwLock<ClusterView>>;

const HEADER_LEN: usize = 12;
const CLASSIC_UDP_LIMIT: usize = 512;
/// Forwarded queries waiting on upstreams at once; beyond this new ones are
/// REFUSED (CoreDNS forward's `max_concurrent`), so a slow upstream cannot
/// pile up unbounded tasks and memory.
pub(crate) const MAX_FORWARDS_IN_FLIGHT: usize = 1024;
/// Encoded in-zone responses kept for reuse (about 250 bytes each): the hot set
/// of a cluster's names, not every record. Plain A/AAAA questions never get
/// here (they are answered from the wire as cheaply), so this holds SRV, PTR
/// and other answers that need hickory.
pub(crate) const ANSWER_CACHE_ENTRIES: usize = 4096;

/// One forwarded query's place under [`MAX_FORWARDS_IN_FLIGHT`]; released on
/// drop, also when the task carrying it is cancelled.
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Permit {
    fn try_take(count: &Arc<AtomicUsize>) -> Option<Permit> {
        let taken = count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_FORWARDS_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Permit(count.clone()))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the synchronous first step decided.
pub(crate) enum Step {
    /// Send these bytes (or nothing, for junk and stray responses).
    Done(Option<Vec<u8>>),
    /// Out of the zone with upstreams configured: needs the network.
    Forward(Message, Permit),
}

pub(crate) struct Handler {
    view: SharedView,
    metrics: Arc<Metrics>,
    upstreams: Vec<SocketAddr>,
    cache: Mutex<Cache>,
    answers: AnswerCache,
    in_flight: Arc<AtomicUsize>,
}

impl Handler {
    pub(crate) fn new(
        view: SharedView,
        metrics: Arc<Metrics>,
        upstreams: Vec<SocketAddr>,
        cache_size: usize,
    ) -> Self {
        Handler {
            view,
            metrics,
            upstreams,
            cache: Mutex::new(Cache::new(cache_size)),
            answers: AnswerCache::new(ANSWER_CACHE_ENTRIES),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Answer a query end to end.
    pub(crate) async fn handle(&self, bytes: &[u8], proto: Proto) -> Option<Vec<u8>> {
        let started = Instant::now();
        match self.local(bytes, proto, started) {
            Step::Done(out) => out,
            Step::Forward(req, permit) => Some(self.forward(req, permit, proto, started).await),
        }
    }

    /// Everything that needs no network: parse, count, answer from the view.
    pub(crate) fn local(&self, bytes: &[u8], proto: Proto, started: Instant) -> Step {
        if bytes.len() < HEADER_LEN || bytes[2] & 0x80 != 0 {
            return Step::Done(None);
        }
        let mut out = Vec::new();
        if self.quick(bytes, proto, started, &mut out) {
            return Step::Done(Some(out));
        }
        let key = answers::key(bytes, proto);
        let req = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.metrics.request(proto, None);
                let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                let op = OpCode::from_u8((bytes[2] >> 3) & 0x0f);
                let resp = Message::error_msg(id, op, ResponseCode::FormErr);
                return Step::Done(self.finish(resp, started));
            }
        };
        self.metrics
            .request(proto, req.queries.first().map(Query::query_type));
        let max_udp = (proto == Proto::Udp).then_some(usize::from(DEFAULT_UDP_PAYLOAD));
        let (resp, generation, keep) = {
            let view = self.read_view();
            let resp = respond(&view, &req, max_udp);
            let refused = resp.response_code == ResponseCode::Refused && !resp.authoritative;
            let forward = refused && !self.upstreams.is_empty() && forwardable(&view, &req);
            if forward {
                if let Some(permit) = Permit::try_take(&self.in_flight) {
                    return Step::Forward(req, permit);
                }
                tracing::debug!("too many forwarded queries in flight; refusing");
            }
            // A refusal for lack of forwarding capacity is momentary: never reuse it.
            (resp, view.generation(), !forward)
        };
        let rcode = resp.response_code;
        let out = self.finish(resp, started);
        if let (Some(key), Some(bytes), true) = (key, &out, keep) {
            let cached = Cached {
                rcode,
                truncated: bytes.get(2).is_some_and(|f| f & 0x02 != 0),
                bytes: bytes.clone().into_boxed_slice(),
            };
            self.answers.insert(key, generation, cached);
        }
        Step::Done(out)
    }

    /// The fast paths, neither of which parses into a hickory `Message`: a
    /// plain in-zone question is answered straight from the wire, and other
    /// queries answered before at the view's current generation are copied
    /// from the answer cache (ID patched). Both write into `out` without
    /// allocating when it has room. False when the caller must go through
    /// [`Self::local`].
    pub(crate) fn quick(
        &self,
        bytes: &[u8],
        proto: Proto,
        started: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        if bytes.len() < HEADER_LEN || bytes[2] & 0x80 != 0 {
            return false;
        }
        let max_udp = (proto == Proto::Udp).then_some(usize::from(DEFAULT_UDP_PAYLOAD));
        let generation = {
            let view = self.read_view();
            if let Some(rcode) = respond_fast(&view, bytes, max_udp, out) {
                drop(view);
                self.metrics.request(proto, question_type(bytes));
                self.metrics.response(rcode, false, started.elapsed());
                return true;
            }
            view.generation()
        };
        let mut buf = KeyBuf::new();
        let Some(key) = buf.set(bytes, proto) else {
            return false;
        };
        let Some((rcode, truncated)) =
            self.answers
                .get_into(key, generation, [bytes[0], bytes[1]], out)
        else {
            return false;
        };
        self.metrics.request(proto, question_type(bytes));
        self.metrics.response(rcode, truncated, started.elapsed());
        true
    }

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, ClusterView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Cache, then upstreams; SERVFAIL when none answers.
    pub(crate) async fn forward(
        &self,
        req: Message,
        _permit: Permit,
        proto: Proto,
        started: Instant,
    ) -> Vec<u8> {
        let query = &req.queries[0];
        let key = Key::of(query);
        let cached = self.lock_cache().get(&key, Instant::now());
        self.metrics.cache_lookup(cached.is_some());
        let upstream = match cached {
            Some(m) => Some(m),
            None => match forward::resolve(&self.upstreams, query).await {
                Ok(m) => {
                    self.metrics.forwarded(true);
                    let mut cache = self.lock_cache();
                    cache.insert(key, &m, Instant::now());
                    self.metrics.set_cache_entries(cache.len());
                    Some(m)
                }
                Err(e) => {
                    tracing::warn!(error = %e, name = %query.name(), "forwarding failed");
                    self.metrics.forwarded(false);
                    None
                }
            },
        };
        let resp = client_response(&req, upstream, proto);
        // A forwarded response always encodes unless the upstream sent junk
        // we could decode but not re-encode; then nothing is sent.
        self.finish(resp, started).unwrap_or_default()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, mut resp: Message, started: Instant) -> Option<Vec<u8>> {
        let mut bytes = resp.to_vec().ok();
        // Only TCP answers can get here (UDP ones are cut to 1232 already): a
        // huge headless Service still must fit the 16-bit length prefix.
        if bytes
            .as_ref()
            .is_some_and(|b| b.len() > usize::from(u16::MAX))
        {
            truncate(&mut resp, usize::from(u16::MAX));
            bytes = resp.to_vec().ok();
        }
        self.metrics
            .response(resp.response_code, resp.truncation, started.elapsed());
        bytes
    }
}

/// The type of a query's first question, read from the wire (for metrics on
/// cache hits, which skip parsing).
fn question_type(query: &[u8]) -> Option<RecordType> {
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        at += len + 1;
    }
    let t = query.get(at + 1..at + 3)?;
    Some(RecordType::from(u16::from_be_bytes([t[0], t[1]])))
}

/// A plain single-question query for a name we do not serve. Zone transfers
/// and EDNS versions we reject stay refused.
fn forwardable(view: &ClusterView, req: &Message) -> bool {
    if req.message_type != MessageType::Query
        || req.op_code != OpCode::Query
        || req.queries.len() != 1
    {
        return false;
    }
    let q = &req.queries[0];
    !matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
        && !answer(view, q.name(), q.query_type()).in_zone
}

/// The upstream's answer under the client's id and question, sized for the
/// client's transport.
fn client_response(req: &Message, upstream: Option<Message>, proto: Proto) -> Message {
    let mut resp = Message::response(req.id, req.op_code);
    resp.metadata.recursion_desired = req.recursion_desired;
    resp.metadata.checking_disabled = req.checking_disabled;
    resp.add_queries(req.queries.iter().cloned());
    match upstream {
        Some(up) => {
            resp.metadata.response_code = up.response_code;
            resp.metadata.recursion_available = up.recursion_available;
            resp.metadata.authentic_data = up.authentic_data;
            resp.answers = up.answers;
            resp.authorities = up.authorities;
            resp.additionals = up.additionals;
        }
        None => {
            resp.metadata.response_code = ResponseCode::ServFail;
            resp.metadata.recursion_available = true;
        }
    }
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(DEFAULT_UDP_PAYLOAD);
        resp.set_edns(edns);
    }
    if proto == Proto::Udp {
        let client = req.edns.as_ref().map_or(CLASSIC_UDP_LIMIT, |e| {
            usize::from(e.max_payload()).max(CLASSIC_UDP_LIMIT)
        });
        truncate(&mut resp, client.min(usize::from(DEFAULT_UDP_PAYLOAD)));
    }
    resp
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
