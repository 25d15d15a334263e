//! Decompression chosen by the stream's magic bytes, as containerd does for docker-archive
//! layers (often plain tar) and for registry layers whose media type may lie.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Larger than a tar record and a typical file, so entries copy in few reads.
const BUFFER: usize = 256 * 1024;

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The compression whose magic bytes start `head` (at least 4 bytes of the stream).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP) {
            Compression::Gzip
        } else if head.starts_with(ZSTD) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The uncompressed stream of `input`, gzip, zstd or plain as its first bytes say.
pub fn decompress<'a>(mut input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = Vec::with_capacity(ZSTD.len());
    (&mut input)
        .take(ZSTD.len() as u64)
        .read_to_end(&mut head)?;
    let compression = Compression::detect(&head);
    let source = BufReader::with_capacity(BUFFER, Cursor::new(head).chain(input));
    Ok(match compression {
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUFFER,
            flate2::bufread::MultiGzDecoder::new(source),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(BUFFER, ZstdFrames::new(source))),
        Compression::None => Box::new(source),
    })
}

/// A zstd stream of one or more frames (skippable frames are skipped), as `zstd -d` reads it.
struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.in_frame = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(compressed: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(Cursor::new(compressed))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn plain_streams_pass_through_even_when_short() {
        assert_eq!(roundtrip(b"ab".to_vec()), b"ab");
        assert_eq!(roundtrip(Vec::new()), b"");
        let tar = vec![7u8; 10_000];
        assert_eq!(roundtrip(tar.clone()), tar);
    }

    #[test]
    fn gzip_members_are_concatenated() {
        let mut both = gzip(b"hello ");
        both.extend(gzip(b"world"));
        assert_eq!(roundtrip(both), b"hello world");
    }

    #[test]
    fn zstd_frames_are_concatenated_and_skippable_frames_skipped() {
        let mut stream = zstd(b"hello ");
        // A skippable frame: magic 0x184D2A50, little-endian length, payload.
        stream.extend([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        stream.extend(zstd(&vec![b'x'; 300_000]));
        let out = roundtrip(stream);
        assert_eq!(&out[..6], b"hello ");
        assert_eq!(out.len(), 6 + 300_000);
        assert!(out[6..].iter().all(|&b| b == b'x'));
    }

    #[test]
    fn corrupt_zstd_is_an_error() {
        let mut stream = zstd(&vec![b'x'; 100_000]);
        let len = stream.len();
        stream.truncate(len / 2);
        let mut out = Vec::new();
        assert!(decompress(Cursor::new(stream))
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }
}
