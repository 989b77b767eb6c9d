//! Getting the loaded tape ready to take a backup: it must be a tapedeck volume this
//! catalogue knows, writable, in the right pool, and it is positioned at end of data so
//! the new tape file goes after the last one and never over it.

use super::BackupError;
use crate::catalog::{Catalog, Volume, VolumeStatus};
use crate::label::{self, Label, TapeStart};
use crate::tape::TapeDrive;
use crate::vlib::cartridge::default_early_warning_gap;

/// A volume positioned for appending.
pub struct TapeTarget {
    pub drive: Box<dyn TapeDrive>,
    pub drive_name: String,
    pub volume: Volume,
    pub label: Label,
    /// The tape file the backup's data becomes.
    pub tape_file: u64,
    /// The logical object where that tape file starts.
    pub first_block: u64,
    pub block_size: u32,
    /// Things the operator should know (e.g. the catalogue expected other tape files).
    pub warnings: Vec<String>,
}

/// Checks the tape in `drive` and positions it at end of data.
pub fn prepare(
    mut drive: Box<dyn TapeDrive>,
    cat: &mut Catalog,
    pool: Option<&str>,
    block_size: Option<u32>,
) -> Result<TapeTarget, BackupError> {
    let drive_name = drive.name().to_string();
    let status = drive.status()?;
    if !status.online {
        return Err(BackupError::NoTape { drive: drive_name });
    }
    if status.write_protected {
        return Err(BackupError::Refused(format!(
            "the tape in {drive_name} is write-protected"
        )));
    }
    let label = match label::read_tape_start(drive.as_mut())? {
        TapeStart::Labelled(l) => l,
        TapeStart::Blank => {
            return Err(BackupError::Refused(format!(
                "the tape in {drive_name} is blank: label it first with `tapedeck volume label \
                 --drive {drive_name}{}`",
                pool.map(|p| format!(" --pool {p}")).unwrap_or_default()
            )))
        }
        TapeStart::Foreign(what) => {
            return Err(BackupError::Refused(format!(
                "the tape in {drive_name} holds {what}, not a tapedeck volume; relabel it with \
                 `tapedeck volume label --force` only if its data may be overwritten"
            )))
        }
    };
    let Some(mut volume) = cat.find_volume(&label.label)? else {
        return Err(BackupError::Refused(format!(
            "the tape in {drive_name} is labelled {} but this catalogue does not know it \
             (another catalogue's tape?)",
            label.label
        )));
    };
    if volume.uuid.as_deref().is_some_and(|u| u != label.uuid) {
        return Err(BackupError::Refused(format!(
            "the tape in {drive_name} is labelled {} but is not the volume {} the catalogue \
             knows (its label was rewritten elsewhere)",
            label.label, volume.label
        )));
    }
    if let Some(why) = &volume.read_only {
        return Err(BackupError::Refused(format!(
            "volume {} in {drive_name} is read-only ({why}): no backup is written to it",
            volume.label
        )));
    }
    match (pool, volume.pool.as_deref()) {
        (Some(wanted), Some(has)) if wanted != has => {
            return Err(BackupError::Refused(format!(
                "volume {} in {drive_name} belongs to pool {has}, not {wanted}",
                volume.label
            )))
        }
        (Some(wanted), None) => volume = cat.assign_pool(&volume.label, wanted, false)?,
        _ => {}
    }
    if !matches!(
        volume.status,
        VolumeStatus::Empty | VolumeStatus::Appendable
    ) {
        return Err(BackupError::Refused(format!(
            "volume {} in {drive_name} is {}: it takes no more backups",
            volume.label, volume.status
        )));
    }
    if let Some(b) = block_size.filter(|b| *b != label.block_size) {
        return Err(BackupError::Refused(format!(
            "volume {} was written with {}-byte blocks; a backup appended to it must use \
             the same (asked for {b})",
            volume.label, label.block_size
        )));
    }
    drive.set_block_size(label.block_size)?;
    drive.space_to_eod()?;
    let first_block = drive.position()?;
    let status = drive.status()?;
    let mut warnings = Vec::new();
    let known_files = volume.tape_files.max(1) as u64;
    let tape_file = match status.file_number {
        Some(n) => {
            if n < known_files {
                warnings.push(format!(
                    "volume {} holds {n} tape files but the catalogue knows of {known_files}",
                    volume.label
                ));
            }
            n
        }
        None => known_files,
    };
    // A backup that died after it filled the volume to early warning, before the
    // catalogue recorded it full, left it appendable: what is on the tape says otherwise.
    // (The capacity is known for virtual cartridges; a drive says so only on a write.)
    if let Some(capacity) = volume.capacity.map(|c| c.max(0) as u64) {
        let on_tape = first_block.saturating_sub(tape_file) * label.block_size as u64;
        if on_tape >= capacity.saturating_sub(default_early_warning_gap(capacity)) {
            cat.set_volume_status(&volume.label, VolumeStatus::Full, None)?;
            return Err(BackupError::Refused(format!(
                "volume {} in {drive_name} holds {} and is past its early-warning point \
                 (a backup that ended there filled it): marked full",
                volume.label,
                crate::units::format_size(on_tape)
            )));
        }
    }
    Ok(TapeTarget {
        drive,
        drive_name,
        block_size: label.block_size,
        volume,
        label,
        tape_file,
        first_block,
        warnings,
    })
}
