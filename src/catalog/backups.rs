//! Backups and their files: a backup is begun, its files are inserted in large batches
//! (names and directories interned), its tape files recorded, and it is finished with a
//! status. Nothing is recorded as saved that the writer has not reported on tape.

use super::{now, Catalog, CatalogError, Result};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    Running,
    Complete,
    Failed,
    Aborted,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Running => "running",
            BackupStatus::Complete => "complete",
            BackupStatus::Failed => "failed",
            BackupStatus::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> BackupStatus {
        match s {
            "running" => BackupStatus::Running,
            "complete" => BackupStatus::Complete,
            "aborted" => BackupStatus::Aborted,
            _ => BackupStatus::Failed,
        }
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a catalogue row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// An incremental backup's record that the path was deleted since its parent.
    Deleted,
}

impl FileKind {
    const ORDER: [FileKind; 9] = [
        FileKind::File,
        FileKind::Dir,
        FileKind::Symlink,
        FileKind::HardLink,
        FileKind::CharDevice,
        FileKind::BlockDevice,
        FileKind::Fifo,
        FileKind::Socket,
        FileKind::Deleted,
    ];

    pub fn code(self) -> i64 {
        Self::ORDER.iter().position(|k| *k == self).unwrap_or(0) as i64
    }

    pub fn from_code(code: i64) -> FileKind {
        Self::ORDER
            .get(code as usize)
            .copied()
            .unwrap_or(FileKind::File)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::HardLink => "hardlink",
            FileKind::CharDevice => "char",
            FileKind::BlockDevice => "block",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::Deleted => "deleted",
        }
    }
}

/// A new backup's description.
#[derive(Debug, Clone, Default)]
pub struct NewBackup<'a> {
    pub uuid: &'a str,
    pub job: Option<&'a str>,
    pub label: Option<&'a str>,
    /// `full`, `incremental` or `differential`.
    pub kind: &'a str,
    pub parent_uuid: Option<&'a str>,
    pub pool: Option<&'a str>,
    pub started_at: i64,
    pub drive: Option<&'a str>,
    pub strategy: Option<&'a str>,
    pub block_size: Option<i64>,
    /// `tapedeck`, or `pytp` for imported history.
    pub origin: &'a str,
}

/// Where one part of a file is on tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRecord {
    pub volume_id: i64,
    pub tape_file: Option<i64>,
    pub block: Option<i64>,
    pub offset: Option<i64>,
    pub file_offset: i64,
    pub length: i64,
}

/// One member of a backup, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Absolute path with `/` separators (the tar member name with a leading `/`).
    pub path: String,
    pub kind: FileKind,
    pub size: i64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: Option<i64>,
    pub mode: Option<i64>,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub link: Option<String>,
    pub blake3: Option<[u8; 32]>,
    pub segments: Vec<SegmentRecord>,
}

/// Splits `/a/b/c` into its directory components and name; the root has none.
fn split_path(path: &str) -> Option<(Vec<&str>, &str)> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let name = parts.pop()?;
    Some((parts, name))
}

/// Interning caches, kept across batches of one writer; cleared when a batch fails.
#[derive(Default)]
struct Interner {
    names: HashMap<String, i64>,
    dirs: HashMap<String, i64>,
}

/// The cache is dropped whole once it holds this many entries, to bound memory.
const INTERN_CACHE_LIMIT: usize = 2_000_000;

impl Interner {
    fn name(&mut self, tx: &Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
        if let Some(&id) = self.names.get(name) {
            return Ok(id);
        }
        let found: Option<i64> = tx
            .prepare_cached("SELECT id FROM names WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT INTO names (name) VALUES (?1)")?
                    .execute([name])?;
                tx.last_insert_rowid()
            }
        };
        if self.names.len() >= INTERN_CACHE_LIMIT {
            self.names.clear();
        }
        self.names.insert(name.to_string(), id);
        Ok(id)
    }

    /// The directory id of `/c0/c1/...`, creating the missing ones.
    fn dir(&mut self, tx: &Transaction<'_>, components: &[&str]) -> rusqlite::Result<i64> {
        if components.is_empty() {
            return Ok(1);
        }
        let key = components.join("/");
        if let Some(&id) = self.dirs.get(&key) {
            return Ok(id);
        }
        let parent = self.dir(tx, &components[..components.len() - 1])?;
        let name_id = self.name(tx, components[components.len() - 1])?;
        let found: Option<i64> = tx
            .prepare_cached("SELECT id FROM dirs WHERE parent = ?1 AND name_id = ?2")?
            .query_row([parent, name_id], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT INTO dirs (parent, name_id) VALUES (?1, ?2)")?
                    .execute([parent, name_id])?;
                tx.last_insert_rowid()
            }
        };
        if self.dirs.len() >= INTERN_CACHE_LIMIT {
            self.dirs.clear();
        }
        self.dirs.insert(key, id);
        Ok(id)
    }

    fn clear(&mut self) {
        self.names.clear();
        self.dirs.clear();
    }
}

/// Brings the trigram index up to date with the names table (inside the writer's
/// transaction, so a search never misses a committed name).
fn index_new_names(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let done: i64 = tx.query_row("SELECT indexed_to FROM fts_progress", [], |r| r.get(0))?;
    let last: i64 = tx.query_row("SELECT COALESCE(MAX(id), 1) FROM names", [], |r| r.get(0))?;
    if last > done {
        tx.execute(
            "INSERT INTO names_fts (rowid, name) SELECT id, name FROM names WHERE id > ?1",
            [done],
        )?;
        tx.execute("UPDATE fts_progress SET indexed_to = ?1", [last])?;
    }
    Ok(())
}

/// Inserts a backup's files in batches of [`FileBatch::BATCH`] per transaction.
pub struct FileBatch<'c> {
    cat: &'c mut Catalog,
    backup_id: i64,
    pending: Vec<FileRecord>,
    interner: Interner,
    inserted: u64,
    bytes: i64,
}

impl FileBatch<'_> {
    /// Files per transaction: large enough to amortise the commit, small enough that a
    /// second writer is not kept waiting long.
    pub const BATCH: usize = 50_000;

    /// Queues a file; a full batch is written at once.
    pub fn push(&mut self, rec: FileRecord) -> Result<()> {
        self.pending.push(rec);
        if self.pending.len() >= Self::BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued files in one transaction.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let backup_id = self.backup_id;
        let interner = &mut self.interner;
        let result = self.cat.write(|tx| {
            let mut bytes = 0;
            for rec in &pending {
                let Some((dirs, name)) = split_path(&rec.path) else {
                    return Err(CatalogError::Invalid(format!(
                        "`{}` is not a path to a file",
                        rec.path
                    )));
                };
                let dir_id = interner.dir(tx, &dirs)?;
                let name_id = interner.name(tx, name)?;
                tx.prepare_cached(
                    "INSERT INTO files (backup_id, dir_id, name_id, kind, size, mtime, mode, uid,
                        gid, link, blake3)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    backup_id,
                    dir_id,
                    name_id,
                    rec.kind.code(),
                    rec.size,
                    rec.mtime_ns,
                    rec.mode,
                    rec.uid,
                    rec.gid,
                    rec.link,
                    rec.blake3.as_ref().map(|h| &h[..]),
                ])?;
                let file_id = tx.last_insert_rowid();
                for (seq, s) in rec.segments.iter().enumerate() {
                    tx.prepare_cached(
                        "INSERT INTO segments (file_id, seq, volume_id, tape_file, block, offset,
                            file_offset, length)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        file_id,
                        seq as i64,
                        s.volume_id,
                        s.tape_file,
                        s.block,
                        s.offset,
                        s.file_offset,
                        s.length
                    ])?;
                }
                bytes += rec.size;
            }
            index_new_names(tx)?;
            tx.execute(
                "UPDATE backups SET files = files + ?1, bytes = bytes + ?2 WHERE id = ?3",
                params![pending.len() as i64, bytes, backup_id],
            )?;
            Ok(bytes)
        });
        match result {
            Ok(bytes) => {
                self.inserted += pending.len() as u64;
                self.bytes += bytes;
                Ok(())
            }
            Err(e) => {
                // Ids cached during the failed transaction were rolled back with it.
                self.interner.clear();
                self.pending = pending;
                Err(e)
            }
        }
    }

    /// Writes what is queued; returns the number of files inserted in all.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.inserted)
    }

    pub fn inserted(&self) -> u64 {
        self.inserted
    }
}

impl Catalog {
    /// Starts a backup (status `running`, owned by this process) and returns its id.
    pub fn begin_backup(&mut self, b: &NewBackup<'_>) -> Result<i64> {
        let job_id = match b.job {
            Some(name) => Some(self.ensure_job(name)?),
            None => None,
        };
        let pool_id = b.pool.map(|p| self.pool(p)).transpose()?.map(|p| p.id);
        let parent_id = match b.parent_uuid {
            Some(u) => Some(self.backup_id(u)?),
            None => None,
        };
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO backups (uuid, job_id, label, kind, parent_id, pool_id, started_at,
                    status, drive, host, pid, strategy, block_size, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    b.uuid,
                    job_id,
                    b.label,
                    b.kind,
                    parent_id,
                    pool_id,
                    b.started_at,
                    b.drive,
                    host,
                    std::process::id() as i64,
                    b.strategy,
                    b.block_size,
                    b.origin
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn backup_id(&self, uuid: &str) -> Result<i64> {
        self.conn()
            .query_row("SELECT id FROM backups WHERE uuid = ?1", [uuid], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| CatalogError::Invalid(format!("no backup {uuid}")))
    }

    /// The job called `name`, created on first use.
    pub fn ensure_job(&mut self, name: &str) -> Result<i64> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO jobs (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
                [name],
            )?;
            Ok(tx.query_row("SELECT id FROM jobs WHERE name = ?1", [name], |r| r.get(0))?)
        })
    }

    /// A batch inserter for the files of backup `backup_id`.
    pub fn file_batch(&mut self, backup_id: i64) -> FileBatch<'_> {
        FileBatch {
            cat: self,
            backup_id,
            pending: Vec::with_capacity(FileBatch::BATCH),
            interner: Interner::default(),
            inserted: 0,
            bytes: 0,
        }
    }

    /// Records that the backup wrote tape file `tape_file` of `volume_id` (its `seq`-th
    /// volume), starting at logical block `first_block`.
    pub fn add_backup_volume(
        &mut self,
        backup_id: i64,
        seq: i64,
        volume_id: i64,
        tape_file: Option<i64>,
        first_block: Option<i64>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO backup_volumes (backup_id, seq, volume_id, tape_file,
                    first_block) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![backup_id, seq, volume_id, tape_file, first_block],
            )?;
            Ok(())
        })
    }

    /// Ends a backup. Its volumes' data is protected for the pool's retention from now.
    pub fn finish_backup(
        &mut self,
        backup_id: i64,
        status: BackupStatus,
        finished_at: i64,
        error: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE backups SET status = ?1, finished_at = ?2, error = ?3 WHERE id = ?4",
                params![status.as_str(), finished_at, error, backup_id],
            )?;
            // Retention runs from the end of the backup; the longest protection wins.
            tx.execute(
                "UPDATE volumes SET
                    expires_at = MAX(COALESCE(expires_at, 0), ?2 + 86400 * COALESCE(
                        (SELECT p.retention_days FROM backups b JOIN pools p ON p.id = b.pool_id
                         WHERE b.id = ?1),
                        (SELECT p.retention_days FROM pools p WHERE p.id = volumes.pool_id),
                        0)),
                    written_at = ?2
                 WHERE id IN (SELECT volume_id FROM backup_volumes WHERE backup_id = ?1)",
                params![backup_id, finished_at],
            )?;
            tx.execute(
                "UPDATE volumes SET tape_files = MAX(tape_files, 1 + (
                    SELECT MAX(tape_file) FROM backup_volumes
                    WHERE backup_id = ?1 AND volume_id = volumes.id))
                 WHERE id IN (SELECT volume_id FROM backup_volumes
                              WHERE backup_id = ?1 AND tape_file IS NOT NULL)",
                [backup_id],
            )?;
            Ok(())
        })?;
        // A volume that now holds data is appendable (through the one transition check).
        let mut stmt = self.conn().prepare(
            "SELECT v.label FROM volumes v JOIN backup_volumes bv ON bv.volume_id = v.id
             WHERE bv.backup_id = ?1 AND v.status = 'empty'",
        )?;
        let labels: Vec<String> = stmt
            .query_map([backup_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        for label in labels {
            self.set_volume_status(&label, super::VolumeStatus::Appendable, None)?;
        }
        Ok(())
    }

    /// Backups left `running` by a process that no longer exists on this host: marks
    /// them failed and returns their uuids.
    pub fn fail_orphaned_backups(&mut self) -> Result<Vec<String>> {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        let mut stmt = self
            .conn()
            .prepare("SELECT id, uuid, pid FROM backups WHERE status = 'running' AND host IS ?1")?;
        let running: Vec<(i64, String, Option<i64>)> = stmt
            .query_map([&host], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let dead: Vec<(i64, String)> = running
            .into_iter()
            .filter(|(_, _, pid)| {
                pid.is_none_or(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
            })
            .map(|(id, uuid, _)| (id, uuid))
            .collect();
        for (id, _) in &dead {
            self.finish_backup(
                *id,
                BackupStatus::Failed,
                now(),
                Some("the process running this backup died"),
            )?;
        }
        Ok(dead.into_iter().map(|(_, u)| u).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PoolKind;

    #[test]
    fn paths_split_into_directories_and_name() {
        assert_eq!(split_path("/a/b/c.txt"), Some((vec!["a", "b"], "c.txt")));
        assert_eq!(split_path("top"), Some((vec![], "top")));
        assert_eq!(split_path("/"), None);
    }

    #[test]
    fn file_kinds_round_trip_through_codes() {
        for k in FileKind::ORDER {
            assert_eq!(FileKind::from_code(k.code()), k);
        }
    }

    #[test]
    fn a_backup_records_files_counts_and_protects_its_volume() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        let vol = cat.register_volume("T1", None, Some("daily")).unwrap();
        let id = cat
            .begin_backup(&NewBackup {
                uuid: "u1",
                job: Some("home"),
                kind: "full",
                pool: Some("daily"),
                started_at: 1000,
                origin: "tapedeck",
                ..Default::default()
            })
            .unwrap();
        cat.add_backup_volume(id, 0, vol.id, Some(1), Some(2))
            .unwrap();
        let mut batch = cat.file_batch(id);
        for i in 0..3 {
            batch
                .push(FileRecord {
                    path: format!("/home/u/f{i}.txt"),
                    kind: FileKind::File,
                    size: 10,
                    mtime_ns: Some(5),
                    mode: Some(0o644),
                    uid: Some(1),
                    gid: Some(1),
                    link: None,
                    blake3: Some([i as u8; 32]),
                    segments: vec![SegmentRecord {
                        volume_id: vol.id,
                        tape_file: Some(1),
                        block: Some(2),
                        offset: Some(512 * i),
                        file_offset: 0,
                        length: 10,
                    }],
                })
                .unwrap();
        }
        assert_eq!(batch.finish().unwrap(), 3);
        cat.finish_backup(id, BackupStatus::Complete, 2000, None)
            .unwrap();
        let (files, bytes): (i64, i64) = cat
            .conn()
            .query_row(
                "SELECT files, bytes FROM backups WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((files, bytes), (3, 30));
        let v = cat.volume("T1").unwrap();
        assert_eq!(v.expires_at, Some(2000 + 30 * 86400));
        let dirs: i64 = cat
            .conn()
            .query_row("SELECT COUNT(*) FROM dirs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dirs, 3, "root, home, u");
    }
}
