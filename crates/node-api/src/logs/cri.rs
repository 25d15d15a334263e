//! The CRI container log format, as containerd writes it and the kubelet reads it:
//! one entry per line, `<RFC3339Nano time> <stdout|stderr> <F|P> <content>`, where `P` marks a
//! piece of a line continued by the next entry. Writing (the container shim), parsing and
//! formatting for `containerLogs` (timestamps, since) live here. No I/O.

use std::time::SystemTime;

use chrono::{DateTime, Utc};

/// Which of the container's streams an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed log entry, borrowing its content from the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: DateTime<Utc>,
    pub stream: Stream,
    /// The content continues in the next entry (no newline ended it yet).
    pub partial: bool,
    pub content: &'a [u8],
}

/// Go's `time.RFC3339Nano`: nanoseconds with trailing zeros removed (and no dot if none left).
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = format!("{:09}", t.timestamp_subsec_nanos());
    let nanos = nanos.trim_end_matches('0');
    if nanos.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{nanos}Z")
    }
}

/// The entries for `chunk`, read from `stream` at `at`: one full (`F`) entry per line it
/// ends, and a partial (`P`) one for the bytes after its last newline, so a prompt with no
/// newline is in the log at once.
pub fn encode(at: SystemTime, stream: Stream, chunk: &[u8]) -> Vec<u8> {
    let time = rfc3339_nano(at.into());
    let mut out = Vec::with_capacity(chunk.len() + 48);
    for piece in chunk.split_inclusive(|b| *b == b'\n') {
        let (tag, content) = match piece.strip_suffix(b"\n") {
            Some(line) => ("F", line),
            None => ("P", piece),
        };
        out.extend_from_slice(format!("{time} {} {tag} ", stream.tag()).as_bytes());
        out.extend_from_slice(content);
        out.push(b'\n');
    }
    out
}

/// Parses one line of the file (without its newline); None for a line that is not an entry.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    Some(Entry {
        time,
        stream,
        partial,
        content: fields.next().unwrap_or_default(),
    })
}

/// Turns entries back into the container's output, as the kubelet's `ReadLogs` does: the
/// newline each full entry lost, entries older than `since` left out, and with `timestamps`
/// each line prefixed by its time (only where a line starts, not before its continuations).
#[derive(Debug, Clone)]
pub struct Formatter {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    at_line_start: bool,
}

impl Formatter {
    pub fn new(timestamps: bool, since: Option<SystemTime>) -> Formatter {
        Formatter {
            timestamps,
            since: since.map(Into::into),
            at_line_start: true,
        }
    }

    /// The output bytes of one entry (None when `since` leaves it out).
    pub fn format(&mut self, e: &Entry<'_>) -> Option<Vec<u8>> {
        if self.since.is_some_and(|since| e.time < since) {
            return None;
        }
        let mut out = Vec::with_capacity(e.content.len() + 40);
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(rfc3339_nano(e.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(e.content);
        if !e.partial {
            out.push(b'\n');
        }
        self.at_line_start = !e.partial;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(nanos: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045) + Duration::from_nanos(nanos)
    }

    #[test]
    fn times_are_go_rfc3339_nano() {
        let t = |n| rfc3339_nano(at(n).into());
        assert_eq!(t(0), "2026-01-02T03:04:05Z");
        assert_eq!(t(500_000_000), "2026-01-02T03:04:05.5Z");
        assert_eq!(t(669_794_202), "2026-01-02T03:04:05.669794202Z");
        assert_eq!(t(1_000), "2026-01-02T03:04:05.000001Z");
    }

    #[test]
    fn chunks_become_full_and_partial_entries() {
        let out = encode(at(5), Stream::Stdout, b"a\nbc\n# ");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-02T03:04:05.000000005Z stdout F a\n\
             2026-01-02T03:04:05.000000005Z stdout F bc\n\
             2026-01-02T03:04:05.000000005Z stdout P # \n"
        );
        let out = encode(at(0), Stream::Stderr, b"\n");
        assert_eq!(out, b"2026-01-02T03:04:05Z stderr F \n");
        assert!(encode(at(0), Stream::Stderr, b"").is_empty());
    }

    #[test]
    fn entries_parse_back_and_junk_does_not() {
        let e = parse(b"2026-01-02T03:04:05.5Z stderr P a b ").unwrap();
        assert_eq!(e.stream, Stream::Stderr);
        assert!(e.partial);
        assert_eq!(e.content, b"a b ");
        assert_eq!(e.time, DateTime::<Utc>::from(at(500_000_000)));
        assert_eq!(
            parse(b"2026-01-02T03:04:05Z stdout F").unwrap().content,
            b""
        );
        for bad in [
            &b"hello world"[..],
            b"2026-01-02T03:04:05Z stdin F x",
            b"2026-01-02T03:04:05Z stdout X x",
            b"",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn formatting_restores_the_output_with_optional_times() {
        let log = [
            encode(at(0), Stream::Stdout, b"one\npro"),
            encode(at(7), Stream::Stdout, b"mpt\n"),
        ]
        .concat();
        let run = |mut f: Formatter| -> String {
            let mut out = Vec::new();
            for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Some(b) = f.format(&parse(line).unwrap()) {
                    out.extend(b);
                }
            }
            String::from_utf8(out).unwrap()
        };
        assert_eq!(run(Formatter::new(false, None)), "one\nprompt\n");
        assert_eq!(
            run(Formatter::new(true, None)),
            "2026-01-02T03:04:05Z one\n2026-01-02T03:04:05Z prompt\n"
        );
        assert_eq!(run(Formatter::new(false, Some(at(1)))), "mpt\n");
    }
}
