//! SQLite backend: WAL journal with `synchronous=FULL`, so a commit is on disk when it returns
//! and readers of the file never block the writer.
//!
//! Like kine, it keeps one global revision counter and per-key revisions, so a write is a real
//! compare-and-swap. It keeps no history: the only watch it offers starts at the current revision
//! and is fed by its own commits (the file is locked to this process).

use std::path::Path;
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::backend::{Backend, Change, Changes, Loaded, Op, Outcome, Row};
use crate::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, rv INTEGER NOT NULL, json BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The SQLite implementation of [`Backend`].
pub struct SqliteBackend {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    /// The revision of the last commit: read from the file once, at open (the file is this
    /// process's alone), so a commit does not scan every row for it.
    rev: u64,
    /// The live watch, if any: committed changes go there after each commit.
    subscriber: Option<mpsc::Sender<Vec<Change>>>,
    closed: bool,
}

impl SqliteBackend {
    /// Opens or creates the database file and its tables. `:memory:` gives a throwaway
    /// in-memory database (for tests).
    ///
    /// The file is locked exclusively for as long as the backend lives: a second store on the
    /// same file would hand out duplicate resourceVersions, so it fails to open instead.
    pub fn open(path: &Path) -> Result<SqliteBackend, StoreError> {
        let in_memory = path.as_os_str() == ":memory:";
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(1))?;
        // Exclusive before WAL: no shared-memory index, and the lock is never released.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !(mode.eq_ignore_ascii_case("wal") || in_memory && mode == "memory") {
            return Err(StoreError::Backend(format!(
                "journal_mode is {mode}, wanted wal"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A write transaction takes the exclusive lock now rather than at the first commit.
        conn.execute_batch(&format!("BEGIN EXCLUSIVE; {SCHEMA} COMMIT;"))?;
        let rev = current_rev(&conn)?;
        Ok(SqliteBackend {
            inner: Mutex::new(Inner {
                conn,
                rev,
                subscriber: None,
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("resourceVersion {v} overflows")))
}

/// The revision a file holds: its counter, or its newest row (files written before the
/// counter existed).
fn current_rev(conn: &Connection) -> Result<u64, StoreError> {
    let meta: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE name = 'rv'", [], |r| r.get(0))
        .optional()?;
    let max_row: Option<i64> = conn.query_row("SELECT max(rv) FROM objects", [], |r| r.get(0))?;
    Ok(to_u64(meta.unwrap_or(0)).max(to_u64(max_row.unwrap_or(0))))
}

/// Applies one op inside the transaction; `Some(change)` when it matched its revision.
fn apply(tx: &Transaction<'_>, op: &Op, rev: u64) -> Result<Option<Change>, StoreError> {
    let current: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT rv, json FROM objects WHERE key = ?1")?
        .query_row(params![op.key()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (current_rev, prev) = match current {
        Some((rv, json)) => (to_u64(rv), Some(Bytes::from(json))),
        None => (0, None),
    };
    let (expect, value) = match op {
        Op::Put { expect, value, .. } => (*expect, Some(value.clone())),
        Op::Delete { expect, .. } => (*expect, None),
    };
    if current_rev != expect || (value.is_none() && prev.is_none()) {
        return Ok(None);
    }
    match &value {
        Some(value) => tx
            .prepare_cached(
                "INSERT INTO objects (key, rv, json) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET rv = excluded.rv, json = excluded.json",
            )?
            .execute(params![op.key(), to_i64(rev)?, &value[..]])?,
        None => tx
            .prepare_cached("DELETE FROM objects WHERE key = ?1")?
            .execute(params![op.key()])?,
    };
    Ok(Some(Change {
        rev,
        key: op.key().to_string(),
        value,
        prev,
    }))
}

impl Backend for SqliteBackend {
    fn load_all(&self) -> Result<Loaded, StoreError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare("SELECT key, rv, json FROM objects ORDER BY key")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    key: r.get(0)?,
                    rev: to_u64(r.get(1)?),
                    value: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded {
            rev: inner.rev,
            rows,
        })
    }

    fn commit(&self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        let mut inner = self.lock();
        let mut rev = inner.rev;
        let start = rev;
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut changes = Vec::new();
        let tx = inner.conn.transaction()?;
        for op in ops {
            match apply(&tx, op, rev + 1)? {
                Some(change) => {
                    rev += 1;
                    outcomes.push(Outcome::Done(rev));
                    changes.push(change);
                }
                None => outcomes.push(Outcome::Conflict),
            }
        }
        if rev != start {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('rv', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![to_i64(rev)?],
            )?;
        }
        tx.commit()?;
        inner.rev = rev;
        let gone = match &inner.subscriber {
            Some(tx) if !changes.is_empty() => tx.send(changes).is_err(),
            _ => false,
        };
        if gone {
            inner.subscriber = None;
        }
        Ok(outcomes)
    }

    fn watch(&self, after: u64) -> Result<Box<dyn Changes>, StoreError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(StoreError::Closed);
        }
        let rev = inner.rev;
        if after < rev {
            // No history is kept: only a watch from now on can be served.
            return Err(StoreError::Compacted {
                requested: after,
                compacted: rev,
            });
        }
        let (tx, rx) = mpsc::channel();
        inner.subscriber = Some(tx);
        Ok(Box::new(Live(rx)))
    }

    fn compact(&self, _rev: u64) -> Result<(), StoreError> {
        // Only the latest value of each key is kept: there is no history to compact.
        Ok(())
    }

    fn probe(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        inner
            .conn
            .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
        // This process is the file's only writer: its counter is the latest commit.
        Ok(inner.rev)
    }

    fn shared(&self) -> bool {
        // kinet's API server holds the file alone.
        false
    }

    fn close(&self) {
        let mut inner = self.lock();
        inner.subscriber = None;
        inner.closed = true;
    }
}

/// The changes of this process's own commits.
struct Live(mpsc::Receiver<Vec<Change>>);

impl Changes for Live {
    fn next(&mut self) -> Result<Vec<Change>, StoreError> {
        self.0.recv().map_err(|_| StoreError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, expect: u64) -> Op {
        Op::Put {
            key: key.into(),
            value: Bytes::from(format!("{{\"k\":\"{key}\"}}")),
            expect,
        }
    }

    fn row(key: &str, rev: u64) -> Row {
        Row {
            key: key.into(),
            rev,
            value: Bytes::from(format!("{{\"k\":\"{key}\"}}")),
        }
    }

    #[test]
    fn each_op_is_a_compare_and_swap_with_its_own_revision() {
        let b = SqliteBackend::open(Path::new(":memory:")).unwrap();
        let mut live = b.watch(0).unwrap();
        let got = b.commit(&[put("a", 0), put("b", 0), put("c", 5)]).unwrap();
        assert_eq!(
            got,
            vec![Outcome::Done(1), Outcome::Done(2), Outcome::Conflict]
        );
        let got = b
            .commit(&[
                put("a", 0),
                put("a", 1),
                Op::Delete {
                    key: "b".into(),
                    expect: 2,
                },
                Op::Delete {
                    key: "z".into(),
                    expect: 0,
                },
            ])
            .unwrap();
        assert_eq!(
            got,
            vec![
                Outcome::Conflict,
                Outcome::Done(3),
                Outcome::Done(4),
                Outcome::Conflict
            ]
        );
        let first = live.next().unwrap();
        assert_eq!(first.iter().map(|c| c.rev).collect::<Vec<_>>(), [1, 2]);
        let second = live.next().unwrap();
        assert_eq!(second[1].key, "b");
        assert_eq!(second[1].value, None);
        assert_eq!(second[1].prev, Some(row("b", 2).value));
        assert_eq!(second[0].prev, Some(row("a", 1).value));
        b.close();
        assert!(matches!(live.next(), Err(StoreError::Closed)));
    }

    #[test]
    fn commit_then_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let b = SqliteBackend::open(&path).unwrap();
        assert_eq!(b.load_all().unwrap(), Loaded::default());
        b.commit(&[put("a", 0), put("b", 0)]).unwrap();
        b.commit(&[
            put("a", 1),
            Op::Delete {
                key: "b".into(),
                expect: 2,
            },
        ])
        .unwrap();
        drop(b);
        let b = SqliteBackend::open(&path).unwrap();
        let loaded = b.load_all().unwrap();
        assert_eq!(loaded.rev, 4, "the delete's revision is durable");
        assert_eq!(loaded.rows, vec![row("a", 3)]);
        assert!(
            matches!(b.watch(3), Err(StoreError::Compacted { .. })),
            "no history is kept"
        );
        assert!(b.watch(4).is_ok());
    }

    #[test]
    fn uses_wal_and_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("db")).unwrap();
        let inner = b.lock();
        let mode: String = inner
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = inner
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn a_second_open_of_the_same_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = SqliteBackend::open(&path).unwrap();
        assert!(SqliteBackend::open(&path).is_err());
        drop(first);
        assert!(
            SqliteBackend::open(&path).is_ok(),
            "the lock goes with the connection"
        );
    }
}
