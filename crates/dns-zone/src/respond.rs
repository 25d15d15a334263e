//! Whole-message handling: header flags, EDNS(0), error rcodes, truncation.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::answer::answer;
use crate::view::ClusterView;

/// UDP payload we advertise (the DNS flag day 2020 value).
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
/// RFC 1035: a client without EDNS accepts at most this over UDP.
const CLASSIC_UDP_LIMIT: usize = 512;
const HEADER_LEN: usize = 12;

/// Build the response to `request`.
///
/// `max_udp` is `Some(our UDP buffer)` for UDP and `None` for TCP; for UDP the
/// response is cut to what the client accepts (512 without EDNS) and TC set.
/// Names outside the cluster zone are REFUSED: no upstream is known here.
pub fn respond(view: &ClusterView, request: &Message, max_udp: Option<usize>) -> Message {
    let mut resp = Message::response(request.id, request.op_code);
    resp.metadata.recursion_desired = request.recursion_desired;
    resp.metadata.checking_disabled = request.checking_disabled;
    resp.add_queries(request.queries.iter().cloned());

    if let Some(req_edns) = &request.edns {
        let mut edns = Edns::new();
        let ours = max_udp.map_or(DEFAULT_UDP_PAYLOAD, |m| clamp_u16(m).max(512));
        edns.set_max_payload(ours);
        resp.set_edns(edns);
        if req_edns.version() > 0 {
            resp.metadata.response_code = ResponseCode::BADVERS;
            return resp;
        }
    }
    let rcode = if request.message_type != MessageType::Query || request.queries.len() != 1 {
        Some(ResponseCode::FormErr)
    } else if request.op_code != OpCode::Query {
        Some(ResponseCode::NotImp)
    } else {
        None
    };
    if let Some(rcode) = rcode {
        resp.metadata.response_code = rcode;
        return resp;
    }
    let q = &request.queries[0];
    let refuse = !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY)
        || matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR);
    if refuse {
        resp.metadata.response_code = ResponseCode::Refused;
        return resp;
    }

    let a = answer(view, q.name(), q.query_type());
    resp.metadata.response_code = a.rcode;
    resp.metadata.authoritative = a.authoritative;
    // Like CoreDNS, the cluster resolver presents itself as recursive for what it serves.
    resp.metadata.recursion_available = a.in_zone;
    resp.answers = a.answers;
    resp.authorities = a.authority;
    resp.additionals = a.additionals;

    if let Some(ours) = max_udp {
        let client = request.edns.as_ref().map_or(CLASSIC_UDP_LIMIT, |e| {
            usize::from(e.max_payload()).max(CLASSIC_UDP_LIMIT)
        });
        truncate(&mut resp, ours.min(client));
    }
    resp
}

/// Answer raw request bytes. `None` means send nothing (a response, or too
/// short to carry an id); undecodable queries get FORMERR.
pub fn respond_wire(view: &ClusterView, request: &[u8], max_udp: Option<usize>) -> Option<Vec<u8>> {
    if request.len() < HEADER_LEN || request[2] & 0x80 != 0 {
        return None;
    }
    let resp = match Message::from_vec(request) {
        Ok(req) => respond(view, &req, max_udp),
        Err(_) => {
            let id = u16::from_be_bytes([request[0], request[1]]);
            let op = OpCode::from_u8((request[2] >> 3) & 0x0f);
            Message::error_msg(id, op, ResponseCode::FormErr)
        }
    };
    resp.to_vec().ok()
}

fn clamp_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn encoded_len(m: &Message) -> usize {
    m.to_vec().map_or(usize::MAX, |v| v.len())
}

/// Fit `response` into `max_len` bytes. Additional records go first, silently
/// (RFC 2181 9); if answers must go too, as many as fit stay and TC is set.
/// Returns whether TC was set.
pub fn truncate(response: &mut Message, max_len: usize) -> bool {
    if encoded_len(response) <= max_len {
        return false;
    }
    response.additionals.clear();
    if encoded_len(response) <= max_len {
        return false;
    }
    response.metadata.truncation = true;
    response.authorities.clear();
    let answers = std::mem::take(&mut response.answers);
    // Largest prefix of answers that fits (lengths grow with the prefix).
    let (mut lo, mut hi) = (0, answers.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        response.answers = answers[..mid].to_vec();
        if encoded_len(response) <= max_len {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    response.answers = answers[..lo].to_vec();
    true
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;
