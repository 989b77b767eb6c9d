//! Questions the catalogue answers without reading a tape: where is this file (every
//! version), which files match a pattern, what is on a volume, which backups ran.

use super::backups::{BackupStatus, FileKind};
use super::members::{self, Member};
use super::{Catalog, CatalogError, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;

/// Where one part of a file version is on tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    pub volume: String,
    pub tape_file: Option<i64>,
    pub block: Option<i64>,
    pub offset: Option<i64>,
    pub file_offset: i64,
    pub length: i64,
}

/// The backup a file version belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRef {
    pub uuid: String,
    pub label: Option<String>,
    pub job: Option<String>,
    pub kind: String,
    pub started_at: i64,
    pub status: BackupStatus,
}

/// One version of a file: a row of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileVersion {
    pub path: String,
    pub kind: FileKind,
    pub size: i64,
    pub mtime_ns: Option<i64>,
    pub mode: Option<i64>,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub link: Option<String>,
    /// Hex BLAKE3 of the content, when known.
    pub blake3: Option<String>,
    pub backup: BackupRef,
    pub segments: Vec<SegmentInfo>,
}

/// A backup as a link of a chain: full, or incremental/differential on a parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupNode {
    pub uuid: String,
    pub job: Option<String>,
    /// `full`, `incremental` or `differential`.
    pub kind: String,
    /// The parent backup's uuid (incremental and differential backups).
    pub parent: Option<String>,
    pub status: BackupStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// A backup as `status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    pub uuid: String,
    pub job: Option<String>,
    pub label: Option<String>,
    pub kind: String,
    pub status: BackupStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub files: i64,
    pub bytes: i64,
    pub drive: Option<String>,
    pub pool: Option<String>,
    pub origin: String,
    pub error: Option<String>,
    pub volumes: Vec<String>,
}

/// What versions of one backup share: its identity and where its parts are on tape.
pub(super) struct BackupInfo {
    backup: BackupRef,
    /// backup_volumes.seq -> (volume label, tape file), for copies not overwritten.
    parts: HashMap<i64, (String, Option<i64>)>,
}

/// A member found in a record, with its place in the backup.
pub(super) struct Found {
    pub(super) backup_id: i64,
    pub(super) seq: i64,
    pub(super) member: Member,
}

/// The columns of `members` that [`Catalog::read_record`] reads, in its order.
pub(super) const RECORD_COLUMNS: &str = "backup_id, first_seq, dir_id, count, data, sum";

/// Finds the members named `name_id` in the records of directory `dir_id`.
fn members_named(cat: &Catalog, dir_id: i64, name_id: i64) -> Result<Vec<Found>> {
    let mut stmt = cat.conn().prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM members WHERE dir_id = ?1"
    ))?;
    let mut rows = stmt.query([dir_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (record, decoded) = cat.read_record(r)?;
        for (i, member) in decoded.into_iter().enumerate() {
            if member.name_id == name_id {
                out.push(Found {
                    backup_id: record.backup_id,
                    seq: record.first_seq + i as i64,
                    member,
                });
            }
        }
    }
    Ok(out)
}

/// Where a record sits: its backup and first member number, its directory.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordKey {
    pub(super) backup_id: i64,
    pub(super) first_seq: i64,
    pub(super) dir_id: i64,
}

/// How a name pattern is matched.
enum Matcher {
    /// Case-insensitive substring.
    Substring(String),
    /// Case-insensitive glob over the whole name (`*`, `?`).
    Glob(Vec<GlobPart>),
}

#[derive(Debug, PartialEq)]
enum GlobPart {
    Literal(String),
    AnyOne,
    AnyRun,
}

impl Matcher {
    fn new(pattern: &str) -> Matcher {
        let lower = pattern.to_lowercase();
        if !lower.contains(['*', '?']) {
            return Matcher::Substring(lower);
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        for c in lower.chars() {
            if c == '*' || c == '?' {
                if !lit.is_empty() {
                    parts.push(GlobPart::Literal(std::mem::take(&mut lit)));
                }
                parts.push(if c == '*' {
                    GlobPart::AnyRun
                } else {
                    GlobPart::AnyOne
                });
            } else {
                lit.push(c);
            }
        }
        if !lit.is_empty() {
            parts.push(GlobPart::Literal(lit));
        }
        Matcher::Glob(parts)
    }

    /// Literal runs a matching name must contain.
    fn fragments(&self) -> Vec<&str> {
        match self {
            Matcher::Substring(s) => vec![s.as_str()],
            Matcher::Glob(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    GlobPart::Literal(l) => Some(l.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        match self {
            Matcher::Substring(s) => name.contains(s.as_str()),
            Matcher::Glob(parts) => {
                let chars: Vec<char> = name.chars().collect();
                glob_match(parts, &chars)
            }
        }
    }
}

fn glob_match(parts: &[GlobPart], name: &[char]) -> bool {
    match parts.split_first() {
        None => name.is_empty(),
        Some((GlobPart::Literal(l), rest)) => {
            let lc: Vec<char> = l.chars().collect();
            name.starts_with(&lc) && glob_match(rest, &name[lc.len()..])
        }
        Some((GlobPart::AnyOne, rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((GlobPart::AnyRun, rest)) => (0..=name.len()).any(|i| glob_match(rest, &name[i..])),
    }
}

/// The FTS5 query for a name containing all `fragments`: every trigram, ANDed.
fn trigram_query(fragments: &[&str]) -> Option<String> {
    let mut grams: Vec<String> = Vec::new();
    for f in fragments {
        let chars: Vec<char> = f.chars().collect();
        for w in chars.windows(3) {
            let g: String = w.iter().collect();
            if !grams.contains(&g) {
                grams.push(g);
            }
        }
    }
    if grams.is_empty() {
        return None;
    }
    Some(
        grams
            .iter()
            .map(|g| format!("\"{}\"", g.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" AND "),
    )
}

impl Catalog {
    /// The full path of a directory id, `/` for the root.
    pub(super) fn dir_path(&self, dir_id: i64, cache: &mut HashMap<i64, String>) -> Result<String> {
        if dir_id == 1 {
            return Ok(String::new());
        }
        if let Some(p) = cache.get(&dir_id) {
            return Ok(p.clone());
        }
        let (parent, name): (Option<i64>, String) = self
            .conn()
            .prepare_cached(
                "SELECT d.parent, n.name FROM dirs d JOIN names n ON n.id = d.name_id WHERE d.id = ?1",
            )?
            .query_row([dir_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let path = format!("{}/{name}", self.dir_path(parent.unwrap_or(1), cache)?);
        cache.insert(dir_id, path.clone());
        Ok(path)
    }

    /// The parts of a file split across volumes.
    /// The parts of a file split across volumes.
    fn split_parts(&self, backup_id: i64, file_seq: i64) -> Result<Vec<SegmentInfo>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT v.label, s.tape_file, s.block, s.offset, s.file_offset, s.length
             FROM segments s JOIN volumes v ON v.id = s.volume_id
             WHERE s.backup_id = ?1 AND s.file_seq = ?2 ORDER BY s.seq",
        )?;
        let rows = stmt
            .query_map([backup_id, file_seq], |r| {
                Ok(SegmentInfo {
                    volume: r.get(0)?,
                    tape_file: r.get(1)?,
                    block: r.get(2)?,
                    offset: r.get(3)?,
                    file_offset: r.get(4)?,
                    length: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn backup_info<'a>(
        &self,
        backup_id: i64,
        cache: &'a mut HashMap<i64, BackupInfo>,
    ) -> Result<&'a BackupInfo> {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(backup_id) {
            let backup = self
                .conn()
                .prepare_cached(
                    "SELECT b.uuid, b.label, j.name, b.kind, b.started_at, b.status
                     FROM backups b LEFT JOIN jobs j ON j.id = b.job_id WHERE b.id = ?1",
                )?
                .query_row([backup_id], |r| {
                    let status: String = r.get(5)?;
                    Ok(BackupRef {
                        uuid: r.get(0)?,
                        label: r.get(1)?,
                        job: r.get(2)?,
                        kind: r.get(3)?,
                        started_at: r.get(4)?,
                        status: BackupStatus::parse(&status),
                    })
                })
                .optional()?
                .ok_or_else(|| {
                    self.damaged(
                        backup_id,
                        None,
                        "its member records are there but its row in the backups table is not"
                            .into(),
                    )
                })?;
            let mut stmt = self.conn().prepare_cached(
                "SELECT bv.seq, v.label, bv.tape_file FROM backup_volumes bv
                 JOIN volumes v ON v.id = bv.volume_id
                 WHERE bv.backup_id = ?1 AND bv.overwritten = 0",
            )?;
            let parts = stmt
                .query_map([backup_id], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            slot.insert(BackupInfo { backup, parts });
        }
        Ok(&cache[&backup_id])
    }

    /// A member as a version of the file at `path`.
    pub(super) fn file_version(
        &self,
        found: Found,
        path: String,
        backups: &mut HashMap<i64, BackupInfo>,
    ) -> Result<FileVersion> {
        let info = self.backup_info(found.backup_id, backups)?;
        let m = found.member;
        let mut segments = Vec::new();
        if let Some((volume, tape_file)) = m.part.and_then(|p| info.parts.get(&p)) {
            segments.push(SegmentInfo {
                volume: volume.clone(),
                tape_file: *tape_file,
                block: m.block,
                offset: m.offset,
                file_offset: 0,
                length: m.size,
            });
        }
        let backup = info.backup.clone();
        if m.parts > 1 {
            segments = self.split_parts(found.backup_id, found.seq)?;
        }
        Ok(FileVersion {
            path,
            kind: m.kind(),
            size: m.size,
            mtime_ns: m.mtime_ns,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            blake3: m.blake3.map(|h| hex(&h)),
            link: m.link,
            backup,
            segments,
        })
    }

    fn name_id(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT id FROM names WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    pub(super) fn name_of(&self, name_id: i64) -> Result<String> {
        Ok(self
            .conn()
            .prepare_cached("SELECT name FROM names WHERE id = ?1")?
            .query_row([name_id], |r| r.get(0))?)
    }

    /// Every version of the file at `path` (absolute), newest first: an index lookup per
    /// path component, then the directory's records.
    pub fn find_path(&self, path: &str) -> Result<Vec<FileVersion>> {
        let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some(name) = parts.pop() else {
            return Ok(Vec::new());
        };
        let mut dir_id = 1i64;
        for part in parts {
            let Some(name_id) = self.name_id(part)? else {
                return Ok(Vec::new());
            };
            let next: Option<i64> = self
                .conn()
                .prepare_cached("SELECT id FROM dirs WHERE parent = ?1 AND name_id = ?2")?
                .query_row([dir_id, name_id], |r| r.get(0))
                .optional()?;
            match next {
                Some(d) => dir_id = d,
                None => return Ok(Vec::new()),
            }
        }
        let Some(name_id) = self.name_id(name)? else {
            return Ok(Vec::new());
        };
        let mut dirs = HashMap::new();
        let full = format!("{}/{name}", self.dir_path(dir_id, &mut dirs)?);
        let mut backups = HashMap::new();
        let mut found = members_named(self, dir_id, name_id)?;
        // Backups started in the same second: the later one (higher id) first.
        found.sort_by_key(|f| std::cmp::Reverse((f.backup_id, f.seq)));
        let mut out = found
            .into_iter()
            .map(|f| self.file_version(f, full.clone(), &mut backups))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|v| std::cmp::Reverse(v.backup.started_at));
        Ok(out)
    }

    /// Versions of files whose name contains `pattern` (case-insensitive), or matches it
    /// as a glob when it holds `*` or `?`. Candidates come from the trigram index; at most
    /// `limit` versions are returned, and the flag says whether more exist.
    pub fn find_pattern(&self, pattern: &str, limit: usize) -> Result<(Vec<FileVersion>, bool)> {
        let matcher = Matcher::new(pattern);
        let mut out = Vec::new();
        let mut dirs = HashMap::new();
        let mut backups = HashMap::new();
        let mut dirs_of = self
            .conn()
            .prepare_cached("SELECT dir_id FROM paths WHERE name_id = ?1")?;
        // Candidate names stream from the trigram index (or, under three characters, from
        // the names table); the search stops as soon as the limit is passed.
        let (sql, arg) = match trigram_query(&matcher.fragments()) {
            Some(q) => (
                "SELECT n.id, n.name FROM names_fts JOIN names n ON n.id = names_fts.rowid
                 WHERE names_fts MATCH ?1",
                Some(q),
            ),
            None => ("SELECT id, name FROM names WHERE ?1 IS NULL", None),
        };
        let mut candidates = self.conn().prepare_cached(sql)?;
        let mut rows = candidates.query([arg])?;
        while let Some(r) = rows.next()? {
            let name = r.get_ref(1)?.as_str().unwrap_or_default();
            if name.is_empty() || !matcher.matches(name) {
                continue;
            }
            let name = name.to_string();
            let name_id: i64 = r.get(0)?;
            let dir_ids = dirs_of
                .query_map([name_id], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for dir_id in dir_ids {
                let path = format!("{}/{name}", self.dir_path(dir_id, &mut dirs)?);
                for found in members_named(self, dir_id, name_id)? {
                    out.push(self.file_version(found, path.clone(), &mut backups)?);
                }
                if out.len() > limit {
                    out.truncate(limit);
                    sort_versions(&mut out);
                    return Ok((out, true));
                }
            }
        }
        sort_versions(&mut out);
        Ok((out, false))
    }

    /// Every file with a part on volume `label`, in tape order; `f` is called per file
    /// (so a volume of millions of files streams).
    pub fn files_on_volume(
        &self,
        label: &str,
        mut f: impl FnMut(FileVersion) -> Result<()>,
    ) -> Result<()> {
        let volume = self.volume(label)?;
        // The backups with a copy there, in the order they are on the tape.
        let mut stmt = self.conn().prepare(
            "SELECT DISTINCT backup_id FROM backup_volumes
             WHERE volume_id = ?1 AND overwritten = 0 ORDER BY tape_file, first_block, backup_id",
        )?;
        let backup_ids = stmt
            .query_map([volume.id], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut on_volume = self.conn().prepare(
            "SELECT 1 FROM segments WHERE backup_id = ?1 AND file_seq = ?2 AND volume_id = ?3",
        )?;
        let mut dirs = HashMap::new();
        let mut backups = HashMap::new();
        for backup_id in backup_ids {
            let here: Vec<i64> = {
                let mut s = self.conn().prepare_cached(
                    "SELECT seq FROM backup_volumes WHERE backup_id = ?1 AND volume_id = ?2",
                )?;
                let seqs = s
                    .query_map([backup_id, volume.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                seqs
            };
            self.each_member(
                backup_id,
                &mut dirs,
                &mut backups,
                |seq, member| {
                    Ok(if member.parts > 1 {
                        on_volume.exists(params![backup_id, seq, volume.id])?
                    } else {
                        member.part.is_some_and(|p| here.contains(&p))
                    })
                },
                &mut f,
            )?;
        }
        Ok(())
    }

    /// Reads a row of `members` selected as [`RECORD_COLUMNS`]: the one way a record is
    /// read. A record that fails its checksum, does not decode or holds another number of
    /// members than it says is [`CatalogError::Damaged`], never skipped.
    pub(super) fn read_record(&self, r: &rusqlite::Row<'_>) -> Result<(RecordKey, Vec<Member>)> {
        let record = members::Record {
            backup_id: r.get(0)?,
            first_seq: r.get(1)?,
            dir_id: r.get(2)?,
            count: r.get(3)?,
            data: r.get_ref(4)?.as_blob().unwrap_or_default(),
            sum: r.get(5)?,
        };
        let key = RecordKey {
            backup_id: record.backup_id,
            first_seq: record.first_seq,
            dir_id: record.dir_id,
        };
        match members::read_record(&record) {
            Ok(decoded) => Ok((key, decoded)),
            Err(e) => Err(self.damaged(key.backup_id, Some(key.first_seq), e.to_string())),
        }
    }

    /// A [`CatalogError::Damaged`] for backup `backup_id`, named by its uuid and with the
    /// volumes it wrote when the catalogue still has them.
    pub(super) fn damaged(
        &self,
        backup_id: i64,
        record: Option<i64>,
        what: String,
    ) -> CatalogError {
        let uuid: Option<String> = self
            .conn()
            .query_row("SELECT uuid FROM backups WHERE id = ?1", [backup_id], |r| {
                r.get(0)
            })
            .ok();
        let volumes = self
            .conn()
            .prepare(
                "SELECT DISTINCT v.label FROM backup_volumes bv JOIN volumes v ON v.id = bv.volume_id
                 WHERE bv.backup_id = ?1 ORDER BY bv.seq",
            )
            .and_then(|mut s| {
                s.query_map([backup_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .unwrap_or_default();
        CatalogError::Damaged {
            path: self.path().to_path_buf(),
            backup: uuid.unwrap_or_else(|| format!("#{backup_id}")),
            record,
            what,
            volumes,
        }
    }

    /// The member records of backup `backup_id` in tape order: member number, directory
    /// id and the decoded record to `f`, no name looked up. Every record is read through
    /// [`Catalog::read_record`]; the records must follow each other without a gap, and
    /// hold as many files as the backup counts.
    pub(super) fn member_records(
        &self,
        backup_id: i64,
        mut f: impl FnMut(i64, i64, Member) -> Result<()>,
    ) -> Result<()> {
        let files: Option<i64> = self
            .conn()
            .prepare_cached("SELECT files FROM backups WHERE id = ?1")?
            .query_row([backup_id], |r| r.get(0))
            .optional()?;
        let Some(files) = files else {
            return Err(self.damaged(
                backup_id,
                None,
                "its row in the backups table is missing".into(),
            ));
        };
        let mut records = self.conn().prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM members WHERE backup_id = ?1 ORDER BY first_seq"
        ))?;
        let mut rows = records.query([backup_id])?;
        let (mut next, mut found) = (0i64, 0i64);
        while let Some(r) = rows.next()? {
            let (key, decoded) = self.read_record(r)?;
            if key.first_seq != next {
                return Err(self.damaged(
                    backup_id,
                    Some(key.first_seq),
                    format!(
                        "members {next} to {} are missing before it",
                        key.first_seq - 1
                    ),
                ));
            }
            next += decoded.len() as i64;
            for (i, member) in decoded.into_iter().enumerate() {
                found += i64::from(member.kind() != FileKind::Deleted);
                f(key.first_seq + i as i64, key.dir_id, member)?;
            }
        }
        if found != files {
            return Err(self.damaged(
                backup_id,
                None,
                format!("its member records hold {found} files, but the backup counts {files}"),
            ));
        }
        Ok(())
    }

    /// The members of backup `backup_id` in tape order that `keep` (given member number
    /// and record) lets through, as file versions to `f`; directory paths and backups are
    /// looked up once through the caches.
    fn each_member(
        &self,
        backup_id: i64,
        dirs: &mut HashMap<i64, String>,
        backups: &mut HashMap<i64, BackupInfo>,
        mut keep: impl FnMut(i64, &Member) -> Result<bool>,
        f: &mut impl FnMut(FileVersion) -> Result<()>,
    ) -> Result<()> {
        self.member_records(backup_id, |seq, dir_id, member| {
            if !keep(seq, &member)? {
                return Ok(());
            }
            let path = format!(
                "{}/{}",
                self.dir_path(dir_id, dirs)?,
                self.name_of(member.name_id)?
            );
            let found = Found {
                backup_id,
                seq,
                member,
            };
            f(self.file_version(found, path, backups)?)
        })
    }

    /// Every member of backup `uuid`, in tape order; `f` is called per member (so a
    /// backup of millions of files streams).
    pub fn files_of_backup(
        &self,
        uuid: &str,
        mut f: impl FnMut(FileVersion) -> Result<()>,
    ) -> Result<()> {
        let backup_id: i64 = self
            .conn()
            .query_row("SELECT id FROM backups WHERE uuid = ?1", [uuid], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| CatalogError::Invalid(format!("no backup {uuid} in the catalogue")))?;
        self.each_member(
            backup_id,
            &mut HashMap::new(),
            &mut HashMap::new(),
            |_, _| Ok(true),
            &mut f,
        )
    }

    /// The backups of a job (or every backup, without one), oldest first, with what a
    /// restore needs to put a chain of full and incremental backups together.
    pub fn backup_nodes(&self, job: Option<&str>) -> Result<Vec<BackupNode>> {
        let mut stmt = self.conn().prepare(
            "SELECT b.uuid, j.name, b.kind, p.uuid, b.status, b.started_at, b.finished_at
             FROM backups b LEFT JOIN jobs j ON j.id = b.job_id
             LEFT JOIN backups p ON p.id = b.parent_id
             WHERE (?1 IS NULL OR j.name = ?1)
             ORDER BY b.started_at, b.id",
        )?;
        let rows = stmt
            .query_map([job], |r| {
                let status: String = r.get(4)?;
                Ok(BackupNode {
                    uuid: r.get(0)?,
                    job: r.get(1)?,
                    kind: r.get(2)?,
                    parent: r.get(3)?,
                    status: BackupStatus::parse(&status),
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Backups, newest first: all, or of one job; running ones always included.
    pub fn backups(&self, job: Option<&str>, limit: usize) -> Result<Vec<BackupSummary>> {
        let mut stmt = self.conn().prepare(
            "SELECT b.id, b.uuid, j.name, b.label, b.kind, b.status, b.started_at, b.finished_at,
                    b.files, b.bytes, b.drive, p.name, b.origin, b.error
             FROM backups b LEFT JOIN jobs j ON j.id = b.job_id LEFT JOIN pools p ON p.id = b.pool_id
             WHERE (?1 IS NULL OR j.name = ?1)
             ORDER BY b.status = 'running' DESC, b.started_at DESC, b.id DESC LIMIT ?2",
        )?;
        let rows: Vec<(i64, BackupSummary)> = stmt
            .query_map(params![job, limit as i64], |r| {
                let status: String = r.get(5)?;
                Ok((
                    r.get(0)?,
                    BackupSummary {
                        uuid: r.get(1)?,
                        job: r.get(2)?,
                        label: r.get(3)?,
                        kind: r.get(4)?,
                        status: BackupStatus::parse(&status),
                        started_at: r.get(6)?,
                        finished_at: r.get(7)?,
                        files: r.get(8)?,
                        bytes: r.get(9)?,
                        drive: r.get(10)?,
                        pool: r.get(11)?,
                        origin: r.get(12)?,
                        error: r.get(13)?,
                        volumes: Vec::new(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut vols = self.conn().prepare_cached(
            "SELECT v.label FROM backup_volumes bv JOIN volumes v ON v.id = bv.volume_id
             WHERE bv.backup_id = ?1 ORDER BY bv.seq",
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, mut b) in rows {
            b.volumes = vols
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            out.push(b);
        }
        Ok(out)
    }

    /// Whether a job of this name exists.
    pub fn job_exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM jobs WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Names of all jobs.
    pub fn job_names(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare("SELECT name FROM jobs ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }
}

/// Lower-case hex of a hash (without a `format!` per byte: listings of millions of
/// files call this for each).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Paths in order, newest version first.
fn sort_versions(versions: &mut [FileVersion]) {
    versions.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then(b.backup.started_at.cmp(&a.backup.started_at))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_substrings_match_names_case_insensitively() {
        let m = Matcher::new("holiday");
        assert!(m.matches("Summer-HOLIDAY.mp4"));
        assert!(!m.matches("work.txt"));
        let g = Matcher::new("*.MP?");
        assert!(g.matches("clip.mp4"));
        assert!(!g.matches("clip.mp4.bak"));
        assert_eq!(g.fragments(), vec![".mp"]);
        let g = Matcher::new("IMG_*_2024*");
        assert!(g.matches("img_0001_2024-05.jpg"));
        assert!(!g.matches("img_0001_2023.jpg"));
    }

    #[test]
    fn hashes_print_as_lower_case_hex() {
        assert_eq!(hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
    }

    #[test]
    fn trigram_queries_quote_and_dedupe() {
        assert_eq!(trigram_query(&["abab"]).unwrap(), "\"aba\" AND \"bab\"");
        assert_eq!(trigram_query(&["ab"]), None);
        assert_eq!(
            trigram_query(&["a\"bc"]).unwrap(),
            "\"a\"\"b\" AND \"\"\"bc\""
        );
    }
}
