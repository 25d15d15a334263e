//! SQLite backend: WAL journal with `synchronous=FULL`, so a commit is on disk when it returns
//! and readers of the file never block the writer.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{Backend, Batch, Change, Loaded, Row};
use crate::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, rv INTEGER NOT NULL, json BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The SQLite implementation of [`Backend`].
pub struct SqliteBackend {
    conn: Connection,
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
        Ok(SqliteBackend { conn })
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("resourceVersion {v} overflows")))
}

impl Backend for SqliteBackend {
    fn load_all(&mut self) -> Result<Loaded, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, rv, json FROM objects ORDER BY key")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    key: r.get(0)?,
                    rv: to_u64(r.get(1)?),
                    json: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let meta: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE name = 'rv'", [], |r| r.get(0))
            .optional()?;
        let max_row = rows.iter().map(|r| r.rv).max().unwrap_or(0);
        Ok(Loaded {
            rv: meta.map(to_u64).unwrap_or(0).max(max_row),
            rows,
        })
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO objects (key, rv, json) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET rv = excluded.rv, json = excluded.json",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM objects WHERE key = ?1")?;
            for change in &batch.changes {
                match change {
                    Change::Put(row) => {
                        put.execute(params![row.key, to_i64(row.rv)?, &row.json[..]])?;
                    }
                    Change::Delete(key) => {
                        delete.execute(params![key])?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('rv', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![to_i64(batch.rv)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, rv: u64) -> Row {
        Row {
            key: key.into(),
            rv,
            json: Bytes::from(format!("{{\"k\":\"{key}\"}}")),
        }
    }

    #[test]
    fn commit_then_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut b = SqliteBackend::open(&path).unwrap();
        assert_eq!(b.load_all().unwrap(), Loaded::default());
        b.commit(&Batch {
            changes: vec![Change::Put(row("a", 1)), Change::Put(row("b", 2))],
            rv: 2,
        })
        .unwrap();
        b.commit(&Batch {
            changes: vec![Change::Put(row("a", 3)), Change::Delete("b".into())],
            rv: 4,
        })
        .unwrap();
        drop(b);
        let mut b = SqliteBackend::open(&path).unwrap();
        let loaded = b.load_all().unwrap();
        assert_eq!(loaded.rv, 4, "the delete's rv is durable");
        assert_eq!(loaded.rows, vec![row("a", 3)]);
    }

    #[test]
    fn uses_wal_and_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("db")).unwrap();
        let mode: String = b
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = b
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

    #[test]
    fn in_memory_database() {
        let mut b = SqliteBackend::open(Path::new(":memory:")).unwrap();
        b.commit(&Batch {
            changes: vec![Change::Put(row("a", 1))],
            rv: 1,
        })
        .unwrap();
        assert_eq!(b.load_all().unwrap().rows, vec![row("a", 1)]);
        b.probe().unwrap();
    }
}
