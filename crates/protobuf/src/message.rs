//! Decodes one message's bytes with its schema into the JSON object Go's encoder would print.

use crate::schema::{Field, Message, Presence, Shape, Ty};
use crate::wire::{self, Wire};
use crate::{bad, special, Result};
use base64::Engine;
use serde_json::{Map as JsonMap, Value};
use std::collections::BTreeMap;

/// Kubernetes types nest a dozen levels at most; this only stops hostile input.
const MAX_DEPTH: usize = 64;

/// What the wire held for one field, before Go's JSON rules are applied.
enum Slot {
    Absent,
    Scalar(Value),
    /// Message-typed single fields: repeated occurrences are concatenated, which is
    /// protobuf's merge semantics.
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Go's JSON encoder prints map keys sorted.
    Map(BTreeMap<String, Value>),
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn is_varint(ty: Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::I32 | Ty::I64)
}

fn is_scalar(ty: Ty) -> bool {
    is_varint(ty) || matches!(ty, Ty::Str | Ty::Bytes)
}

fn scalar(ty: Ty, w: Wire<'_>, path: &str) -> Result<Value> {
    Ok(match (ty, w) {
        (Ty::Str, Wire::Len(b)) => Value::from(String::from_utf8_lossy(b).into_owned()),
        (Ty::Bytes, Wire::Len(b)) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Ty::Bool, Wire::Varint(v)) => Value::from(v != 0),
        // Go truncates an over-long varint to the field's width.
        (Ty::I32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::I64, Wire::Varint(v)) => Value::from(v as i64),
        (ty, w) => {
            return Err(bad(format!(
                "protobuf field {path}: {} is not valid for a {ty:?} field",
                w.type_name()
            )))
        }
    })
}

/// The JSON for a message-like type from its (merged) bytes.
fn compound(ty: Ty, buf: &[u8], path: &str, depth: usize) -> Result<Value> {
    match ty {
        Ty::Msg(m) => decode_message(m, buf, path, depth + 1).map(Value::Object),
        Ty::IntOrString => special::int_or_string(buf, path),
        Ty::Quantity => special::quantity(buf, path),
        Ty::Time => special::time(buf, path),
        Ty::MicroTime => special::micro_time(buf, path),
        Ty::RawJson => special::raw_json(buf, path),
        Ty::Str | Ty::Bool | Ty::I32 | Ty::I64 | Ty::Bytes => {
            Err(bad(format!("protobuf field {path}: internal schema error")))
        }
    }
}

fn len<'a>(w: Wire<'a>, path: &str) -> Result<&'a [u8]> {
    match w {
        Wire::Len(b) => Ok(b),
        other => Err(bad(format!(
            "protobuf field {path}: expected a length-delimited message, got {}",
            other.type_name()
        ))),
    }
}

/// One list element or map value.
fn element(ty: Ty, w: Wire<'_>, path: &str, depth: usize) -> Result<Value> {
    if is_scalar(ty) {
        scalar(ty, w, path)
    } else {
        compound(ty, len(w, path)?, path, depth)
    }
}

/// A map entry message {1: key, 2: value}; a missing value is the Go zero value.
fn map_entry(ty: Ty, buf: &[u8], path: &str, depth: usize) -> Result<(String, Value)> {
    let (mut key, mut value) = (String::new(), None);
    for item in wire::fields(buf) {
        let (n, w) =
            item.map_err(|e| bad(format!("malformed protobuf map entry at {path}: {e}")))?;
        match n {
            1 => key = String::from_utf8_lossy(len(w, path)?).into_owned(),
            2 => value = Some(w),
            n => {
                return Err(bad(format!(
                    "unknown field number {n} in map entry at {path}"
                )))
            }
        }
    }
    let path = format!("{path}[{key}]");
    let value = match value {
        Some(w) => element(ty, w, &path, depth)?,
        None if is_scalar(ty) => match ty {
            Ty::Bool => Value::from(false),
            Ty::I32 | Ty::I64 => Value::from(0),
            _ => Value::from(""),
        },
        None => compound(ty, &[], &path, depth)?,
    };
    Ok((key, value))
}

/// The value Go holds when the field never appeared on the wire.
fn zero(field: &Field, path: &str, depth: usize) -> Result<Value> {
    if field.shape != Shape::One {
        return Ok(Value::Null);
    }
    Ok(match field.ty {
        Ty::Str => Value::from(""),
        Ty::Bool => Value::from(false),
        Ty::I32 | Ty::I64 => Value::from(0),
        Ty::Bytes => Value::Null,
        ty => compound(ty, &[], path, depth)?,
    })
}

/// Go's `omitempty`: only scalars, slices and maps can be empty; structs never are.
fn omit_empty(field: &Field, v: &Value) -> bool {
    match v {
        Value::Null => field.shape != Shape::One || field.ty_is_bytes(),
        Value::String(s) => s.is_empty() && (field.shape != Shape::One || is_scalar(field.ty)),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) && is_scalar(field.ty),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty() && field.shape == Shape::Map,
    }
}

impl Field {
    fn ty_is_bytes(&self) -> bool {
        matches!(self.ty, Ty::Bytes)
    }
}

fn collect(msg: &Message, buf: &[u8], path: &str, depth: usize) -> Result<Vec<Slot>> {
    let mut slots: Vec<Slot> = msg.fields.iter().map(|_| Slot::Absent).collect();
    for item in wire::fields(buf) {
        let (number, w) = item.map_err(|e| {
            bad(format!(
                "malformed protobuf in {} at {}: {e}",
                msg.name,
                display(path)
            ))
        })?;
        let (idx, field) = msg.field(number).ok_or_else(|| {
            bad(format!(
                "unknown field number {number} in protobuf message {} at {}",
                msg.name,
                display(path)
            ))
        })?;
        let fpath = child(path, field.json);
        let slot = &mut slots[idx];
        match field.shape {
            Shape::One if is_scalar(field.ty) => *slot = Slot::Scalar(scalar(field.ty, w, &fpath)?),
            Shape::One => {
                let b = len(w, &fpath)?;
                match slot {
                    Slot::Bytes(acc) => acc.extend_from_slice(b),
                    _ => *slot = Slot::Bytes(b.to_vec()),
                }
            }
            Shape::List => {
                if !matches!(slot, Slot::List(_)) {
                    *slot = Slot::List(Vec::new());
                }
                let Slot::List(list) = slot else {
                    unreachable!()
                };
                match w {
                    // Packed repeated scalars: many varints in one length-delimited field.
                    Wire::Len(b) if is_varint(field.ty) => {
                        let vs = wire::packed_varints(b)
                            .map_err(|e| bad(format!("malformed packed field {fpath}: {e}")))?;
                        for v in vs {
                            list.push(scalar(field.ty, Wire::Varint(v), &fpath)?);
                        }
                    }
                    w => {
                        let epath = format!("{fpath}[{}]", list.len());
                        list.push(element(field.ty, w, &epath, depth)?);
                    }
                }
            }
            Shape::Map => {
                if !matches!(slot, Slot::Map(_)) {
                    *slot = Slot::Map(BTreeMap::new());
                }
                let Slot::Map(map) = slot else { unreachable!() };
                let (k, v) = map_entry(field.ty, len(w, &fpath)?, &fpath, depth)?;
                map.insert(k, v);
            }
        }
    }
    Ok(slots)
}

fn display(path: &str) -> &str {
    if path.is_empty() {
        "the object root"
    } else {
        path
    }
}

/// Decodes `buf` as `msg` into a JSON object, fields in Go struct order.
pub fn decode_message(
    msg: &Message,
    buf: &[u8],
    path: &str,
    depth: usize,
) -> Result<JsonMap<String, Value>> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "protobuf nested too deeply at {}",
            display(path)
        )));
    }
    let slots = collect(msg, buf, path, depth)?;
    let mut out = JsonMap::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        let fpath = child(path, field.json);
        if field.presence == Presence::Inline {
            let Ty::Msg(inner) = field.ty else {
                return Err(bad(format!(
                    "protobuf field {fpath}: internal schema error"
                )));
            };
            let bytes = match slot {
                Slot::Bytes(b) => b,
                _ => Vec::new(),
            };
            out.extend(decode_message(inner, &bytes, path, depth + 1)?);
            continue;
        }
        let value = match slot {
            Slot::Absent if field.presence == Presence::Ptr => continue,
            Slot::Absent => zero(field, &fpath, depth)?,
            Slot::Scalar(v) => v,
            Slot::Bytes(b) => compound(field.ty, &b, &fpath, depth)?,
            Slot::List(l) => Value::Array(l),
            Slot::Map(m) => Value::Object(m.into_iter().collect()),
        };
        if field.presence == Presence::Omit && omit_empty(field, &value) {
            continue;
        }
        out.insert(field.json.to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
