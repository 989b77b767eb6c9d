//! Restore and verify: members found in the catalogue are read back from tape by their
//! recorded position (LOCATE to the block, skip to the header's offset), checked against
//! their BLAKE3, and written safely under a target directory (restore) or only checked
//! (verify).
//!
//! - [`plan`]: selection (file, tape, backup, job state at a date, patterns) to reads
//!   ordered by volume and position, with a time estimate.
//! - [`read`]: carries a plan out: mounts each volume through a [`VolumeSource`], reads
//!   each member's headers and data, joins files split across volumes.
//! - [`extract`]: writes under the target and nowhere else.
//! - the tar member reader is [`crate::tarfmt`]'s (any `io::Read`).
//! - [`verify`]: verify's selection and report.

pub mod extract;
pub mod plan;
pub mod read;
pub mod verify;

use crate::tape::{TapeDrive, TapeError};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// How a member came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written under the target, BLAKE3 checked.
    Restored,
    /// Read back and matched the catalogue (verify).
    Verified,
    /// Something is at its path and the overwrite policy kept it.
    Kept,
    /// Not written: its path would lead outside the target or through a symlink.
    Refused,
    /// Read, but not what the catalogue says (hash, type, name), or unreadable.
    Damaged,
    /// Not on the tape where the catalogue places it.
    Missing,
    /// Could not be written (target I/O), or its volume could not be loaded.
    Failed,
}

impl Status {
    /// Whether this outcome makes the command exit non-zero.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Refused | Status::Damaged | Status::Missing | Status::Failed
        )
    }
}

/// One member's outcome, when it is not plain success.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub path: String,
    pub status: Status,
    pub detail: String,
}

/// What a restore or verify did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Members in the plan.
    pub members: u64,
    pub restored: u64,
    pub verified: u64,
    pub kept: u64,
    /// Members refused, damaged, missing or failed.
    pub failed: u64,
    /// Data bytes written (restore) or checked (verify).
    pub data_bytes: u64,
    /// Bytes read from tape.
    pub tape_bytes: u64,
    pub volumes: Vec<String>,
    pub elapsed_secs: f64,
    /// Data bytes per second.
    pub rate: f64,
    pub interrupted: bool,
    /// Every member not restored or verified, with why.
    pub outcomes: Vec<Outcome>,
    /// Metadata that could not be set and the like.
    pub warnings: Vec<String>,
}

impl Report {
    pub fn note(&mut self, path: &str, status: Status, detail: impl Into<String>) {
        match status {
            Status::Restored => self.restored += 1,
            Status::Verified => self.verified += 1,
            Status::Kept => self.kept += 1,
            _ => self.failed += 1,
        }
        if !matches!(status, Status::Restored | Status::Verified) {
            self.outcomes.push(Outcome {
                path: path.to_string(),
                status,
                detail: detail.into(),
            });
        }
    }

    /// True when every member came out well (restored, verified or kept).
    pub fn ok(&self) -> bool {
        self.failed == 0 && !self.interrupted
    }
}

/// Progress for a watcher (progress bar, log): updated as data is read.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the plan's total done.
    pub bytes: AtomicU64,
    pub total: AtomicU64,
    current: Mutex<String>,
}

impl Progress {
    pub fn set_current(&self, what: &str) {
        let mut c = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        c.clear();
        c.push_str(what);
    }

    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why a volume could not be put in a drive.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The operator aborted the tape change, or Ctrl-C.
    #[error("interrupted while waiting for volume {0}")]
    Interrupted(String),
    #[error("volume {volume}: {detail}")]
    Unavailable { volume: String, detail: String },
    #[error(transparent)]
    Tape(#[from] TapeError),
}

/// Puts volumes into a drive: the drive they are in, a changer, or the operator.
pub trait VolumeSource {
    /// A drive holding `volume`, ready to LOCATE.
    fn mount(&mut self, volume: &str) -> Result<Box<dyn TapeDrive>, MountError>;
}
