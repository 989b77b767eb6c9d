//! Backup chains: a full backup and the incremental and differential backups built on it.
//!
//! Every backup but a full names its parent (`backups.parent_id`): an incremental the
//! backup before it, a differential the full. The chain of a backup is the backup, its
//! parent, that one's parent, and so on back to the full (or as far as parents are
//! recorded, for imported history). The state a chain stands for is the newest version of
//! every path across it, where a member of kind `deleted` removes the path.
//!
//! Restore's contract: the state of job J at time D is the chain of the newest *complete*
//! backup of J that started at or before D; its members are read the full first, then each
//! later backup in order, and the newest version of a path wins ([`Catalog::chain_state`]).

use super::backups::FileKind;
use super::members::Member;
use super::query::{BackupInfo, Found, RECORD_COLUMNS};
use super::{Catalog, CatalogError, FileVersion, Result};
use rusqlite::OptionalExtension;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One backup of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    #[serde(skip)]
    pub id: i64,
    pub uuid: String,
    /// `full`, `incremental` or `differential`.
    pub kind: String,
    pub started_at: i64,
    #[serde(skip)]
    pub parent_id: Option<i64>,
    /// A volume holding part of it was relabelled since: its members cannot be read back.
    pub lost: bool,
}

/// What a chain stands for: its backups and the newest version of each path.
#[derive(Debug, Clone, Serialize)]
pub struct ChainState {
    /// The backups, newest first (the last is the full).
    pub chain: Vec<ChainLink>,
    /// The surviving versions in the order to read them: the full's members first, then
    /// each later backup's, each in tape order. No `deleted` members.
    pub members: Vec<FileVersion>,
}

/// Directory paths by id, bounded so a walk over millions of directories does not keep
/// them all.
#[derive(Default)]
pub struct DirPaths {
    cache: HashMap<i64, String>,
}

impl DirPaths {
    const LIMIT: usize = 200_000;

    /// The absolute path of member `name_id` of directory `dir_id` (no trailing `/`).
    pub fn path(&mut self, cat: &Catalog, dir_id: i64, name_id: i64) -> Result<String> {
        if self.cache.len() >= Self::LIMIT {
            self.cache.clear();
        }
        let dir = cat.dir_path(dir_id, &mut self.cache)?;
        let name = cat.name_of(name_id)?;
        Ok(format!("{dir}/{name}"))
    }
}

const LINK_COLUMNS: &str = "b.id, b.uuid, b.kind, b.started_at, b.parent_id,
    EXISTS (SELECT 1 FROM backup_volumes bv WHERE bv.backup_id = b.id AND bv.overwritten = 1)";

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainLink> {
    Ok(ChainLink {
        id: r.get(0)?,
        uuid: r.get(1)?,
        kind: r.get(2)?,
        started_at: r.get(3)?,
        parent_id: r.get(4)?,
        lost: r.get(5)?,
    })
}

impl Catalog {
    /// The newest complete backup of `job` (of `kind` when given) that started at or
    /// before `at` (any time when `None`).
    pub fn last_complete_backup(
        &self,
        job: &str,
        kind: Option<&str>,
        at: Option<i64>,
    ) -> Result<Option<ChainLink>> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM backups b JOIN jobs j ON j.id = b.job_id
             WHERE j.name = ?1 AND b.status = 'complete' AND (?2 IS NULL OR b.kind = ?2)
               AND (?3 IS NULL OR b.started_at <= ?3)
             ORDER BY b.started_at DESC, b.id DESC LIMIT 1"
        );
        Ok(self
            .conn()
            .prepare(&sql)?
            .query_row(rusqlite::params![job, kind, at], link_row)
            .optional()?)
    }

    /// The chain ending at `newest`: it, its parent, ... back to the full (or to the
    /// oldest backup whose parent is not recorded), newest first.
    pub fn chain_of(&self, newest: ChainLink) -> Result<Vec<ChainLink>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM backups b WHERE b.id = ?1");
        let mut stmt = self.conn().prepare(&sql)?;
        let mut seen = HashSet::from([newest.id]);
        let mut chain = vec![newest];
        while let Some(parent) = chain
            .last()
            .filter(|l| l.kind != "full")
            .and_then(|l| l.parent_id)
        {
            if !seen.insert(parent) {
                return Err(self.damaged(
                    chain[0].id,
                    None,
                    "the parents of its chain go round in a circle".into(),
                ));
            }
            let link = stmt
                .query_row([parent], link_row)
                .optional()?
                .ok_or_else(|| {
                    self.damaged(
                        chain[chain.len() - 1].id,
                        None,
                        format!("its parent backup (#{parent}) is missing"),
                    )
                })?;
            chain.push(link);
        }
        Ok(chain)
    }

    /// Every member of the backups of `chain`, in the order of `chain` and each backup's
    /// in tape order: `f(position in chain, member number, directory id, member)`.
    pub fn chain_members(
        &self,
        chain: &[ChainLink],
        mut f: impl FnMut(usize, i64, i64, Member) -> Result<()>,
    ) -> Result<()> {
        for (i, link) in chain.iter().enumerate() {
            self.member_records(link.id, |seq, dir_id, m| f(i, seq, dir_id, m))?;
        }
        Ok(())
    }

    /// The paths of members given as (backup id, member number), in the order given
    /// (sorting them by backup and number reads each record once).
    pub fn member_paths(&self, wanted: &[(i64, i64)]) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM members
             WHERE backup_id = ?1 AND first_seq <= ?2 ORDER BY first_seq DESC LIMIT 1"
        ))?;
        let mut dirs = DirPaths::default();
        // The record read last: backup, first member number, directory, members.
        let mut record: Option<(i64, i64, i64, Vec<Member>)> = None;
        let mut out = Vec::with_capacity(wanted.len());
        for &(backup_id, seq) in wanted {
            let cached = record.as_ref().is_some_and(|(b, first, _, ms)| {
                *b == backup_id && (*first..*first + ms.len() as i64).contains(&seq)
            });
            if !cached {
                let mut rows = stmt.query(rusqlite::params![backup_id, seq])?;
                let Some(row) = rows.next()? else {
                    return Err(CatalogError::Invalid(format!(
                        "no member {seq} in backup {backup_id}"
                    )));
                };
                let (key, ms) = self.read_record(row)?;
                record = Some((backup_id, key.first_seq, key.dir_id, ms));
            }
            let member = record.as_ref().and_then(|(_, first, dir_id, ms)| {
                ms.get((seq - first) as usize).map(|m| (*dir_id, m.name_id))
            });
            let Some((dir_id, name_id)) = member else {
                return Err(CatalogError::Invalid(format!(
                    "no member {seq} in backup {backup_id}"
                )));
            };
            out.push(dirs.path(self, dir_id, name_id)?);
        }
        Ok(out)
    }

    /// The newest version of each path across `chain` (newest first, as [`Catalog::chain_of`]
    /// gives it), deletions applied, in the order to read them: oldest backup first, each
    /// in tape order.
    pub fn chain_versions(&self, chain: &[ChainLink]) -> Result<Vec<FileVersion>> {
        // A path is (directory id, name id): exact, and known before any name is read.
        let mut seen: HashSet<(i64, i64)> = HashSet::new();
        let mut winners: Vec<(usize, i64, i64, Member)> = Vec::new();
        self.chain_members(chain, |i, seq, dir_id, m| {
            if seen.insert((dir_id, m.name_id)) && m.kind() != FileKind::Deleted {
                winners.push((i, seq, dir_id, m));
            }
            Ok(())
        })?;
        drop(seen);
        winners.sort_by_key(|(i, seq, _, _)| (std::cmp::Reverse(*i), *seq));
        let mut dirs = DirPaths::default();
        let mut backups: HashMap<i64, BackupInfo> = HashMap::new();
        winners
            .into_iter()
            .map(|(i, seq, dir_id, member)| {
                let path = dirs.path(self, dir_id, member.name_id)?;
                let found = Found {
                    backup_id: chain[i].id,
                    seq,
                    member,
                };
                self.file_version(found, path, &mut backups)
            })
            .collect()
    }

    /// The state of job `job` at time `at` (Unix seconds), as restore reads it: the chain
    /// of the newest complete backup of the job that started at or before `at`, and the
    /// newest version of each path across it. `None` when the job has no such backup.
    pub fn chain_state(&self, job: &str, at: i64) -> Result<Option<ChainState>> {
        let Some(newest) = self.last_complete_backup(job, None, Some(at))? else {
            return Ok(None);
        };
        let chain = self.chain_of(newest)?;
        let members = self.chain_versions(&chain)?;
        Ok(Some(ChainState { chain, members }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BackupStatus, FileRecord, NewBackup, SegmentRecord};

    /// Records a complete backup of job `j` with the given members (a `None` size is a
    /// deletion) and returns its uuid.
    fn backup(
        cat: &mut Catalog,
        volume_id: i64,
        uuid: &str,
        kind: &str,
        parent: Option<&str>,
        started_at: i64,
        files: &[(&str, Option<i64>)],
    ) {
        let id = cat
            .begin_backup(&NewBackup {
                uuid,
                job: Some("j"),
                kind,
                parent_uuid: parent,
                started_at,
                origin: "tapedeck",
                ..Default::default()
            })
            .unwrap();
        cat.add_backup_volume(id, 0, volume_id, Some(1), Some(2))
            .unwrap();
        let mut batch = cat.file_batch(id);
        for (i, (path, size)) in files.iter().enumerate() {
            let segments = match size {
                Some(size) => vec![SegmentRecord {
                    volume_id,
                    tape_file: Some(1),
                    block: Some(2),
                    offset: Some(512 * i as i64),
                    file_offset: 0,
                    length: *size,
                }],
                None => Vec::new(),
            };
            batch
                .push(FileRecord {
                    path: path.to_string(),
                    kind: if size.is_some() {
                        FileKind::File
                    } else {
                        FileKind::Deleted
                    },
                    size: size.unwrap_or(0),
                    mtime_ns: size.map(|_| 1),
                    mode: None,
                    uid: None,
                    gid: None,
                    link: None,
                    blake3: None,
                    segments,
                })
                .unwrap();
        }
        batch.finish().unwrap();
        cat.finish_backup(id, BackupStatus::Complete, started_at + 1, None)
            .unwrap();
    }

    fn catalogue() -> (tempfile::TempDir, Catalog, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let v = cat.register_volume("T1", None, None).unwrap();
        (dir, cat, v.id)
    }

    #[test]
    fn the_newest_version_wins_and_a_deletion_removes_the_path() {
        let (_dir, mut cat, v) = catalogue();
        backup(
            &mut cat,
            v,
            "full",
            "full",
            None,
            100,
            &[("/d/a", Some(1)), ("/d/b", Some(2)), ("/d/c", Some(3))],
        );
        backup(
            &mut cat,
            v,
            "inc1",
            "incremental",
            Some("full"),
            200,
            &[("/d/a", Some(10)), ("/d/b", None)],
        );
        backup(
            &mut cat,
            v,
            "inc2",
            "incremental",
            Some("inc1"),
            300,
            &[("/d/b", Some(20)), ("/d/e", Some(5))],
        );
        // After inc1: a is new, b is gone, c is the full's.
        let state = cat.chain_state("j", 250).unwrap().unwrap();
        let uuids: Vec<_> = state.chain.iter().map(|l| l.uuid.as_str()).collect();
        assert_eq!(uuids, ["inc1", "full"]);
        let got: Vec<_> = state
            .members
            .iter()
            .map(|m| (m.path.as_str(), m.size, m.backup.uuid.as_str()))
            .collect();
        assert_eq!(got, [("/d/c", 3, "full"), ("/d/a", 10, "inc1")]);
        // After inc2: b is back; the full's members are read first.
        let state = cat.chain_state("j", 300).unwrap().unwrap();
        let got: Vec<_> = state
            .members
            .iter()
            .map(|m| (m.path.as_str(), m.size))
            .collect();
        assert_eq!(got, [("/d/c", 3), ("/d/a", 10), ("/d/b", 20), ("/d/e", 5)]);
        assert_eq!(state.members[0].segments[0].volume, "T1");
        // Before the full there is nothing.
        assert!(cat.chain_state("j", 99).unwrap().is_none());
        assert!(cat.chain_state("other", 300).unwrap().is_none());
    }

    #[test]
    fn a_differential_chain_skips_the_incrementals_and_a_full_starts_a_new_chain() {
        let (_dir, mut cat, v) = catalogue();
        backup(&mut cat, v, "f1", "full", None, 100, &[("/x", Some(1))]);
        backup(
            &mut cat,
            v,
            "i1",
            "incremental",
            Some("f1"),
            200,
            &[("/y", Some(2))],
        );
        backup(
            &mut cat,
            v,
            "d1",
            "differential",
            Some("f1"),
            300,
            &[("/z", Some(3))],
        );
        let chain = cat
            .chain_of(cat.last_complete_backup("j", None, None).unwrap().unwrap())
            .unwrap();
        let uuids: Vec<_> = chain.iter().map(|l| l.uuid.as_str()).collect();
        assert_eq!(uuids, ["d1", "f1"]);
        let full = cat.last_complete_backup("j", Some("full"), None).unwrap();
        assert_eq!(full.unwrap().uuid, "f1");

        backup(&mut cat, v, "f2", "full", None, 400, &[("/w", Some(4))]);
        let state = cat.chain_state("j", 500).unwrap().unwrap();
        assert_eq!(state.chain.len(), 1);
        assert_eq!(state.members.len(), 1);
        // The older chains are still there: a full resets nothing.
        let state = cat.chain_state("j", 350).unwrap().unwrap();
        assert_eq!(state.members.len(), 2);
        assert_eq!(cat.find_path("/x").unwrap().len(), 1);
    }

    #[test]
    fn members_are_found_by_backup_and_number() {
        let (_dir, mut cat, v) = catalogue();
        let files: Vec<String> = (0..150).map(|i| format!("/d{}/f{i:03}", i % 3)).collect();
        let refs: Vec<(&str, Option<i64>)> = files.iter().map(|f| (f.as_str(), Some(1))).collect();
        backup(&mut cat, v, "f", "full", None, 100, &refs);
        let id = cat
            .last_complete_backup("j", None, None)
            .unwrap()
            .unwrap()
            .id;
        let wanted: Vec<(i64, i64)> = [0, 1, 2, 77, 149].iter().map(|&s| (id, s)).collect();
        let paths = cat.member_paths(&wanted).unwrap();
        assert_eq!(
            paths,
            ["/d0/f000", "/d1/f001", "/d2/f002", "/d2/f077", "/d2/f149"]
        );
        assert!(cat.member_paths(&[(id, 150)]).is_err());
    }

    #[test]
    fn a_relabelled_volume_marks_its_backups_lost() {
        let (_dir, mut cat, v) = catalogue();
        backup(&mut cat, v, "f", "full", None, 100, &[("/x", Some(1))]);
        cat.conn()
            .execute("UPDATE backup_volumes SET overwritten = 1", [])
            .unwrap();
        let link = cat.last_complete_backup("j", None, None).unwrap().unwrap();
        assert!(link.lost);
    }
}
