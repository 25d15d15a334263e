//! The envelope: `k8s\0` then runtime.Unknown {1: TypeMeta {1: apiVersion, 2: kind},
//! 2: raw object bytes, 3: contentEncoding, 4: contentType}.

use crate::message::decode_message;
use crate::wire::{self, Wire};
use crate::{bad, schema, Result};
use serde_json::{Map as JsonMap, Value};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

fn text(w: Wire<'_>, what: &str) -> Result<String> {
    match w {
        Wire::Len(b) => String::from_utf8(b.to_vec())
            .map_err(|_| bad(format!("protobuf envelope: {what} is not UTF-8"))),
        other => Err(bad(format!(
            "protobuf envelope: {what} is {}",
            other.type_name()
        ))),
    }
}

#[derive(Debug, Default, PartialEq)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn malformed(e: wire::WireError) -> kinet_types::ApiError {
    bad(format!("malformed protobuf envelope: {e}"))
}

fn unknown(buf: &[u8]) -> Result<Unknown<'_>> {
    let mut u = Unknown::default();
    for item in wire::fields(buf) {
        match item.map_err(malformed)? {
            (1, Wire::Len(tm)) => {
                for item in wire::fields(tm) {
                    match item.map_err(malformed)? {
                        (1, w) => u.api_version = text(w, "apiVersion")?,
                        (2, w) => u.kind = text(w, "kind")?,
                        (n, _) => {
                            return Err(bad(format!(
                                "unknown field number {n} in protobuf TypeMeta"
                            )))
                        }
                    }
                }
            }
            (2, Wire::Len(raw)) => u.raw = raw,
            (3, w) => u.content_encoding = text(w, "contentEncoding")?,
            (4, w) => u.content_type = text(w, "contentType")?,
            (n @ (1 | 2), w) => {
                return Err(bad(format!(
                    "protobuf envelope: field {n} is {}",
                    w.type_name()
                )))
            }
            (n, _) => {
                return Err(bad(format!(
                    "unknown field number {n} in protobuf envelope (runtime.Unknown)"
                )))
            }
        }
    }
    Ok(u)
}

/// Decodes a Kubernetes protobuf body (the `k8s\0` magic + runtime.Unknown envelope) into the
/// object's JSON form, with apiVersion and kind from the envelope's TypeMeta. Errors are
/// 400 BadRequest ApiErrors: a kind we have no schema for, an unknown field number, or
/// malformed wire data.
pub fn decode(body: &[u8]) -> Result<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("protobuf body does not start with the k8s\\0 magic".to_string()))?;
    let u = unknown(rest)?;
    if !u.content_encoding.is_empty() {
        return Err(bad(format!(
            "protobuf envelope: unsupported contentEncoding {:?}",
            u.content_encoding
        )));
    }
    if !(u.content_type.is_empty() || u.content_type == MEDIA_TYPE) {
        return Err(bad(format!(
            "protobuf envelope: unsupported contentType {:?}",
            u.content_type
        )));
    }
    if u.kind.is_empty() || u.api_version.is_empty() {
        return Err(bad(
            "protobuf envelope: missing apiVersion or kind".to_string()
        ));
    }
    let msg = schema::by_kind(&u.api_version, &u.kind).ok_or_else(|| {
        bad(format!(
            "no protobuf schema for {}, Kind={}; send it as application/json",
            u.api_version, u.kind
        ))
    })?;
    let mut out = JsonMap::new();
    out.insert("kind".into(), Value::from(u.kind));
    out.insert("apiVersion".into(), Value::from(u.api_version));
    out.extend(decode_message(msg, u.raw, "", 0)?);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u8, b: &[u8]) -> Vec<u8> {
        let mut v = vec![n << 3 | 2, b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    fn body(api_version: &str, kind: &str, raw: &[u8], extra: &[u8]) -> Vec<u8> {
        let tm = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), field(1, &tm), field(2, raw), extra.to_vec()].concat()
    }

    #[test]
    fn namespace() {
        let meta = field(1, b"ns1");
        let raw = [field(1, &meta), field(2, &[]), field(3, &[])].concat();
        let got = decode(&body("v1", "Namespace", &raw, &field(3, b""))).unwrap();
        let want = r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"ns1","creationTimestamp":null},"spec":{},"status":{}}"#;
        assert_eq!(got.to_string(), want);
    }

    #[test]
    fn envelope_errors() {
        let err = |b: &[u8]| decode(b).unwrap_err();
        assert_eq!(err(b"{}").code, 400);
        assert!(err(b"k8s").message.contains("magic"));
        assert!(err(&body("v1", "Frob", &[], &[]))
            .message
            .contains("Kind=Frob"));
        assert!(err(&body("v1", "Secret", &[], &field(3, b"gzip")))
            .message
            .contains("gzip"));
        let json = field(4, b"application/json");
        assert!(err(&body("v1", "Secret", &[], &json))
            .message
            .contains("contentType"));
        assert!(err(&body("v1", "Secret", &[], &[0x28, 0x01]))
            .message
            .contains("field number 5"));
        assert!(err(&[MAGIC, &[0x0a, 0x05][..]].concat())
            .message
            .contains("malformed"));
        assert!(err(&body("", "", &[], &[])).message.contains("missing"));
        let proto = field(4, MEDIA_TYPE.as_bytes());
        assert!(decode(&body("v1", "Secret", &[], &proto)).is_ok());
    }
}
