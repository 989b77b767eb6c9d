//! The catalogue: a SQLite database (WAL, busy timeout, foreign keys) that knows every
//! pool, volume, backup and file, and where each file's bytes sit on tape.
//!
//! One typed API over SQL with bound parameters only. Writers batch their inserts into
//! large transactions; readers never block them (WAL). Several processes may write at once
//! (two drives): each transaction starts `IMMEDIATE` and waits its turn for the busy
//! timeout before reporting the catalogue locked.

mod backups;
mod chains;
mod check;
pub mod members;
mod pools;
mod query;
mod rebuild;
pub mod schema;
mod volumes;

pub use backups::{
    BackupStatus, ChangeStamp, FileBatch, FileKind, FileRecord, NewBackup, Orphan, SegmentRecord,
};
pub use chains::{ChainLink, ChainState, DirPaths};
pub use check::{CheckReport, HeldLabel};
pub use pools::{Pool, PoolKind, PoolSummary};
pub use query::{BackupNode, BackupRef, BackupSummary, FileVersion, SegmentInfo};
pub use rebuild::{ForeignVolume, KnownBackup, ORIGIN_IMPORT, ORIGIN_INDEX, ORIGIN_SCAN};
pub use volumes::{
    Keep, LabelRecord, Loss, Overwrite, Refusal, TapeErrorRecord, Volume, VolumeStatus,
};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another writer's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalogue {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("catalogue {}: cannot create its directory: {source}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "catalogue {} is locked by another process; try again when it has finished",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("catalogue {} is read-only: {detail}", path.display())]
    ReadOnly { path: PathBuf, detail: String },
    #[error(
        "catalogue {} was written by a newer tapedeck (schema version {found}; this one knows \
         up to {known}): upgrade tapedeck, or use a catalogue backup",
        path.display()
    )]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no pool `{name}`{}", suggest(.suggestion, .known))]
    UnknownPool {
        name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    #[error("no volume `{label}` in the catalogue{}", suggest(.suggestion, .known))]
    UnknownVolume {
        label: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("volume {label}: cannot go from {from} to {to}")]
    Transition {
        label: String,
        from: VolumeStatus,
        to: VolumeStatus,
    },
    #[error(
        "volume {label} holds data protected until {until} (pool {pool}); use --force to \
         overwrite it anyway"
    )]
    Protected {
        label: String,
        pool: String,
        until: String,
    },
    #[error(transparent)]
    Refused(#[from] volumes::Refusal),
    /// A record or row of the catalogue cannot be trusted: reading on would give an
    /// incomplete answer.
    #[error(
        "catalogue {} is damaged: backup {backup}{}: {what}; {}",
        path.display(),
        record.map(|r| format!(", member record {r}")).unwrap_or_default(),
        rebuild_hint(.volumes)
    )]
    Damaged {
        path: PathBuf,
        /// The backup's uuid (or `#id` when its row is gone).
        backup: String,
        /// The record's first member number, when the damage is in one record.
        record: Option<i64>,
        what: String,
        /// The volumes the backup wrote, to rebuild from.
        volumes: Vec<String>,
    },
    /// The catalogue knows nothing while the library holds labelled volumes: it was
    /// emptied, truncated or replaced.
    #[error(
        "catalogue {} knows no volume or backup, but the library holds labelled volumes \
         ({}): the catalogue is empty or was replaced; {}",
        path.display(),
        volumes.join(", "),
        rebuild_hint(.volumes)
    )]
    Lost { path: PathBuf, volumes: Vec<String> },
    #[error("catalogue: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// How to recover a damaged catalogue from the tapes of `volumes`.
pub fn rebuild_hint(volumes: &[String]) -> String {
    let commands = if volumes.is_empty() {
        "`tapedeck catalog rebuild --tape LABEL` for each of its volumes".to_string()
    } else {
        volumes
            .iter()
            .map(|v| format!("`tapedeck catalog rebuild --tape {v}`"))
            .collect::<Vec<_>>()
            .join(", then ")
    };
    format!(
        "rebuild it from the tapes with {commands} (the volume loaded in the drive; --scan \
         also reads data no index describes)"
    )
}

fn suggest(suggestion: &Option<String>, known: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if known.is_empty() => "; there are none yet".to_string(),
        None if known.len() <= 12 => format!("; known: {}", known.join(", ")),
        None => String::new(),
    }
}

/// The closest of `candidates` to `wanted`, if it is close enough to be a likely typo.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted_lower = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&wanted_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(wanted.chars().count()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

impl CatalogError {
    /// Errors the operator caused (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            CatalogError::UnknownPool { .. }
                | CatalogError::UnknownVolume { .. }
                | CatalogError::Invalid(_)
                | CatalogError::Transition { .. }
                | CatalogError::Protected { .. }
                | CatalogError::Refused(_)
                | CatalogError::Newer { .. }
        )
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A Unix time as the operator reads it: local date and time to the minute.
pub fn format_time(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => unix.to_string(),
    }
}

/// Turns SQLite's busy/locked/read-only failures into errors that say what to do.
fn classify(path: &Path, e: CatalogError) -> CatalogError {
    let CatalogError::Sql(sql) = e else {
        return e;
    };
    match sql.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => CatalogError::Locked {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::ReadOnly) => CatalogError::ReadOnly {
            path: path.to_path_buf(),
            detail: sql.to_string(),
        },
        _ => CatalogError::Sql(sql),
    }
}

/// The fault planned for this commit, if any (see [`crate::fault`]), as the SQLite error a
/// full or failing disk gives: the transaction is rolled back by its drop.
fn injected_fault() -> rusqlite::Result<()> {
    crate::fault::hit(crate::fault::Point::CatalogWrite).map_err(|e| {
        let code = if e.raw_os_error() == Some(libc::ENOSPC) {
            rusqlite::ffi::SQLITE_FULL
        } else {
            rusqlite::ffi::SQLITE_IOERR_WRITE
        };
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(e.to_string()))
    })
}

/// An open catalogue.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

impl Catalog {
    /// Opens the catalogue at `path`, creating it (and its directory) if needed and
    /// bringing its schema up to date. A catalogue from a newer tapedeck is refused.
    pub fn open(path: &Path) -> Result<Catalog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CatalogError::Directory {
                path: path.to_path_buf(),
                source,
            })?;
        }
        // One connection per thread: SQLite's own mutexes would only cost time.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| Self::open_error(path, e))?;
        let mut cat = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        cat.configure()?;
        cat.migrate()?;
        Ok(cat)
    }

    /// Opens an existing catalogue for reading only (no migrations, no writes).
    pub fn open_read_only(path: &Path) -> Result<Catalog> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Self::open_error(path, e))?;
        let cat = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        cat.conn.busy_timeout(BUSY_TIMEOUT)?;
        cat.check_version()?;
        Ok(cat)
    }

    fn open_error(path: &Path, source: rusqlite::Error) -> CatalogError {
        match source.sqlite_error_code() {
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen)
                if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) =>
            {
                CatalogError::ReadOnly {
                    path: path.to_path_buf(),
                    detail: source.to_string(),
                }
            }
            _ => CatalogError::Open {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long to wait for another writer before reporting the catalogue locked.
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<()> {
        self.conn.busy_timeout(timeout)?;
        Ok(())
    }

    /// Maps a SQLite error to the catalogue's own words where it says something an
    /// operator can act on (locked, read-only).
    pub(crate) fn map_err(&self, e: rusqlite::Error) -> CatalogError {
        classify(&self.path, CatalogError::Sql(e))
    }

    fn configure(&mut self) -> Result<()> {
        let c = &self.conn;
        c.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.map_err(e))?;
        // 16 KiB pages (for a new catalogue; an existing one keeps its own): shallower
        // b-trees and fewer page splits for the name and path indexes, measured fastest
        // for inserts at 1 M and 10 M files (benches/catalog.rs).
        c.execute_batch("PRAGMA page_size = 16384;")
            .map_err(|e| self.map_err(e))?;
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.map_err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                "catalogue {}: journal mode {mode}, not WAL",
                self.path.display()
            );
        }
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -65536;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 32768;",
        )
        .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    fn version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.map_err(e))
    }

    fn check_version(&self) -> Result<i64> {
        let found = self.version()?;
        if found > schema::current_version() {
            return Err(CatalogError::Newer {
                path: self.path.clone(),
                found,
                known: schema::current_version(),
            });
        }
        Ok(found)
    }

    fn migrate(&mut self) -> Result<()> {
        let found = self.check_version()?;
        for (i, m) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = i as i64 + 1;
            tracing::info!(
                "catalogue {}: migration {version}: {}",
                self.path.display(),
                m.why
            );
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| CatalogError::Open {
                    path: self.path.clone(),
                    source: e,
                })?;
            // Another process may have migrated while we waited for the lock.
            let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if now >= version {
                continue;
            }
            tx.execute_batch(m.sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Runs `f` in an `IMMEDIATE` transaction (the write lock taken up front, so two
    /// writers queue instead of failing half-way).
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            injected_fault()?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|e| classify(&path, e))
    }

    /// Copies the catalogue to `dest` with SQLite's online backup API: consistent even
    /// while writers run.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(CatalogError::Invalid(format!(
                "{} already exists; refusing to overwrite it",
                dest.display()
            )));
        }
        let mut out = Connection::open(dest).map_err(|e| CatalogError::Open {
            path: dest.to_path_buf(),
            source: e,
        })?;
        let backup = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
        backup
            .run_to_completion(1024, Duration::from_millis(10), None)
            .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_creates_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/catalog.db");
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(cat.version().unwrap(), schema::current_version());
        let mode: String = cat
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(cat);
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(cat.version().unwrap(), schema::current_version());
    }

    #[test]
    fn a_newer_catalogue_is_refused_with_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let cat = Catalog::open(&path).unwrap();
        cat.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(cat);
        let err = Catalog::open(&path).err().unwrap();
        assert!(
            matches!(err, CatalogError::Newer { found: 99, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("99") && text.contains("newer tapedeck"),
            "{text}"
        );
    }

    #[test]
    fn closest_suggests_typos_only() {
        let known = ["daily", "weekly", "archive"];
        assert_eq!(closest("dialy", known), Some("daily".into()));
        assert_eq!(closest("Archiv", known), Some("archive".into()));
        assert_eq!(closest("monthly-offsite", known), None);
    }

    #[test]
    fn online_backup_copies_a_consistent_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        let dest = dir.path().join("copy.db");
        cat.backup_to(&dest).unwrap();
        let copy = Catalog::open(&dest).unwrap();
        assert_eq!(copy.pool("daily").unwrap().retention_days, 30);
        assert!(cat.backup_to(&dest).is_err(), "never overwrites");
    }
}
