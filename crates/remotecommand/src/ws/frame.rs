//! RFC 6455 framing, server side: client frames arrive masked, ours go out unmasked.
//!
//! `encode` and `decode` are pure; `MessageReader` reassembles fragmented messages from any
//! `AsyncRead`, answering nothing itself (the caller decides what a ping or close means).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Messages larger than this are refused: the channel protocols send small chunks.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Frame opcodes (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One decoded frame, payload already unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

/// Encodes one unmasked (server-to-client) frame.
pub fn encode(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(if fin { 0x80 } else { 0 } | opcode.bits());
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Decodes one frame from the front of `buf`, optionally masked (clients must mask).
/// Returns the frame and the bytes it used, or `None` if `buf` holds only part of it.
pub fn decode(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    if buf[0] & 0x70 != 0 {
        return Err(invalid("reserved bits set (no extensions were negotiated)"));
    }
    let opcode = Opcode::from_bits(buf[0] & 0x0F).ok_or_else(|| invalid("unknown opcode"))?;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap_or([0; 8])),
            10,
        ),
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if opcode.is_control() && (len > 125 || !fin) {
        return Err(invalid("control frame too long or fragmented"));
    }
    if len > MAX_MESSAGE as u64 {
        return Err(invalid("frame too large"));
    }
    let len = len as usize;
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let m = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(m)
    } else {
        None
    };
    if buf.len() < at + len {
        return Ok(None);
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(m) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= m[i % 4]);
    }
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        at + len,
    )))
}

/// A complete message or control frame as the reader hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Binary(Vec<u8>),
    Text(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame; `None` when it carried no status code.
    Close(Option<u16>),
}

/// Reads frames from `io` and reassembles fragmented data messages.
pub struct MessageReader<R> {
    io: R,
    buf: Vec<u8>,
    partial: Option<(Opcode, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(io: R) -> Self {
        MessageReader {
            io,
            buf: Vec::with_capacity(8192),
            partial: None,
        }
    }

    /// The next message, or `None` at a clean end of stream between frames.
    pub async fn next(&mut self) -> io::Result<Option<Message>> {
        loop {
            let Some(frame) = self.next_frame().await? else {
                return Ok(None);
            };
            match frame.opcode {
                Opcode::Ping => return Ok(Some(Message::Ping(frame.payload))),
                Opcode::Pong => return Ok(Some(Message::Pong(frame.payload))),
                Opcode::Close => {
                    let code = (frame.payload.len() >= 2)
                        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                    return Ok(Some(Message::Close(code)));
                }
                Opcode::Continuation => {
                    let Some((_, data)) = self.partial.as_mut() else {
                        return Err(invalid("continuation without a message"));
                    };
                    if data.len() + frame.payload.len() > MAX_MESSAGE {
                        return Err(invalid("message too large"));
                    }
                    data.extend_from_slice(&frame.payload);
                }
                op @ (Opcode::Text | Opcode::Binary) => {
                    if self.partial.is_some() {
                        return Err(invalid("new message inside a fragmented one"));
                    }
                    self.partial = Some((op, frame.payload));
                }
            }
            if frame.fin {
                if let Some((op, data)) = self.partial.take() {
                    return Ok(Some(if op == Opcode::Text {
                        Message::Text(data)
                    } else {
                        Message::Binary(data)
                    }));
                }
            }
        }
    }

    async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 16384];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client would send: the same frame, masked.
    fn masked(fin: bool, opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = encode(fin, opcode, payload);
        let header = f.len() - payload.len();
        f[1] |= 0x80;
        let body: Vec<u8> = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        f.truncate(header);
        f.extend_from_slice(&mask);
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn lengths_use_7_16_and_64_bit_forms() {
        assert_eq!(encode(true, Opcode::Binary, &[1, 2])[..2], [0x82, 2]);
        let mid = encode(true, Opcode::Binary, &[0; 300]);
        assert_eq!(mid[..4], [0x82, 126, 1, 44]);
        let big = encode(true, Opcode::Binary, &vec![0; 70000]);
        assert_eq!(big[1], 127);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70000);
        for f in [mid, big] {
            let (frame, used) = decode(&f).unwrap().unwrap();
            assert_eq!(used, f.len());
            assert!(frame.payload.iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn decodes_masked_client_frames_and_waits_for_more() {
        let f = masked(true, Opcode::Binary, b"\x00hello", [1, 2, 3, 4]);
        assert_eq!(decode(&f[..f.len() - 1]).unwrap(), None);
        let (frame, used) = decode(&f).unwrap().unwrap();
        assert_eq!(used, f.len());
        assert_eq!(frame.payload, b"\x00hello");
        assert_eq!(frame.opcode, Opcode::Binary);
    }

    #[test]
    fn rejects_reserved_bits_and_long_control_frames() {
        assert!(decode(&[0xC2, 0]).is_err());
        assert!(decode(&[0x89, 126, 0, 200]).is_err());
        assert!(decode(&[0x09, 0]).is_err(), "fragmented ping");
    }

    #[tokio::test]
    async fn reader_reassembles_fragments_around_a_ping() {
        let mut wire = masked(false, Opcode::Binary, b"\x01ab", [9, 8, 7, 6]);
        wire.extend(masked(true, Opcode::Ping, b"p", [1, 1, 1, 1]));
        wire.extend(masked(true, Opcode::Continuation, b"cd", [5, 5, 5, 5]));
        wire.extend(masked(true, Opcode::Close, &1000u16.to_be_bytes(), [0; 4]));
        let mut r = MessageReader::new(&wire[..]);
        assert_eq!(r.next().await.unwrap(), Some(Message::Ping(b"p".to_vec())));
        assert_eq!(
            r.next().await.unwrap(),
            Some(Message::Binary(b"\x01abcd".to_vec()))
        );
        assert_eq!(r.next().await.unwrap(), Some(Message::Close(Some(1000))));
        assert_eq!(r.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_stream_is_an_error() {
        let wire = masked(true, Opcode::Binary, b"abc", [1, 2, 3, 4]);
        let mut r = MessageReader::new(&wire[..wire.len() - 1]);
        assert!(r.next().await.is_err());
    }
}
