//! The writer thread: the one place that writes a backup's data to its sink. It takes
//! blocks from the ring as the flow controller allows, writes them, publishes what is on
//! tape, and ends the tape file with a filemark whatever happens.

use super::flow::{FlowController, FlowDecision, WriterState};
use super::ring::Ring;
use super::spans::{Continuation, Spans};
use super::telemetry::{Event, Events, Telemetry};
use super::Interrupt;
use crate::tape::{TapeDrive, TapeError, WriteOutcome};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
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
    /// Bytes written to the sink (whole blocks, every volume).
    pub bytes: u64,
    /// Stream offset up to which everything is on tape.
    pub stream_bytes: u64,
    /// Bytes written to the last volume's tape file.
    pub bytes_on_volume: u64,
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

/// What the writer needs to go on on another volume when a tape fills up: where the
/// members lie in the stream, and a way to hand over the full tape and get the next.
pub struct Spanning {
    pub spans: Arc<Spans>,
    pub requests: mpsc::Sender<VolumeChange>,
    pub replies: mpsc::Receiver<Result<Box<dyn TapeDrive>, String>>,
}

/// A full tape handed back, and where the stream was cut.
pub struct VolumeChange {
    pub drive: Box<dyn TapeDrive>,
    /// Stream offset of the first byte not on the full tape.
    pub cut: u64,
    /// Bytes written to the full tape's tape file.
    pub bytes_on_volume: u64,
    pub continuation: Continuation,
}

/// What the writer writes next: the stream, after a volume change preceded by the
/// continuation's prefix and re-cut into whole blocks.
struct Output {
    block: usize,
    /// Bytes to write before the stream on this volume.
    prefix: Vec<u8>,
    /// Stream bytes taken from the ring and not yet written.
    tail: Vec<u8>,
    /// Stream bytes still to leave out (padding after a cut).
    skip: u64,
    /// Stream offset up to which everything is on tape (or deliberately left out).
    on_tape: u64,
}

impl Output {
    fn direct(&self) -> bool {
        self.prefix.is_empty() && self.tail.is_empty() && self.skip == 0
    }

    /// Bytes taken but not yet written.
    fn pending(&self) -> bool {
        !self.prefix.is_empty() || !self.tail.is_empty()
    }

    fn take(&mut self, data: &[u8]) {
        let k = (self.skip.min(data.len() as u64)) as usize;
        self.skip -= k as u64;
        self.on_tape += k as u64;
        self.tail.extend_from_slice(&data[k..]);
    }

    /// The next whole block, if there is enough (or, at the end, padded with zeros).
    fn next_block(&self, at_end: bool) -> Option<Vec<u8>> {
        let have = self.prefix.len() + self.tail.len();
        if have == 0 || (have < self.block && !at_end) {
            return None;
        }
        let mut out = Vec::with_capacity(self.block);
        out.extend_from_slice(&self.prefix[..self.prefix.len().min(self.block)]);
        let rest = self.block - out.len();
        out.extend_from_slice(&self.tail[..self.tail.len().min(rest)]);
        out.resize(self.block, 0);
        Some(out)
    }

    /// The block from `next_block` is on tape.
    fn written(&mut self) {
        let p = self.prefix.len().min(self.block);
        self.prefix.drain(..p);
        let t = self.tail.len().min(self.block - p);
        self.tail.drain(..t);
        self.on_tape += t as u64;
    }

    /// Continues on a new volume: what is not on tape is the tail, from the cut.
    fn continue_with(&mut self, c: &Continuation) {
        self.prefix = c.prefix.clone();
        let k = (c.skip.min(self.tail.len() as u64)) as usize;
        self.tail.drain(..k);
        self.on_tape += k as u64;
        self.skip = c.skip - k as u64;
    }
}

/// Closes the full tape's file, hands the tape over and takes the next one. On failure the
/// sink to close and why.
fn change_volume(
    mut sink: Sink,
    out: &mut Output,
    bytes_on_volume: u64,
    spanning: &Spanning,
    events: &Events,
) -> Result<Sink, (Sink, String)> {
    if let Err(e) = close_file(&mut sink) {
        return Err((sink, format!("closing the tape file on the full tape: {e}")));
    }
    let Sink::Tape(drive) = sink else {
        return Err((sink, "the device is full".into()));
    };
    let cut = out.on_tape;
    let continuation = spanning.spans.continuation(cut);
    events.send(Event::Warning {
        message: format!(
            "{}: the tape is full after {}; continuing on another volume",
            drive.name(),
            crate::units::format_size(bytes_on_volume)
        ),
    });
    let change = VolumeChange {
        drive,
        cut,
        bytes_on_volume,
        continuation: continuation.clone(),
    };
    if let Err(mpsc::SendError(change)) = spanning.requests.send(change) {
        return Err((Sink::Tape(change.drive), "no one to change the tape".into()));
    }
    match spanning.replies.recv() {
        Ok(Ok(next)) => {
            out.continue_with(&continuation);
            Ok(Sink::Tape(next))
        }
        Ok(Err(message)) => Err((Sink::Stream(Box::new(std::io::sink())), message)),
        Err(_) => Err((
            Sink::Stream(Box::new(std::io::sink())),
            "the tape change was abandoned".into(),
        )),
    }
}

/// Runs the writer until the ring is drained or writing must stop.
#[allow(clippy::too_many_arguments)]
pub fn run(
    mut sink: Sink,
    ring: Arc<Ring>,
    mut flow: FlowController,
    progress: Arc<Progress>,
    telemetry: Arc<Telemetry>,
    events: Events,
    interrupt: Interrupt,
    spanning: Option<Spanning>,
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
    let mut bytes_on_volume = 0u64;
    let mut first_write: Option<f64> = None;
    let mut last_write = 0.0;
    let mut last_state = flow.state();
    let mut tape_error = None;
    let mut out = Output {
        block: ring.block_size(),
        prefix: Vec::new(),
        tail: Vec::new(),
        skip: 0,
        on_tape: 0,
    };
    let end = loop {
        if interrupt.hard() {
            events.send(Event::Interrupted { hard: true });
            break WriterEnd::Aborted;
        }
        let t = now();
        window.tick(t);
        let fill = ring.fill();
        let done = ring.input_done();
        if done && fill == 0 && !out.pending() {
            break WriterEnd::Drained;
        }
        let decision = if done && fill == 0 {
            FlowDecision::Write
        } else {
            flow.next(t, fill, ring.produced(), done)
        };
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
                // The bytes to write: a ring block as it is, or re-cut after a volume change.
                let outcome = if out.direct() {
                    let Some(block) = ring.pop_full() else {
                        ring.wait(Duration::from_millis(20));
                        continue;
                    };
                    let result = write_one(&mut sink, &block.data);
                    if !matches!(result, Ok(WriteOutcome::Written)) {
                        // Not on tape: it is the tail to go on with.
                        out.tail.extend_from_slice(&block.data);
                    } else {
                        out.on_tape += block.data.len() as u64;
                    }
                    ring.recycle(block);
                    result
                } else {
                    if out.next_block(false).is_none() {
                        if let Some(block) = ring.pop_full() {
                            out.take(&block.data);
                            ring.recycle(block);
                        }
                    }
                    let at_end = done && ring.fill() == 0;
                    let Some(data) = out.next_block(at_end) else {
                        if !at_end {
                            ring.wait(Duration::from_millis(20));
                        }
                        continue;
                    };
                    let result = write_one(&mut sink, &data);
                    if matches!(result, Ok(WriteOutcome::Written)) {
                        out.written();
                    }
                    result
                };
                match outcome {
                    Ok(WriteOutcome::Written) => {
                        let n = out.block as u64;
                        bytes += n;
                        bytes_on_volume += n;
                        window.bytes += n;
                        let t = now();
                        first_write.get_or_insert(t);
                        last_write = t;
                        flow.wrote(t, n);
                        progress.bytes.store(out.on_tape, Ordering::Release);
                        telemetry.update(|s| s.bytes_written = bytes);
                    }
                    Ok(WriteOutcome::EarlyWarning) => {
                        let Some(span) = &spanning else {
                            break WriterEnd::EndOfTape;
                        };
                        match change_volume(sink, &mut out, bytes_on_volume, span, &events) {
                            Ok(next) => {
                                sink = next;
                                bytes_on_volume = 0;
                            }
                            Err((old, message)) => {
                                sink = old;
                                break WriterEnd::Failed(message);
                            }
                        }
                    }
                    Err(e) => {
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
        stream_bytes: out.on_tape,
        bytes_on_volume,
        streaming_secs: first_write.map_or(0.0, |f| last_write - f),
        first_write: first_write.map(|f| clock + Duration::from_secs_f64(f)),
        min_streaming_rate: window.min,
        tape_error,
    }
}
