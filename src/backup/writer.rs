//! The writer thread: the one place that writes a backup's data to its sink. It takes
//! blocks from the ring as the flow controller allows, writes them, publishes what is on
//! tape, and ends the tape file with a filemark whatever happens.

use super::flow::{FlowController, FlowDecision, WriterState};
use super::replay::Replay;
use super::ring::Ring;
use super::spans::{Continuation, MemberSpan, Spans};
use super::telemetry::Telemetry;
use crate::interrupt::Interrupt;
use crate::job::{Event, Events};
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

/// Volumes given up after a write error in one backup before the drive itself is
/// suspected and the backup fails.
pub const MAX_FAILED_VOLUMES: usize = 2;

/// What the writer needs to go on on another volume when a tape fills up or fails: where
/// the members lie in the stream, and a way to hand over the tape and get the next.
pub struct Spanning {
    pub spans: Arc<Spans>,
    pub requests: mpsc::Sender<VolumeChange>,
    pub replies: mpsc::Receiver<Result<NextTape, String>>,
}

/// The next volume's drive, and for a change after a write error the member in flight
/// made again from its start.
pub struct NextTape {
    pub drive: Box<dyn TapeDrive>,
    pub replay: Option<Replay>,
}

/// Why the writer leaves a volume.
#[derive(Debug)]
pub enum ChangeReason {
    /// Early warning: the volume is full.
    Full,
    /// The drive failed to write to it: the volume is suspect.
    WriteError(TapeError),
}

/// A tape handed back, and where the stream was cut.
pub struct VolumeChange {
    pub drive: Box<dyn TapeDrive>,
    pub reason: ChangeReason,
    /// Stream offset of the first byte not on the tape.
    pub cut: u64,
    /// Bytes written to the tape's tape file.
    pub bytes_on_volume: u64,
    /// How a full volume's stream continues.
    pub continuation: Continuation,
    /// After a write error: the member in flight at the cut, to be written again whole,
    /// and the stream offset up to which it must be made again (where the buffered
    /// stream goes on).
    pub restart: Option<(MemberSpan, u64)>,
    /// The path of the member in flight at the cut, for messages.
    pub in_flight: Option<String>,
}

/// What the writer writes next: the stream, after a volume change preceded by the
/// continuation's prefix and re-cut into whole blocks.
struct Output {
    block: usize,
    /// Bytes to write before the stream on this volume.
    prefix: Vec<u8>,
    /// After a write error: stream bytes from `on_tape` made again from the source, before
    /// `tail`; `replay_buf` holds what was read of them and is not written yet.
    replay: Option<Replay>,
    replay_buf: Vec<u8>,
    /// Stream bytes taken from the ring and not yet written.
    tail: Vec<u8>,
    /// Stream bytes still to leave out (padding after a cut).
    skip: u64,
    /// Stream offset up to which everything is on tape (or deliberately left out).
    on_tape: u64,
}

impl Output {
    fn direct(&self) -> bool {
        self.prefix.is_empty() && !self.replaying() && self.tail.is_empty() && self.skip == 0
    }

    fn replaying(&self) -> bool {
        self.replay.is_some() || !self.replay_buf.is_empty()
    }

    /// Bytes taken but not yet written.
    fn pending(&self) -> bool {
        !self.prefix.is_empty() || self.replaying() || !self.tail.is_empty()
    }

    /// Stream offset of the first byte of `tail`.
    fn tail_start(&self) -> u64 {
        self.on_tape + self.replay_buf.len() as u64 + self.replay.as_ref().map_or(0, Replay::left)
    }

    /// Reads replayed bytes until a block's worth is at hand (or the replay is done).
    fn fill_replay(&mut self) {
        while let Some(r) = self.replay.as_mut() {
            let want = self
                .block
                .saturating_sub(self.prefix.len() + self.replay_buf.len());
            if want == 0 {
                break;
            }
            r.read_into(&mut self.replay_buf, want);
            if r.left() == 0 {
                self.replay = None;
            }
        }
    }

    /// Leaves out `n` stream bytes after what is on tape (padding after a cut).
    fn discard(&mut self, mut n: u64) {
        let k = n.min(self.replay_buf.len() as u64) as usize;
        self.replay_buf.drain(..k);
        self.on_tape += k as u64;
        n -= k as u64;
        while n > 0 {
            let Some(r) = self.replay.as_mut() else { break };
            let mut scratch = Vec::new();
            r.read_into(&mut scratch, n.min(1 << 20) as usize);
            n -= scratch.len() as u64;
            self.on_tape += scratch.len() as u64;
            if r.left() == 0 {
                self.replay = None;
            }
        }
        let k = n.min(self.tail.len() as u64) as usize;
        self.tail.drain(..k);
        self.on_tape += k as u64;
        self.skip = n - k as u64;
    }

    fn take(&mut self, data: &[u8]) {
        let k = (self.skip.min(data.len() as u64)) as usize;
        self.skip -= k as u64;
        self.on_tape += k as u64;
        self.tail.extend_from_slice(&data[k..]);
    }

    /// The next whole block, if there is enough (or, at the end, padded with zeros).
    fn next_block(&mut self, at_end: bool) -> Option<Vec<u8>> {
        self.fill_replay();
        // The tail comes only after the whole replay.
        let tail = if self.replay.is_some() {
            &[][..]
        } else {
            &self.tail[..]
        };
        let have = self.prefix.len() + self.replay_buf.len() + tail.len();
        if have == 0 || (have < self.block && !at_end) {
            return None;
        }
        let mut out = Vec::with_capacity(self.block);
        out.extend_from_slice(&self.prefix[..self.prefix.len().min(self.block)]);
        let rest = self.block - out.len();
        out.extend_from_slice(&self.replay_buf[..self.replay_buf.len().min(rest)]);
        let rest = self.block - out.len();
        out.extend_from_slice(&tail[..tail.len().min(rest)]);
        out.resize(self.block, 0);
        Some(out)
    }

    /// The block from `next_block` is on tape.
    fn written(&mut self) {
        let p = self.prefix.len().min(self.block);
        self.prefix.drain(..p);
        let r = self.replay_buf.len().min(self.block - p);
        self.replay_buf.drain(..r);
        self.on_tape += r as u64;
        if self.replay.is_none() {
            let t = self.tail.len().min(self.block - p - r);
            self.tail.drain(..t);
            self.on_tape += t as u64;
        }
    }

    /// Continues on a new volume: what is not on tape is the tail, from the cut.
    fn continue_with(&mut self, c: &Continuation) {
        self.prefix = c.prefix.clone();
        self.discard(c.skip);
    }

    /// Starts again on a new volume after a write error: from the first byte of the member
    /// in flight (`restart`, made again by `replay`), or from the cut.
    fn restart_with(&mut self, restart: Option<u64>, replay: Option<Replay>) {
        self.prefix.clear();
        self.skip = 0;
        if let Some(start) = restart {
            self.replay_buf.clear();
            self.replay = replay;
            self.on_tape = start;
        }
    }
}

/// Closes the tape's file, hands the tape over and takes the next one: after early
/// warning the stream continues where it was cut; after a write error it starts again at
/// the member in flight. On failure the sink to close and why.
fn change_volume(
    mut sink: Sink,
    out: &mut Output,
    bytes_on_volume: u64,
    reason: ChangeReason,
    spanning: &Spanning,
    events: &Events,
) -> Result<Sink, (Sink, String)> {
    let closed = close_file(&mut sink);
    let Sink::Tape(drive) = sink else {
        return Err((sink, "the device is full".into()));
    };
    let cut = out.on_tape;
    // The member in flight at the cut, if the cut is not between members.
    let in_flight = spanning.spans.restart(cut);
    let (continuation, restart) = match &reason {
        ChangeReason::Full => {
            if let Err(e) = closed {
                return Err((
                    Sink::Tape(drive),
                    format!("closing the tape file on the full tape: {e}"),
                ));
            }
            events.send(Event::Warning {
                message: format!(
                    "{}: the tape is full after {}; continuing on another volume",
                    drive.name(),
                    crate::units::format_size(bytes_on_volume)
                ),
            });
            (spanning.spans.continuation(cut), None)
        }
        ChangeReason::WriteError(_) => {
            if let Err(e) = closed {
                // The tape file stays unclosed on a tape that is pulled anyway.
                tracing::warn!("closing the tape file after the write error: {e}");
            }
            let to = out.tail_start();
            (
                Continuation::default(),
                in_flight.clone().map(|span| (span, to)),
            )
        }
    };
    let restart_at = restart.as_ref().map(|(span, _)| span.start);
    let change = VolumeChange {
        drive,
        reason,
        cut,
        bytes_on_volume,
        continuation: continuation.clone(),
        restart,
        in_flight: in_flight.map(|s| format!("/{}", s.name.trim_end_matches('/'))),
    };
    if let Err(mpsc::SendError(change)) = spanning.requests.send(change) {
        return Err((Sink::Tape(change.drive), "no one to change the tape".into()));
    }
    match spanning.replies.recv() {
        Ok(Ok(next)) => {
            if restart_at.is_some() || next.replay.is_some() {
                out.restart_with(restart_at, next.replay);
            } else {
                out.continue_with(&continuation);
            }
            Ok(Sink::Tape(next.drive))
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
    let mut failed_volumes = 0usize;
    let mut out = Output {
        block: ring.block_size(),
        prefix: Vec::new(),
        replay: None,
        replay_buf: Vec::new(),
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
        // A stalled input (nothing more can come until this is written) drains as if the
        // input were done, whatever the watermarks say.
        let decision = if done && fill == 0 {
            FlowDecision::Write
        } else {
            flow.next(t, fill, ring.produced(), done || ring.input_stalled())
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
                        match change_volume(
                            sink,
                            &mut out,
                            bytes_on_volume,
                            ChangeReason::Full,
                            span,
                            &events,
                        ) {
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
                        // A volume that fails to take data is given up and the backup goes
                        // on on another, unless volumes keep failing (then it is the drive).
                        let Some(span) = spanning.as_ref().filter(|_| {
                            e.is_medium_failure() && failed_volumes < MAX_FAILED_VOLUMES
                        }) else {
                            let message = e.to_string();
                            tape_error = Some(e);
                            break WriterEnd::Failed(message);
                        };
                        failed_volumes += 1;
                        let reason = ChangeReason::WriteError(e);
                        match change_volume(sink, &mut out, bytes_on_volume, reason, span, &events)
                        {
                            Ok(next) => {
                                sink = next;
                                bytes_on_volume = 0;
                                progress.bytes.store(out.on_tape, Ordering::Release);
                            }
                            Err((old, message)) => {
                                sink = old;
                                break WriterEnd::Failed(message);
                            }
                        }
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
