//! Backups and their files: a backup is begun, its files are inserted in large batches
//! (names and directories interned), its tape files recorded, and it is finished with a
//! status. Nothing is recorded as saved that the writer has not reported on tape.

use super::members::{self, Member, RECORD_BYTES, RECORD_MEMBERS};
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

/// What the incremental comparison needs of a member besides size and mtime: which inode
/// it was and when its status last changed (chmod, chown, link count, xattrs, a rewrite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    pub ino: u64,
    /// `st_ctime` in nanoseconds since the epoch.
    pub ctime_ns: i64,
}

/// Splits `/a/b/c` into its directory (`/a/b`, empty for the root) and name.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    (!name.is_empty()).then_some((dir, name))
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
        // Most names not in the cache are new: try the insert first.
        let inserted = tx
            .prepare_cached("INSERT INTO names (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?
            .execute([name])?;
        let id = if inserted == 1 {
            tx.last_insert_rowid()
        } else {
            tx.prepare_cached("SELECT id FROM names WHERE name = ?1")?
                .query_row([name], |r| r.get(0))?
        };
        self.names.insert(name.to_string(), id);
        Ok(id)
    }

    /// Interns every name of a batch that is not cached yet, in sorted order, so the
    /// names index is written page by page instead of at random.
    fn names_of_batch<'a>(
        &mut self,
        tx: &Transaction<'_>,
        names: impl Iterator<Item = &'a str>,
    ) -> rusqlite::Result<()> {
        let mut missing: Vec<&str> = names.filter(|n| !self.names.contains_key(*n)).collect();
        missing.sort_unstable();
        missing.dedup();
        for name in missing {
            self.name(tx, name)?;
        }
        Ok(())
    }

    /// Bounds the caches' memory: called between batches, never within one.
    fn trim(&mut self) {
        if self.names.len() >= INTERN_CACHE_LIMIT {
            self.names.clear();
        }
        if self.dirs.len() >= INTERN_CACHE_LIMIT {
            self.dirs.clear();
        }
    }

    /// The directory id of `/c0/c1/...` (empty for the root), creating the missing ones.
    fn dir(&mut self, tx: &Transaction<'_>, dir: &str) -> rusqlite::Result<i64> {
        let dir = dir.trim_end_matches('/');
        if dir.is_empty() {
            return Ok(1);
        }
        if let Some(&id) = self.dirs.get(dir) {
            return Ok(id);
        }
        let (parent_path, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let parent = self.dir(tx, parent_path)?;
        if name.is_empty() {
            return Ok(parent);
        }
        let name_id = self.name(tx, name)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO dirs (parent, name_id) VALUES (?1, ?2)
                 ON CONFLICT (parent, name_id) DO NOTHING",
            )?
            .execute([parent, name_id])?;
        let id = if inserted == 1 {
            tx.last_insert_rowid()
        } else {
            tx.prepare_cached("SELECT id FROM dirs WHERE parent = ?1 AND name_id = ?2")?
                .query_row([parent, name_id], |r| r.get(0))?
        };
        self.dirs.insert(dir.to_string(), id);
        Ok(id)
    }

    fn clear(&mut self) {
        self.names.clear();
        self.dirs.clear();
    }
}

/// Paths per INSERT statement: one statement for many rows saves SQLite's per-statement
/// work, which is most of the cost of a two-integer row.
const PATHS_PER_INSERT: usize = 100;

/// Records (name, directory) pairs, sorted, skipping those already known.
fn insert_paths(tx: &Transaction<'_>, paths: &[(i64, i64)]) -> rusqlite::Result<()> {
    let many = format!(
        "INSERT OR IGNORE INTO paths (name_id, dir_id) VALUES {}",
        vec!["(?, ?)"; PATHS_PER_INSERT].join(", ")
    );
    let mut chunks = paths.chunks_exact(PATHS_PER_INSERT);
    let mut stmt = tx.prepare_cached(&many)?;
    for chunk in &mut chunks {
        let values = chunk.iter().flat_map(|&(n, d)| [n, d]);
        stmt.execute(rusqlite::params_from_iter(values))?;
    }
    let mut one =
        tx.prepare_cached("INSERT OR IGNORE INTO paths (name_id, dir_id) VALUES (?1, ?2)")?;
    for &(name_id, dir_id) in chunks.remainder() {
        one.execute([name_id, dir_id])?;
    }
    Ok(())
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

/// Where a backup's members are: which volume and tape file each part number stands for.
#[derive(Default)]
struct Parts {
    /// (volume id, tape file) -> backup_volumes.seq
    by_place: HashMap<(i64, Option<i64>), i64>,
    next: i64,
}

impl Parts {
    fn load(tx: &Transaction<'_>, backup_id: i64) -> rusqlite::Result<Parts> {
        let mut parts = Parts::default();
        let mut stmt = tx
            .prepare("SELECT seq, volume_id, tape_file FROM backup_volumes WHERE backup_id = ?1")?;
        let mut rows = stmt.query([backup_id])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            parts.by_place.insert((r.get(1)?, r.get(2)?), seq);
            parts.next = parts.next.max(seq + 1);
        }
        Ok(parts)
    }

    /// The part number of a place, recording a new one in backup_volumes.
    fn of(
        &mut self,
        tx: &Transaction<'_>,
        backup_id: i64,
        s: &SegmentRecord,
    ) -> rusqlite::Result<i64> {
        if let Some(&p) = self.by_place.get(&(s.volume_id, s.tape_file)) {
            return Ok(p);
        }
        let p = self.next;
        tx.prepare_cached(
            "INSERT INTO backup_volumes (backup_id, seq, volume_id, tape_file) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![backup_id, p, s.volume_id, s.tape_file])?;
        self.by_place.insert((s.volume_id, s.tape_file), p);
        self.next += 1;
        Ok(p)
    }
}

/// Inserts a backup's files in batches of [`FileBatch::BATCH`] per transaction.
pub struct FileBatch<'c> {
    cat: &'c mut Catalog,
    backup_id: i64,
    pending: Vec<FileRecord>,
    /// The change stamp of each pending record, when it has one.
    stamps: Vec<Option<ChangeStamp>>,
    interner: Interner,
    /// Member number of the next file; read from the catalogue on the first flush.
    next_seq: Option<i64>,
    parts: Option<Parts>,
    inserted: u64,
    /// Files (deletions not counted) and their bytes in committed transactions.
    committed_files: u64,
    committed_bytes: u64,
    /// When the last transaction committed (or the batch began).
    last_commit: std::time::Instant,
    /// The longest queued files wait for a commit: a crash loses at most this much of the
    /// record of what reached tape.
    max_wait: std::time::Duration,
}

impl FileBatch<'_> {
    /// Files per transaction: large enough to amortise the commit, small enough that a
    /// second writer is not kept waiting long.
    pub const BATCH: usize = 100_000;
    /// The longest files wait to be committed by default: a backup of large files
    /// commits every few seconds, not only every [`Self::BATCH`] files.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// Commits queued files at the latest after `wait` (default [`Self::MAX_WAIT`]).
    pub fn commit_within(&mut self, wait: std::time::Duration) {
        self.max_wait = wait;
    }

    /// Queues a file (in tape order); a full batch is written at once.
    pub fn push(&mut self, rec: FileRecord) -> Result<()> {
        self.push_stamped(rec, None)
    }

    /// Queues a file with its inode and ctime, which the next incremental backup compares.
    pub fn push_stamped(&mut self, rec: FileRecord, stamp: Option<ChangeStamp>) -> Result<()> {
        self.pending.push(rec);
        self.stamps.push(stamp);
        if self.pending.len() >= Self::BATCH || self.last_commit.elapsed() >= self.max_wait {
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
        let stamps = std::mem::take(&mut self.stamps);
        let backup_id = self.backup_id;
        let FileBatch {
            cat,
            interner,
            next_seq,
            parts,
            ..
        } = self;
        let result = cat.write(|tx| {
            let mut seq = match *next_seq {
                Some(s) => s,
                None => tx.query_row(
                    "SELECT COALESCE(MAX(first_seq + count), 0) FROM members WHERE backup_id = ?1",
                    [backup_id],
                    |r| r.get(0),
                )?,
            };
            if parts.is_none() {
                *parts = Some(Parts::load(tx, backup_id)?);
            }
            let places = parts.as_mut().expect("loaded above");
            interner.trim();
            interner.names_of_batch(
                tx,
                pending
                    .iter()
                    .filter_map(|rec| split_path(&rec.path).map(|(_, name)| name)),
            )?;
            let mut insert_record = tx.prepare_cached(
                "INSERT INTO members (backup_id, first_seq, dir_id, count, data, sum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut write_run = |first: i64, dir: i64, count: usize, data: &[u8]| {
                let count = count as i64;
                let sum = members::new_record_sum(backup_id, first, dir, count, data);
                insert_record
                    .execute(params![backup_id, first, dir, count, data, sum])
                    .map(drop)
            };
            let mut insert_segment = tx.prepare_cached(
                "INSERT INTO segments (backup_id, file_seq, seq, volume_id, tape_file, block,
                    offset, file_offset, length)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            // The run being packed: consecutive members of one directory.
            let mut run = Vec::with_capacity(4096);
            let (mut run_dir, mut run_first, mut run_count) = (0i64, seq, 0usize);
            let mut paths: Vec<(i64, i64)> = Vec::with_capacity(pending.len());
            let mut bytes = 0;
            let mut files = 0i64;
            for (rec, stamp) in pending.iter().zip(&stamps) {
                let Some((dirs, name)) = split_path(&rec.path) else {
                    return Err(CatalogError::Invalid(format!(
                        "`{}` is not a path to a file",
                        rec.path
                    )));
                };
                let dir_id = interner.dir(tx, dirs)?;
                let name_id = interner.name(tx, name)?;
                if run_count > 0
                    && (dir_id != run_dir
                        || run_count == RECORD_MEMBERS
                        || run.len() >= RECORD_BYTES)
                {
                    write_run(run_first, run_dir, run_count, &run)?;
                    run.clear();
                    run_count = 0;
                }
                if run_count == 0 {
                    run_dir = dir_id;
                    run_first = seq;
                }
                let first = rec.segments.first();
                let part = first.map(|s| places.of(tx, backup_id, s)).transpose()?;
                members::encode(
                    &mut run,
                    &Member {
                        name_id,
                        kind: rec.kind.code(),
                        size: rec.size,
                        mtime_ns: rec.mtime_ns,
                        mode: rec.mode,
                        uid: rec.uid,
                        gid: rec.gid,
                        link: rec.link.clone(),
                        blake3: rec.blake3,
                        part,
                        block: first.and_then(|s| s.block),
                        offset: first.and_then(|s| s.offset),
                        parts: rec.segments.len().max(1) as i64,
                        ino: stamp.map(|s| s.ino),
                        ctime_ns: stamp.map(|s| s.ctime_ns),
                    },
                );
                run_count += 1;
                if rec.segments.len() > 1 {
                    for (i, s) in rec.segments.iter().enumerate() {
                        places.of(tx, backup_id, s)?;
                        insert_segment.execute(params![
                            backup_id,
                            seq,
                            i as i64,
                            s.volume_id,
                            s.tape_file,
                            s.block,
                            s.offset,
                            s.file_offset,
                            s.length
                        ])?;
                    }
                }
                paths.push((name_id, dir_id));
                seq += 1;
                bytes += rec.size;
                // A record of a deletion is a member, not a file saved.
                files += i64::from(rec.kind != FileKind::Deleted);
            }
            if run_count > 0 {
                write_run(run_first, run_dir, run_count, &run)?;
            }
            // In key order, so the path index is written page by page, not at random.
            paths.sort_unstable();
            paths.dedup();
            insert_paths(tx, &paths)?;
            index_new_names(tx)?;
            tx.execute(
                "UPDATE backups SET files = files + ?1, bytes = bytes + ?2 WHERE id = ?3",
                params![files, bytes, backup_id],
            )?;
            Ok((seq, files, bytes))
        });
        match result {
            Ok((seq, files, bytes)) => {
                self.next_seq = Some(seq);
                self.inserted += pending.len() as u64;
                self.committed_files += files as u64;
                self.committed_bytes += bytes as u64;
                self.last_commit = std::time::Instant::now();
                Ok(())
            }
            Err(e) => {
                // What was cached during the failed transaction was rolled back with it.
                self.interner.clear();
                self.next_seq = None;
                self.parts = None;
                self.pending = pending;
                self.stamps = stamps;
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

    /// Files (not counting records of deletions) and their bytes that committed
    /// transactions hold: what the catalogue has of the backup, whatever is still queued.
    pub fn committed(&self) -> (u64, u64) {
        (self.committed_files, self.committed_bytes)
    }

    /// The catalogue, for other work between batches (what is queued is written first).
    pub fn catalog(&mut self) -> Result<&mut Catalog> {
        self.flush()?;
        // The caller may add volumes to the backup: read them again on the next flush.
        self.parts = None;
        Ok(self.cat)
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

    /// Files all backups in the catalogue hold (records of deletions not counted).
    pub fn files_recorded(&self) -> Result<u64> {
        let n: i64 =
            self.conn()
                .query_row("SELECT COALESCE(SUM(files), 0) FROM backups", [], |r| {
                    r.get(0)
                })?;
        Ok(n.max(0) as u64)
    }

    /// Files of the largest complete backup of job `name`, if it has one.
    pub fn largest_backup_of_job(&self, name: &str) -> Result<Option<u64>> {
        let n: Option<i64> = self.conn().query_row(
            "SELECT MAX(b.files) FROM backups b JOIN jobs j ON j.id = b.job_id
             WHERE j.name = ?1 AND b.status = 'complete'",
            [name],
            |r| r.get(0),
        )?;
        Ok(n.map(|n| n.max(0) as u64))
    }

    /// A batch inserter for the files of backup `backup_id`.
    pub fn file_batch(&mut self, backup_id: i64) -> FileBatch<'_> {
        FileBatch {
            cat: self,
            backup_id,
            pending: Vec::with_capacity(FileBatch::BATCH),
            stamps: Vec::with_capacity(FileBatch::BATCH),
            interner: Interner::default(),
            next_seq: None,
            parts: None,
            inserted: 0,
            committed_files: 0,
            committed_bytes: 0,
            last_commit: std::time::Instant::now(),
            max_wait: FileBatch::MAX_WAIT,
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
            // The backup's pool's retention, else that of the pool of the volume.
            let retention: Option<i64> = tx.query_row(
                "SELECT COALESCE(
                    (SELECT p.retention_days FROM backups b JOIN pools p ON p.id = b.pool_id
                      WHERE b.id = ?1),
                    (SELECT p.retention_days FROM backup_volumes bv
                       JOIN volumes v ON v.id = bv.volume_id JOIN pools p ON p.id = v.pool_id
                      WHERE bv.backup_id = ?1 ORDER BY bv.seq LIMIT 1))",
                [backup_id],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE backups SET status = ?1, finished_at = ?2, error = ?3 WHERE id = ?4",
                params![status.as_str(), finished_at, error, backup_id],
            )?;
            // Retention runs from the end of the backup; the longest protection wins. A
            // complete backup no retention applies to holds its volumes (expires_at NULL)
            // until an operator expires them, and a hold outlasts any date.
            tx.execute(
                "UPDATE volumes SET
                    expires_at = CASE
                        WHEN ?4 IS NULL THEN CASE WHEN ?3 = 'complete' THEN NULL ELSE expires_at END
                        WHEN expires_at IS NULL AND EXISTS (
                            SELECT 1 FROM backup_volumes bv JOIN backups b ON b.id = bv.backup_id
                             WHERE bv.volume_id = volumes.id AND bv.overwritten = 0
                               AND b.status = 'complete' AND b.id <> ?1)
                        THEN NULL
                        ELSE MAX(COALESCE(expires_at, 0), ?2 + 86400 * ?4) END,
                    written_at = ?2
                 WHERE id IN (SELECT volume_id FROM backup_volumes WHERE backup_id = ?1)",
                params![backup_id, finished_at, status.as_str(), retention],
            )?;
            tx.execute(
                "UPDATE volumes SET tape_files = MAX(tape_files, 1 + (
                    SELECT MAX(tape_file) FROM backup_volumes
                    WHERE backup_id = ?1 AND volume_id = volumes.id))
                 WHERE id IN (SELECT volume_id FROM backup_volumes
                              WHERE backup_id = ?1 AND tape_file IS NOT NULL)",
                [backup_id],
            )?;
            // A volume that now holds data is appendable (empty to appendable is always
            // allowed), in the same transaction: an end recorded without it would leave
            // data on a volume the catalogue calls empty.
            tx.execute(
                "UPDATE volumes SET status = 'appendable', error = NULL
                 WHERE status = 'empty'
                   AND id IN (SELECT volume_id FROM backup_volumes WHERE backup_id = ?1)",
                [backup_id],
            )?;
            Ok(())
        })
    }

    /// Backups left `running` by a process that no longer exists on this host: a backup is
    /// marked failed; one a rebuild was recording is forgotten, since its record is partial
    /// and the tape still holds it whole.
    pub fn fail_orphaned_backups(&mut self) -> Result<Vec<Orphan>> {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        let mut stmt = self.conn().prepare(
            "SELECT id, uuid, pid, origin FROM backups WHERE status = 'running' AND host IS ?1",
        )?;
        let running: Vec<(i64, String, Option<i64>, String)> = stmt
            .query_map([&host], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let mut orphans = Vec::new();
        for (id, uuid, pid, origin) in running {
            if pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists()) {
                continue;
            }
            if origin == super::rebuild::ORIGIN_INDEX || origin == super::rebuild::ORIGIN_SCAN {
                self.forget_backup(id)?;
                orphans.push(Orphan::Forgotten(uuid));
            } else {
                self.finish_backup(
                    id,
                    BackupStatus::Failed,
                    now(),
                    Some("the process running this backup died"),
                )?;
                orphans.push(Orphan::Failed(uuid));
            }
        }
        Ok(orphans)
    }
}

/// A backup a dead process left `running`, as [`Catalog::fail_orphaned_backups`] settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphan {
    /// Marked failed.
    Failed(String),
    /// A rebuild's partial record, removed.
    Forgotten(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PoolKind;

    #[test]
    fn paths_split_into_directories_and_name() {
        assert_eq!(split_path("/a/b/c.txt"), Some(("/a/b", "c.txt")));
        assert_eq!(split_path("/top"), Some(("", "top")));
        assert_eq!(split_path("top"), Some(("", "top")));
        assert_eq!(split_path("/a/dir/"), Some(("/a", "dir")));
        assert_eq!(split_path("/"), None);
    }

    #[test]
    fn a_file_split_across_volumes_keeps_every_part_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let a = cat.register_volume("A", None, None).unwrap();
        let b = cat.register_volume("B", None, None).unwrap();
        let id = cat
            .begin_backup(&NewBackup {
                uuid: "u",
                kind: "full",
                started_at: 1,
                origin: "tapedeck",
                ..Default::default()
            })
            .unwrap();
        let part = |volume_id, block, file_offset, length| SegmentRecord {
            volume_id,
            tape_file: Some(1),
            block: Some(block),
            offset: Some(0),
            file_offset,
            length,
        };
        let mut batch = cat.file_batch(id);
        batch
            .push(FileRecord {
                path: "/big.iso".into(),
                kind: FileKind::File,
                size: 300,
                mtime_ns: None,
                mode: None,
                uid: None,
                gid: None,
                link: None,
                blake3: None,
                segments: vec![part(a.id, 90, 0, 100), part(b.id, 2, 100, 200)],
            })
            .unwrap();
        batch.finish().unwrap();
        cat.finish_backup(id, BackupStatus::Complete, 2, None)
            .unwrap();
        let v = cat.find_path("/big.iso").unwrap();
        let places: Vec<_> = v[0]
            .segments
            .iter()
            .map(|s| (s.volume.as_str(), s.block, s.file_offset, s.length))
            .collect();
        assert_eq!(
            places,
            vec![("A", Some(90), 0, 100), ("B", Some(2), 100, 200)]
        );
        let mut on_b = Vec::new();
        cat.files_on_volume("B", |f| {
            on_b.push(f.path);
            Ok(())
        })
        .unwrap();
        assert_eq!(on_b, vec!["/big.iso"]);
        assert!(cat.check().unwrap().is_ok(), "{:?}", cat.check().unwrap());
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

    #[test]
    fn queued_files_are_committed_within_the_wait_not_only_by_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let id = cat
            .begin_backup(&NewBackup {
                uuid: "u",
                kind: "full",
                started_at: 1,
                origin: "tapedeck",
                ..Default::default()
            })
            .unwrap();
        let file = |path: &str| FileRecord {
            path: path.into(),
            kind: FileKind::File,
            size: 10,
            mtime_ns: None,
            mode: None,
            uid: None,
            gid: None,
            link: None,
            blake3: None,
            segments: Vec::new(),
        };
        let mut batch = cat.file_batch(id);
        batch.push(file("/a")).unwrap();
        // Within the default wait a few files stay queued...
        assert_eq!(batch.committed(), (0, 0));
        // ...and once it has passed the next file commits them all: a crash then loses no
        // more than the wait's worth of records.
        batch.commit_within(std::time::Duration::ZERO);
        batch.push(file("/b")).unwrap();
        assert_eq!(batch.committed(), (2, 20));
    }
}
