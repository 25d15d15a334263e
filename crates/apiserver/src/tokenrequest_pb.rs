//! The protobuf form of a TokenRequest, which kubectl's typed client sends
//! (`kubectl create token`): the `k8s\0` envelope around `runtime.Unknown`, whose `raw`
//! holds the TokenRequest. Only the spec is read, into the JSON shape [`super::parse_spec`]
//! takes. Field numbers are those of k8s.io/api/authentication/v1/generated.proto.

use kinet_types::{ApiError, Result};
use serde_json::{json, Map, Value};

const MAGIC: &[u8] = b"k8s\0";

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("protobuf TokenRequest: {what}"))
}

/// One field: its number and either a varint or a length-delimited payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &mut &[u8]) -> Result<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or_else(|| bad("truncated varint"))?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(bad("varint too long"))
}

/// The fields of one message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| bad("length"))?;
                if len > buf.len() {
                    return Err(bad("truncated field"));
                }
                let (data, rest) = buf.split_at(len);
                buf = rest;
                Field::Bytes(data)
            }
            1 if buf.len() >= 8 => {
                buf = &buf[8..];
                continue;
            }
            5 if buf.len() >= 4 => {
                buf = &buf[4..];
                continue;
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

fn text(data: &[u8]) -> Result<Value> {
    std::str::from_utf8(data)
        .map(Value::from)
        .map_err(|_| bad("invalid UTF-8"))
}

/// `{1: kind, 2: apiVersion, 3: name, 4: uid}`.
fn bound_ref(data: &[u8]) -> Result<Value> {
    let mut out = Map::new();
    for (n, f) in fields(data)? {
        let key = match n {
            1 => "kind",
            2 => "apiVersion",
            3 => "name",
            4 => "uid",
            _ => continue,
        };
        if let Field::Bytes(b) = f {
            out.insert(key.into(), text(b)?);
        }
    }
    Ok(Value::Object(out))
}

/// `{1: audiences (repeated), 3: boundObjectRef, 4: expirationSeconds}`.
fn spec(data: &[u8]) -> Result<Value> {
    let mut audiences = Vec::new();
    let mut out = Map::new();
    for (n, f) in fields(data)? {
        match (n, f) {
            (1, Field::Bytes(b)) => audiences.push(text(b)?),
            (3, Field::Bytes(b)) => {
                out.insert("boundObjectRef".into(), bound_ref(b)?);
            }
            (4, Field::Varint(v)) => {
                out.insert("expirationSeconds".into(), json!(v as i64));
            }
            _ => {}
        }
    }
    out.insert("audiences".into(), Value::Array(audiences));
    Ok(Value::Object(out))
}

/// The request as JSON (`{"spec": ...}`) from a protobuf body.
pub fn decode(body: &[u8]) -> Result<Value> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing k8s magic"))?;
    let raw = fields(unknown)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Bytes(b)) => Some(b),
            _ => None,
        })
        .ok_or_else(|| bad("no raw object"))?;
    let spec_bytes = fields(raw)?.into_iter().find_map(|(n, f)| match (n, f) {
        (2, Field::Bytes(b)) => Some(b),
        _ => None,
    });
    Ok(json!({"spec": match spec_bytes {
        Some(b) => spec(b)?,
        None => json!({}),
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(n: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3) | 2, data.len() as u8];
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn decodes_kubectls_request() {
        let bound = [
            len_field(1, b"Pod"),
            len_field(2, b"v1"),
            len_field(3, b"web-0"),
            len_field(4, b"u-1"),
        ]
        .concat();
        // expirationSeconds 1200 = varint b0 09.
        let spec_bytes = [
            len_field(1, b"api"),
            len_field(1, b"vault"),
            len_field(3, &bound),
            vec![4 << 3, 0xb0, 0x09],
        ]
        .concat();
        let request = [len_field(1, &[]), len_field(2, &spec_bytes)].concat();
        let type_meta = [
            len_field(1, b"authentication.k8s.io/v1"),
            len_field(2, b"TokenRequest"),
        ]
        .concat();
        let body = [
            MAGIC.to_vec(),
            len_field(1, &type_meta),
            len_field(2, &request),
            len_field(4, b"application/vnd.kubernetes.protobuf"),
        ]
        .concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"spec": {
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "u-1"},
                "expirationSeconds": 1200,
                "audiences": ["api", "vault"],
            }})
        );
        assert!(decode(b"{}").is_err());
        assert!(decode(&body[..body.len() - 5]).is_err());
    }
}
