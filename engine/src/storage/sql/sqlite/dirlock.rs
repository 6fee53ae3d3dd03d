//! One engine per SQLite data directory.
//!
//! Two processes on one SQLite file would each cache subscriptions and
//! schemas with nothing to tell them the other changed them (SQLite has no
//! `NOTIFY`), so a task registered through one would get no runs for
//! publishes through the other. The store takes an exclusive advisory lock
//! on `<db>.lock` for as long as it is open; the lock file holds the
//! owner's pid so the refusal can name it. The OS drops the lock when the
//! process dies, so a `kill -9` never leaves the directory locked.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Lock the data directory of the database at `db`, or say who holds it.
pub fn lock(db: &Path) -> Result<File> {
    let path = db.with_extension("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            Error::Unavailable(format!(
                "sqlite: cannot open the lock file {}: {e} (is the data directory writable?)",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| write!(file, "{}", std::process::id()))
                .map_err(|e| {
                    Error::Unavailable(format!("sqlite: cannot write {}: {e}", path.display()))
                })?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let dir = db.parent().unwrap_or(Path::new("."));
            Err(Error::FailedPrecondition(format!(
                "data directory {} is in use by another fanout process (pid {}); stop it, or give this one another --data-dir",
                dir.display(),
                if pid.trim().is_empty() {
                    "unknown"
                } else {
                    pid.trim()
                }
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Unavailable(format!(
            "sqlite: cannot lock {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_refused_with_the_owners_pid() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("fanout.db");
        let held = lock(&db).unwrap_or_else(|e| panic!("{e}"));
        let e = lock(&db).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("in use by another fanout process"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(held);
        assert!(lock(&db).is_ok());
    }
}
