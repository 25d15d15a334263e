//! SPDY/3 header blocks: a count-prefixed list of name/value pairs, compressed with one zlib
//! stream per direction that is primed with the dictionary from the SPDY/3 draft (section 2.6.10.1)
//! and flushed (Z_SYNC_FLUSH) after every block.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// Header names and values; SPDY/3 names are lowercase.
pub type Headers = Vec<(String, String)>;

/// Words that open the SPDY/3 dictionary, each written as a 4-byte big-endian length and the word.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's raw tail: status codes and phrases, dates, content types and charsets.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (1423 bytes).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// The uncompressed form of a header block.
pub fn encode_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Parses an uncompressed header block. A value holding NULs is several values for one name.
pub fn decode_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    let count = take_u32(&mut b)? as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take_str(&mut b)?;
        let value = take_str(&mut b)?;
        for v in value.split('\0') {
            headers.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    Ok(headers)
}

/// The first value of `name` (case-insensitive).
pub fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn take_u32(b: &mut &[u8]) -> Result<u32, SpdyError> {
    if b.len() < 4 {
        return Err(SpdyError::Protocol("truncated header block"));
    }
    let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    *b = &b[4..];
    Ok(v)
}

fn take_str(b: &mut &[u8]) -> Result<String, SpdyError> {
    let len = take_u32(b)? as usize;
    if b.len() < len {
        return Err(SpdyError::Protocol("truncated header block"));
    }
    let s = String::from_utf8(b[..len].to_vec())
        .map_err(|_| SpdyError::Protocol("header is not UTF-8"))?;
    *b = &b[len..];
    Ok(s)
}

/// The sending side's zlib stream.
pub struct HeaderCompressor(Compress);

impl HeaderCompressor {
    pub fn new() -> Result<Self, SpdyError> {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(dictionary()).map_err(zlib)?;
        Ok(HeaderCompressor(c))
    }

    /// Compresses one header block, ending it with a sync flush so the peer can decode it alone.
    pub fn compress(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let input = encode_block(headers);
        let mut out = Vec::with_capacity(input.len() + 64);
        let start_in = self.0.total_in();
        loop {
            let consumed = (self.0.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.0
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(zlib)?;
            let done = (self.0.total_in() - start_in) as usize == input.len();
            // A sync flush is complete when input is used up and output stopped short of the buffer end.
            if done && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The receiving side's zlib stream; supplies the dictionary when zlib asks for it.
pub struct HeaderDecompressor(Decompress);

impl HeaderDecompressor {
    pub fn new() -> Self {
        HeaderDecompressor(Decompress::new(true))
    }

    pub fn decompress(&mut self, input: &[u8]) -> Result<Headers, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len() * 4 + 64);
        let start_in = self.0.total_in();
        loop {
            let consumed = (self.0.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(256));
            }
            match self
                .0
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    let done = (self.0.total_in() - start_in) as usize == input.len();
                    if done && out.len() < out.capacity() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(dictionary()).map_err(zlib)?;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
            if out.len() > 1 << 20 {
                return Err(SpdyError::Protocol("header block too large"));
            }
        }
        decode_block(&out)
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

fn zlib(e: impl std::fmt::Display) -> SpdyError {
    SpdyError::Zlib(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_has_the_drafts_length_and_checksum() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib names a dictionary by its Adler-32; SPDY/3 peers announce 0xE3C6A7C2 (3804145602).
        let (mut a, mut b) = (1u32, 0u32);
        for byte in d {
            a = (a + *byte as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xE3C6_A7C2);
    }

    #[test]
    fn blocks_round_trip_through_one_stream_per_direction() {
        let mut c = HeaderCompressor::new().unwrap();
        let mut d = HeaderDecompressor::new();
        let first = h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]);
        let second = h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]);
        let a = c.compress(&first).unwrap();
        let b = c.compress(&second).unwrap();
        // The zlib header names the dictionary (FDICT bit set in the flags byte).
        assert_eq!(a[0] & 0x0F, 8);
        assert_ne!(a[1] & 0x20, 0);
        assert_eq!(d.decompress(&a).unwrap(), first);
        assert_eq!(d.decompress(&b).unwrap(), second);
        assert!(b.len() < a.len(), "second block reuses the shared window");
        // Each block ends with the sync-flush marker.
        assert_eq!(a[a.len() - 4..], [0, 0, 0xFF, 0xFF]);
    }

    #[test]
    fn names_are_lowercased_and_nul_separated_values_split() {
        let mut block = encode_block(&h(&[("StreamType", "stdout")]));
        assert_eq!(
            decode_block(&block).unwrap(),
            h(&[("streamtype", "stdout")])
        );
        block = encode_block(&h(&[("x", "a\0b")]));
        assert_eq!(decode_block(&block).unwrap(), h(&[("x", "a"), ("x", "b")]));
        assert!(decode_block(&block[..block.len() - 1]).is_err());
        assert_eq!(get(&h(&[("port", "80")]), "Port"), Some("80"));
    }

    #[test]
    fn a_block_compressed_without_a_dictionary_also_decodes() {
        let mut plain = Compress::new(Compression::default(), true);
        let mut out = Vec::with_capacity(256);
        plain
            .compress_vec(
                &encode_block(&h(&[("a", "b")])),
                &mut out,
                FlushCompress::Sync,
            )
            .unwrap();
        // zlib asks for the dictionary only when the stream names one.
        assert_eq!(
            HeaderDecompressor::new().decompress(&out).unwrap(),
            h(&[("a", "b")])
        );
    }
}
