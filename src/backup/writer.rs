//! The writer thread: the one place that writes a backup's data to its sink. It takes
//! blocks from the ring as the flow controller allows, writes them, publishes what is on
//! tape, and ends the tape file with a filemark whatever happens.

use super::flow::{FlowController, FlowDecision, WriterState};
use super::ring::Ring;
use super::telemetry::{Event, Events, Telemetry};
use super::Interrupt;
use crate::tape::{TapeDrive, TapeError, WriteOutcome};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the stream goes.
pub enum Sink {
    /// A tape drive, positioned where the tape file begins.
    Tape(Box<dyn TapeDrive>),
    /// A plain file, a FIFO or standard output (`--device`).
    Stream(Box<dyn Write + Send>),
}

/// How the writer ended.
#[derive(Debug)]
pub enum WriterEnd {
    /// Everything the encoder produced is written and the tape file is closed.
    Drained,
    /// The drive reached early warning: the tape is full (the tape file is closed).
    EndOfTape,
    /// The drive or the sink failed.
    Failed(String),
    /// A second interrupt stopped it with data still buffered.
    Aborted,
}

pub struct WriterOutcome {
    pub sink: Sink,
    pub end: WriterEnd,
    /// Bytes written to the sink (whole blocks).
    pub bytes: u64,
    pub stops: u64,
    /// Seconds spent writing (from the first block to the last).
    pub streaming_secs: f64,
    /// When the first block was written.
    pub first_write: Option<Instant>,
    /// The lowest write rate over any whole second in which the writer did not wait for
    /// input, bytes/s.
    pub min_streaming_rate: Option<f64>,
    /// The tape error, for the catalogue's error log.
    pub tape_error: Option<TapeError>,
}

/// Bytes confirmed written, read by the cataloguer to know which members are on tape.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
}

impl Progress {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }
}

/// Per-second write-rate bookkeeping.
struct RateWindow {
    start: f64,
    bytes: u64,
    waited: bool,
    min: Option<f64>,
    last_rate: f64,
}

impl RateWindow {
    fn tick(&mut self, now: f64) {
        if now - self.start >= 1.0 {
            let rate = self.bytes as f64 / (now - self.start);
            if !self.waited && self.bytes > 0 {
                self.min = Some(self.min.map_or(rate, |m: f64| m.min(rate)));
            }
            self.last_rate = rate;
            self.start = now;
            self.bytes = 0;
            self.waited = false;
        }
    }
}

fn stream_error(op: &'static str, source: std::io::Error) -> TapeError {
    TapeError::Io {
        drive: "device".into(),
        op,
        source,
    }
}

fn write_one(sink: &mut Sink, block: &[u8]) -> Result<WriteOutcome, TapeError> {
    match sink {
        Sink::Tape(drive) => drive.write_block(block),
        Sink::Stream(w) => w
            .write_all(block)
            .map(|_| WriteOutcome::Written)
            .map_err(|source| stream_error("write", source)),
    }
}

/// Closes the tape file: a filemark on tape (immediate, so the drive keeps streaming into
/// the index file), a flush on a stream.
fn close_file(sink: &mut Sink) -> Result<(), TapeError> {
    match sink {
        Sink::Tape(drive) => drive.write_filemarks(1, true),
        Sink::Stream(w) => w.flush().map_err(|source| stream_error("flush", source)),
    }
}

/// Runs the writer until the ring is drained or writing must stop.
pub fn run(
    mut sink: Sink,
    ring: Arc<Ring>,
    mut flow: FlowController,
    progress: Arc<Progress>,
    telemetry: Arc<Telemetry>,
    events: Events,
    interrupt: Interrupt,
) -> WriterOutcome {
    let clock = Instant::now();
    let now = || clock.elapsed().as_secs_f64();
    let mut window = RateWindow {
        start: 0.0,
        bytes: 0,
        waited: false,
        min: None,
        last_rate: 0.0,
    };
    let mut bytes = 0u64;
    let mut first_write: Option<f64> = None;
    let mut last_write = 0.0;
    let mut last_state = flow.state();
    let mut tape_error = None;
    let end = loop {
        if interrupt.hard() {
            events.send(Event::Interrupted { hard: true });
            break WriterEnd::Aborted;
        }
        let t = now();
        window.tick(t);
        let fill = ring.fill();
        let done = ring.input_done();
        if done && fill == 0 {
            break WriterEnd::Drained;
        }
        let decision = flow.next(t, fill, ring.produced(), done);
        let state = flow.state();
        if state != last_state && last_state == WriterState::Streaming && !done {
            events.send(Event::WriterStopped {
                at_bytes: bytes,
                buffer_fill: fill,
            });
        }
        last_state = state;
        telemetry.update(|s| {
            s.writer = Some(state);
            s.buffer_fill = fill;
            s.writer_stops = flow.stops();
            s.write_rate = window.last_rate;
        });
        match decision {
            FlowDecision::Write => {
                let Some(block) = ring.pop_full() else {
                    ring.wait(Duration::from_millis(20));
                    continue;
                };
                match write_one(&mut sink, &block.data) {
                    Ok(WriteOutcome::Written) => {
                        let n = block.data.len() as u64;
                        ring.recycle(block);
                        bytes += n;
                        window.bytes += n;
                        let t = now();
                        first_write.get_or_insert(t);
                        last_write = t;
                        flow.wrote(t, n);
                        progress.bytes.store(bytes, Ordering::Release);
                        telemetry.update(|s| s.bytes_written = bytes);
                    }
                    Ok(WriteOutcome::EarlyWarning) => {
                        ring.recycle(block);
                        break WriterEnd::EndOfTape;
                    }
                    Err(e) => {
                        ring.recycle(block);
                        let message = e.to_string();
                        tape_error = Some(e);
                        break WriterEnd::Failed(message);
                    }
                }
            }
            FlowDecision::WaitUntil(until) => {
                let wait = (until - t).clamp(0.0, 0.05);
                if wait > 0.0 {
                    ring.wait(Duration::from_secs_f64(wait));
                }
            }
            FlowDecision::WaitForInput => {
                window.waited = true;
                ring.wait(Duration::from_millis(50));
            }
        }
    };
    // Nothing more goes to the sink: release an encoder waiting for room.
    ring.close_output();
    let end = match (end, close_file(&mut sink)) {
        (WriterEnd::Drained, Err(e)) => {
            let message = format!("closing the tape file: {e}");
            tape_error = Some(e);
            WriterEnd::Failed(message)
        }
        (end, _) => end,
    };
    telemetry.update(|s| {
        s.writer = Some(WriterState::Waiting);
        s.writer_stops = flow.stops();
    });
    WriterOutcome {
        sink,
        end,
        bytes,
        stops: flow.stops(),
        streaming_secs: first_write.map_or(0.0, |f| last_write - f),
        first_write: first_write.map(|f| clock + Duration::from_secs_f64(f)),
        min_streaming_rate: window.min,
        tape_error,
    }
}
