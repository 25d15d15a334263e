//! Protobuf wire format: just enough to walk a message's fields.
//! Kubernetes messages use varints and length-delimited fields only, but fixed32/64
//! are decoded too so a stray one is reported by field number, not as garbage.

use std::fmt;

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Len(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }
}

/// Malformed wire data; the caller adds which message it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    VarintOverflow,
    BadWireType(u8),
    GroupsUnsupported,
    FieldZero,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "unexpected end of data"),
            WireError::VarintOverflow => write!(f, "varint longer than 10 bytes"),
            WireError::BadWireType(t) => write!(f, "invalid wire type {t}"),
            WireError::GroupsUnsupported => write!(f, "groups (wire types 3/4) are not supported"),
            WireError::FieldZero => write!(f, "field number 0 is invalid"),
        }
    }
}

/// Reads a varint at `*pos`, advancing it.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = *buf.get(*pos).ok_or(WireError::Truncated)?;
        *pos += 1;
        // The 10th byte may only contribute the top bit of a u64.
        if i == 9 && byte > 1 {
            return Err(WireError::VarintOverflow);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::VarintOverflow)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], WireError> {
    let end = pos.checked_add(n).ok_or(WireError::Truncated)?;
    let bytes = buf.get(*pos..end).ok_or(WireError::Truncated)?;
    *pos = end;
    Ok(bytes)
}

/// Iterates over `(field number, value)` pairs of one message's bytes.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields {
        buf,
        pos: 0,
        failed: false,
    }
}

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<(u32, Wire<'a>), WireError> {
        let key = read_varint(self.buf, &mut self.pos)?;
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::FieldZero);
        }
        // Field numbers are at most 2^29-1; larger keys are corrupt.
        let number = u32::try_from(number).map_err(|_| WireError::Truncated)?;
        let value = match (key & 7) as u8 {
            0 => Wire::Varint(read_varint(self.buf, &mut self.pos)?),
            1 => {
                let b = take(self.buf, &mut self.pos, 8)?;
                Wire::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| WireError::Truncated)?,
                ))
            }
            2 => {
                let len = read_varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Wire::Len(take(self.buf, &mut self.pos, len)?)
            }
            3 | 4 => return Err(WireError::GroupsUnsupported),
            5 => {
                let b = take(self.buf, &mut self.pos, 4)?;
                Wire::Fixed32(u32::from_le_bytes(
                    b.try_into().map_err(|_| WireError::Truncated)?,
                ))
            }
            t => return Err(WireError::BadWireType(t)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Varints packed into one length-delimited field (packed repeated scalars).
pub fn packed_varints(buf: &[u8]) -> Result<Vec<u64>, WireError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        out.push(read_varint(buf, &mut pos)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, WireError> {
        fields(buf).collect()
    }

    #[test]
    fn varints() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x96, 0x01], &mut pos), Ok(150));
        assert_eq!(pos, 2);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max, &mut 0), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_varint(&over, &mut 0), Err(WireError::VarintOverflow));
        assert_eq!(read_varint(&[0x80], &mut 0), Err(WireError::Truncated));
    }

    #[test]
    fn all_wire_types() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x12, 0x02, b'h', b'i', // 2: "hi"
            0x19, 1, 0, 0, 0, 0, 0, 0, 0, // 3: fixed64 1
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            all(&buf).unwrap(),
            vec![
                (1, Wire::Varint(150)),
                (2, Wire::Len(b"hi")),
                (3, Wire::Fixed64(1)),
                (4, Wire::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(all(&[0x12, 0x05, b'a']), Err(WireError::Truncated));
        assert_eq!(all(&[0x0b]), Err(WireError::GroupsUnsupported));
        assert_eq!(all(&[0x0e]), Err(WireError::BadWireType(6)));
        assert_eq!(all(&[0x00, 0x00]), Err(WireError::FieldZero));
        assert_eq!(all(&[0x1d, 1, 2]), Err(WireError::Truncated));
        // An error ends iteration instead of resynchronising on garbage.
        assert_eq!(fields(&[0x0e, 0x08, 0x01]).count(), 1);
    }

    #[test]
    fn packed() {
        assert_eq!(
            packed_varints(&[0x01, 0x96, 0x01, 0x00]),
            Ok(vec![1, 150, 0])
        );
        assert_eq!(packed_varints(&[0x96]), Err(WireError::Truncated));
    }
}
