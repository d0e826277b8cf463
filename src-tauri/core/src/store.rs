//! The embedded SQLite database: opening, pragmas, migrations and write transactions.
//! The SQL for each noun lives next to its rules (folders.rs, assets.rs, connections.rs).
//!
//! Several processes (the window, the CLI, `patchbay serve`) may share one database, so
//! every write runs in a `BEGIN IMMEDIATE` transaction: it takes SQLite's write lock
//! before it reads, waits for it up to [`BUSY_TIMEOUT`], and its checks (is this name
//! free?) still hold when it writes.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// A state kept in a TEXT column: each variant is stored (and serialized) as one fixed
/// word, so SQL `CHECK`s, the row functions and the UI read the same words, and Rust
/// matches on variants instead of strings.
macro_rules! text_column_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                match value.as_str()? {
                    $($text => Ok(Self::$variant),)+
                    other => Err(rusqlite::types::FromSqlError::Other(
                        format!("unknown {} '{other}'", stringify!($name)).into(),
                    )),
                }
            }
        }
    };
}
pub(crate) use text_column_enum;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the local database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data folder {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("the database was written by a newer Patchbay (schema {found}, this one knows {known}); update Patchbay")]
    TooNew { found: i64, known: i64 },
}

/// How long a write waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_init.sql"),
    include_str!("../migrations/002_instances.sql"),
    include_str!("../migrations/003_events.sql"),
    include_str!("../migrations/004_rotations.sql"),
    include_str!("../migrations/005_owners.sql"),
    include_str!("../migrations/006_name_keys.sql"),
    include_str!("../migrations/007_rotation_secondary.sql"),
    include_str!("../migrations/008_event_polls.sql"),
    include_str!("../migrations/009_auth_methods.sql"),
    include_str!("../migrations/010_connection_fields.sql"),
    include_str!("../migrations/011_credential_stores.sql"),
    include_str!("../migrations/012_linked_assets.sql"),
    include_str!("../migrations/013_managed_assets.sql"),
    include_str!("../migrations/014_asset_destinations.sql"),
    include_str!("../migrations/015_store_removal.sql"),
    include_str!("../migrations/016_rotation_claims.sql"),
];

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            private_dir(dir)
                .map_err(|err| StoreError::DataDir { path: dir.display().to_string(), reason: err.to_string() })?;
            tighten(dir, 0o700)?;
        }
        // SQLite gives the -wal and -shm files the database file's mode, so creating it
        // 0600 keeps all three private; files made by someone else are tightened.
        private_file(path)
            .map_err(|err| StoreError::DataDir { path: path.display().to_string(), reason: err.to_string() })?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            tighten(Path::new(&file), 0o600)?;
        }
        let mut conn = Connection::open(path)?;
        // The busy timeout first: switching a new database to WAL already takes a lock.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;",
        )?;
        migrate(&mut conn)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// The connection, held for one core call, for reads. A poisoned lock only means
    /// another thread panicked mid-call; SQLite's own transactions keep the data whole.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` in one write transaction and commits it when `work` succeeds.
    pub(crate) fn write<T>(&self, work: impl FnOnce(&Transaction<'_>) -> crate::Result<T>) -> crate::Result<T> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let value = work(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Reads and applies the migrations under the write lock, so that processes opening a
/// new data folder together run each migration exactly once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    // Almost every start finds the schema current: it reads the version without taking
    // the write lock, which another process may hold for a while.
    if schema_version(conn)? == known {
        return Ok(());
    }
    let tx = immediate(conn)?;
    // Read again under the lock: another process may have migrated meanwhile.
    let applied = schema_version(&tx)?;
    if applied > known {
        return Err(StoreError::TooNew { found: applied, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    if applied < NAME_KEYS_ADDED {
        backfill_name_keys(&tx)?;
    }
    if applied < DESTINATIONS_ADDED {
        // Each asset may go on to where the connections that use it send it today.
        crate::assets::backfill_destinations(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// The migration that added `name_key` columns (006_name_keys.sql).
const NAME_KEYS_ADDED: i64 = 6;
/// The migration that added `asset_destinations` (014_asset_destinations.sql).
const DESTINATIONS_ADDED: i64 = 14;

fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Gives rows written before names had keys their key.
fn backfill_name_keys(tx: &Transaction<'_>) -> Result<(), StoreError> {
    for table in ["folders", "assets", "connections"] {
        let missing: Vec<(String, String)> = tx
            .prepare(&format!("SELECT CAST(rowid AS TEXT), name FROM {table} WHERE name_key IS NULL"))?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut update = tx.prepare(&format!("UPDATE {table} SET name_key = ?2 WHERE rowid = ?1"))?;
        for (rowid, name) in missing {
            update.execute(rusqlite::params![rowid, crate::text::name_key(&name)])?;
        }
    }
    Ok(())
}

/// Creates the folder readable by its owner only; an existing folder is left as it is.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Takes away what `mode` does not grant from an existing file or folder (a folder made
/// by hand, a database copied in); refuses to go on when that is not possible.
fn tighten(path: &Path, mode: u32) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(found) = std::fs::metadata(path) else { return Ok(()) };
        let current = found.permissions().mode() & 0o777;
        if current & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode)).map_err(|err| {
                StoreError::DataDir {
                    path: path.display().to_string(),
                    reason: format!(
                        "it is readable by others (mode {current:o}) and Patchbay cannot make it private ({err}); run chmod {mode:o} '{}' as its owner",
                        path.display()
                    ),
                }
            })?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_seed_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        let conn = store.conn();
        let folders: i64 =
            conn.query_row("SELECT count(*) FROM folders WHERE name = 'Shared'", [], |r| r.get(0)).unwrap();
        assert_eq!(folders, 1);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_new_data_folder_opened_by_many_at_once_is_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("db.sqlite3");
        let openers: Vec<_> = (0..16)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(&path).map(drop).map_err(|err| err.to_string()))
            })
            .collect();
        for opener in openers {
            opener.join().unwrap().expect("every opener succeeds");
        }
        let store = Store::open(&path).unwrap();
        let shared: i64 =
            store.conn().query_row("SELECT count(*) FROM folders WHERE name = 'Shared'", [], |r| r.get(0)).unwrap();
        assert_eq!(shared, 1);
    }

    #[test]
    fn a_database_from_before_name_keys_gets_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        {
            // As the release before owners and name keys left it.
            let old = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                old.execute_batch(sql).unwrap();
            }
            old.pragma_update(None, "user_version", 4).unwrap();
            old.execute("INSERT INTO folders (parent_id, name, created_at, updated_at) VALUES (1, 'Café', '', '')", [])
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let key: String =
            store.conn().query_row("SELECT name_key FROM folders WHERE name = 'Café'", [], |r| r.get(0)).unwrap();
        assert_eq!(key, crate::text::name_key("CAFÉ"));
    }

    #[test]
    fn a_database_from_a_newer_patchbay_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        drop(Store::open(&path).unwrap());
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path).unwrap().pragma_update(None, "user_version", newer).unwrap();
        let refused = Store::open(&path).err().expect("a newer schema is refused");
        assert!(matches!(refused, StoreError::TooNew { found, .. } if found == newer), "{refused}");
    }

    #[cfg(unix)]
    #[test]
    fn the_data_folder_and_database_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("patchbay");
        let store = Store::open(&data.join("db.sqlite3")).unwrap();
        store
            .write(|tx| Ok(tx.execute("INSERT INTO folders (name, created_at, updated_at) VALUES ('X', '', '')", [])?))
            .unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for file in ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_loose_data_folder_and_its_files_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("patchbay");
        drop(Store::open(&data.join("db.sqlite3")).unwrap());
        let set =
            |path: &Path, mode: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        set(&data, 0o755);
        for file in ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"] {
            std::fs::OpenOptions::new().create(true).append(true).open(data.join(file)).unwrap();
            set(&data.join(file), 0o644);
        }
        let store = Store::open(&data.join("db.sqlite3")).unwrap();
        store
            .write(|tx| Ok(tx.execute("INSERT INTO folders (name, created_at, updated_at) VALUES ('Y', '', '')", [])?))
            .unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for file in ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }
}
