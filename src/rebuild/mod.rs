//! `catalog rebuild`: a volume's catalogue entries recreated from the tape alone.
//!
//! The loaded volume is read from BOT: its label (tape file 0) records the volume, then
//! every tape file is looked at. An index tape file (`TAPEDECK-INDEX-<uuid>.jsonl.zst`)
//! recreates its whole backup, on every volume its segments name (a spanned backup's
//! index is on its last volume). Data tape files are passed over with a filemark space;
//! with `--scan`, those no index describes (the index is damaged, or on another volume)
//! are read and recorded from their tar headers ([`tar_scan`]), data hashed on the way.
//!
//! Nothing is recorded twice: a backup the catalogue already has (by uuid) is skipped, a
//! tape file a recorded backup covers is not scanned, and a backup recorded from an index
//! replaces one scanned earlier from the same tape files. A backup whose recording fails
//! half-way is removed again, so the catalogue never holds half a backup.

pub mod import;
pub mod tar_scan;

use crate::catalog::{
    self, BackupStatus, Catalog, CatalogError, ChangeStamp, FileBatch, FileKind, FileRecord,
    KnownBackup, LabelRecord, NewBackup, SegmentRecord, VolumeStatus, ORIGIN_IMPORT, ORIGIN_INDEX,
    ORIGIN_SCAN,
};
use crate::index_read::{self, IndexLine, IndexReadError, Record};
use crate::interrupt::Interrupt;
use crate::label::{self, Label, LabelError, TapeStart};
use crate::tape::file_reader::TapeFileReader;
use crate::tape::{ReadOutcome, SpaceOutcome, TapeDrive, TapeError};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Read};
use tar_scan::{Cut, ScanEnd, ScanError};

/// How to rebuild.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Record data tape files no index describes from their tar headers.
    pub scan: bool,
    /// The cartridge's capacity, when the library knows it.
    pub capacity: Option<i64>,
    /// Where the volume is (e.g. `drive lto9`).
    pub location: Option<String>,
    /// Ctrl-C: stop after the current record, removing the backup being recorded.
    pub interrupt: Interrupt,
}

/// What the rebuild is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Looking at a tape file.
    TapeFile { tape_file: u64 },
    /// Records read from an index so far.
    Records { tape_file: u64, records: u64 },
    /// Bytes of a data tape file scanned so far.
    Scanned { tape_file: u64, bytes: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TapeFileKind {
    Data,
    Index,
    /// A filemark right after the previous one.
    Empty,
    /// Its first block could not be read.
    Unreadable,
}

/// One tape file of the volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TapeFileReport {
    pub tape_file: u64,
    /// Logical object number of its first block.
    pub first_block: u64,
    pub blocks: Option<u64>,
    pub kind: TapeFileKind,
    /// The backup it belongs to, when one is recorded.
    pub backup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Recorded now.
    Recorded,
    /// Recorded now, in place of backups scanned earlier from the same tape files.
    Replaced,
    /// The catalogue had it already: left as it was.
    Skipped,
}

/// A backup the rebuild met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub uuid: String,
    /// `index` or `scan`.
    pub source: &'static str,
    pub outcome: Outcome,
    pub status: BackupStatus,
    /// The data tape file on this volume.
    pub tape_file: Option<u64>,
    pub files: u64,
    pub bytes: u64,
    /// Its volumes, in order.
    pub volumes: Vec<String>,
    /// Scanned backups it replaced.
    pub replaced: Vec<String>,
    /// For a skipped backup: where the catalogue's record came from.
    pub origin: Option<String>,
}

/// What `catalog rebuild` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub volume: String,
    pub uuid: String,
    pub pool: Option<String>,
    pub block_size: u32,
    /// The catalogue knew the volume before.
    pub known_before: bool,
    /// Its status afterwards.
    pub status: VolumeStatus,
    pub tape_files: Vec<TapeFileReport>,
    pub backups: Vec<BackupReport>,
    /// What could not be recorded (damaged or unreadable tape files), one line each.
    pub problems: Vec<String>,
    /// What is worth knowing, one line each.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("{drive} holds no tape: load volume {wanted} into it first")]
    NoTape { drive: String, wanted: String },
    #[error("the tape in {drive} is blank: there is no volume on it to rebuild")]
    Blank { drive: String },
    #[error("the tape in {drive} holds {what}, not a tapedeck volume")]
    Foreign { drive: String, what: String },
    #[error("the tape in {drive} is volume {found}, not {wanted}: load {wanted} into {drive}")]
    WrongVolume {
        drive: String,
        found: String,
        wanted: String,
    },
    #[error(
        "volume {volume} belongs to pool {pool}, which this catalogue does not have: create \
         it first (`tapedeck pool create --name {pool} --retention DAYS`); the rebuild does not \
         guess how long its data must be kept"
    )]
    UnknownPool { volume: String, pool: String },
    #[error(transparent)]
    Tape(#[from] TapeError),
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Ctrl-C: the backups recorded whole stay, the one in progress was removed.
    #[error("interrupted")]
    Interrupted,
}

impl RebuildError {
    /// Errors the operator can fix (exit code 2): the wrong tape, a missing pool.
    pub fn is_bad_input(&self) -> bool {
        match self {
            RebuildError::NoTape { .. }
            | RebuildError::Blank { .. }
            | RebuildError::Foreign { .. }
            | RebuildError::WrongVolume { .. }
            | RebuildError::UnknownPool { .. } => true,
            RebuildError::Tape(e) | RebuildError::Label(LabelError::Tape(e)) => e.is_bad_input(),
            RebuildError::Label(_) | RebuildError::Interrupted => false,
            RebuildError::Catalog(e) => e.is_bad_input(),
        }
    }
}

/// Why reading an index or a data tape file stopped before its end.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Index(#[from] IndexReadError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the index is damaged: {0}")]
    Damaged(String),
    #[error("interrupted")]
    Interrupted,
    /// The catalogue has this backup: no need to read on.
    #[error("already in the catalogue")]
    Known(KnownBackup, Option<String>),
}

/// The volume being rebuilt (or imported).
struct Volume<'a> {
    id: i64,
    /// Its label in the catalogue.
    name: &'a str,
    pool: Option<String>,
    block: u32,
    interrupt: &'a Interrupt,
}

/// A tape file as the first pass found it.
struct Seen {
    tape_file: u64,
    start: u64,
    kind: TapeFileKind,
    /// An index on this volume recorded (or found recorded) a backup for it.
    covered_by: Option<String>,
    /// Why an index (or an unreadable tape file) recorded nothing.
    problem: Option<String>,
}

/// Rebuilds the catalogue entries of the volume `wanted` (label or barcode), which must
/// be loaded in `drive`.
pub fn rebuild_volume(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    wanted: &str,
    opts: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<RebuildReport, RebuildError> {
    let label = loaded_label(drive, cat, wanted)?;
    let block = label.block_size;
    let (volume, known_before) = cat.volume_from_label(
        &LabelRecord {
            label: &label.label,
            barcode: label.barcode.as_deref(),
            uuid: &label.uuid,
            pool: label.pool.as_deref(),
            media: label.media.as_deref(),
            capacity: opts.capacity,
            block_size: i64::from(block),
            used: i64::from(block),
            location: opts.location.as_deref(),
        },
        index_read::parse_time(&label.created),
    )?;
    let vol = Volume {
        id: volume.id,
        name: &label.label,
        pool: volume.pool.clone(),
        block,
        interrupt: &opts.interrupt,
    };
    let mut report = RebuildReport {
        volume: label.label.clone(),
        uuid: label.uuid.clone(),
        pool: volume.pool.clone(),
        block_size: block,
        known_before,
        status: volume.status,
        tape_files: Vec::new(),
        backups: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    drive.set_block_size(block)?;
    let (mut seen, end) = survey(drive, cat, &vol, &mut report, progress)?;
    let scanned = record_unindexed(drive, cat, &vol, &mut seen, opts, &mut report, progress)?;
    settle_problems(&seen, &scanned, opts, &mut report);
    finish_volume(cat, &vol, &seen, end, known_before, &mut report)?;
    Ok(report)
}

/// The label of the tape in `drive`, which must be volume `wanted`; a new volume's pool
/// must be in the catalogue.
fn loaded_label(
    drive: &mut dyn TapeDrive,
    cat: &Catalog,
    wanted: &str,
) -> Result<Label, RebuildError> {
    let drive_name = drive.name().to_string();
    if !drive.status()?.online {
        return Err(RebuildError::NoTape {
            drive: drive_name,
            wanted: wanted.to_string(),
        });
    }
    let label = match label::read_tape_start(drive)? {
        TapeStart::Labelled(l) => l,
        TapeStart::Blank => return Err(RebuildError::Blank { drive: drive_name }),
        TapeStart::Foreign(what) => {
            return Err(RebuildError::Foreign {
                drive: drive_name,
                what,
            })
        }
    };
    if label.label != wanted && label.barcode.as_deref() != Some(wanted) {
        return Err(RebuildError::WrongVolume {
            drive: drive_name,
            found: label.label.clone(),
            wanted: wanted.to_string(),
        });
    }
    if let (Some(pool), None) = (&label.pool, cat.find_volume(&label.label)?) {
        match cat.pool(pool) {
            Ok(_) => {}
            Err(CatalogError::UnknownPool { .. }) => {
                return Err(RebuildError::UnknownPool {
                    volume: label.label.clone(),
                    pool: pool.clone(),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(label)
}

/// First pass, from the label's filemark to end of data: every tape file looked at,
/// indexes recorded, data passed over. Returns the tape files and the end-of-data object.
fn survey(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    vol: &Volume<'_>,
    report: &mut RebuildReport,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<Seen>, u64), RebuildError> {
    let mut seen: Vec<Seen> = Vec::new();
    let mut end = drive.position()?;
    let mut more = drive.space_filemarks(1)? == SpaceOutcome::Done;
    let mut tape_file = 1u64;
    while more {
        if vol.interrupt.requested() {
            return Err(RebuildError::Interrupted);
        }
        let start = drive.position()?;
        end = start;
        progress(Progress::TapeFile { tape_file });
        let look = look_at(drive, cat, vol, tape_file, &seen, report, progress)?;
        more = look.more;
        let Some(kind) = look.kind else { break };
        if let (TapeFileKind::Index, Some(uuid)) = (kind, &look.backup) {
            // The index describes the tape file before it.
            if let Some(data) = seen.last_mut().filter(|s| {
                matches!(s.kind, TapeFileKind::Data | TapeFileKind::Unreadable)
                    && s.tape_file + 1 == tape_file
            }) {
                data.covered_by = Some(uuid.clone());
            }
        }
        seen.push(Seen {
            tape_file,
            start,
            kind,
            covered_by: look.backup,
            problem: look.problem,
        });
        end = drive.position()?;
        tape_file += 1;
    }
    Ok((seen, end))
}

/// Second pass: data tape files no index on this volume describes are left alone when the
/// catalogue has them, noted, or with `--scan` recorded from their tar headers. Returns the
/// tape files scanned.
fn record_unindexed(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    vol: &Volume<'_>,
    seen: &mut [Seen],
    opts: &Options,
    report: &mut RebuildReport,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<u64>, RebuildError> {
    let before_a_problem: Vec<u64> = seen
        .iter()
        .filter(|s| s.problem.is_some())
        .map(|s| s.tape_file - 1)
        .collect();
    let mut scanned = Vec::new();
    for s in seen.iter_mut().filter(|s| s.kind == TapeFileKind::Data) {
        if s.covered_by.is_some() {
            continue;
        }
        if opts.interrupt.requested() {
            return Err(RebuildError::Interrupted);
        }
        let known = cat.backups_in_tape_file(vol.id, s.tape_file as i64)?;
        // A backup recorded by an earlier scan whose records are damaged is scanned again
        // (as one recorded from an index is recorded again from it); it is replaced once
        // the new scan is recorded.
        let mut rescan = None;
        if let Some(k) = known.first() {
            let damage = cat.records_damage(k.id)?.map(|e| damage_in_records(&e));
            match damage {
                Some(_) if k.origin == ORIGIN_SCAN && opts.scan => rescan = Some(k.clone()),
                Some(e) if k.origin == ORIGIN_SCAN => {
                    report.problems.push(format!(
                        "tape file {}: backup {}, recorded from its tar headers, has damaged \
                         member records ({e}); --scan records it again",
                        s.tape_file, k.uuid
                    ));
                    s.covered_by = Some(k.uuid.clone());
                    continue;
                }
                Some(e) => {
                    report.problems.push(format!(
                        "tape file {}: part of backup {} ({}), whose member records are \
                         damaged ({e}): rebuild the volume that holds its index",
                        s.tape_file, k.uuid, k.origin
                    ));
                    s.covered_by = Some(k.uuid.clone());
                    continue;
                }
                None => {
                    report.notes.push(format!(
                        "tape file {}: part of backup {}, which the catalogue already has ({})",
                        s.tape_file, k.uuid, k.origin
                    ));
                    s.covered_by = Some(k.uuid.clone());
                    continue;
                }
            }
        }
        if !opts.scan {
            if before_a_problem.contains(&s.tape_file) {
                continue; // the problem after it says what to do
            }
            report.notes.push(format!(
                "tape file {}: data that no index on this volume describes: the start of a \
                 backup that continues on other volumes (rebuild the last of them, which holds \
                 its index), or a backup that failed before its index was written; --scan \
                 records it from its tar headers",
                s.tape_file
            ));
            continue;
        }
        let scan = scan_tape_file(
            drive,
            cat,
            vol,
            s.tape_file,
            s.start,
            ORIGIN_SCAN,
            &mut report.notes,
            progress,
        )?;
        match scan {
            Ok(mut b) => {
                if let Some(old) = rescan {
                    cat.forget_backup(old.id)?;
                    b.outcome = Outcome::Replaced;
                    b.replaced.push(old.uuid);
                }
                s.covered_by = Some(b.uuid.clone());
                scanned.push(s.tape_file);
                report.backups.push(b);
            }
            Err(problem) => report.problems.push(problem),
        }
    }
    Ok(scanned)
}

/// What is wrong with a backup's member records, without the advice to rebuild (the
/// rebuild is what is running).
fn damage_in_records(e: &CatalogError) -> String {
    match e {
        CatalogError::Damaged { record, what, .. } => match record {
            Some(r) => format!("member record {r}: {what}"),
            None => what.clone(),
        },
        e => e.to_string(),
    }
}

/// A damaged index or an unreadable tape file is a problem, unless its data is recorded
/// anyway (scanned now or before, or described by the next index): then a note.
fn settle_problems(seen: &[Seen], scanned: &[u64], opts: &Options, report: &mut RebuildReport) {
    for s in seen {
        let Some(p) = &s.problem else { continue };
        let data_before = seen
            .iter()
            .find(|d| d.tape_file + 1 == s.tape_file && d.kind == TapeFileKind::Data);
        if let (TapeFileKind::Unreadable, Some(uuid)) = (s.kind, &s.covered_by) {
            report.notes.push(format!(
                "{p}; it is backup {uuid}'s data, recorded from its index"
            ));
        } else if let Some(d) = data_before {
            if d.covered_by.is_some() {
                let how = if scanned.contains(&d.tape_file) {
                    "was recorded from its tar headers instead"
                } else {
                    "is in the catalogue already"
                };
                report
                    .notes
                    .push(format!("{p}; data tape file {} {how}", d.tape_file));
            } else if opts.scan {
                report.problems.push(p.clone());
            } else {
                report.problems.push(format!(
                    "{p}; --scan records data tape file {} from its tar headers",
                    d.tape_file
                ));
            }
        } else {
            report.problems.push(p.clone());
        }
    }
}

/// Records what the volume holds now: its tape files in the report, space used and tape
/// files in the catalogue, and its status.
fn finish_volume(
    cat: &mut Catalog,
    vol: &Volume<'_>,
    seen: &[Seen],
    end: u64,
    known_before: bool,
    report: &mut RebuildReport,
) -> Result<(), RebuildError> {
    for (i, s) in seen.iter().enumerate() {
        let next = seen.get(i + 1).map_or(end, |n| n.start);
        report.tape_files.push(TapeFileReport {
            tape_file: s.tape_file,
            first_block: s.start,
            blocks: next.checked_sub(s.start + 1),
            kind: s.kind,
            backup: s.covered_by.clone(),
        });
    }
    // The label and every tape file seen, each ended by a filemark.
    let total_files = seen.len() as u64 + 1;
    let used = end.saturating_sub(total_files) * u64::from(vol.block);
    cat.record_volume_read(vol.id, used as i64, total_files as i64)?;
    // A volume new to the catalogue whose last tape file is data (no index after it)
    // reached its end in the middle of a backup, or a backup failed there: it takes no
    // more. (A volume the catalogue knew keeps the status it has.)
    let label = vol.name;
    if !known_before && seen.last().is_some_and(|s| s.kind == TapeFileKind::Data) {
        let v = cat.volume(label)?;
        if v.status != VolumeStatus::Full && v.status.can_become(VolumeStatus::Full) {
            cat.set_volume_status(label, VolumeStatus::Full, None)?;
            report.notes.push(format!(
                "volume {label} is marked full: it ends with data and no index after it"
            ));
        }
    }
    for id in cat.forget_superseded_orphans()? {
        report.notes.push(format!(
            "removed the records left under backup #{id}, which has no row in the backups \
             table: its tape files are recorded again"
        ));
    }
    report.status = cat.volume(label)?.status;
    Ok(())
}

/// What looking at one tape file found.
#[derive(Default)]
struct Look {
    /// None: end of data, no tape file here.
    kind: Option<TapeFileKind>,
    /// The backup an index recorded or found recorded.
    backup: Option<String>,
    /// Why an index recorded nothing.
    problem: Option<String>,
    /// Another tape file may follow (the tape is at its start).
    more: bool,
}

/// Reads as much of `buf` as the tape file has.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Moves past the end of the tape file a reader stopped in; false when the tape has no
/// more tape files.
fn past_tape_file(
    drive: &mut dyn TapeDrive,
    ended: Option<ReadOutcome>,
) -> Result<bool, TapeError> {
    match ended {
        Some(ReadOutcome::Filemark) => Ok(true),
        Some(_) => Ok(false),
        None => Ok(drive.space_filemarks(1)? == SpaceOutcome::Done),
    }
}

fn look_at(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    vol: &Volume<'_>,
    tape_file: u64,
    seen: &[Seen],
    report: &mut RebuildReport,
    progress: &mut dyn FnMut(Progress),
) -> Result<Look, RebuildError> {
    let mut reader = TapeFileReader::new(drive, vol.block as usize);
    let mut first = [0u8; crate::tarfmt::RECORD];
    let got = match read_up_to(&mut reader, &mut first) {
        Ok(n) => n,
        Err(e) => {
            drop(reader);
            let problem = format!("tape file {tape_file}: cannot be read ({e})");
            let more = match drive.space_filemarks(1) {
                Ok(outcome) => outcome == SpaceOutcome::Done,
                Err(e) => {
                    report.problems.push(format!(
                        "the tape cannot be spaced past tape file {tape_file} ({e}): the rest \
                         of the volume was not read"
                    ));
                    false
                }
            };
            return Ok(Look {
                kind: Some(TapeFileKind::Unreadable),
                problem: Some(problem),
                more,
                ..Look::default()
            });
        }
    };
    if got == 0 {
        let ended = reader.ended();
        return Ok(match ended {
            Some(ReadOutcome::Filemark) => Look {
                kind: Some(TapeFileKind::Empty),
                more: true,
                ..Look::default()
            },
            _ => Look::default(),
        });
    }
    if index_read::index_member_in(&first[..got]).is_none() {
        let ended = reader.ended();
        drop(reader);
        let more = past_tape_file(drive, ended)?;
        return Ok(Look {
            kind: Some(TapeFileKind::Data),
            more,
            ..Look::default()
        });
    }
    // The data this index follows, on this volume.
    let data = seen
        .last()
        .filter(|s| s.kind == TapeFileKind::Data && s.tape_file + 1 == tape_file)
        .map(|s| (s.tape_file, s.start));
    let input = io::Cursor::new(first[..got].to_vec()).chain(&mut reader);
    let outcome = record_index(
        input,
        cat,
        vol,
        tape_file,
        data,
        &mut report.notes,
        progress,
    )?;
    let ended = reader.ended();
    drop(reader);
    let more = match past_tape_file(drive, ended) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(format!(
                "the tape cannot be spaced past tape file {tape_file} ({e}): the rest of the \
                 volume was not read"
            ));
            false
        }
    };
    let (backup, problem) = match outcome {
        Ok(b) => {
            let uuid = b.uuid.clone();
            report.backups.push(b);
            (Some(uuid), None)
        }
        Err(problem) => (None, Some(problem)),
    };
    Ok(Look {
        kind: Some(TapeFileKind::Index),
        backup,
        problem,
        more,
    })
}

/// The index being read into the catalogue.
enum IndexState<'c> {
    Waiting(&'c mut Catalog),
    Recording(Box<Recording<'c>>),
    Done,
}

struct Recording<'c> {
    batch: FileBatch<'c>,
    id: i64,
    uuid: String,
    /// Volume labels the segments name -> volume ids.
    volumes: HashMap<String, i64>,
    records: u64,
    /// The parent the header names, when the catalogue does not have it.
    missing_parent: Option<String>,
    /// The backup's block size, that of every volume it is on.
    block_size: i64,
}

/// Reads an index tape file into the catalogue. The outer error is the catalogue's; the
/// inner one a problem to report (nothing of that backup is left recorded).
fn record_index(
    input: impl Read,
    cat: &mut Catalog,
    vol: &Volume<'_>,
    tape_file: u64,
    data: Option<(u64, u64)>,
    notes: &mut Vec<String>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Result<BackupReport, String>, RebuildError> {
    let mut state = IndexState::Waiting(&mut *cat);
    let read = index_read::read_index_tape_file(input, None, |line| {
        on_index_line(&mut state, line, vol, tape_file, progress)
    });
    let (batch, id, uuid, records, missing_parent) =
        match std::mem::replace(&mut state, IndexState::Done) {
            IndexState::Recording(r) => (
                Some(r.batch),
                Some(r.id),
                Some(r.uuid),
                r.records,
                r.missing_parent,
            ),
            _ => (None, None, None, 0, None),
        };
    let finished = match (read, batch) {
        (Ok(summary), Some(batch)) => batch.finish().map(|_| summary).map_err(Stop::from),
        (Ok(summary), None) => Ok(summary),
        (Err(e), _) => Err(e),
    };
    let summary = match finished {
        Ok(s) => s,
        Err(Stop::Known(k, linked)) => {
            notes.extend(linked);
            return Ok(Ok(BackupReport {
                volumes: cat.backup_parts(k.id)?.into_iter().map(|p| p.1).collect(),
                uuid: k.uuid,
                source: "index",
                outcome: Outcome::Skipped,
                status: k.status,
                tape_file: data.map(|d| d.0),
                files: 0,
                bytes: 0,
                replaced: Vec::new(),
                origin: Some(k.origin),
            }));
        }
        Err(e) => {
            if let Some(id) = id {
                cat.forget_backup(id)?;
            }
            if matches!(e, Stop::Interrupted) {
                return Err(RebuildError::Interrupted);
            }
            let which = uuid.map(|u| format!(" of backup {u}")).unwrap_or_default();
            return Ok(Err(format!(
                "tape file {tape_file}: the index{which} cannot be read ({e}); nothing recorded \
                 from it"
            )));
        }
    };
    let id = match id {
        Some(id) => id,
        None => {
            return Ok(Err(format!(
                "tape file {tape_file}: the index has no header"
            )))
        }
    };
    let h = &summary.header;
    let t = &summary.trailer;
    if let Some((d, start)) = data {
        cat.set_part_start(id, vol.id, d as i64, start as i64)?;
    }
    let mut replaced = Vec::new();
    let parts = cat.backup_parts(id)?;
    for (volume_id, _, part_file) in &parts {
        let Some(part_file) = part_file else { continue };
        for k in cat.backups_in_tape_file(*volume_id, *part_file)? {
            if k.id != id && k.origin == ORIGIN_SCAN {
                cat.forget_backup(k.id)?;
                replaced.push(k.uuid);
            }
        }
    }
    let status = match BackupStatus::parse(&t.status) {
        BackupStatus::Running => BackupStatus::Failed,
        s => s,
    };
    let started = index_read::parse_time(&h.started).unwrap_or(0);
    let finished = index_read::parse_time(&t.finished).unwrap_or(started);
    let error = (status != BackupStatus::Complete).then(|| {
        format!(
            "the backup ended {} (recorded from its on-tape index)",
            t.status
        )
    });
    cat.finish_backup(id, status, finished, error.as_deref())?;
    // Every volume but the last was filled up by this backup.
    if let Some((_, last, _)) = parts.last() {
        for (_, label, _) in &parts {
            if label == last {
                continue;
            }
            let v = cat.volume(label)?;
            if v.status != VolumeStatus::Full && v.status.can_become(VolumeStatus::Full) {
                cat.set_volume_status(label, VolumeStatus::Full, None)?;
            }
        }
    }
    if let Some(p) = missing_parent {
        notes.push(format!(
            "backup {} ({}) builds on backup {p}, which the catalogue does not have: \
             rebuild the volume holding {p}, then this one again to link them",
            h.uuid, h.kind
        ));
    }
    let mut volumes: Vec<String> = Vec::new();
    for (_, label, _) in parts {
        if !volumes.contains(&label) {
            volumes.push(label);
        }
    }
    Ok(Ok(BackupReport {
        uuid: h.uuid.clone(),
        source: "index",
        outcome: if replaced.is_empty() {
            Outcome::Recorded
        } else {
            Outcome::Replaced
        },
        status,
        tape_file: data.map(|d| d.0),
        files: records,
        bytes: t.bytes,
        volumes,
        replaced,
        origin: None,
    }))
}

fn on_index_line(
    state: &mut IndexState<'_>,
    line: IndexLine,
    vol: &Volume<'_>,
    tape_file: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), Stop> {
    match line {
        IndexLine::Header(h) => {
            let IndexState::Waiting(cat) = std::mem::replace(state, IndexState::Done) else {
                return Err(Stop::Damaged("a second header".into()));
            };
            let known = cat.known_backup(&h.uuid)?;
            // A backup whose records are damaged is recorded again from its index, in place.
            let damaged = match &known {
                Some(k) if cat.records_damage(k.id)?.is_some() => {
                    cat.clear_records(k.id)?;
                    Some(k.id)
                }
                _ => None,
            };
            if let Some(k) = known.filter(|_| damaged.is_none()) {
                // Recorded before its parent was: link them now that the parent may be.
                let linked = match (&h.parent, k.parent_id) {
                    (Some(p), None) if cat.link_parent(k.id, p)? => {
                        Some(format!("backup {} is now linked to its parent {p}", h.uuid))
                    }
                    _ => None,
                };
                return Err(Stop::Known(k, linked));
            }
            if !matches!(h.kind.as_str(), "full" | "incremental" | "differential") {
                return Err(Stop::Damaged(format!("unknown backup kind `{}`", h.kind)));
            }
            // A parent the catalogue does not have yet is linked when this backup's
            // volume is rebuilt again after the parent's.
            let parent = match &h.parent {
                Some(p) if cat.known_backup(p)?.is_some() => Some(p.as_str()),
                _ => None,
            };
            let missing_parent = h.parent.clone().filter(|_| parent.is_none());
            let started_at = index_read::parse_time(&h.started).unwrap_or(0);
            let id = match damaged {
                Some(id) => id,
                None => cat.begin_backup(&NewBackup {
                    uuid: &h.uuid,
                    job: h.job.as_deref(),
                    label: h.label.as_deref(),
                    kind: &h.kind,
                    parent_uuid: parent,
                    pool: vol.pool.as_deref(),
                    started_at,
                    drive: None,
                    strategy: None,
                    block_size: Some(i64::from(h.block_size)),
                    origin: ORIGIN_INDEX,
                })?,
            };
            let mut volumes = HashMap::new();
            volumes.insert(vol.name.to_string(), vol.id);
            *state = IndexState::Recording(Box::new(Recording {
                batch: cat.file_batch(id),
                id,
                uuid: h.uuid,
                volumes,
                records: 0,
                missing_parent,
                block_size: i64::from(h.block_size),
            }));
            Ok(())
        }
        IndexLine::Record(r) => {
            if vol.interrupt.requested() {
                return Err(Stop::Interrupted);
            }
            let IndexState::Recording(rec) = state else {
                return Err(Stop::Damaged("a record before the header".into()));
            };
            let stamp = match (r.ino, r.ctime) {
                (Some(ino), Some(ctime_ns)) => Some(ChangeStamp { ino, ctime_ns }),
                _ => None,
            };
            let file = file_from_record(r, rec, vol)?;
            rec.batch.push_stamped(file, stamp)?;
            rec.records += 1;
            if rec.records % 10_000 == 0 {
                progress(Progress::Records {
                    tape_file,
                    records: rec.records,
                });
            }
            Ok(())
        }
    }
}

fn int(v: u64, what: &str) -> Result<i64, Stop> {
    i64::try_from(v).map_err(|_| Stop::Damaged(format!("{what} {v} is out of range")))
}

/// The path of a member as the catalogue keeps it: absolute, with a name.
fn catalogue_path(name: &str) -> Option<String> {
    let trimmed = name.trim_start_matches("./").trim_matches('/');
    let last = trimmed.rsplit('/').next()?;
    (!last.is_empty() && last != "." && last != "..").then(|| format!("/{trimmed}"))
}

fn kind_from_name(name: &str) -> Option<FileKind> {
    Some(match name {
        "file" => FileKind::File,
        "dir" => FileKind::Dir,
        "symlink" => FileKind::Symlink,
        "hardlink" => FileKind::HardLink,
        "char" => FileKind::CharDevice,
        "block" => FileKind::BlockDevice,
        "fifo" => FileKind::Fifo,
        "socket" => FileKind::Socket,
        "deleted" => FileKind::Deleted,
        _ => return None,
    })
}

fn file_from_record(
    r: Record,
    rec: &mut Recording<'_>,
    vol: &Volume<'_>,
) -> Result<FileRecord, Stop> {
    let path = catalogue_path(&r.path)
        .ok_or_else(|| Stop::Damaged(format!("`{}` is not a path to a file", r.path)))?;
    let kind = kind_from_name(&r.kind)
        .ok_or_else(|| Stop::Damaged(format!("`{}` has unknown type `{}`", r.path, r.kind)))?;
    let mut segments = Vec::with_capacity(r.segments.len());
    for s in &r.segments {
        let volume_id = match rec.volumes.get(&s.volume) {
            Some(&id) => id,
            None => {
                // Another volume of a spanned backup: known by its label until rebuilt.
                let cat = rec.batch.catalog()?;
                let id = cat
                    .volume_of_backup(&s.volume, vol.pool.as_deref(), rec.block_size)
                    .map_err(|e| match e {
                        CatalogError::Invalid(m) => Stop::Damaged(m),
                        e => Stop::Catalog(e),
                    })?
                    .id;
                rec.volumes.insert(s.volume.clone(), id);
                id
            }
        };
        segments.push(SegmentRecord {
            volume_id,
            tape_file: Some(int(s.tape_file, "tape file")?),
            block: Some(int(s.block, "block")?),
            offset: Some(int(s.offset, "offset")?),
            file_offset: int(s.file_offset, "file offset")?,
            length: int(s.length, "length")?,
        });
    }
    Ok(FileRecord {
        path,
        kind,
        size: int(r.size, "size")?,
        mtime_ns: Some(r.mtime),
        mode: Some(i64::from(r.mode)),
        uid: Some(i64::from(r.uid)),
        gid: Some(i64::from(r.gid)),
        link: r.link,
        blake3: r.blake3.as_deref().and_then(index_read::parse_blake3),
        segments,
    })
}

/// Records data tape file `tape_file` (starting at object `start`) from its tar headers
/// as a backup of its own, of `origin` ([`ORIGIN_SCAN`] or [`ORIGIN_IMPORT`]). The inner
/// error is a problem to report: nothing of that tape file is left recorded.
#[allow(clippy::too_many_arguments)]
fn scan_tape_file(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    vol: &Volume<'_>,
    tape_file: u64,
    start: u64,
    origin: &'static str,
    notes: &mut Vec<String>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Result<BackupReport, String>, RebuildError> {
    progress(Progress::TapeFile { tape_file });
    drive.locate(start)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let how = if origin == ORIGIN_IMPORT {
        "imported"
    } else {
        "scanned"
    };
    let note = format!("{how} from {} tape file {tape_file}", vol.name);
    let id = cat.begin_backup(&NewBackup {
        uuid: &uuid,
        label: Some(&note),
        kind: "full",
        pool: vol.pool.as_deref(),
        started_at: 0,
        block_size: Some(i64::from(vol.block)),
        origin,
        ..Default::default()
    })?;
    let block = u64::from(vol.block);
    let mut newest = 0i64;
    let mut skipped = 0u64;
    let mut data_bytes = 0u64;
    let mut members = 0u64;
    let walked = {
        let mut reader = TapeFileReader::new(drive, vol.block as usize);
        let mut batch = cat.file_batch(id);
        let mut last_report = 0u64;
        let result = tar_scan::walk(&mut reader, true, |m| {
            if vol.interrupt.requested() {
                return Err(Stop::Interrupted);
            }
            newest = newest.max(m.mtime_ns.div_euclid(1_000_000_000));
            data_bytes += m.length;
            members += 1;
            let Some(path) = catalogue_path(&m.name) else {
                skipped += 1;
                return Ok(());
            };
            let link = match (m.kind, &m.link) {
                (FileKind::HardLink, Some(t)) => catalogue_path(t),
                (_, l) => l.clone(),
            };
            let segment = SegmentRecord {
                volume_id: vol.id,
                tape_file: Some(tape_file as i64),
                block: Some((start + m.start / block) as i64),
                offset: Some((m.start % block) as i64),
                file_offset: m.file_offset as i64,
                length: m.length as i64,
            };
            batch.push(FileRecord {
                path,
                kind: m.kind,
                size: i64::try_from(m.size).unwrap_or(i64::MAX),
                mtime_ns: Some(m.mtime_ns),
                mode: Some(i64::from(m.mode)),
                uid: i64::try_from(m.uid).ok(),
                gid: i64::try_from(m.gid).ok(),
                link,
                blake3: m.blake3,
                segments: vec![segment],
            })?;
            if m.start / (64 << 20) != last_report {
                last_report = m.start / (64 << 20);
                progress(Progress::Scanned {
                    tape_file,
                    bytes: m.start,
                });
            }
            Ok::<(), Stop>(())
        });
        result.and_then(|summary| Ok((summary, batch.finish()?)))
    };
    let (summary, files) = match walked {
        Ok(s) => s,
        Err(e) => {
            cat.forget_backup(id)?;
            if matches!(e, Stop::Interrupted) {
                return Err(RebuildError::Interrupted);
            }
            return Ok(Err(format!(
                "tape file {tape_file}: cannot be scanned ({e}), after {members} members \
                 ({} of data) were read; nothing recorded from it",
                crate::units::format_size(data_bytes)
            )));
        }
    };
    cat.set_part_start(id, vol.id, tape_file as i64, start as i64)?;
    cat.set_backup_started(id, newest)?;
    let (status, error) = match &summary.end {
        ScanEnd::EndOfArchive => (BackupStatus::Complete, None),
        ScanEnd::Truncated(cut) => (
            BackupStatus::Failed,
            Some(format!(
                "recorded from the tar headers of {}: the tape file ends {} without the \
                 end-of-archive marker (the backup continues on another volume, or was cut off)",
                vol.name,
                match cut {
                    Cut::BetweenMembers => "after a whole member",
                    Cut::InData => "inside a member's data",
                    Cut::InHeaders { .. } => "inside a member's headers",
                }
            )),
        ),
    };
    // Protection runs from now: when the backup really ended is not on tape.
    cat.finish_backup(id, status, catalog::now(), error.as_deref())?;
    if skipped > 0 {
        notes.push(format!(
            "tape file {tape_file}: {skipped} members without a usable name were left out"
        ));
    }
    notes.extend(
        summary
            .notes
            .iter()
            .map(|n| format!("tape file {tape_file}: {n}")),
    );
    Ok(Ok(BackupReport {
        uuid,
        source: "scan",
        outcome: Outcome::Recorded,
        status,
        tape_file: Some(tape_file),
        files,
        bytes: data_bytes,
        volumes: vec![vol.name.to_string()],
        replaced: Vec::new(),
        origin: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_become_absolute_paths_with_a_name() {
        assert_eq!(
            catalogue_path("home/me/a.txt").as_deref(),
            Some("/home/me/a.txt")
        );
        assert_eq!(catalogue_path("/home/me/").as_deref(), Some("/home/me"));
        assert_eq!(catalogue_path("./etc/x").as_deref(), Some("/etc/x"));
        for nameless in ["", "/", "./", "a/..", "."] {
            assert_eq!(catalogue_path(nameless), None, "{nameless:?}");
        }
    }

    #[test]
    fn every_kind_the_index_writes_is_read() {
        for k in [
            FileKind::File,
            FileKind::Dir,
            FileKind::Symlink,
            FileKind::HardLink,
            FileKind::CharDevice,
            FileKind::BlockDevice,
            FileKind::Fifo,
            FileKind::Socket,
            FileKind::Deleted,
        ] {
            assert_eq!(kind_from_name(k.as_str()), Some(k));
        }
        assert_eq!(kind_from_name("door"), None);
    }
}
