//! What to read: a selection of catalogue members (one file, a tape, a backup, the state
//! of a job at a date, patterns) turned into reads ordered by volume and position: one
//! visit per volume (a second one only when a file split across volumes needs it), and on
//! each volume runs of reads in tape order, each run started by one LOCATE. With byte
//! counts and a time estimate from the drive model, for `--dry-run`.

use crate::catalog::{BackupNode, Catalog, CatalogError, FileKind, FileVersion};
use crate::tape::drive_model::DriveModel;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// A guess of a member's header size, for estimates only (a plain GNU header; long names
/// and extended attributes add records).
const HEADER_GUESS: u64 = 512;

/// Seconds a tape change takes (robot move, load, thread), for estimates.
pub const TAPE_CHANGE_SECS: f64 = 60.0;

/// LOCATE moves at this multiple of the native read rate (high-speed search), for estimates.
const LOCATE_SPEEDUP: f64 = 8.0;

/// At most this many versions are gathered for a pattern.
pub const PATTERN_LIMIT: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The request cannot be met from the catalogue (exit 2).
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl PlanError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            PlanError::Bad(_) => true,
            PlanError::Catalog(e) => e.is_bad_input(),
        }
    }
}

fn bad(text: impl Into<String>) -> PlanError {
    PlanError::Bad(text.into())
}

/// One member to restore or verify.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// Where it goes: the catalogue path (absolute), restored under the target.
    pub path: String,
    /// The member whose header and data are read (for a hard link whose target is not
    /// restored with it, that target's).
    pub version: FileVersion,
    /// For a hard link: the path (as `path`) of the member it links to.
    pub link_to: Option<String>,
}

/// One part of a member on one volume: its header at (block, offset), then `length`
/// data bytes (a part after the first starts with a GNU `M` continuation header).
#[derive(Debug, Clone, Serialize)]
pub struct PartRead {
    pub member: usize,
    pub part: usize,
    pub parts: usize,
    pub tape_file: Option<i64>,
    pub block: u64,
    pub offset: u64,
    pub file_offset: u64,
    pub length: u64,
}

/// Reads on one tape file in tape order, started by one LOCATE.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub tape_file: Option<i64>,
    pub first_block: u64,
    /// Blocks the run reads (estimated: header sizes are guessed).
    pub blocks: u64,
    pub reads: Vec<PartRead>,
}

/// The reads of one volume, in tape order.
#[derive(Debug, Clone, Serialize)]
pub struct Visit {
    pub volume: String,
    pub block_size: u64,
    /// Where the volume is (slot, drive, offsite), as far as the catalogue or library knows.
    pub location: Option<String>,
    pub runs: Vec<Run>,
    /// Bytes read from tape (estimate).
    pub bytes: u64,
    pub est_secs: f64,
}

/// A member that cannot be read, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub path: String,
    pub reason: String,
}

/// Everything to read, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub members: Vec<Member>,
    pub visits: Vec<Visit>,
    pub unreadable: Vec<Unreadable>,
    /// Data bytes of the members.
    pub data_bytes: u64,
    /// Bytes read from tape, all visits (estimate).
    pub tape_bytes: u64,
    pub locates: usize,
    pub est_secs: f64,
    /// The drive model the estimate is for.
    pub model: String,
}

/// How to plan.
pub struct PlanOptions<'a> {
    pub model: &'a DriveModel,
    /// Only headers (verify --quick): no data is read.
    pub headers_only: bool,
    /// The label of the volume in the drive now (no tape change for it).
    pub in_drive: Option<String>,
    /// Block size and location of a volume.
    pub volume_info: &'a dyn Fn(&str) -> (u64, Option<String>),
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One path: its newest version, or the newest at or before `at`, or the one in
    /// `backup`. A directory brings everything under it from the same backup.
    File {
        path: String,
        at: Option<i64>,
        backup: Option<String>,
    },
    /// Every member with a part on a volume.
    Tape(String),
    /// Every member of a backup (uuid or unique prefix).
    Backup(String),
    /// The state of a job at a time: its newest complete chain.
    Job { name: String, at: i64 },
    /// Only the patterns: the newest version of every matching path.
    Patterns,
}

/// A pattern as `restore --pattern` takes it: with a `/`, over the whole path (a glob,
/// or else a path and everything under it); without, over the name (a glob, or else a
/// case-insensitive substring, as `find`).
#[derive(Debug, Clone)]
pub struct PathPattern {
    text: String,
    whole_path: bool,
    glob: bool,
}

impl PathPattern {
    pub fn new(text: &str) -> PathPattern {
        let whole_path = text.contains('/');
        let glob = text.contains(['*', '?']);
        let text = if whole_path {
            text.trim_end_matches('/').to_string()
        } else {
            text.to_lowercase()
        };
        PathPattern {
            text,
            whole_path,
            glob,
        }
    }

    /// The name part, for the catalogue's name index.
    fn name_part(&self) -> &str {
        self.text.rsplit('/').next().unwrap_or("")
    }

    pub fn matches(&self, path: &str) -> bool {
        if self.whole_path {
            if self.glob {
                return glob(self.text.as_bytes(), path.as_bytes());
            }
            return path == self.text
                || path
                    .strip_prefix(self.text.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
        }
        let name = path.rsplit('/').next().unwrap_or(path).to_lowercase();
        if self.glob {
            glob(self.text.as_bytes(), name.as_bytes())
        } else {
            name.contains(self.text.as_str())
        }
    }
}

/// `*` any run (slashes included), `?` any one byte.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A time as the operator writes it: `2024-05-01` (the end of that day, local time),
/// `2024-05-01 12:00` or `2024-05-01T12:00:00` (local), RFC 3339 with an offset, or
/// `@SECONDS` since the epoch. Unix seconds.
pub fn parse_when(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(crate::catalog::now());
    }
    if let Some(secs) = t.strip_prefix('@') {
        return secs
            .parse()
            .map_err(|_| format!("`{text}` is not @SECONDS since the epoch"));
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_second());
    }
    let tz = jiff::tz::TimeZone::system();
    if let Ok(dt) = t.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        if t.len() > 10 {
            return dt
                .to_zoned(tz)
                .map(|z| z.timestamp().as_second())
                .map_err(|e| format!("`{text}`: {e}"));
        }
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        let end = d.to_datetime(jiff::civil::time(23, 59, 59, 0));
        return end
            .to_zoned(tz)
            .map(|z| z.timestamp().as_second())
            .map_err(|e| format!("`{text}`: {e}"));
    }
    Err(format!(
        "`{text}` is not a date: write 2024-05-01, 2024-05-01 12:00, an RFC 3339 time, \
         @SECONDS or now"
    ))
}

/// The backup `id` names: a uuid or a unique prefix of one.
fn resolve_backup(cat: &Catalog, id: &str) -> Result<BackupNode, PlanError> {
    let nodes = cat.backup_nodes(None)?;
    let matching: Vec<&BackupNode> = nodes.iter().filter(|n| n.uuid.starts_with(id)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(bad(format!("no backup `{id}` in the catalogue"))),
        many => Err(bad(format!(
            "`{id}` names {} backups; give more of the uuid",
            many.len()
        ))),
    }
}

fn member(v: FileVersion) -> Member {
    Member {
        path: v.path.clone(),
        version: v,
        link_to: None,
    }
}

/// Whether `path` is `dir` or under it.
fn under(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The members a selection names, filtered by `patterns` (all must match, when given).
pub fn select(
    cat: &Catalog,
    selection: &Selection,
    patterns: &[PathPattern],
) -> Result<Vec<Member>, PlanError> {
    let keep = |v: &FileVersion| patterns.iter().all(|p| p.matches(&v.path));
    let mut out: Vec<Member> = Vec::new();
    match selection {
        Selection::File { path, at, backup } => {
            let path = path.trim_end_matches('/');
            if !path.starts_with('/') {
                return Err(bad(format!(
                    "`{path}` is not an absolute path; give the full path, e.g. /home/me/file"
                )));
            }
            let versions = cat.find_path(path)?;
            if versions.is_empty() {
                return Err(bad(format!("`{path}` is in no backup the catalogue knows")));
            }
            let wanted = match backup {
                Some(id) => {
                    let b = resolve_backup(cat, id)?;
                    versions.into_iter().find(|v| v.backup.uuid == b.uuid)
                }
                // `find_path` lists the newest first (of two backups started in the same
                // second, the later one).
                None => versions
                    .into_iter()
                    .find(|v| at.is_none_or(|at| v.backup.started_at <= at)),
            };
            let Some(v) = wanted else {
                return Err(bad(match (backup, at) {
                    (Some(id), _) => format!("backup `{id}` does not hold `{path}`"),
                    (None, Some(at)) => format!(
                        "`{path}` was not backed up until {}",
                        crate::catalog::format_time(*at)
                    ),
                    _ => format!("`{path}` is in no backup"),
                }));
            };
            if v.kind == FileKind::Deleted {
                return Err(bad(format!(
                    "`{path}` was deleted by backup {} ({}); ask for an earlier --date",
                    v.backup.uuid,
                    crate::catalog::format_time(v.backup.started_at)
                )));
            }
            if v.kind == FileKind::Dir {
                let uuid = v.backup.uuid.clone();
                cat.files_of_backup(&uuid, |f| {
                    if under(&f.path, path) && f.kind != FileKind::Deleted && keep(&f) {
                        out.push(member(f));
                    }
                    Ok(())
                })?;
            } else if keep(&v) {
                out.push(member(v));
            }
        }
        Selection::Tape(label) => {
            cat.volume(label)?;
            cat.files_on_volume(label, |f| {
                if f.kind != FileKind::Deleted && keep(&f) {
                    out.push(member(f));
                }
                Ok(())
            })?;
        }
        Selection::Backup(id) => {
            let b = resolve_backup(cat, id)?;
            cat.files_of_backup(&b.uuid, |f| {
                if f.kind != FileKind::Deleted && keep(&f) {
                    out.push(member(f));
                }
                Ok(())
            })?;
        }
        Selection::Job { name, at } => {
            if !cat.job_exists(name)? {
                let known = cat.job_names()?;
                let hint = crate::catalog::closest(name, known.iter().map(String::as_str))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(bad(format!("no job `{name}` in the catalogue{hint}")));
            }
            // The catalogue's definition of a job's state (`catalog::chains`): the newest
            // complete chain at `at`, newest version per path, deletions applied.
            let state = cat.chain_state(name, *at)?.ok_or_else(|| {
                bad(format!(
                    "job `{name}` has no complete backup chain at {}",
                    crate::catalog::format_time(*at)
                ))
            })?;
            out.extend(state.members.into_iter().filter(|v| keep(v)).map(member));
        }
        Selection::Patterns => {
            if patterns.is_empty() {
                return Err(bad(
                    "nothing selected: give --file, --tape, --backup, --job or --pattern",
                ));
            }
            let mut newest: BTreeMap<String, FileVersion> = BTreeMap::new();
            let first = &patterns[0];
            let found = if first.whole_path && !first.glob {
                // A directory and everything under it: from every backup that holds it.
                let mut found = Vec::new();
                let mut seen = HashSet::new();
                for v in cat.find_path(&first.text)? {
                    if v.kind != FileKind::Dir {
                        found.push(v);
                        continue;
                    }
                    if !seen.insert(v.backup.uuid.clone()) {
                        continue;
                    }
                    cat.files_of_backup(&v.backup.uuid, |f| {
                        if under(&f.path, &first.text) {
                            found.push(f);
                        }
                        Ok(())
                    })?;
                }
                found
            } else {
                // Candidates from the name index for the first pattern; all must match.
                let (found, more) = cat.find_pattern(first.name_part(), PATTERN_LIMIT)?;
                if more {
                    return Err(bad(format!(
                        "the pattern matches more than {PATTERN_LIMIT} versions; narrow it, or \
                         restore a --tape, --backup or --job"
                    )));
                }
                found
            };
            for v in found.into_iter().filter(|v| keep(v)) {
                let newer = newest
                    .get(&v.path)
                    .is_none_or(|o| v.backup.started_at > o.backup.started_at);
                if newer {
                    newest.insert(v.path.clone(), v);
                }
            }
            out.extend(
                newest
                    .into_values()
                    .filter(|v| v.kind != FileKind::Deleted)
                    .map(member),
            );
        }
    }
    resolve_hard_links(cat, &mut out)?;
    Ok(out)
}

/// A hard link whose target is restored with it stays a link to it; one whose target is
/// not is restored from the target's data (further links to the same target then link
/// to that copy).
fn resolve_hard_links(cat: &Catalog, members: &mut [Member]) -> Result<(), PlanError> {
    let selected: HashSet<String> = members
        .iter()
        .filter(|m| m.version.kind != FileKind::HardLink)
        .map(|m| m.path.clone())
        .collect();
    let mut materialised: HashMap<(String, String), String> = HashMap::new();
    for m in members.iter_mut() {
        if m.version.kind != FileKind::HardLink {
            continue;
        }
        let Some(target) = m.version.link.clone() else {
            continue;
        };
        if selected.contains(&target) {
            m.link_to = Some(target);
            continue;
        }
        let key = (m.version.backup.uuid.clone(), target.clone());
        if let Some(first) = materialised.get(&key) {
            m.link_to = Some(first.clone());
            continue;
        }
        let source = cat
            .find_path(&target)?
            .into_iter()
            .find(|v| v.backup.uuid == m.version.backup.uuid && v.kind == FileKind::File);
        if let Some(source) = source {
            materialised.insert(key, m.path.clone());
            m.version = source;
        }
        // Else it stays a link to a target that is not there: reported when made.
    }
    Ok(())
}

/// Turns members into visits and runs.
pub fn plan(members: Vec<Member>, opts: &PlanOptions<'_>) -> Plan {
    let mut unreadable = Vec::new();
    let mut reads: Vec<(String, PartRead)> = Vec::new();
    let mut data_bytes = 0u64;
    for (i, m) in members.iter().enumerate() {
        let segs = &m.version.segments;
        if segs.is_empty() || segs.iter().any(|s| s.block.is_none()) {
            unreadable.push(Unreadable {
                path: m.path.clone(),
                reason: "the catalogue does not know where it is on tape (imported history, \
                         or a backup that never wrote it)"
                    .into(),
            });
            continue;
        }
        if m.version.kind == FileKind::File {
            data_bytes += m.version.size.max(0) as u64;
        }
        for (k, s) in segs.iter().enumerate() {
            reads.push((
                s.volume.clone(),
                PartRead {
                    member: i,
                    part: k,
                    parts: segs.len(),
                    tape_file: s.tape_file,
                    block: s.block.unwrap_or(0).max(0) as u64,
                    offset: s.offset.unwrap_or(0).max(0) as u64,
                    file_offset: s.file_offset.max(0) as u64,
                    length: if opts.headers_only || m.version.kind != FileKind::File {
                        0
                    } else {
                        s.length.max(0) as u64
                    },
                },
            ));
        }
    }
    let order = volume_order(&members, &reads);
    let mut visits: Vec<(String, Vec<PartRead>)> =
        order.iter().map(|v| (v.clone(), Vec::new())).collect();
    let first_visit: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, v)| (v.clone(), i))
        .collect();
    // Parts of a split member in visit order: a part whose volume comes too early goes to
    // a later visit of that volume.
    let mut visit_of: HashMap<(usize, usize), usize> = HashMap::new();
    reads.sort_by_key(|(_, r)| (r.member, r.part));
    for (volume, r) in reads {
        let mut v = first_visit[&volume];
        if r.part > 0 {
            if let Some(&before) = visit_of.get(&(r.member, r.part - 1)) {
                if v <= before {
                    v = match (before + 1..visits.len()).find(|&i| visits[i].0 == volume) {
                        Some(i) => i,
                        None => {
                            visits.push((volume.clone(), Vec::new()));
                            visits.len() - 1
                        }
                    };
                }
            }
        }
        visit_of.insert((r.member, r.part), v);
        visits[v].1.push(r);
    }
    let native = opts.model.native().max(1) as f64;
    let gap_limit = (native * opts.model.reposition_secs) as u64;
    let mut out = Vec::new();
    for (volume, mut reads) in visits.into_iter().filter(|(_, r)| !r.is_empty()) {
        let (block_size, location) = (opts.volume_info)(&volume);
        let b = block_size.max(512);
        reads.sort_by_key(|r| (r.tape_file, r.block, r.offset, r.member, r.part));
        let mut runs: Vec<Run> = Vec::new();
        let mut run_end = 0u64;
        for r in reads {
            let start = r.block * b + r.offset;
            let end = start + HEADER_GUESS + r.length.div_ceil(512) * 512;
            let joins = runs.last().is_some_and(|run| {
                run.tape_file == r.tape_file && start.saturating_sub(run_end) <= gap_limit
            });
            if joins {
                run_end = run_end.max(end);
                if let Some(run) = runs.last_mut() {
                    run.blocks = run_end.div_ceil(b) - run.first_block;
                    run.reads.push(r);
                }
            } else {
                run_end = end;
                runs.push(Run {
                    tape_file: r.tape_file,
                    first_block: r.block,
                    blocks: end.div_ceil(b) - r.block,
                    reads: vec![r],
                });
            }
        }
        let bytes: u64 = runs.iter().map(|r| r.blocks * b).sum();
        let mut secs = if opts.in_drive.as_deref() == Some(volume.as_str()) {
            0.0
        } else {
            TAPE_CHANGE_SECS
        };
        let mut at = 0u64;
        for run in &runs {
            let distance = run.first_block.abs_diff(at) * b;
            secs += opts.model.reposition_secs + distance as f64 / (native * LOCATE_SPEEDUP);
            secs += (run.blocks * b) as f64 / native;
            at = run.first_block + run.blocks;
        }
        out.push(Visit {
            volume,
            block_size: b,
            location,
            runs,
            bytes,
            est_secs: secs,
        });
    }
    Plan {
        tape_bytes: out.iter().map(|v| v.bytes).sum(),
        locates: out.iter().map(|v| v.runs.len()).sum(),
        est_secs: out.iter().map(|v| v.est_secs).sum(),
        visits: out,
        members,
        unreadable,
        data_bytes,
        model: opts.model.name.clone(),
    }
}

/// Volumes in the order they are visited: a volume holding the first part of a split
/// file before the one holding the next part; otherwise older backups first, then by
/// label.
fn volume_order(members: &[Member], reads: &[(String, PartRead)]) -> Vec<String> {
    let mut priority: BTreeMap<String, i64> = BTreeMap::new();
    for (volume, r) in reads {
        let t = members[r.member].version.backup.started_at;
        priority
            .entry(volume.clone())
            .and_modify(|p| *p = (*p).min(t))
            .or_insert(t);
    }
    let mut parts: HashMap<(usize, usize), &str> = HashMap::new();
    for (volume, r) in reads {
        parts.insert((r.member, r.part), volume);
    }
    let mut edges: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut indegree: BTreeMap<String, usize> = priority.keys().map(|k| (k.clone(), 0)).collect();
    for (_, r) in reads {
        if r.part == 0 {
            continue;
        }
        let (Some(from), Some(to)) = (
            parts.get(&(r.member, r.part - 1)),
            parts.get(&(r.member, r.part)),
        ) else {
            continue;
        };
        if from != to
            && edges
                .entry(from.to_string())
                .or_default()
                .insert(to.to_string())
        {
            *indegree.entry(to.to_string()).or_default() += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<(i64, String)>> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(v, _)| Reverse((priority[v], v.clone())))
        .collect();
    let mut order = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    while order.len() < priority.len() {
        let next = match ready.pop() {
            Some(Reverse((_, v))) => v,
            // A cycle: take the first remaining volume; the parts that come too early
            // for it get a second visit.
            None => match priority
                .iter()
                .filter(|(v, _)| !done.contains(*v))
                .min_by_key(|(v, p)| (**p, (*v).clone()))
            {
                Some((v, _)) => v.clone(),
                None => break,
            },
        };
        if !done.insert(next.clone()) {
            continue;
        }
        if let Some(tos) = edges.get(&next) {
            for to in tos {
                if let Some(d) = indegree.get_mut(to) {
                    *d = d.saturating_sub(1);
                    if *d == 0 && !done.contains(to) {
                        ready.push(Reverse((priority[to], to.clone())));
                    }
                }
            }
        }
        order.push(next);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BackupRef, BackupStatus, SegmentInfo};

    #[test]
    fn patterns_match_names_or_whole_paths() {
        assert!(PathPattern::new("*.JPG").matches("/a/b/x.jpg"));
        assert!(PathPattern::new("note").matches("/a/My-Notes.txt"));
        assert!(!PathPattern::new("note").matches("/note/x.txt"));
        assert!(PathPattern::new("/a/b").matches("/a/b/c/d"));
        assert!(PathPattern::new("/a/b/").matches("/a/b"));
        assert!(!PathPattern::new("/a/b").matches("/a/bc"));
        assert!(PathPattern::new("/a/*/c*").matches("/a/x/y/cz"));
        assert!(!PathPattern::new("/a/?/c").matches("/a/xy/c"));
    }

    #[test]
    fn dates_parse_in_the_forms_operators_write() {
        assert!((parse_when("now").unwrap() - crate::catalog::now()).abs() <= 1);
        assert_eq!(parse_when("@1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_when("2024-05-01T00:00:00Z").unwrap(), 1_714_521_600);
        let day_end = parse_when("2024-05-01").unwrap();
        let noon = parse_when("2024-05-01 12:00").unwrap();
        assert!(day_end > noon, "a bare date means the end of that day");
        assert!(parse_when("yesterday").is_err());
    }

    fn version(path: &str, started: i64, segs: Vec<(&str, i64, i64, i64)>) -> FileVersion {
        FileVersion {
            path: path.into(),
            kind: FileKind::File,
            size: segs.iter().map(|s| s.3).sum(),
            mtime_ns: None,
            mode: None,
            uid: None,
            gid: None,
            link: None,
            blake3: None,
            backup: BackupRef {
                uuid: "u".into(),
                label: None,
                job: None,
                kind: "full".into(),
                started_at: started,
                status: BackupStatus::Complete,
            },
            segments: segs
                .iter()
                .scan(0, |off, &(v, block, offset, len)| {
                    let s = SegmentInfo {
                        volume: v.into(),
                        tape_file: Some(1),
                        block: Some(block),
                        offset: Some(offset),
                        file_offset: *off,
                        length: len,
                    };
                    *off += len;
                    Some(s)
                })
                .collect(),
        }
    }

    #[test]
    fn reads_go_by_volume_then_position_with_split_files_in_order() {
        let members = vec![
            member(version("/z", 1, vec![("A", 9, 0, 10)])),
            member(version("/y", 1, vec![("B", 3, 0, 10)])),
            // Split from B (label order would visit it after A) onto A: B must come first.
            member(version(
                "/split",
                1,
                vec![("B", 5, 512, 100), ("A", 2, 0, 50)],
            )),
            member(version("/x", 1, vec![("A", 2, 4096, 10)])),
        ];
        let model = DriveModel::builtin("LTO-9").unwrap();
        let info = |_: &str| (65536u64, None);
        let p = plan(
            members,
            &PlanOptions {
                model: &model,
                headers_only: false,
                in_drive: None,
                volume_info: &info,
            },
        );
        let order: Vec<&str> = p.visits.iter().map(|v| v.volume.as_str()).collect();
        assert_eq!(order, ["B", "A"]);
        let a: Vec<(u64, u64)> = p.visits[1].runs[0]
            .reads
            .iter()
            .map(|r| (r.block, r.offset))
            .collect();
        assert_eq!(a, [(2, 0), (2, 4096), (9, 0)]);
        assert_eq!(p.locates, 2, "one LOCATE per volume: the gaps are small");
        assert_eq!(p.data_bytes, 180);
    }
}
