//! Where in a log file to start: the last N lines, or nothing written before `since`.
//! Works on any `Read + Seek`, so tests use in-memory files.

use std::io::{self, Read, Seek, SeekFrom};
use std::time::SystemTime;

use super::options::LogOptions;

/// How far back to read at a time when looking for line starts.
const CHUNK: u64 = 8192;

/// The byte offset to start sending from.
///
/// A file last written before the `since` cutoff has nothing to send (each line's own time is
/// checked as it is sent); otherwise `tailLines` picks the start, as the kubelet does.
pub fn start_offset<R: Read + Seek>(
    file: &mut R,
    len: u64,
    modified: SystemTime,
    opts: &LogOptions,
    now: SystemTime,
) -> io::Result<u64> {
    if let Some(since) = opts.since {
        if modified < since.cutoff(now) {
            return Ok(len);
        }
    }
    match opts.tail_lines {
        Some(n) => tail_offset(file, len, n),
        None => Ok(0),
    }
}

/// Where the last `lines` lines of the first `len` bytes start. A final newline ends the last
/// line rather than starting an empty one, as the kubelet counts them.
pub fn tail_offset<R: Read + Seek>(file: &mut R, len: u64, lines: u64) -> io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    // Newlines to skip from the end: the (lines)th one (not counting a final newline) ends
    // the line before the first we send.
    let mut end = len;
    let mut last_byte_checked = false;
    let mut seen = 0u64;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        for i in (0..n).rev() {
            if buf[i] != b'\n' {
                continue;
            }
            let at = start + i as u64;
            if !last_byte_checked && at == len - 1 {
                continue;
            }
            seen += 1;
            if seen == lines {
                return Ok(at + 1);
            }
        }
        last_byte_checked = true;
        end = start;
    }
    Ok(0)
}

/// How many of `available` bytes may still go out, with `sent` already sent under `limit`.
pub fn allowance(limit: Option<u64>, sent: u64, available: u64) -> u64 {
    match limit {
        Some(limit) => available.min(limit.saturating_sub(sent)),
        None => available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::options::Since;
    use std::io::Cursor;
    use std::time::Duration;

    fn tail(text: &str, n: u64) -> String {
        let mut c = Cursor::new(text.as_bytes().to_vec());
        let at = tail_offset(&mut c, text.len() as u64, n).unwrap();
        text[at as usize..].to_string()
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc\n", 1), "c\n");
        assert_eq!(tail("a\nb\nc\n", 3), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 0), "");
        // An unfinished last line counts as a line.
        assert_eq!(tail("a\nb\nc", 1), "c");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("\n\n", 1), "\n");
    }

    #[test]
    fn tails_across_chunks() {
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&text, 2), "line 4998\nline 4999\n");
        let got = tail(&text, 3000);
        assert!(got.starts_with("line 2000\n"));
        assert_eq!(got.lines().count(), 3000);
        assert_eq!(tail(&text, 6000), text);
    }

    #[test]
    fn a_file_older_than_since_is_skipped_whole() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let text = b"a\nb\n".to_vec();
        let opts = LogOptions {
            since: Some(Since::Seconds(60)),
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        let old = now - Duration::from_secs(61);
        let fresh = now - Duration::from_secs(10);
        let mut c = Cursor::new(text);
        assert_eq!(start_offset(&mut c, 4, old, &opts, now).unwrap(), 4);
        assert_eq!(start_offset(&mut c, 4, fresh, &opts, now).unwrap(), 2);
        let all = LogOptions::default();
        assert_eq!(start_offset(&mut c, 4, old, &all, now).unwrap(), 0);
    }

    #[test]
    fn limits() {
        assert_eq!(allowance(None, 100, 50), 50);
        assert_eq!(allowance(Some(120), 100, 50), 20);
        assert_eq!(allowance(Some(100), 100, 50), 0);
    }
}
