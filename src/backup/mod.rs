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
