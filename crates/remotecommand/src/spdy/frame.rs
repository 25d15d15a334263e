//! SPDY/3 frames: an 8-byte header (control bit, version 3, type, flags, 24-bit length) and a body.
//! Encoding and decoding are pure except for the per-direction header compression state.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};
use super::SpdyError;

pub const VERSION: u16 = 3;
/// FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// Frames larger than this are refused; kubectl's are a few KiB.
pub const MAX_FRAME: usize = 1 << 24;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

/// Encodes a frame; header blocks go through the sender's compressor, in send order.
pub fn encode(frame: &Frame, z: &mut HeaderCompressor) -> Result<Vec<u8>, SpdyError> {
    let control = |kind: u16, flags: u8, body: Vec<u8>| -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + body.len());
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend(body);
        out
    };
    let id31 = |id: u32| (id & 0x7FFF_FFFF).to_be_bytes();
    Ok(match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers,
        } => {
            let mut body = id31(*stream_id).to_vec();
            body.extend_from_slice(&id31(*associated_to));
            body.push((priority & 0x7) << 5);
            body.push(0); // credential slot
            body.extend(z.compress(headers)?);
            control(SYN_STREAM, *flags, body)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => {
            let mut body = id31(*stream_id).to_vec();
            body.extend(z.compress(headers)?);
            control(SYN_REPLY, *flags, body)
        }
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let mut body = id31(*stream_id).to_vec();
            body.extend(z.compress(headers)?);
            control(HEADERS, *flags, body)
        }
        Frame::RstStream { stream_id, status } => {
            let mut body = id31(*stream_id).to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, body)
        }
        Frame::Settings { flags, entries } => {
            let mut body = (entries.len() as u32).to_be_bytes().to_vec();
            for (f, id, value) in entries {
                body.push(*f);
                body.extend_from_slice(&id.to_be_bytes()[1..]);
                body.extend_from_slice(&value.to_be_bytes());
            }
            control(SETTINGS, *flags, body)
        }
        Frame::Ping { id } => control(PING, 0, id.to_be_bytes().to_vec()),
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            let mut body = id31(*last_good_stream_id).to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(GOAWAY, 0, body)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut body = id31(*stream_id).to_vec();
            body.extend_from_slice(&id31(*delta));
            control(WINDOW_UPDATE, 0, body)
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let mut out = Vec::with_capacity(8 + data.len());
            out.extend_from_slice(&id31(*stream_id));
            out.push(*flags);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(data);
            out
        }
    })
}

/// Parses one whole frame (`head` is its 8-byte header, `body` the rest).
/// Returns `None` for control frame types this side ignores (e.g. CREDENTIAL).
pub fn decode(
    head: [u8; 8],
    body: &[u8],
    z: &mut HeaderDecompressor,
) -> Result<Option<Frame>, SpdyError> {
    let flags = head[4];
    if head[0] & 0x80 == 0 {
        return Ok(Some(Frame::Data {
            stream_id: u32::from_be_bytes([head[0], head[1], head[2], head[3]]),
            flags,
            data: body.to_vec(),
        }));
    }
    let version = u16::from_be_bytes([head[0], head[1]]) & 0x7FFF;
    if version != VERSION {
        return Err(SpdyError::Protocol("unsupported SPDY version"));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let word = |at: usize| -> Result<u32, SpdyError> {
        body.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(SpdyError::Protocol("control frame too short"))
    };
    let id = |at: usize| word(at).map(|w| w & 0x7FFF_FFFF);
    Ok(Some(match kind {
        SYN_STREAM => {
            if body.len() < 10 {
                return Err(SpdyError::Protocol("SYN_STREAM too short"));
            }
            Frame::SynStream {
                stream_id: id(0)?,
                associated_to: id(4)?,
                priority: body[8] >> 5,
                flags,
                headers: z.decompress(&body[10..])?,
            }
        }
        SYN_REPLY => Frame::SynReply {
            stream_id: id(0)?,
            flags,
            headers: z.decompress(&body[4..])?,
        },
        HEADERS => Frame::Headers {
            stream_id: id(0)?,
            flags,
            headers: z.decompress(&body[4..])?,
        },
        RST_STREAM => Frame::RstStream {
            stream_id: id(0)?,
            status: word(4)?,
        },
        SETTINGS => {
            let n = word(0)? as usize;
            let mut entries = Vec::with_capacity(n.min(16));
            for i in 0..n {
                let w = word(4 + i * 8)?;
                entries.push(((w >> 24) as u8, w & 0x00FF_FFFF, word(8 + i * 8)?));
            }
            Frame::Settings { flags, entries }
        }
        PING => Frame::Ping { id: word(0)? },
        GOAWAY => Frame::GoAway {
            last_good_stream_id: id(0)?,
            status: word(4).unwrap_or(0),
        },
        WINDOW_UPDATE => Frame::WindowUpdate {
            stream_id: id(0)?,
            delta: id(4)?,
        },
        _ => return Ok(None),
    }))
}

/// Reads the next frame's header and body; `None` at a clean end of stream.
pub async fn read_raw<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<([u8; 8], Vec<u8>)>> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len >= MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some((head, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) {
        let mut c = HeaderCompressor::new().unwrap();
        let mut d = HeaderDecompressor::new();
        let mut wire = Vec::new();
        for f in frames {
            wire.extend(encode(f, &mut c).unwrap());
        }
        let mut r = &wire[..];
        for f in frames {
            let (head, body) = futures_lite_block(read_raw(&mut r)).unwrap().unwrap();
            assert_eq!(decode(head, &body, &mut d).unwrap().as_ref(), Some(f));
        }
        assert!(futures_lite_block(read_raw(&mut r)).unwrap().is_none());
    }

    fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_frame_type_round_trips() {
        round_trip(&[
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: hdrs(&[("streamtype", "error")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: b"hi\n".to_vec(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            Frame::Headers {
                stream_id: 3,
                flags: 0,
                headers: hdrs(&[("a", "b")]),
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 1000,
            },
        ]);
    }

    #[test]
    fn wire_layout_matches_the_draft() {
        let mut c = HeaderCompressor::new().unwrap();
        let ping = encode(&Frame::Ping { id: 7 }, &mut c).unwrap();
        assert_eq!(ping, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]);
        let data = encode(
            &Frame::Data {
                stream_id: 0x0102_0304,
                flags: FLAG_FIN,
                data: vec![9],
            },
            &mut c,
        )
        .unwrap();
        assert_eq!(data, [1, 2, 3, 4, 1, 0, 0, 1, 9]);
        let rst = encode(
            &Frame::RstStream {
                stream_id: 3,
                status: RST_REFUSED_STREAM,
            },
            &mut c,
        )
        .unwrap();
        assert_eq!(rst, [0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 3]);
    }

    #[test]
    fn other_versions_and_short_frames_are_errors() {
        let mut d = HeaderDecompressor::new();
        assert!(decode([0x80, 2, 0, 6, 0, 0, 0, 4], &[0, 0, 0, 1], &mut d).is_err());
        assert!(decode([0x80, 3, 0, 3, 0, 0, 0, 4], &[0, 0, 0, 1], &mut d).is_err());
        // CREDENTIAL (type 10) is ignored, not an error.
        assert_eq!(
            decode([0x80, 3, 0, 10, 0, 0, 0, 0], &[], &mut d).unwrap(),
            None
        );
    }
}
