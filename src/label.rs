//! The volume label: tape file 0, one block holding a tar archive with a single member
//! `TAPEDECK-LABEL.json`, then a filemark. `mt rewind; dd bs=BLOCK count=1 | tar -xO`
//! shows it without tapedeck.

use crate::tape::{ReadOutcome, TapeDrive, TapeError};
use serde::{Deserialize, Serialize};

/// The member name inside the label archive.
pub const LABEL_MEMBER: &str = "TAPEDECK-LABEL.json";
pub const LABEL_FORMAT: u32 = 1;

/// What the label says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub format: u32,
    pub label: String,
    #[serde(default)]
    pub barcode: Option<String>,
    pub uuid: String,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub media: Option<String>,
    pub block_size: u32,
    /// RFC 3339 time of labelling.
    pub created: String,
    /// The tapedeck version that wrote it.
    pub tapedeck: String,
}

/// What is at the beginning of a tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeStart {
    /// Nothing recorded (or only filemarks).
    Blank,
    /// A tapedeck label.
    Labelled(Label),
    /// Data tapedeck did not write; a description for the operator.
    Foreign(String),
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error(transparent)]
    Tape(#[from] TapeError),
    #[error("building the label archive: {0}")]
    Build(#[from] std::io::Error),
    #[error("the label needs {needed} bytes but a block holds {block_size}")]
    TooLarge { needed: usize, block_size: u32 },
}

impl Label {
    /// The label as one block of `block_size` bytes (a tar archive, zero-padded).
    pub fn to_block(&self) -> Result<Vec<u8>, LabelError> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(json.len() as u64);
        header.set_mode(0o444);
        header.set_mtime(jiff::Timestamp::now().as_second().max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, LABEL_MEMBER, json.as_slice())?;
        let mut archive = builder.into_inner()?;
        let block = self.block_size as usize;
        if archive.len() > block {
            return Err(LabelError::TooLarge {
                needed: archive.len(),
                block_size: self.block_size,
            });
        }
        archive.resize(block, 0);
        Ok(archive)
    }

    /// Parses a label block; `None` if it is not a tapedeck label.
    pub fn from_block(block: &[u8]) -> Option<Label> {
        let mut archive = tar::Archive::new(block);
        let mut entries = archive.entries().ok()?;
        let mut entry = entries.next()?.ok()?;
        if entry.path().ok()?.to_str()? != LABEL_MEMBER {
            return None;
        }
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut json).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// Describes a block that is not a tapedeck label.
fn describe_foreign(block: &[u8]) -> String {
    let mut archive = tar::Archive::new(block);
    let first = archive
        .entries()
        .ok()
        .and_then(|mut e| e.next())
        .and_then(|e| e.ok())
        .and_then(|e| e.path().ok().map(|p| p.display().to_string()));
    match first {
        Some(name) => format!("a tar archive starting with `{name}`"),
        None => format!("{} bytes of data that is not a tar archive", block.len()),
    }
}

/// The first block recorded on a tape, past any filemarks at BOT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstBlock {
    /// Filemarks before it: empty tape files at the start of the tape.
    pub leading_filemarks: u64,
    pub data: Vec<u8>,
}

/// Prefix of the identity given to a tape without a tapedeck label: the BLAKE3 of its
/// first block, so the same tape is recognised when it is read again.
pub const FIRST_BLOCK_ID: &str = "first-block:";

impl FirstBlock {
    /// `first-block:<BLAKE3 hex>`: the identity of a tape tapedeck did not label.
    pub fn identity(&self) -> String {
        format!("{FIRST_BLOCK_ID}{}", blake3::hash(&self.data).to_hex())
    }

    /// The identity of another tape that starts with this same block, told apart by its
    /// volume name: `first-block:<BLAKE3 hex>/<name>`.
    pub fn identity_named(&self, name: &str) -> String {
        format!("{}/{name}", self.identity())
    }

    /// Whether `uuid` is the identity of a tape that starts with this block (either form).
    pub fn is_identity_of(&self, uuid: &str) -> bool {
        let id = self.identity();
        uuid.strip_prefix(id.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Rewinds and reads the first block of the tape in variable-block mode (whatever its
/// size), past filemarks at BOT; `None` when nothing but filemarks is recorded. The
/// drive's block size is restored and the tape rewound again.
pub fn read_first_block(drive: &mut dyn TapeDrive) -> Result<Option<FirstBlock>, LabelError> {
    let previous = drive.status()?.block_size;
    drive.rewind()?;
    drive.set_block_size(0)?;
    let max = drive.block_limits()?.max as usize;
    let mut buf = vec![0u8; max];
    let mut leading_filemarks = 0u64;
    let outcome = loop {
        match drive.read_block(&mut buf) {
            Ok(ReadOutcome::Filemark) => leading_filemarks += 1,
            other => break other,
        }
    };
    drive.set_block_size(previous)?;
    drive.rewind()?;
    match outcome? {
        ReadOutcome::Block(n) => {
            buf.truncate(n);
            Ok(Some(FirstBlock {
                leading_filemarks,
                data: buf,
            }))
        }
        ReadOutcome::Filemark | ReadOutcome::EndOfData => Ok(None),
    }
}

/// Reads what is at the start of the tape (see [`read_first_block`]). Data after
/// filemarks at BOT is foreign: tapedeck writes its label as the very first block.
pub fn read_tape_start(drive: &mut dyn TapeDrive) -> Result<TapeStart, LabelError> {
    let start = match read_first_block(drive) {
        Ok(None) => TapeStart::Blank,
        Ok(Some(first)) if first.leading_filemarks > 0 => TapeStart::Foreign(format!(
            "{} after {} filemarks at the beginning of the tape",
            describe_foreign(&first.data),
            first.leading_filemarks
        )),
        Ok(Some(first)) => match Label::from_block(&first.data) {
            Some(label) => TapeStart::Labelled(label),
            None => TapeStart::Foreign(describe_foreign(&first.data)),
        },
        Err(LabelError::Tape(TapeError::Medium { .. })) => {
            TapeStart::Foreign("a first block that cannot be read (medium error)".into())
        }
        Err(e) => return Err(e),
    };
    Ok(start)
}

/// Whether the tape holds its first block and the filemark after it, and nothing more: a
/// label no backup was written after. The tape is rewound.
pub fn holds_only_first_block(drive: &mut dyn TapeDrive) -> Result<bool, LabelError> {
    drive.rewind()?;
    drive.space_to_eod()?;
    let end = drive.position()?;
    drive.rewind()?;
    Ok(end <= 2)
}

/// Writes the label at BOT: everything on the tape after it is gone.
pub fn write_label(drive: &mut dyn TapeDrive, label: &Label) -> Result<(), LabelError> {
    let block = label.to_block()?;
    drive.rewind()?;
    drive.set_block_size(label.block_size)?;
    match drive.write_block(&block)? {
        crate::tape::WriteOutcome::Written => {}
        crate::tape::WriteOutcome::EarlyWarning => {
            return Err(TapeError::EndOfMedium {
                drive: drive.name().to_string(),
            }
            .into())
        }
    }
    drive.write_filemarks(1, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Label {
        Label {
            format: LABEL_FORMAT,
            label: "TD0001L9".into(),
            barcode: Some("TD0001L9".into()),
            uuid: "5f0c".into(),
            pool: Some("daily".into()),
            media: Some("LTO-9".into()),
            block_size: 65536,
            created: "2026-11-26T12:00:00Z".into(),
            tapedeck: "0.1.0".into(),
        }
    }

    #[test]
    fn a_label_block_round_trips_and_is_a_tar_archive() {
        let block = label().to_block().unwrap();
        assert_eq!(block.len(), 65536);
        assert_eq!(Label::from_block(&block), Some(label()));
        let mut archive = tar::Archive::new(block.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec![LABEL_MEMBER]);
    }

    #[test]
    fn a_label_too_large_for_the_block_is_refused() {
        let mut l = label();
        l.block_size = 1024;
        assert!(matches!(l.to_block(), Err(LabelError::TooLarge { .. })));
    }

    #[test]
    fn data_after_filemarks_at_bot_is_foreign_and_has_a_first_block() {
        use crate::tape::{Changer, Element};
        use crate::vlib::{InitOptions, Library};
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions {
            time_scale: 0.0,
            ..InitOptions::default()
        };
        let lib = Library::init(dir.path(), &opts).unwrap();
        lib.changer()
            .move_medium(Element::Slot(1), Element::Drive(0))
            .unwrap();
        let mut drive = lib.open_drive("lto9").unwrap();
        drive.set_block_size(1024).unwrap();
        drive.write_filemarks(2, false).unwrap();
        assert_eq!(read_tape_start(&mut drive).unwrap(), TapeStart::Blank);
        assert_eq!(read_first_block(&mut drive).unwrap(), None);
        drive.space_to_eod().unwrap();
        drive.write_block(&[7; 1024]).unwrap();
        drive.write_filemarks(1, false).unwrap();
        match read_tape_start(&mut drive).unwrap() {
            TapeStart::Foreign(what) => assert!(what.contains("after 2 filemarks"), "{what}"),
            other => panic!("{other:?}"),
        }
        let first = read_first_block(&mut drive).unwrap().unwrap();
        assert_eq!((first.leading_filemarks, first.data.len()), (2, 1024));
        assert_eq!(
            first.identity(),
            format!("first-block:{}", blake3::hash(&[7; 1024]).to_hex())
        );
        assert_eq!(drive.position().unwrap(), 0, "rewound");
    }

    #[test]
    fn other_data_is_described() {
        assert!(Label::from_block(&[0u8; 1024]).is_none());
        assert!(describe_foreign(&[1u8; 100]).contains("not a tar archive"));
    }
}
