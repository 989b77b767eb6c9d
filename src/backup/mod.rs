//! The backup pipeline: scan -> parallel readers -> tar encoder -> ring buffer -> one
//! writer thread per drive -> catalogue.

pub mod allocate;
pub mod encoder;
pub mod entries;
pub mod flow;
pub mod incremental;
pub mod memory;
pub mod passthrough;
pub mod reader;
pub mod replay;
pub mod ring;
pub mod scan;
pub mod space;
pub mod spans;
pub mod spool;
pub mod telemetry;
pub mod writer;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Ctrl-C / SIGTERM as the pipeline sees them: the first asks to stop after the member
/// in flight and drain the buffer; the second stops the writer at once.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicU32>);

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Counts one more request.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Stop reading, finish what is buffered.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 1
    }

    /// Stop writing now.
    pub fn hard(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 2
    }

    /// Counts SIGINT and SIGTERM into this interrupt until the process ends.
    pub fn from_signals() -> std::io::Result<Interrupt> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let interrupt = Interrupt::new();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let counter = interrupt.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    counter.request();
                }
            })?;
        Ok(interrupt)
    }
}

pub mod index;
pub mod pipeline;
pub mod volume;

pub use pipeline::{run, BackupRequest, NextVolume, Source, Strategy, Summary, Target};

/// Why a backup could not start or went wrong outside the drive's own outcomes.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    #[error(transparent)]
    CatalogSpace(#[from] space::CatalogSpaceError),
    #[error(transparent)]
    Input(#[from] passthrough::InputError),
    #[error("{drive}: no tape loaded; load one with `tapedeck load SLOT --drive {drive}`")]
    NoTape { drive: String },
    /// The operator asked for something the tape or catalogue does not allow.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Tape(#[from] crate::tape::TapeError),
    #[error(transparent)]
    Label(#[from] crate::label::LabelError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl BackupError {
    /// Errors the operator caused (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            BackupError::Scan(_) | BackupError::NoTape { .. } | BackupError::Refused(_) => true,
            BackupError::Memory(e) => !matches!(e, memory::MemoryError::Unknown(_)),
            BackupError::Spool(e) => e.is_bad_input(),
            BackupError::CatalogSpace(e) => e.is_bad_input(),
            BackupError::Input(_) => true,
            BackupError::Tape(e) => e.is_bad_input(),
            BackupError::Catalog(e) => e.is_bad_input(),
            _ => false,
        }
    }
}
