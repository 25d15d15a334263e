//! Scripted peers for unit tests: a SPDY client that opens streams like spdystream, and a
//! websocket client that masks its frames.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::spdy::frame::{self, Frame, FLAG_FIN};
use crate::spdy::headers::{HeaderCompressor, HeaderDecompressor};
use crate::ws::frame::{decode as ws_decode, Frame as WsFrame};

pub struct SpdyClient {
    io: DuplexStream,
    z: HeaderCompressor,
    unz: HeaderDecompressor,
}

impl SpdyClient {
    pub fn new(io: DuplexStream) -> Self {
        SpdyClient {
            io,
            z: HeaderCompressor::new().unwrap(),
            unz: HeaderDecompressor::new(),
        }
    }

    pub async fn send(&mut self, f: Frame) {
        let bytes = frame::encode(&f, &mut self.z).unwrap();
        self.io.write_all(&bytes).await.unwrap();
    }

    pub async fn open(&mut self, id: u32, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers,
        })
        .await;
    }

    pub async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        let flags = if fin { FLAG_FIN } else { 0 };
        let data = data.to_vec();
        self.send(Frame::Data {
            stream_id: id,
            flags,
            data,
        })
        .await;
    }

    /// The next frame from the server; `None` at EOF.
    pub async fn recv(&mut self) -> Option<Frame> {
        let (head, body) = frame::read_raw(&mut self.io).await.unwrap()?;
        Some(frame::decode(head, &body, &mut self.unz).unwrap().unwrap())
    }

    /// Every remaining frame until the server closes.
    pub async fn rest(&mut self) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Some(f) = self.recv().await {
            all.push(f);
        }
        all
    }
}

/// The bytes a stream carried in `frames`, and whether it ended with FIN.
pub fn stream_data(frames: &[Frame], id: u32) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut fin = false;
    for f in frames {
        if let Frame::Data {
            stream_id,
            flags,
            data: d,
        } = f
        {
            if *stream_id == id {
                data.extend_from_slice(d);
                fin |= flags & FLAG_FIN != 0;
            }
        }
    }
    (data, fin)
}

/// A masked client frame.
pub fn ws_client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x80 | opcode];
    assert!(payload.len() < 126);
    f.push(0x80 | payload.len() as u8);
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Every frame the server sends until it closes the connection.
pub async fn ws_read_all(io: &mut DuplexStream) -> Vec<WsFrame> {
    let mut buf = Vec::new();
    io.read_to_end(&mut buf).await.unwrap();
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some((f, used)) = ws_decode(&buf[at..]).unwrap() {
        frames.push(f);
        at += used;
    }
    assert_eq!(at, buf.len(), "trailing bytes");
    frames
}
