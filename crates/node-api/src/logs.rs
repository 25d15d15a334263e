//! `GET /containerLogs/...`: the container's log file, from a start offset (tail, since), up to
//! a byte limit, and with `follow` what is appended until the container stops.

pub mod cri;
pub mod options;
pub mod window;

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

pub use cri::Stream;
pub use options::{LogOptions, Since};

use cri::Formatter;

use crate::route::Target;
use crate::Pods;

/// How often a follow looks for new bytes and asks whether the container still runs.
const POLL: Duration = Duration::from_millis(200);
const READ_CHUNK: usize = 64 * 1024;

/// Why a log cannot be sent (the status, and the kubelet's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogError {
    pub status: u16,
    pub message: String,
}

impl LogError {
    fn new(status: u16, message: impl Into<String>) -> LogError {
        LogError {
            status,
            message: message.into(),
        }
    }
}

/// Picks the file and start offset and starts sending; the container's output arrives on the
/// receiver, which closes at the end. Dropping the receiver (the client went away) stops the
/// follow.
pub async fn open(
    pods: Arc<dyn Pods>,
    target: &Target,
    opts: LogOptions,
) -> Result<mpsc::Receiver<Chunk>, LogError> {
    let container = target.container.as_deref();
    let info = pods
        .container(&target.namespace, &target.pod, container)
        .map_err(|m| LogError::new(404, m))?;
    let path = if opts.previous {
        info.previous_log.clone().ok_or_else(|| {
            LogError::new(
                400,
                format!(
                    "previous terminated container {:?} in pod {:?} not found",
                    info.name, target.pod
                ),
            )
        })?
    } else {
        info.log.clone().ok_or_else(|| {
            LogError::new(
                400,
                format!(
                    "container {:?} in pod {:?} is waiting to start: ContainerCreating",
                    info.name, target.pod
                ),
            )
        })?
    };
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| LogError::new(500, format!("opening log {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| LogError::new(500, e.to_string()))?;
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let start = {
        let mut std_file = file
            .try_clone()
            .await
            .map_err(|e| LogError::new(500, e.to_string()))?
            .into_std()
            .await;
        let o = opts.clone();
        tokio::task::spawn_blocking(move || {
            window::start_offset(&mut std_file, len, modified, &o, SystemTime::now())
        })
        .await
        .map_err(|e| LogError::new(500, e.to_string()))?
        .map_err(|e| LogError::new(500, format!("reading log: {e}")))?
    };
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| LogError::new(500, e.to_string()))?;
    let (tx, rx) = mpsc::channel(8);
    // Only the current instance grows; a previous one is sent as it is.
    let follow = opts.follow && !opts.previous;
    let watch = Watch {
        pods,
        target: target.clone(),
        name: info.name,
        path: path.clone(),
    };
    tokio::spawn(async move {
        if let Err(e) = pump(file, start, &opts, follow, &watch, &tx).await {
            tracing::debug!(path = %watch.path.display(), error = %e, "log stream ended");
        }
    });
    Ok(rx)
}

/// Asks the agent whether the followed instance still runs.
struct Watch {
    pods: Arc<dyn Pods>,
    target: Target,
    name: String,
    path: PathBuf,
}

impl Watch {
    fn still_writing(&self) -> bool {
        match self
            .pods
            .container(&self.target.namespace, &self.target.pod, Some(&self.name))
        {
            // A new log path means a new instance: this one has stopped.
            Ok(info) => info.running && info.log.as_deref() == Some(self.path.as_path()),
            Err(_) => false,
        }
    }
}

async fn pump(
    mut file: tokio::fs::File,
    mut pos: u64,
    opts: &LogOptions,
    follow: bool,
    watch: &Watch,
    tx: &mpsc::Sender<Chunk>,
) -> std::io::Result<()> {
    let mut out = Output::new(opts);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // Send everything there is now.
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            if !out.feed(&buf[..n], tx).await {
                return Ok(());
            }
        }
        if !follow {
            return Ok(());
        }
        // At the end: if the container stopped, one more pass picks up its last bytes.
        if !watch.still_writing() {
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 || !out.feed(&buf[..n], tx).await {
                    return Ok(());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
        // A file truncated under us starts over.
        if file_len(&watch.path).await.is_some_and(|len| len < pos) {
            file.seek(SeekFrom::Start(0)).await?;
            pos = 0;
            out.pending.clear();
        }
    }
}

/// One piece of a container's output, from the stream that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: Stream,
    pub bytes: Bytes,
}

impl From<Chunk> for Bytes {
    fn from(c: Chunk) -> Bytes {
        c.bytes
    }
}

/// Log lines in, the container's output out: parsed, filtered and formatted as asked, up to
/// `limitBytes`.
struct Output {
    formatter: Formatter,
    limit: Option<u64>,
    sent: u64,
    /// The start of a line whose end is not in the file yet.
    pending: Vec<u8>,
}

impl Output {
    fn new(opts: &LogOptions) -> Output {
        let since = opts.since.map(|s| s.cutoff(SystemTime::now()));
        Output {
            formatter: Formatter::new(opts.timestamps, since),
            limit: opts.limit_bytes,
            sent: 0,
            pending: Vec::new(),
        }
    }

    /// Sends what `bytes` completes; false once nothing more may or can be sent.
    async fn feed(&mut self, bytes: &[u8], tx: &mpsc::Sender<Chunk>) -> bool {
        self.pending.extend_from_slice(bytes);
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return true;
        };
        let lines: Vec<u8> = self.pending.drain(..=end).collect();
        for line in lines[..end].split(|b| *b == b'\n') {
            let (stream, mut text) = match cri::parse(line) {
                Some(e) => match self.formatter.format(&e) {
                    Some(text) => (e.stream, text),
                    None => continue,
                },
                // Not an entry (a log written before the CRI format): passed on as it is.
                None => (Stream::Stdout, [line, b"\n"].concat()),
            };
            let room = window::allowance(self.limit, self.sent, text.len() as u64) as usize;
            if room == 0 {
                return false;
            }
            text.truncate(room);
            self.sent += text.len() as u64;
            let chunk = Chunk {
                stream,
                bytes: Bytes::from(text),
            };
            if tx.send(chunk).await.is_err() {
                return false;
            }
        }
        window::allowance(self.limit, self.sent, 1) > 0
    }
}

async fn file_len(path: &Path) -> Option<u64> {
    tokio::fs::metadata(path).await.ok().map(|m| m.len())
}
