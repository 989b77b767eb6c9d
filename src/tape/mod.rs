//! The tape layer: block-level drive and changer traits with Linux `st` semantics.
//!
//! Everything above this module (writer, restore, CLI) talks to a [`TapeDrive`] or a
//! [`Changer`] and never to a device file. Two implementations exist: the Linux `st`
//! driver ([`st::StDrive`]) and the virtual library (`vlib`, which depends on this module,
//! never the other way round, and reports its failures as [`TapeError`]s); the conformance
//! suite ([`crate::conformance`]) holds both to the same behaviour. What an LTO drive type
//! can do (speeds, cache, capacities) is [`drive_model`]'s, which cartridges it takes
//! [`lto`]'s.
//!
//! Positions are SCSI *logical object numbers*: counted from 0 at BOT, every block and
//! every filemark is one object (what `MTIOCPOS` reports and `MTSEEK` takes).
//!
//! Conditions the writer and readers branch on are typed outcomes, not errors:
//! a filemark or end of data on read ([`ReadOutcome`]), the early-warning zone on write
//! ([`WriteOutcome`]), running into end of data or BOT while spacing ([`SpaceOutcome`]).

pub mod drive_model;
pub mod file_reader;
pub mod holders;
pub mod lto;
pub mod sg;
pub mod st;

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// The largest block the Linux `st` driver can express (`MT_ST_BLKSIZE_MASK`).
pub const ST_MAX_BLOCK_SIZE: u32 = 0x00ff_ffff;

/// What a read found at the current position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReadOutcome {
    /// One block of this many bytes was read; the tape is after it.
    Block(usize),
    /// A filemark; the tape is after it (at the start of the next tape file).
    Filemark,
    /// End of recorded data; the tape did not move.
    EndOfData,
}

/// What happened to a block handed to [`TapeDrive::write_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriteOutcome {
    /// The block is on tape.
    Written,
    /// The block was **not** written: the drive is in the early-warning zone before the
    /// physical end of the medium (`st` answers `ENOSPC`). As with `st`, the next write is
    /// let through so that a trailer fits, then writes alternate between written and
    /// early warning; after a filemark they succeed until the physical end. The writer
    /// finishes its tape file with a filemark here and changes volume.
    EarlyWarning,
}

/// How a space operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SpaceOutcome {
    /// All the filemarks asked for were passed.
    Done,
    /// Spacing forward ran into end of data; the tape is at end of data.
    EndOfData,
    /// Spacing backward reached the beginning of the tape; the tape is at BOT.
    BeginningOfTape,
}

/// A snapshot of the drive's state, as `mt status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriveStatus {
    /// A cartridge is loaded and the drive is ready.
    pub online: bool,
    /// No cartridge is in the drive (or it is ejected).
    pub door_open: bool,
    /// At the beginning of the tape.
    pub bot: bool,
    /// At end of recorded data.
    pub eod: bool,
    /// Just past a filemark.
    pub filemark: bool,
    /// In the early-warning zone before the physical end (`GMT_EOT`).
    pub early_warning: bool,
    /// The cartridge is write-protected.
    pub write_protected: bool,
    /// Block size in bytes, 0 for variable-block mode.
    pub block_size: u32,
    /// Density code reported by the drive (0 = default).
    pub density: u8,
    /// Tape file number, when the driver knows it.
    pub file_number: Option<u64>,
    /// Block number within the tape file, when the driver knows it.
    pub block_number: Option<u64>,
    /// Logical object number (blocks and filemarks from BOT), when ready.
    pub position: Option<u64>,
}

/// Smallest and largest block the drive accepts (READ BLOCK LIMITS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockLimits {
    pub min: u32,
    pub max: u32,
}

/// A process holding a device or file open, to name it when a device is busy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// Errors of the tape layer. Conditions a caller branches on in normal operation are
/// outcomes ([`ReadOutcome`], [`WriteOutcome`], [`SpaceOutcome`]), not errors.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    #[error("{drive}: no tape loaded, or the drive is not ready")]
    NotReady { drive: String },
    #[error("{drive}: the cartridge is write-protected")]
    WriteProtected { drive: String },
    #[error("{drive}: physical end of the medium reached; nothing more fits on this tape")]
    EndOfMedium { drive: String },
    #[error(
        "{drive}: block size {requested} bytes is outside what the drive accepts ({min}..={max} bytes)"
    )]
    BlockSizeUnsupported {
        drive: String,
        requested: u64,
        min: u32,
        max: u32,
    },
    #[error(
        "{drive}: a block of {got} bytes does not fit the drive's fixed block size of {block_size} bytes"
    )]
    WrongBlockLength {
        drive: String,
        got: usize,
        block_size: u32,
    },
    #[error(
        "{drive}: read buffer of {buffer} bytes is shorter than the block{}{}",
        match .block { Some(b) => format!(" ({b} bytes)"), None => String::new() },
        if *.skipped { "; the block was passed over" } else { "; the tape did not move" }
    )]
    ShortBuffer {
        drive: String,
        buffer: usize,
        /// The block's length, when the driver can tell.
        block: Option<usize>,
        /// Variable-block mode passes over the block (as `st` does); fixed mode refuses first.
        skipped: bool,
    },
    #[error("{drive}: position {requested} lies beyond end of data (at {eod}); the tape is at end of data")]
    BeyondEndOfData {
        drive: String,
        requested: u64,
        eod: u64,
    },
    #[error("{device}: device busy, held by {}", holders::describe(.holders))]
    Busy {
        device: PathBuf,
        holders: Vec<Holder>,
    },
    #[error("{drive}: medium error at object {position}: {detail}")]
    Medium {
        drive: String,
        position: u64,
        detail: String,
    },
    #[error("{drive}: write error at object {position}: {detail}")]
    WriteFailed {
        drive: String,
        position: u64,
        detail: String,
    },
    #[error("{drive}: {detail}")]
    Incompatible { drive: String, detail: String },
    #[error(
        "{drive}: cannot open {}: {source}{}",
        .device.display(),
        if .source.kind() == std::io::ErrorKind::NotFound {
            " (check the drive's `device` in the configuration's [[drive]])"
        } else {
            ""
        }
    )]
    Open {
        drive: String,
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{drive}: {op} failed: {source}")]
    Io {
        drive: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A library's drive or changer is taken by another process or handle of this one
    /// (the virtual library's locks); `what` names it as the operator knows it.
    #[error("{what} is in use by {}", holders::describe(.holders))]
    InUse { what: String, holders: Vec<Holder> },
    /// The library behind a drive or changer refused a request it cannot meet: no library
    /// there, an unknown drive or element, an empty source or a full destination, a
    /// cartridge the drive cannot take. The library's own error says which.
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
    /// The library behind a drive or changer failed: its files or locks could not be read
    /// or written, are damaged, or its robot failed. The library's own error says which.
    #[error(transparent)]
    Library(Box<dyn std::error::Error + Send + Sync>),
}

impl TapeError {
    /// True when the drive is held by another process (or another handle of this one).
    pub fn is_busy(&self) -> bool {
        matches!(self, TapeError::Busy { .. } | TapeError::InUse { .. })
    }

    /// True when the medium (or the drive writing it) failed to take or give data: the
    /// volume is suspect, and a backup can go on on another one.
    pub fn is_medium_failure(&self) -> bool {
        matches!(
            self,
            TapeError::Medium { .. }
                | TapeError::WriteFailed { .. }
                | TapeError::EndOfMedium { .. }
                | TapeError::Io { .. }
        )
    }

    /// True where the operator asked for something that cannot be (exit code 2), as
    /// opposed to a failure of the drive or the medium (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            TapeError::BlockSizeUnsupported { .. }
            | TapeError::WrongBlockLength { .. }
            | TapeError::ShortBuffer { .. }
            | TapeError::BeyondEndOfData { .. }
            | TapeError::Refused(_) => true,
            // A configured device node that does not exist is a configuration mistake.
            TapeError::Open { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

pub type Result<T, E = TapeError> = std::result::Result<T, E>;

/// A tape drive at block level, with Linux `st` semantics.
///
/// One thread owns a drive at a time (`&mut self` everywhere); only the writer or reader
/// thread that opened it touches it.
pub trait TapeDrive: Send {
    /// The drive's name (from the configuration or the virtual library).
    fn name(&self) -> &str;

    /// Drive and medium state.
    fn status(&mut self) -> Result<DriveStatus>;

    /// Smallest and largest block the drive accepts.
    fn block_limits(&mut self) -> Result<BlockLimits>;

    /// Sets fixed-block mode with `bytes` per block, or variable-block mode with 0.
    fn set_block_size(&mut self, bytes: u32) -> Result<()>;

    /// Writes one block. In fixed-block mode `block.len()` must equal the block size.
    fn write_block(&mut self, block: &[u8]) -> Result<WriteOutcome>;

    /// Writes `count` filemarks. `immediate` returns before the drive has flushed its
    /// buffer (`MTWEOFI`), so the drive keeps streaming between tape files.
    fn write_filemarks(&mut self, count: u32, immediate: bool) -> Result<()>;

    /// Reads one block into `buf`. In fixed-block mode a buffer shorter than the block size
    /// is refused before the tape moves; in variable-block mode a block longer than `buf`
    /// is passed over and reported ([`TapeError::ShortBuffer`]), as `st` does.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome>;

    /// Rewinds to BOT. After writing, a filemark is written first (as `st` does).
    fn rewind(&mut self) -> Result<()>;

    /// Spaces over `count` filemarks: forward to just after the n-th filemark, or backward
    /// (`count < 0`) to just before it (on its BOT side), as `mt fsf`/`mt bsf` do.
    fn space_filemarks(&mut self, count: i32) -> Result<SpaceOutcome>;

    /// Positions at end of recorded data, where the next tape file is appended.
    fn space_to_eod(&mut self) -> Result<()>;

    /// The current logical object number.
    fn position(&mut self) -> Result<u64>;

    /// Moves to logical object `object` (LOCATE). After writing, a filemark is written first.
    fn locate(&mut self, object: u64) -> Result<()>;

    /// Loads the cartridge sitting in the drive and makes it ready.
    fn load(&mut self) -> Result<()>;

    /// Rewinds and ejects the cartridge (it stays in the drive's throat for a changer to take).
    fn unload(&mut self) -> Result<()>;

    /// Erases from the current position to the end of the tape.
    fn erase(&mut self) -> Result<()>;

    /// Stop-and-reposition cycles since the drive was opened, when the drive can tell.
    fn repositions(&mut self) -> Option<u64> {
        None
    }
}

/// Where a cartridge can sit in a library.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", content = "index", rename_all = "snake_case")]
pub enum Element {
    /// A storage slot, numbered from 1.
    Slot(u32),
    /// An import/export (mail) slot, numbered from 1.
    ImportExport(u32),
    /// A drive, by its index in the library, from 0.
    Drive(u32),
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Slot(n) => write!(f, "slot {n}"),
            Element::ImportExport(n) => write!(f, "import/export slot {n}"),
            Element::Drive(n) => write!(f, "drive {n}"),
        }
    }
}

/// One element of a changer inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElementStatus {
    pub element: Element,
    /// The cartridge's barcode, when the element holds one.
    pub barcode: Option<String>,
    /// For drives: the drive's name.
    pub drive_name: Option<String>,
    /// For full elements: where the cartridge came from, when the changer remembers.
    pub source: Option<Element>,
}

/// A changer's view of its elements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub drives: Vec<ElementStatus>,
    pub slots: Vec<ElementStatus>,
    pub import_export: Vec<ElementStatus>,
}

impl Inventory {
    /// Every element, drives first.
    pub fn elements(&self) -> impl Iterator<Item = &ElementStatus> {
        self.drives
            .iter()
            .chain(&self.slots)
            .chain(&self.import_export)
    }

    /// The element holding the cartridge with this barcode.
    pub fn find_barcode(&self, barcode: &str) -> Option<&ElementStatus> {
        self.elements()
            .find(|e| e.barcode.as_deref() == Some(barcode))
    }
}

/// A media changer (robot): moves cartridges between slots, drives and the mail slot.
pub trait Changer: Send {
    /// The changer's name.
    fn name(&self) -> &str;
    /// What sits where.
    fn inventory(&mut self) -> Result<Inventory>;
    /// Moves a cartridge from one element to another (MOVE MEDIUM). A cartridge moved out
    /// of a drive must have been unloaded first; one moved into a drive is loaded.
    fn move_medium(&mut self, from: Element, to: Element) -> Result<()>;
}
