//! `catalog import-tape`: a tape another tool wrote (pytp's plain GNU tar tape files,
//! `tar | mbuffer > /dev/nst0`) catalogued so that `find`, `restore` and `verify` work on
//! it like on any volume.
//!
//! The tape is read from BOT to end of data. Its block size is that of its first block;
//! its identity, with no label to give one, is the BLAKE3 of that block
//! (`first-block:<hex>`), so importing it again finds the same volume. Every tape file is
//! recorded as a backup of its own (origin `import`) from its tar headers, with each
//! member's place (tape file, block, offset) and the BLAKE3 of its data, by the scanner
//! `catalog rebuild --scan` uses. Empty tape files (filemarks at BOT, or two in a row) are
//! passed over; a tape file that cannot be read or is not a tar archive is reported by
//! number with what was read of it, and the others are recorded.
//!
//! The volume is read-only (`volumes.read_only`) and full: tapedeck never writes it.
//!
//! Nothing is recorded twice: a tape file the catalogue has from an earlier import is
//! passed over. Where `migrate-pytp` recorded the backup of a tape file from pytp's
//! snapshot (same volume, same tape file), the two are one backup: the one read from tape
//! keeps its members and takes the snapshot's identity (uuid, job, kind, parent, time).

use super::{scan_tape_file, Progress, RebuildError, Volume};
use crate::catalog::{
    BackupStatus, Catalog, CatalogError, ForeignVolume, VolumeStatus, ORIGIN_IMPORT,
};
use crate::interrupt::Interrupt;
use crate::label::{self, Label, LabelError};
use crate::migrate::pytp;
use crate::tape::{ReadOutcome, SpaceOutcome, TapeDrive, TapeError};
use serde::Serialize;

/// `volumes.read_only` of an imported tape.
pub const READ_ONLY_REASON: &str = "foreign: written by another tool, catalogued by import-tape";

/// What to import as.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The volume's label in the catalogue [default: the cartridge's barcode].
    pub label: Option<String>,
    /// The cartridge's barcode, when a changer knows it.
    pub barcode: Option<String>,
    /// The pool to put the volume in (it must exist).
    pub pool: Option<String>,
    pub media: Option<String>,
    pub capacity: Option<i64>,
    /// Where the volume is (e.g. `drive lto9`).
    pub location: Option<String>,
    /// Ctrl-C: stop after the current member, removing the tape file being recorded.
    pub interrupt: Interrupt,
}

/// What became of one tape file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TapeFileOutcome {
    /// Recorded now as a backup of its own.
    Recorded,
    /// Recorded now, as the backup `migrate-pytp` recorded from pytp's snapshot.
    Merged,
    /// The catalogue had it from an earlier import: left as it was.
    Skipped,
    /// A filemark right after the previous one (or at BOT): nothing in it.
    Empty,
    /// It could not be read or is not a tar archive: nothing recorded from it.
    Damaged,
}

/// One tape file of the tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedTapeFile {
    pub tape_file: u64,
    /// Logical object number of its first block.
    pub first_block: u64,
    pub outcome: TapeFileOutcome,
    /// The backup it is recorded as.
    pub backup: Option<String>,
    pub status: Option<BackupStatus>,
    /// Members recorded now.
    pub files: u64,
    /// Data bytes recorded now.
    pub bytes: u64,
    /// For a merged one: the backup migrate-pytp had recorded (same uuid, now read from
    /// tape).
    pub pytp_backup: Option<String>,
}

/// What `catalog import-tape` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub volume: String,
    pub uuid: String,
    pub pool: Option<String>,
    pub block_size: u32,
    /// The catalogue knew the volume before (an earlier import, or migrate-pytp).
    pub known_before: bool,
    pub status: VolumeStatus,
    pub read_only: String,
    pub tape_files: Vec<ImportedTapeFile>,
    /// Tape files that could not be recorded, one line each.
    pub problems: Vec<String>,
    /// What is worth knowing, one line each.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{drive} holds no tape: load the tape to import into it first")]
    NoTape { drive: String },
    #[error("the tape in {drive} is blank: there is nothing on it to catalogue")]
    Blank { drive: String },
    #[error(
        "the tape in {drive} is tapedeck volume {label}, not a foreign tape: `tapedeck \
         catalog rebuild --tape {label} --drive {drive}` records it from its label and indexes"
    )]
    Tapedeck { drive: String, label: String },
    #[error(
        "the tape in {drive} has no barcode tapedeck can read: give the volume a name with \
         --label NAME"
    )]
    NoName { drive: String },
    #[error(
        "the tape in {drive} was catalogued before as volume {known} (same first block): not \
         importing it a second time as {wanted}; import it again without --label, or as \
         --label {known}"
    )]
    OtherName {
        drive: String,
        known: String,
        wanted: String,
    },
    #[error(
        "volume {label} in the catalogue is another tape (uuid {uuid}); the tape in {drive} is \
         not it: give it another name with --label NAME"
    )]
    OtherTape {
        drive: String,
        label: String,
        uuid: String,
    },
    #[error("{0}")]
    Read(#[from] RebuildError),
    #[error(transparent)]
    Tape(#[from] TapeError),
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl ImportError {
    /// Errors the operator can fix (exit code 2): no tape, the wrong tape, a name.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ImportError::NoTape { .. }
            | ImportError::Blank { .. }
            | ImportError::Tapedeck { .. }
            | ImportError::NoName { .. }
            | ImportError::OtherName { .. }
            | ImportError::OtherTape { .. } => true,
            ImportError::Read(e) => e.is_bad_input(),
            ImportError::Tape(e) | ImportError::Label(LabelError::Tape(e)) => e.is_bad_input(),
            ImportError::Label(_) => false,
            ImportError::Catalog(e) => e.is_bad_input(),
        }
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, ImportError::Read(RebuildError::Interrupted))
    }
}

/// A tape file as the first pass found it.
struct Found {
    tape_file: u64,
    start: u64,
    /// None: its first block holds data. Some: why it holds none we can read.
    empty: Option<Empty>,
}

enum Empty {
    Filemark,
    Unreadable(TapeError),
}

/// Catalogues the tape in `drive`, which tapedeck did not write.
pub fn import_tape(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let drive_name = drive.name().to_string();
    if !drive.status()?.online {
        return Err(ImportError::NoTape { drive: drive_name });
    }
    let Some(first) = label::read_first_block(drive)? else {
        return Err(ImportError::Blank { drive: drive_name });
    };
    if first.leading_filemarks == 0 {
        if let Some(l) = Label::from_block(&first.data) {
            return Err(ImportError::Tapedeck {
                drive: drive_name,
                label: l.label,
            });
        }
    }
    let block = first.data.len() as u32;
    let (name, uuid) = volume_name(cat, &drive_name, &first, opts)?;
    let (volume, known_before) = cat.record_foreign_volume(&ForeignVolume {
        label: &name,
        barcode: opts.barcode.as_deref(),
        uuid: &uuid,
        pool: opts.pool.as_deref(),
        media: opts.media.as_deref(),
        capacity: opts.capacity,
        block_size: i64::from(block),
        location: opts.location.as_deref(),
        read_only: READ_ONLY_REASON,
    })?;
    let vol = Volume {
        id: volume.id,
        name: &volume.label,
        pool: volume.pool.clone(),
        block,
        interrupt: &opts.interrupt,
    };
    let mut report = ImportReport {
        volume: volume.label.clone(),
        uuid,
        pool: volume.pool.clone(),
        block_size: block,
        known_before,
        status: volume.status,
        read_only: READ_ONLY_REASON.to_string(),
        tape_files: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    drive.set_block_size(block)?;
    drive.rewind()?;
    let (found, end) = survey(drive, &opts.interrupt, progress)?;
    for f in &found {
        let row = import_tape_file(drive, cat, &vol, f, &mut report, progress)?;
        report.tape_files.push(row);
    }
    drive.rewind()?;
    let used = end.saturating_sub(found.len() as u64) * u64::from(block);
    cat.record_volume_read(vol.id, used as i64, found.len() as i64)?;
    if found.iter().all(|f| f.empty.is_some()) {
        report
            .notes
            .push("the tape holds no data, only filemarks: nothing recorded".to_string());
    }
    report.status = cat.volume(&volume.label)?.status;
    Ok(report)
}

/// The catalogue label and identity of the tape: the volume it was imported as before
/// (found by its first block), else `--label`, else the barcode.
///
/// Two tapes can start with the same block (two fulls of the same tree by the same tool):
/// a tape whose first block is known, but that is another cartridge (another barcode) or is
/// named otherwise where there is no barcode, is another volume, known by its first block
/// and its name (`first-block:<BLAKE3>/<name>`).
fn volume_name(
    cat: &Catalog,
    drive: &str,
    first: &label::FirstBlock,
    opts: &ImportOptions,
) -> Result<(String, String), ImportError> {
    let wanted = opts.label.clone().or_else(|| opts.barcode.clone());
    let mut uuid = first.identity();
    if let Some(known) = cat.volume_with_uuid(&uuid)? {
        let same_cartridge = match (&opts.barcode, &known.barcode) {
            (Some(here), Some(there)) => here == there,
            // No barcode to tell: the same tape unless it is named otherwise.
            _ => wanted.as_ref().is_none_or(|w| *w == known.label),
        };
        if same_cartridge {
            return match wanted {
                Some(w)
                    if opts.label.is_some()
                        && w != known.label
                        && known.barcode.as_deref() != Some(w.as_str()) =>
                {
                    Err(ImportError::OtherName {
                        drive: drive.to_string(),
                        known: known.label,
                        wanted: w,
                    })
                }
                _ => Ok((known.label, uuid)),
            };
        }
        let Some(w) = &wanted else {
            return Err(ImportError::NoName {
                drive: drive.to_string(),
            });
        };
        uuid = first.identity_named(&pytp::volume_label(w));
        if let Some(again) = cat.volume_with_uuid(&uuid)? {
            return Ok((again.label, uuid));
        }
    }
    let Some(name) = wanted else {
        return Err(ImportError::NoName {
            drive: drive.to_string(),
        });
    };
    // migrate-pytp names volumes by pytp's labels made valid: the same name here.
    let name = pytp::volume_label(&name);
    if let Some(v) = cat.find_volume(&name)? {
        if let Some(other) = v.uuid.filter(|u| *u != uuid) {
            return Err(ImportError::OtherTape {
                drive: drive.to_string(),
                label: v.label,
                uuid: other,
            });
        }
        return Ok((v.label, uuid));
    }
    Ok((name, uuid))
}

/// First pass from BOT to end of data: where each tape file starts and whether its first
/// block holds data.
fn survey(
    drive: &mut dyn TapeDrive,
    interrupt: &Interrupt,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<Found>, u64), ImportError> {
    let mut found = Vec::new();
    let mut buf = vec![0u8; drive.status()?.block_size.max(512) as usize];
    let mut tape_file = 0u64;
    loop {
        if interrupt.requested() {
            return Err(RebuildError::Interrupted.into());
        }
        progress(Progress::TapeFile { tape_file });
        let start = drive.position()?;
        let (empty, more) = match drive.read_block(&mut buf) {
            Ok(ReadOutcome::EndOfData) => return Ok((found, start)),
            Ok(ReadOutcome::Filemark) => (Some(Empty::Filemark), true),
            Ok(ReadOutcome::Block(_)) => (None, drive.space_filemarks(1)? == SpaceOutcome::Done),
            Err(e @ TapeError::Medium { .. }) => (
                Some(Empty::Unreadable(e)),
                drive.space_filemarks(1)? == SpaceOutcome::Done,
            ),
            Err(e) => return Err(e.into()),
        };
        found.push(Found {
            tape_file,
            start,
            empty,
        });
        if !more {
            let end = drive.position()?;
            return Ok((found, end));
        }
        tape_file += 1;
    }
}

/// Records one tape file, unless the catalogue has it; merges it with the backup
/// migrate-pytp recorded of it.
fn import_tape_file(
    drive: &mut dyn TapeDrive,
    cat: &mut Catalog,
    vol: &Volume<'_>,
    f: &Found,
    report: &mut ImportReport,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportedTapeFile, ImportError> {
    let mut row = ImportedTapeFile {
        tape_file: f.tape_file,
        first_block: f.start,
        outcome: TapeFileOutcome::Empty,
        backup: None,
        status: None,
        files: 0,
        bytes: 0,
        pytp_backup: None,
    };
    match &f.empty {
        Some(Empty::Filemark) => return Ok(row),
        Some(Empty::Unreadable(e)) => {
            row.outcome = TapeFileOutcome::Damaged;
            report.problems.push(format!(
                "tape file {}: its first block (object {}) cannot be read ({e}); nothing \
                 recorded from it",
                f.tape_file, f.start
            ));
            return Ok(row);
        }
        None => {}
    }
    let known = cat.backups_in_tape_file(vol.id, f.tape_file as i64)?;
    if let Some(k) = known.iter().find(|k| k.origin == ORIGIN_IMPORT) {
        row.outcome = TapeFileOutcome::Skipped;
        row.backup = Some(k.uuid.clone());
        row.status = Some(k.status);
        return Ok(row);
    }
    let scanned = scan_tape_file(
        drive,
        cat,
        vol,
        f.tape_file,
        f.start,
        ORIGIN_IMPORT,
        &mut report.notes,
        progress,
    )?;
    let b = match scanned {
        Ok(b) => b,
        Err(problem) => {
            row.outcome = TapeFileOutcome::Damaged;
            report.problems.push(problem);
            return Ok(row);
        }
    };
    row.outcome = TapeFileOutcome::Recorded;
    row.backup = Some(b.uuid.clone());
    row.status = Some(b.status);
    row.files = b.files;
    row.bytes = b.bytes;
    if let Some(p) = known.iter().find(|k| k.origin == pytp::ORIGIN) {
        let Some(new) = cat.known_backup(&b.uuid)? else {
            return Err(CatalogError::Invalid(format!("backup {} vanished", b.uuid)).into());
        };
        if !cat.merge_backup_identity(new.id, p.id)? {
            return Ok(row);
        }
        row.outcome = TapeFileOutcome::Merged;
        row.backup = Some(p.uuid.clone());
        row.pytp_backup = Some(p.uuid.clone());
        report.notes.push(format!(
            "tape file {}: backup {} (from pytp's snapshot) now has its members from the \
             tape, with their places and hashes",
            f.tape_file, p.uuid
        ));
    }
    Ok(row)
}
