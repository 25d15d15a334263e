//! Kubernetes types whose JSON form is not their protobuf message's shape:
//! IntOrString, Quantity, Time, MicroTime and embedded raw JSON.

use crate::wire::{self, Wire};
use crate::{bad, Result};
use chrono::DateTime;
use serde_json::Value;

/// Reads a small special message into `(number, value)` pairs, rejecting numbers outside `known`.
fn fields<'a>(
    buf: &'a [u8],
    what: &str,
    known: &[u32],
    path: &str,
) -> Result<Vec<(u32, Wire<'a>)>> {
    let mut out = Vec::new();
    for item in wire::fields(buf) {
        let (n, w) = item.map_err(|e| bad(format!("malformed {what} at {path}: {e}")))?;
        if !known.contains(&n) {
            return Err(bad(format!("unknown field number {n} in {what} at {path}")));
        }
        out.push((n, w));
    }
    Ok(out)
}

fn varint(w: Wire<'_>, what: &str, path: &str) -> Result<u64> {
    match w {
        Wire::Varint(v) => Ok(v),
        other => Err(bad(format!(
            "{what} at {path}: expected varint, got {}",
            other.type_name()
        ))),
    }
}

fn string(w: Wire<'_>, what: &str, path: &str) -> Result<String> {
    match w {
        // Go keeps invalid UTF-8 in strings; its JSON encoder then writes U+FFFD for it.
        Wire::Len(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(bad(format!(
            "{what} at {path}: expected length-delimited, got {}",
            other.type_name()
        ))),
    }
}

/// `intstr.IntOrString` {1: type (0 int, 1 string), 2: intVal, 3: strVal}.
pub fn int_or_string(buf: &[u8], path: &str) -> Result<Value> {
    let what = "IntOrString";
    let (mut kind, mut int_val, mut str_val) = (0u64, 0i32, String::new());
    for (n, w) in fields(buf, what, &[1, 2, 3], path)? {
        match n {
            1 => kind = varint(w, what, path)?,
            2 => int_val = varint(w, what, path)? as i32,
            _ => str_val = string(w, what, path)?,
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::from(str_val)),
        k => Err(bad(format!("IntOrString at {path}: invalid type {k}"))),
    }
}

/// `resource.Quantity` {1: string}. The client writes the canonical string, passed on as is.
pub fn quantity(buf: &[u8], path: &str) -> Result<Value> {
    let mut s = String::new();
    for (_, w) in fields(buf, "Quantity", &[1], path)? {
        s = string(w, "Quantity", path)?;
    }
    // Go's zero Quantity prints as "0".
    Ok(Value::from(if s.is_empty() { "0".to_string() } else { s }))
}

/// Timestamp {1: seconds, 2: nanos} -> (seconds, nanos), or None for Go's zero time.
fn timestamp(buf: &[u8], what: &str, path: &str) -> Result<Option<(i64, u32)>> {
    // Go writes nothing at all for a zero Time.
    if buf.is_empty() {
        return Ok(None);
    }
    let (mut secs, mut nanos) = (0i64, 0i32);
    for (n, w) in fields(buf, what, &[1, 2], path)? {
        match n {
            1 => secs = varint(w, what, path)? as i64,
            _ => nanos = varint(w, what, path)? as i32,
        }
    }
    // 0001-01-01T00:00:00Z, Go's zero time, also prints as null.
    const GO_ZERO: i64 = -62_135_596_800;
    if secs == GO_ZERO && nanos == 0 {
        return Ok(None);
    }
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| bad(format!("{what} at {path}: nanos {nanos} out of range")))?;
    Ok(Some((secs, nanos)))
}

fn format(secs: i64, nanos: u32, fmt: &str, what: &str, path: &str) -> Result<Value> {
    let t = DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| bad(format!("{what} at {path}: seconds {secs} out of range")))?;
    let s = t.format(fmt).to_string();
    // Go's JSON encoder refuses years outside 0000-9999.
    if !(0..=9999).contains(&chrono::Datelike::year(&t)) {
        return Err(bad(format!("{what} at {path}: year outside [0,9999]")));
    }
    Ok(Value::from(s))
}

/// `metav1.Time`: RFC 3339 in UTC to the second (Go drops the nanos on decode).
pub fn time(buf: &[u8], path: &str) -> Result<Value> {
    match timestamp(buf, "Time", path)? {
        None => Ok(Value::Null),
        Some((secs, _)) => format(secs, 0, "%Y-%m-%dT%H:%M:%SZ", "Time", path),
    }
}

/// `metav1.MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
pub fn micro_time(buf: &[u8], path: &str) -> Result<Value> {
    match timestamp(buf, "MicroTime", path)? {
        None => Ok(Value::Null),
        Some((secs, nanos)) => format(
            secs,
            nanos / 1000 * 1000,
            "%Y-%m-%dT%H:%M:%S%.6fZ",
            "MicroTime",
            path,
        ),
    }
}

/// `runtime.RawExtension` / `metav1.FieldsV1` {1: raw JSON bytes}.
pub fn raw_json(buf: &[u8], path: &str) -> Result<Value> {
    let mut raw: &[u8] = &[];
    for (_, w) in fields(buf, "raw extension", &[1], path)? {
        match w {
            Wire::Len(b) => raw = b,
            other => {
                return Err(bad(format!(
                    "raw extension at {path}: got {}",
                    other.type_name()
                )));
            }
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| {
        bad(format!(
            "raw extension at {path} is not JSON (only JSON is supported): {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_string_forms() {
        assert_eq!(int_or_string(&[0x08, 0x00, 0x10, 0x50], "p").unwrap(), 80);
        assert_eq!(int_or_string(&[0x10, 0x50], "p").unwrap(), 80);
        let s = [0x08, 0x01, 0x10, 0x00, 0x1a, 0x04, b'h', b't', b't', b'p'];
        assert_eq!(int_or_string(&s, "p").unwrap(), "http");
        assert_eq!(int_or_string(&[], "p").unwrap(), 0);
        assert!(int_or_string(&[0x08, 0x02], "p").is_err());
        assert!(int_or_string(&[0x20, 0x01], "p").is_err());
        // Negative int32 as a ten-byte varint, the way Go writes it.
        let neg = [
            0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(int_or_string(&neg, "p").unwrap(), -1);
    }

    #[test]
    fn quantities() {
        assert_eq!(
            quantity(&[0x0a, 0x04, b'1', b'0', b'0', b'm'], "q").unwrap(),
            "100m"
        );
        assert_eq!(quantity(&[], "q").unwrap(), "0");
        assert!(quantity(&[0x08, 0x01], "q").is_err());
    }

    #[test]
    fn times() {
        // 2026-01-01T00:00:00Z = 1767225600 s.
        let mut buf = vec![0x08];
        let mut v = 1_767_225_600u64;
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
        assert_eq!(time(&buf, "t").unwrap(), "2026-01-01T00:00:00Z");
        let mut with_nanos = buf.clone();
        with_nanos.extend([0x10, 0xc0, 0x84, 0x3d]); // 1_000_000 ns
        assert_eq!(time(&with_nanos, "t").unwrap(), "2026-01-01T00:00:00Z");
        assert_eq!(
            micro_time(&with_nanos, "t").unwrap(),
            "2026-01-01T00:00:00.001000Z"
        );
        assert_eq!(time(&[], "t").unwrap(), Value::Null);
        // Explicit zeros are the Unix epoch, not Go's zero time.
        assert_eq!(
            time(&[0x08, 0x00, 0x10, 0x00], "t").unwrap(),
            "1970-01-01T00:00:00Z"
        );
        assert!(micro_time(&[0x10, 0x7f], "t").is_ok());
        assert!(time(&[0x1a, 0x00], "t").is_err());
    }

    #[test]
    fn raw() {
        assert_eq!(
            raw_json(&[0x0a, 0x02, b'{', b'}'], "r").unwrap(),
            serde_json::json!({})
        );
        assert_eq!(raw_json(&[], "r").unwrap(), Value::Null);
        assert!(raw_json(&[0x0a, 0x01, b'{'], "r").is_err());
    }
}
