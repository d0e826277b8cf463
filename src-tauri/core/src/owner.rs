//! Which process owns unfinished work, and whether that process is still alive.
//!
//! Every open core holds an exclusive lock on its own file `owners/<id>.lock` in the
//! data folder. Rows it is in the middle of writing or deleting carry that id. The
//! operating system releases the lock when the process ends, however it ends (kill -9
//! included), so "can I take this owner's lock?" answers "is its work abandoned?"
//! without pids, clocks or leases.
//!
//! The same kind of lock, on a file named for the work, lets one process at a time do
//! work that must happen once per data folder (making the API's credentials).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::store::{StoreError, private_dir};

const DIR: &str = "owners";
const SUFFIX: &str = ".lock";

pub(crate) struct Owner {
    id: String,
    path: PathBuf,
    _lock: File,
}

impl Owner {
    /// Takes a new owner id for this open core and locks its file.
    pub(crate) fn claim(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join(DIR);
        let failed =
            |err: std::io::Error| StoreError::DataDir { path: dir.display().to_string(), reason: err.to_string() };
        private_dir(&dir).map_err(failed)?;
        let id = Uuid::new_v4().to_string();
        let path = dir.join(format!("{id}{SUFFIX}"));
        // Locked under another name, then renamed: nobody ever sees the file unlocked
        // (and takes its owner for gone) while this core is alive.
        let unlocked = dir.join(format!("{id}.new"));
        let lock = open(&unlocked).map_err(failed)?;
        lock.try_lock().map_err(|err| failed(err.into()))?;
        std::fs::rename(&unlocked, &path).map_err(failed)?;
        Ok(Self { id, path, _lock: lock })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Everything this owner wrote is finished by now; its lock goes with the file.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the owner `id` (None: a row from before owners were recorded) has ended.
pub(crate) fn is_gone(data_dir: &Path, id: Option<&str>) -> bool {
    let Some(id) = id else { return true };
    let path = data_dir.join(DIR).join(format!("{id}{SUFFIX}"));
    match OpenOptions::new().write(true).open(&path) {
        // Its file is removed only after its lock is released.
        Err(_) => true,
        Ok(file) => match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            // Cannot tell: treat as alive, never undo work that may be live.
            Err(TryLockError::Error(_)) => false,
        },
    }
}

/// Removes the lock files of owners that ended without cleaning up (a crash).
pub(crate) fn sweep(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join(DIR)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|name| name.strip_suffix(SUFFIX)) else { continue };
        if is_gone(data_dir, Some(id)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The exclusive lock on `<data folder>/<work>.lock`, held until dropped: other processes
/// (and other cores of this one) taking it for the same work wait meanwhile.
pub(crate) struct WorkLock {
    _lock: File,
}

impl WorkLock {
    /// Waits for the lock, on a blocking thread: its holder may be waiting on the vault.
    pub(crate) async fn take(data_dir: &Path, work: &str) -> Result<Self, StoreError> {
        let path = data_dir.join(format!("{work}{SUFFIX}"));
        let failed = |reason: String| StoreError::DataDir { path: path.display().to_string(), reason };
        let file = open(&path).map_err(|err| failed(err.to_string()))?;
        let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await;
        match locked {
            Ok(Ok(file)) => Ok(Self { _lock: file }),
            Ok(Err(err)) => Err(failed(err.to_string())),
            Err(_) => Err(failed("the wait for its lock did not finish".into())),
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_alive_while_held_and_gone_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::claim(dir.path()).unwrap();
        let id = owner.id().to_owned();
        assert!(!is_gone(dir.path(), Some(&id)), "a live owner, even seen from the same process");
        sweep(dir.path());
        assert!(!is_gone(dir.path(), Some(&id)), "sweeping leaves live owners alone");
        drop(owner);
        assert!(is_gone(dir.path(), Some(&id)));
        assert!(is_gone(dir.path(), None));
    }

    #[tokio::test]
    async fn a_work_lock_is_held_by_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = WorkLock::take(dir.path(), "work").await.unwrap();
        let second = tokio::spawn({
            let dir = dir.path().to_owned();
            async move { WorkLock::take(&dir, "work").await.map(drop) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "waits while the first holds it");
        drop(first);
        second.await.unwrap().expect("taken once released");
    }
}
