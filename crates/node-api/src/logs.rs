//! `GET /containerLogs/...`: the container's log file, from a start offset (tail, since), up to
//! a byte limit, and with `follow` what is appended until the container stops.

pub mod options;
pub mod window;

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

pub use options::{LogOptions, Since};

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

/// Picks the file and start offset and starts sending; chunks arrive on the receiver, which
/// closes at the end. Dropping the receiver (the client went away) stops the follow.
pub async fn open(
    pods: Arc<dyn Pods>,
    target: &Target,
    opts: LogOptions,
) -> Result<mpsc::Receiver<Bytes>, LogError> {
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
        if let Err(e) = pump(file, start, opts.limit_bytes, follow, &watch, &tx).await {
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
    limit: Option<u64>,
    follow: bool,
    watch: &Watch,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut sent = 0u64;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // Send everything there is now.
        loop {
            let room = window::allowance(limit, sent, buf.len() as u64) as usize;
            if room == 0 {
                return Ok(());
            }
            let n = file.read(&mut buf[..room]).await?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            sent += n as u64;
            if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                return Ok(());
            }
        }
        if !follow {
            return Ok(());
        }
        // At the end: if the container stopped, one more pass picks up its last bytes.
        let running = watch.still_writing();
        if !running {
            return drain(&mut file, limit, sent, tx).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
        // A file truncated under us starts over.
        if file_len(&watch.path).await.is_some_and(|len| len < pos) {
            file.seek(SeekFrom::Start(0)).await?;
            pos = 0;
        }
    }
}

async fn drain(
    file: &mut tokio::fs::File,
    limit: Option<u64>,
    mut sent: u64,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let room = window::allowance(limit, sent, buf.len() as u64) as usize;
        if room == 0 {
            return Ok(());
        }
        let n = file.read(&mut buf[..room]).await?;
        if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
            return Ok(());
        }
        sent += n as u64;
    }
}

async fn file_len(path: &Path) -> Option<u64> {
    tokio::fs::metadata(path).await.ok().map(|m| m.len())
}
