//! Decompressing and hashing on a thread of their own, ahead of the unpacker, so they overlap
//! the filesystem work as `tar -xz` overlaps with its `gzip` process. A few chunks are in
//! flight at most: the layer is still streamed, never held.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

const CHUNK: usize = 256 * 1024;
const IN_FLIGHT: usize = 4;

/// A chunk of the stream, or the error that ended it.
type Item = io::Result<Vec<u8>>;

/// Reads `source` to its end into `tx` in chunks, stopping early if the receiver is gone.
/// A read error is passed on as the stream's last item.
pub(crate) fn produce(mut source: impl Read, tx: SyncSender<Item>) {
    loop {
        let mut chunk = vec![0; CHUNK];
        let n = match fill(&mut source, &mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        chunk.truncate(n);
        if tx.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Reads until `buf` is full or the stream ends.
fn fill(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub(crate) fn channel() -> (SyncSender<Item>, Receiver<Item>) {
    sync_channel(IN_FLIGHT)
}

/// The consumer's end: the chunks, read as one stream.
pub(crate) struct Chunks {
    rx: Receiver<Item>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Chunks {
    pub(crate) fn new(rx: Receiver<Item>) -> Chunks {
        Chunks {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                // The producer finished: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }

    #[test]
    fn chunks_read_back_as_the_stream_and_errors_come_through() {
        let data: Vec<u8> = (0..CHUNK * 3 + 17).map(|i| i as u8).collect();
        let (tx, rx) = channel();
        let copy = data.clone();
        let producer = std::thread::spawn(move || produce(&copy[..], tx));
        let mut out = Vec::new();
        Chunks::new(rx).read_to_end(&mut out).unwrap();
        producer.join().unwrap();
        assert_eq!(out, data);

        let (tx, rx) = channel();
        let producer = std::thread::spawn(move || produce(Failing, tx));
        let err = Chunks::new(rx).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        producer.join().unwrap();
    }
}
