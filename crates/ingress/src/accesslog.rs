//! The access log line, in nginx's combined format followed by ingress-nginx's upstream
//! fields, so log tools that read ingress-nginx read it too. Requests queue their entry for a
//! writer thread, which formats them and writes them to stdout in batches, so a request never
//! waits on a write or on the pipe behind `kubectl logs`. The writer is woken only when it
//! sleeps on an empty queue, then gathers for [`WINDOW`]: a thread woken per request cost a
//! context switch per request (a third of the proxy's CPU under load). When the writer falls
//! behind by a whole queue, entries are dropped and counted, rather than held without end.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
/// How long the writer gathers entries after a wake-up before it writes them.
const WINDOW: Duration = Duration::from_millis(20);

/// The entries waiting for the writer.
struct Queue {
    state: Mutex<Waiting>,
    wake: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct Waiting {
    entries: Vec<Entry>,
    /// The writer sleeps on `wake` until told.
    asleep: bool,
    /// Every `Log` is gone: write what is left and end.
    closed: bool,
}

impl Queue {
    fn new(capacity: usize) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, entry: Entry) -> bool {
        let mut w = self.lock();
        if w.entries.len() >= self.capacity {
            return false;
        }
        w.entries.push(entry);
        if std::mem::take(&mut w.asleep) {
            self.wake.notify_one();
        }
        true
    }

    /// Everything queued, after sleeping while there is nothing; `None` once closed and empty.
    fn take(&self) -> Option<Vec<Entry>> {
        let mut w = self.lock();
        while w.entries.is_empty() && !w.closed {
            w.asleep = true;
            w = self.wake.wait(w).unwrap_or_else(|p| p.into_inner());
        }
        w.asleep = false;
        (!w.entries.is_empty()).then(|| std::mem::take(&mut w.entries))
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// The sending side; the last one dropped closes the queue.
struct Sender(Arc<Queue>);

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Where requests send their entries.
#[derive(Clone)]
pub struct Log(Arc<Sender>);

impl Log {
    fn with_queue(capacity: usize) -> (Log, Arc<Queue>) {
        let queue = Queue::new(capacity);
        (Log(Arc::new(Sender(queue.clone()))), queue)
    }

    /// Starts the writer thread on `out`; it ends when the last `Log` is dropped.
    pub fn start(out: impl Write + Send + 'static) -> Log {
        let (log, queue) = Log::with_queue(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
                while let Some(batch) = queue.take() {
                    for e in &batch {
                        let _ = write_line(&mut out, e);
                    }
                    let _ = out.flush();
                    std::thread::sleep(WINDOW);
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
        self.0 .0.push(entry)
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
        let (log, queue) = Log::with_queue(2);
        let taken: Vec<bool> = (0..3).map(|_| log.record(entry())).collect();
        assert_eq!(taken, [true, true, false]);
        assert_eq!(queue.take().unwrap().len(), 2);
        assert!(log.record(entry()), "room again once the writer takes them");
        drop(log);
        assert_eq!(
            queue.take().unwrap().len(),
            1,
            "what is left after the close"
        );
        assert!(queue.take().is_none(), "closed and empty");
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

    /// The log's text once it has `n` lines (or after 10 s).
    fn lines(out: &Shared, n: usize) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            if text.lines().count() >= n || std::time::Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn entries_reach_the_writer_in_order_and_unmatched_show_dashes() {
        let out = Shared::default();
        let log = Log::start(out.clone());
        let unmatched = Entry {
            status: 404,
            backend: "".into(),
            upstream: None,
            bytes: None,
            ..entry()
        };
        log.record(Entry {
            upstream: None,
            bytes: None,
            ..entry()
        });
        // Written while the log is open: a sleeping writer is woken.
        let text = lines(&out, 1);
        assert!(text.contains("\" 200 - \"-\""), "{text}");
        log.record(unmatched);
        drop(log);
        let text = lines(&out, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].ends_with(" [-] -"), "{text}");
    }
}
