//! Incremental and differential backups: which backup a new one builds on, the state of
//! that backup's chain as the comparison needs it, the filter the scan applies, and the
//! deletions recorded after the stream.
//!
//! An incremental builds on the job's last complete backup of any kind, a differential on
//! its last complete full. The previous state is the newest version of each path across
//! the parent's chain (see `catalog::chains`). A scanned entry is stored when it is new
//! or changed: a file is unchanged when its kind, size, mtime, mode, owner, symlink target,
//! inode and ctime all match the previous version (a previous version recorded without
//! inode and ctime never matches). Directories are always stored, so a restored tree has
//! their metadata. Paths of the previous state under the backup's sources that the scan
//! did not see are recorded as deleted.
//!
//! The previous state is a hash map from a 64-bit hash of the path to a fingerprint of
//! what is compared and where the version is in the catalogue: 32 bytes a slot, 35 to 75
//! bytes per path as the table fills, while the scan runs (it forgets each path it sees). A collision of two paths' hashes
//! can only make a file be stored although unchanged, or a deletion go unrecorded.

use super::index::{IndexRecord, IndexWriter};
use super::scan::{Entry, EntryKind};
use super::BackupError;
use crate::catalog::{Catalog, CatalogError, ChainLink, DirPaths, FileBatch, FileKind, FileRecord};
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// What a backup stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Everything.
    Full,
    /// What changed since the job's last complete backup.
    Incremental,
    /// What changed since the job's last complete full backup.
    Differential,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
            BackupKind::Differential => "differential",
        }
    }
}

/// How a backup came to be what it is: the kind, the parent and the comparison.
pub struct Plan {
    pub kind: BackupKind,
    /// Why an incremental or differential that was asked for runs as a full.
    pub note: Option<String>,
    /// For the scan: leaves out what did not change.
    pub filter: Option<ChangeFilter>,
    /// For the pipeline: the parent, and the deletions once the scan is done.
    pub basis: Option<Basis>,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            kind: BackupKind::Full,
            note: None,
            filter: None,
            basis: None,
        }
    }

    /// The uuid of the backup this one builds on.
    pub fn parent(&self) -> Option<&str> {
        self.basis.as_ref().map(|b| b.parent.as_str())
    }
}

/// Decides what a backup of `job` builds on (`kind` is what the operator asked for) and
/// loads the previous state. Without a usable parent the plan is a full, with a note
/// saying why.
pub fn plan(cat: &Catalog, job: &str, kind: BackupKind) -> Result<Plan, CatalogError> {
    let parent = match kind {
        BackupKind::Full => return Ok(Plan::full()),
        BackupKind::Incremental => cat.last_complete_backup(job, None, None)?,
        BackupKind::Differential => cat.last_complete_backup(job, Some("full"), None)?,
    };
    let as_full = |why: String| {
        Ok(Plan {
            note: Some(format!("{why}: this {} runs as a full", kind.as_str())),
            ..Plan::full()
        })
    };
    let Some(parent) = parent else {
        let what = match kind {
            BackupKind::Differential => "full backup",
            _ => "backup",
        };
        return as_full(format!("job {job} has no complete {what} yet"));
    };
    let chain = cat.chain_of(parent)?;
    if let Some(lost) = chain.iter().find(|l| l.lost) {
        return as_full(format!(
            "backup {} that the last backup of job {job} builds on is on a volume that \
             was relabelled since",
            lost.uuid
        ));
    }
    let state = PreviousState::load(cat, &chain)?;
    let outcome = Arc::new(Mutex::new(None));
    Ok(Plan {
        kind,
        note: None,
        filter: Some(ChangeFilter {
            state,
            path: String::new(),
            skipped: Vec::new(),
            unchanged: 0,
            outcome: outcome.clone(),
        }),
        basis: Some(Basis {
            kind,
            parent: chain[0].uuid.clone(),
            chain: Arc::new(chain),
            outcome,
        }),
    })
}

/// The 64-bit key of an absolute path (`/a/b`, no trailing `/`).
fn path_key(path: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(path.as_bytes());
    h.finish()
}

/// Files and hard links compare as one kind: which name of a link group is the stored
/// file depends on the order of the walk.
fn kind_class(kind: FileKind) -> u8 {
    match kind {
        FileKind::HardLink => FileKind::File.code() as u8,
        k => k.code() as u8,
    }
}

/// What is compared, hashed. `size` is `None` when the previous version does not know it
/// (a hard link member records no size).
#[allow(clippy::too_many_arguments)]
fn fingerprint(
    class: u8,
    size: Option<i64>,
    mtime_ns: i64,
    mode: i64,
    uid: i64,
    gid: i64,
    target: Option<&str>,
    ino: u64,
    ctime_ns: i64,
) -> u64 {
    let mut h = DefaultHasher::new();
    (class, size, mtime_ns, mode, uid, gid, target, ino, ctime_ns).hash(&mut h);
    h.finish()
}

/// A path's version in the previous state.
#[derive(Debug, Clone, Copy)]
struct Prev {
    fingerprint: u64,
    /// Member number in its backup.
    seq: u64,
    /// Its backup's position in the chain.
    link: u16,
    /// The version knows its size (it is not a hard link member).
    sized: bool,
    /// It was recorded with everything compared (inode and ctime among it).
    comparable: bool,
}

/// The newest version of each path across a chain; `None` marks a path whose newest
/// record is a deletion (it shadows the older versions, and counts as absent).
struct PreviousState {
    versions: HashMap<u64, Option<Prev>>,
}

impl PreviousState {
    fn load(cat: &Catalog, chain: &[ChainLink]) -> Result<PreviousState, CatalogError> {
        let mut versions: HashMap<u64, Option<Prev>> = HashMap::new();
        let mut dirs = DirPaths::default();
        cat.chain_members(chain, |link, seq, dir_id, m| {
            let path = dirs.path(cat, dir_id, m.name_id)?;
            let std::collections::hash_map::Entry::Vacant(slot) = versions.entry(path_key(&path))
            else {
                return Ok(()); // a newer backup of the chain has this path
            };
            let kind = m.kind();
            if kind == FileKind::Deleted {
                slot.insert(None);
                return Ok(());
            }
            let sized = kind != FileKind::HardLink;
            let (comparable, fingerprint) = match (m.mtime_ns, m.mode, m.uid, m.gid) {
                (Some(mtime), Some(mode), Some(uid), Some(gid))
                    if m.ino.is_some() && m.ctime_ns.is_some() =>
                {
                    let target = (kind == FileKind::Symlink).then_some(m.link.as_deref());
                    (
                        true,
                        fingerprint(
                            kind_class(kind),
                            sized.then_some(m.size),
                            mtime,
                            mode,
                            uid,
                            gid,
                            target.flatten(),
                            m.ino.unwrap_or_default(),
                            m.ctime_ns.unwrap_or_default(),
                        ),
                    )
                }
                _ => (false, 0),
            };
            slot.insert(Some(Prev {
                fingerprint,
                seq: seq as u64,
                link: u16::try_from(link).unwrap_or(u16::MAX),
                sized,
                comparable,
            }));
            Ok(())
        })?;
        Ok(PreviousState { versions })
    }
}

/// What the scan hands over when it has walked everything.
#[derive(Debug)]
struct ScanOutcome {
    /// Versions of the previous state the scan did not see: (chain position, member number).
    unseen: Vec<(u16, u64)>,
    /// The sources, absolute.
    roots: Vec<String>,
    /// Paths the scan could not read (what lies under them was not seen, not deleted).
    skipped: Vec<String>,
    unchanged: u64,
}

/// The scan's side of an incremental: decides for each entry whether it is stored.
pub struct ChangeFilter {
    state: PreviousState,
    /// Reused for each entry's absolute path.
    path: String,
    skipped: Vec<String>,
    unchanged: u64,
    outcome: Arc<Mutex<Option<ScanOutcome>>>,
}

impl ChangeFilter {
    /// Whether `entry` is stored: it is a directory, or new, or changed. Each path is
    /// looked up once; what is looked up counts as seen.
    pub fn keep(&mut self, entry: &Entry) -> bool {
        self.path.clear();
        self.path.push('/');
        self.path.push_str(entry.name.trim_end_matches('/'));
        let prev = self.state.versions.remove(&path_key(&self.path)).flatten();
        let class = match &entry.kind {
            EntryKind::Dir => return true,
            EntryKind::File | EntryKind::HardLink { .. } => kind_class(FileKind::File),
            EntryKind::Symlink { .. } => kind_class(FileKind::Symlink),
            EntryKind::CharDevice { .. } => kind_class(FileKind::CharDevice),
            EntryKind::BlockDevice { .. } => kind_class(FileKind::BlockDevice),
            EntryKind::Fifo => kind_class(FileKind::Fifo),
        };
        let Some(prev) = prev.filter(|p| p.comparable) else {
            return true;
        };
        let target = match &entry.kind {
            EntryKind::Symlink { target } => target.to_str(),
            _ => None,
        };
        let now = fingerprint(
            class,
            prev.sized.then_some(entry.size as i64),
            entry.mtime_ns,
            i64::from(entry.mode),
            i64::from(entry.uid),
            i64::from(entry.gid),
            target,
            entry.ino,
            entry.ctime_ns,
        );
        let changed = now != prev.fingerprint;
        self.unchanged += u64::from(!changed);
        changed
    }

    /// The scan could not read `path` (or what is under it).
    pub fn skipped(&mut self, path: &Path) {
        if let Some(p) = path.to_str() {
            self.skipped.push(p.trim_end_matches('/').to_string());
        }
    }

    /// The walk is complete: hands what it did not see to the pipeline.
    pub fn finish(self, roots: &[PathBuf]) {
        let mut unseen: Vec<(u16, u64)> = self
            .state
            .versions
            .into_values()
            .flatten()
            .map(|p| (p.link, p.seq))
            .collect();
        unseen.sort_unstable();
        let outcome = ScanOutcome {
            unseen,
            roots: roots
                .iter()
                .filter_map(|r| r.to_str())
                .map(|r| r.trim_end_matches('/').to_string())
                .collect(),
            skipped: self.skipped,
            unchanged: self.unchanged,
        };
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

/// Whether `path` is `root` or lies under it (`root` without a trailing `/`; empty is `/`).
fn under(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The pipeline's side of an incremental: the parent, and the deletions the scan found.
#[derive(Debug, Clone)]
pub struct Basis {
    pub kind: BackupKind,
    /// The uuid of the parent.
    pub parent: String,
    chain: Arc<Vec<ChainLink>>,
    outcome: Arc<Mutex<Option<ScanOutcome>>>,
}

impl Basis {
    /// Files the scan found unchanged (not stored); `None` until the scan is complete.
    pub fn unchanged(&self) -> Option<u64> {
        let outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        outcome.as_ref().map(|o| o.unchanged)
    }

    /// The paths of the previous state under the sources that the scan did not see,
    /// sorted; `None` when the scan did not complete (then nothing can be said).
    pub fn deleted_paths(&self, cat: &Catalog) -> Result<Option<Vec<String>>, CatalogError> {
        let outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(outcome) = outcome.as_ref() else {
            return Ok(None);
        };
        let wanted: Vec<(i64, i64)> = outcome
            .unseen
            .iter()
            .filter_map(|&(link, seq)| {
                let link = self.chain.get(usize::from(link))?;
                Some((link.id, seq as i64))
            })
            .collect();
        let mut paths: Vec<String> = cat
            .member_paths(&wanted)?
            .into_iter()
            .filter(|p| outcome.roots.iter().any(|r| under(p, r)))
            .filter(|p| !outcome.skipped.iter().any(|s| under(p, s)))
            .collect();
        paths.sort_unstable();
        Ok(Some(paths))
    }
}

/// Records the deletions of an incremental whose stream is complete: a member of kind
/// `deleted` per path in the catalogue and the index (no data, no place on tape). Returns
/// how many.
pub fn record_deletions(
    basis: &Basis,
    batch: Option<&mut FileBatch<'_>>,
    mut index: Option<&mut IndexWriter>,
) -> Result<u64, BackupError> {
    let Some(batch) = batch else {
        return Ok(0);
    };
    let Some(paths) = basis.deleted_paths(batch.catalog()?)? else {
        return Ok(0);
    };
    for path in &paths {
        if let Some(index) = index.as_deref_mut() {
            index.add(&IndexRecord {
                path,
                kind: FileKind::Deleted.as_str(),
                size: 0,
                mtime: 0,
                mode: 0,
                uid: 0,
                gid: 0,
                user: None,
                group: None,
                link: None,
                blake3: None,
                segments: Vec::new(),
                ino: None,
                ctime: None,
            })?;
        }
        batch.push(FileRecord {
            path: path.clone(),
            kind: FileKind::Deleted,
            size: 0,
            mtime_ns: None,
            mode: None,
            uid: None,
            gid: None,
            link: None,
            blake3: None,
            segments: Vec::new(),
        })?;
    }
    Ok(paths.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BackupStatus, ChangeStamp, NewBackup};

    fn entry(path: &str, kind: EntryKind, size: u64, ino: u64) -> Entry {
        Entry {
            path: PathBuf::from(path),
            name: format!(
                "{}{}",
                path.trim_start_matches('/'),
                if kind == EntryKind::Dir { "/" } else { "" }
            ),
            kind,
            size,
            mode: 0o644,
            uid: 1,
            gid: 1,
            user: None,
            group: None,
            mtime_ns: 10,
            ino,
            ctime_ns: 20,
            xattrs: Vec::new(),
        }
    }

    /// A catalogue with a complete full backup of job `j` holding `entries`.
    fn with_full(entries: &[Entry]) -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let id = cat
            .begin_backup(&NewBackup {
                uuid: "full",
                job: Some("j"),
                kind: "full",
                started_at: 1,
                origin: "tapedeck",
                ..Default::default()
            })
            .unwrap();
        let mut batch = cat.file_batch(id);
        for e in entries {
            let kind = match e.kind {
                EntryKind::Dir => FileKind::Dir,
                _ => FileKind::File,
            };
            let record = FileRecord {
                path: e.path.to_str().unwrap().to_string(),
                kind,
                size: e.size as i64,
                mtime_ns: Some(e.mtime_ns),
                mode: Some(i64::from(e.mode)),
                uid: Some(i64::from(e.uid)),
                gid: Some(i64::from(e.gid)),
                link: None,
                blake3: None,
                segments: Vec::new(),
            };
            let stamp = ChangeStamp {
                ino: e.ino,
                ctime_ns: e.ctime_ns,
            };
            batch.push_stamped(record, Some(stamp)).unwrap();
        }
        batch.finish().unwrap();
        cat.finish_backup(id, BackupStatus::Complete, 2, None)
            .unwrap();
        (dir, cat)
    }

    #[test]
    fn unchanged_files_are_left_out_and_unseen_ones_deleted_unless_unreadable() {
        let before = [
            entry("/r", EntryKind::Dir, 0, 1),
            entry("/r/same", EntryKind::File, 5, 2),
            entry("/r/grown", EntryKind::File, 5, 3),
            entry("/r/gone", EntryKind::File, 5, 4),
            entry("/r/locked", EntryKind::Dir, 0, 5),
            entry("/r/locked/inside", EntryKind::File, 5, 6),
            entry("/other/f", EntryKind::File, 5, 7),
        ];
        let (_dir, cat) = with_full(&before);
        let mut plan = plan(&cat, "j", BackupKind::Incremental).unwrap();
        assert_eq!(plan.parent(), Some("full"));
        let mut filter = plan.filter.take().unwrap();
        let basis = plan.basis.take().unwrap();
        assert!(filter.keep(&before[0]), "directories are always kept");
        assert!(!filter.keep(&before[1]));
        assert!(filter.keep(&entry("/r/grown", EntryKind::File, 6, 3)));
        assert!(filter.keep(&entry("/r/new", EntryKind::File, 1, 8)));
        assert!(filter.keep(&before[4]));
        filter.skipped(Path::new("/r/locked"));
        assert_eq!(basis.unchanged(), None, "not before the scan is done");
        filter.finish(&[PathBuf::from("/r")]);
        assert_eq!(basis.unchanged(), Some(1));
        // `/other` is not a source; what is in `/r/locked` was not seen, not deleted.
        assert_eq!(
            basis.deleted_paths(&cat).unwrap(),
            Some(vec!["/r/gone".to_string()])
        );
    }

    #[test]
    fn a_version_without_inode_and_ctime_is_never_unchanged() {
        let (_dir, mut cat) = with_full(&[]);
        let id = cat
            .begin_backup(&NewBackup {
                uuid: "old",
                job: Some("j"),
                kind: "full",
                started_at: 3,
                origin: "pytp",
                ..Default::default()
            })
            .unwrap();
        let e = entry("/r/f", EntryKind::File, 5, 2);
        let mut batch = cat.file_batch(id);
        batch
            .push(FileRecord {
                path: "/r/f".into(),
                kind: FileKind::File,
                size: 5,
                mtime_ns: Some(e.mtime_ns),
                mode: Some(0o644),
                uid: Some(1),
                gid: Some(1),
                link: None,
                blake3: None,
                segments: Vec::new(),
            })
            .unwrap();
        batch.finish().unwrap();
        cat.finish_backup(id, BackupStatus::Complete, 4, None)
            .unwrap();
        let mut plan = plan(&cat, "j", BackupKind::Incremental).unwrap();
        assert_eq!(plan.parent(), Some("old"));
        assert!(plan.filter.as_mut().unwrap().keep(&e));
    }

    #[test]
    fn paths_are_under_their_roots_only() {
        assert!(under("/home/me/a", "/home/me"));
        assert!(under("/home/me", "/home/me"));
        assert!(!under("/home/meta", "/home/me"));
        assert!(!under("/home", "/home/me"));
        assert!(under("/etc/x", ""), "the root `/` is trimmed to empty");
    }

    #[test]
    fn hard_links_and_files_compare_as_one_kind() {
        assert_eq!(kind_class(FileKind::HardLink), kind_class(FileKind::File));
        assert_ne!(kind_class(FileKind::Symlink), kind_class(FileKind::File));
    }

    #[test]
    fn every_compared_field_changes_the_fingerprint() {
        let base = fingerprint(0, Some(5), 10, 0o644, 1, 2, None, 77, 11);
        let variants = [
            fingerprint(1, Some(5), 10, 0o644, 1, 2, None, 77, 11),
            fingerprint(0, Some(6), 10, 0o644, 1, 2, None, 77, 11),
            fingerprint(0, None, 10, 0o644, 1, 2, None, 77, 11),
            fingerprint(0, Some(5), 12, 0o644, 1, 2, None, 77, 11),
            fingerprint(0, Some(5), 10, 0o600, 1, 2, None, 77, 11),
            fingerprint(0, Some(5), 10, 0o644, 3, 2, None, 77, 11),
            fingerprint(0, Some(5), 10, 0o644, 1, 3, None, 77, 11),
            fingerprint(0, Some(5), 10, 0o644, 1, 2, Some("t"), 77, 11),
            fingerprint(0, Some(5), 10, 0o644, 1, 2, None, 78, 11),
            fingerprint(0, Some(5), 10, 0o644, 1, 2, None, 77, 12),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
        assert_eq!(base, fingerprint(0, Some(5), 10, 0o644, 1, 2, None, 77, 11));
    }
}
