//! The access log line, in nginx's combined format followed by ingress-nginx's upstream
//! fields, so log tools that read ingress-nginx read it too. Requests hand their entry to a
//! writer thread over a bounded channel; it formats them and writes them to stdout in
//! batches, so a request never waits on a write or on the pipe behind `kubectl logs`. When
//! the writer falls behind by a whole queue, entries are dropped and counted, rather than
//! held in memory without end.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderValue, Method, Uri};

/// One answered request (owned: it crosses to the writer thread).
pub struct Entry {
    pub client: IpAddr,
    pub time: DateTime<Utc>,
    pub method: Method,
    /// As requested; the log shows its path and query.
    pub target: Uri,
    pub version: http::Version,
    pub status: u16,
    /// The response's Content-Length, when known before streaming.
    pub bytes: Option<u64>,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub took: Duration,
    /// `namespace/service:port`, or empty.
    pub backend: Arc<str>,
    pub upstream: Option<SocketAddr>,
}

/// `client - - [time] "METHOD target HTTP/x" status bytes "referer" "agent" seconds [backend] upstream`
pub fn write_line(out: &mut impl Write, e: &Entry) -> std::io::Result<()> {
    let quoted = |v: &Option<HeaderValue>| {
        v.as_ref()
            .map_or("-", |v| v.to_str().unwrap_or("-"))
            .replace('"', "\\\"")
    };
    write!(
        out,
        "{} - - [{}] \"{} {} {:?}\" {} ",
        e.client,
        e.time.format("%d/%b/%Y:%H:%M:%S %z"),
        e.method,
        e.target.path_and_query().map_or("/", |p| p.as_str()),
        e.version,
        e.status,
    )?;
    match e.bytes {
        Some(b) => write!(out, "{b}")?,
        None => out.write_all(b"-")?,
    }
    write!(
        out,
        " \"{}\" \"{}\" {:.3} [{}] ",
        quoted(&e.referer),
        quoted(&e.user_agent),
        e.took.as_secs_f64(),
        if e.backend.is_empty() {
            "-"
        } else {
            &e.backend
        },
    )?;
    match e.upstream {
        Some(u) => writeln!(out, "{u}"),
        None => writeln!(out, "-"),
    }
}

/// The entries a stuck writer may have waiting before new ones are dropped.
const QUEUE: usize = 16 << 10;

/// Where requests send their entries.
#[derive(Clone)]
pub struct Log(mpsc::SyncSender<Entry>);

impl Log {
    fn channel(capacity: usize) -> (Log, mpsc::Receiver<Entry>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        (Log(tx), rx)
    }

    /// Starts the writer thread on `out`; it ends when the last `Log` is dropped.
    pub fn start(out: impl Write + Send + 'static) -> Log {
        let (log, rx) = Log::channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
                // Block for one entry, take what else is queued, then flush the batch.
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(e) = next {
                        let _ = write_line(&mut out, &e);
                        next = rx.try_recv().ok();
                    }
                    let _ = out.flush();
                }
            })
            .expect("starting the access log thread");
        log
    }

    pub fn stdout() -> Log {
        Log::start(std::io::stdout())
    }

    /// Queues `entry` for the writer; `false` when the queue is full and it was dropped.
    pub fn record(&self, entry: Entry) -> bool {
        self.0.try_send(entry).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            client: "192.0.2.7".parse().unwrap(),
            time: "2026-12-05T03:04:05Z".parse().unwrap(),
            method: Method::GET,
            target: "/index.html?q=1".parse().unwrap(),
            version: http::Version::HTTP_11,
            status: 200,
            bytes: Some(615),
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8.5 \"x\"")),
            took: Duration::from_millis(2),
            backend: "default/nginx:80".into(),
            upstream: Some("10.244.1.5:80".parse().unwrap()),
        }
    }

    #[test]
    fn combined_format_with_upstream() {
        let mut out = Vec::new();
        write_line(&mut out, &entry()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "192.0.2.7 - - [05/Dec/2026:03:04:05 +0000] \"GET /index.html?q=1 HTTP/1.1\" 200 615 \"-\" \"curl/8.5 \\\"x\\\"\" 0.002 [default/nginx:80] 10.244.1.5:80\n"
        );
    }

    #[test]
    fn a_full_queue_drops_entries_instead_of_growing() {
        let (log, queue) = Log::channel(2);
        let taken: Vec<bool> = (0..3).map(|_| log.record(entry())).collect();
        assert_eq!(taken, [true, true, false]);
        drop(queue.recv().unwrap());
        assert!(log.record(entry()), "room again once the writer takes one");
    }

    /// A `Write` the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn entries_reach_the_writer_in_order_and_unmatched_show_dashes() {
        let out = Shared::default();
        let log = Log::start(out.clone());
        for status in [200, 404] {
            log.record(Entry {
                status,
                backend: if status == 404 {
                    "".into()
                } else {
                    entry().backend
                },
                upstream: None,
                bytes: None,
                ..entry()
            });
        }
        drop(log);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let text = loop {
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            if text.lines().count() == 2 || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("\" 200 - \"-\""), "{text}");
        assert!(lines[1].ends_with(" [-] -"), "{text}");
    }
}
