//! The numbers a running backup changes all the time, in one snapshot its stages update and
//! its job samples a few times a second (see `crate::job`). What happens once goes out as
//! an event (`crate::job::Event`).

use super::flow::{FlowPolicy, WriterState};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard};

/// Numbers that change all the time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
