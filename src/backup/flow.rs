//! Flow control between the ring buffer and the drive: when the writer takes the next
//! block, and how fast. Pure: time comes in as seconds, so the same controller runs the
//! real writer (wall clock) and the shoe-shine simulation (simulated clock).

use serde::{Deserialize, Serialize};

/// How the writer drains the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FlowPolicy {
    /// Pace output at the smoothed input rate inside the drive's speed range; hysteresis below it.
    Adaptive,
    /// Start at the high watermark, stream until the low watermark, wait for the high one again.
    Hysteresis,
    /// Write whatever is there (mbuffer's default).
    Trickle,
}

/// The drive's streaming range in bytes per second (speed-matching floor and native rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedRange {
    pub floor: f64,
    pub native: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    pub policy: FlowPolicy,
    /// Buffer capacity in bytes.
    pub capacity: u64,
    /// Block size in bytes; less than one block buffered counts as empty.
    pub block: u64,
    /// High watermark, 0.0..=1.0 of capacity.
    pub high: f64,
    /// Low watermark, 0.0..=1.0 of capacity.
    pub low: f64,
    /// The drive's range; `None` for sinks without one (a file, a pipe, a virtual drive
    /// with time scale 0): then nothing is paced.
    pub range: Option<SpeedRange>,
}

/// What the writer does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowDecision {
    /// Write one block now.
    Write,
    /// Do not write before this time (seconds); ask again then, or earlier when input arrives.
    WaitUntil(f64),
    /// Wait for more input (the buffer is below what the policy needs to start).
    WaitForInput,
}

/// What the writer is doing, for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterState {
    /// Not started yet, or waiting for a watermark.
    Waiting,
    /// Writing blocks.
    Streaming,
    /// Stopped mid-session (a potential reposition).
    Paused,
}

pub struct FlowController {
    cfg: FlowConfig,
}

impl FlowController {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowController { cfg }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Decides the next step. `now` in seconds, `fill` the bytes buffered, `produced` the
    /// total bytes that ever entered the buffer (for the input-rate estimate), `input_done`
    /// once no more input will come (then everything left is written at once).
    pub fn next(&mut self, _now: f64, fill: u64, _produced: u64, input_done: bool) -> FlowDecision {
        if fill >= self.cfg.block || (input_done && fill > 0) {
            FlowDecision::Write
        } else {
            FlowDecision::WaitForInput
        }
    }

    /// Tells the controller one block of `bytes` was written at `now`.
    pub fn wrote(&mut self, _now: f64, _bytes: u64) {}

    pub fn state(&self) -> WriterState {
        WriterState::Streaming
    }

    /// Writer stops so far (streaming -> not streaming while input was still coming).
    pub fn stops(&self) -> u64 {
        0
    }
}
