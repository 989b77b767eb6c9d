//! What a running backup tells its watchers: a snapshot of fast-changing numbers that a
//! progress bar or the console reads whenever it draws, and discrete events, which are
//! logged and handed to whoever subscribed. The engine knows nothing of its watchers.

use super::flow::{FlowPolicy, WriterState};
use serde::Serialize;
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

/// Numbers that change all the time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub drive: String,
    pub volume: Option<String>,
    pub policy: Option<FlowPolicy>,
    pub writer: Option<WriterState>,
    pub buffer_capacity: u64,
    pub buffer_fill: u64,
    pub high_watermark: f64,
    pub low_watermark: f64,
    /// Members and bytes the scan found.
    pub files_total: u64,
    pub bytes_total: u64,
    /// Members encoded and file bytes read so far.
    pub files_done: u64,
    pub bytes_read: u64,
    /// Bytes of the tape file written to the drive.
    pub bytes_written: u64,
    /// Write rate over the last second, bytes/s.
    pub write_rate: f64,
    /// Input rate into the buffer over the last second, bytes/s.
    pub input_rate: f64,
    pub writer_stops: u64,
    pub current_file: String,
    pub elapsed_secs: f64,
    pub eta_secs: Option<f64>,
}

/// The snapshot, shared between the pipeline's threads and its watchers.
#[derive(Debug, Default)]
pub struct Telemetry {
    inner: Mutex<Snapshot>,
}

impl Telemetry {
    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.lock());
    }

    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }
}

/// Something that happened, once.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    BackupStarted {
        uuid: String,
        drive: String,
        volume: Option<String>,
        files: u64,
        bytes: u64,
        buffer: u64,
        policy: FlowPolicy,
    },
    TapeFileStarted {
        volume: String,
        tape_file: u64,
        block: u64,
    },
    /// The writer stopped while input was still coming (a potential reposition).
    WriterStopped {
        at_bytes: u64,
        buffer_fill: u64,
    },
    FileSkipped {
        path: String,
        reason: String,
    },
    FileChanged {
        path: String,
        reason: String,
        saved: bool,
    },
    Interrupted {
        hard: bool,
    },
    /// A drive needs a (different) tape before the backup can go on.
    TapeNeeded {
        drive: String,
        reason: String,
        /// Volumes that would do, with where they are, as the operator reads them.
        candidates: Vec<String>,
    },
    /// A volume failed to take data: it is in error and should be pulled; the backup
    /// goes on on another volume, writing `file` (the member in flight) again whole.
    VolumeFailed {
        volume: String,
        drive: String,
        error: String,
        file: Option<String>,
    },
    Warning {
        message: String,
    },
    Error {
        message: String,
    },
    BackupFinished {
        uuid: String,
        status: String,
    },
}

/// Where events go: the log always, and a subscriber's channel when there is one.
#[derive(Debug, Clone, Default)]
pub struct Events {
    subscriber: Option<Sender<Event>>,
}

impl Events {
    pub fn new(subscriber: Option<Sender<Event>>) -> Events {
        Events { subscriber }
    }

    pub fn send(&self, event: Event) {
        match &event {
            Event::FileSkipped { path, reason } => tracing::warn!("skipped {path}: {reason}"),
            Event::FileChanged {
                path,
                reason,
                saved,
            } => {
                tracing::warn!(
                    "{path}: {reason}{}",
                    if *saved { "" } else { " (not saved)" }
                )
            }
            Event::Warning { message } => tracing::warn!("{message}"),
            Event::TapeNeeded {
                drive,
                reason,
                candidates,
            } => tracing::warn!(
                "{drive} needs a tape: {reason}; {}",
                if candidates.is_empty() {
                    "no known volume qualifies (a blank cartridge does)".to_string()
                } else {
                    format!("qualifying: {}", candidates.join(", "))
                }
            ),
            Event::Error { message } => tracing::error!("{message}"),
            Event::VolumeFailed {
                volume,
                drive,
                error,
                file,
            } => tracing::error!(
                "volume {volume} in {drive} failed ({error}); it is marked in error: pull it. \
                 The backup goes on on another volume{}",
                file.as_ref()
                    .map(|f| format!(", writing {f} again from its start"))
                    .unwrap_or_default()
            ),
            Event::WriterStopped { .. } => tracing::debug!(?event, "writer stopped"),
            Event::Interrupted { hard: false } => tracing::warn!(
                "interrupted: no more files are read; what is buffered goes to tape \
                 (interrupt again to stop at once)"
            ),
            Event::Interrupted { hard: true } => {
                tracing::warn!("interrupted again: stopping the writer now")
            }
            other => tracing::info!(event = ?other),
        }
        if let Some(tx) = &self.subscriber {
            // A subscriber that went away does not stop the backup.
            let _ = tx.send(event);
        }
    }
}
