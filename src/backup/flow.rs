//! Flow control between the ring buffer and the drive: when the writer takes the next
//! block, and how fast. Pure: time comes in as seconds, so the same controller runs the
//! real writer (wall clock) and the shoe-shine simulation (simulated clock,
//! `benches/shoeshine.rs`).
//!
//! The writer loop: ask [`FlowController::next`]; on [`FlowDecision::Write`] take one block
//! (`block` bytes, or what is left once input is done), write it and report it with
//! [`FlowController::wrote`]; on [`FlowDecision::WaitUntil`] sleep until then (or until
//! input arrives) and ask again; on [`FlowDecision::WaitForInput`] wait until the buffer
//! changes and ask again.
//!
//! The adaptive policy is a rate controller. The output rate is the smoothed input rate plus
//! a correction that steers the buffer towards the middle of the watermarks, clamped to the
//! drive's speed-matching range, so the buffer works as a low-pass filter and the drive slows
//! down instead of stopping. When the buffer runs empty while input is below the drive's
//! floor, it falls back to hysteresis: it accumulates up to the high watermark (or until input
//! is fast again) and then drains at the floor, which keeps the tape moving for far longer
//! than draining at the native rate would.
//!
//! The input rate the pacing follows is the moving average blended with the drive's floor
//! while the average has little history (a session that opens with a burst does not pace
//! the drive at the burst's rate and spend the reserve it should be building).
//!
//! When the drive's cache is known ([`FlowController::with_drive_cache`]), the controller
//! also estimates how much of it is filled: a write that blocks means the cache is full.
//! A drive's speed matching follows the host's rate (a little faster while its cache is
//! full), so when the rate it should run at is its floor and its cache is well filled, the
//! controller paces below the floor: the drive still streams at its floor from its cache,
//! and it slows down to the floor promptly after a burst instead of draining the reserve
//! at the burst's speed.

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
    /// The slowest rate the drive streams at, bytes per second.
    pub floor: f64,
    /// The drive's fastest (native) rate, bytes per second.
    pub native: f64,
}

/// What a [`FlowController`] works with: the policy, the buffer and the drive's range.
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
    /// Not started yet, waiting for the first watermark, or finished (input done and
    /// everything written).
    Waiting,
    /// Writing blocks (at full speed or paced).
    Streaming,
    /// Stopped mid-session (a potential reposition), until it streams again.
    Paused,
}

/// Time constant of the input-rate estimate, seconds: long enough to see through bursts,
/// small-file stretches and stalls of several seconds (the buffer absorbs those; the fill
/// correction follows faster changes).
const INPUT_SMOOTHING_SECS: f64 = 40.0;

/// How strongly the adaptive rate steers the buffer fill towards the middle of the
/// watermarks: a fill at the high (low) watermark adds (takes) this share of the
/// drive's speed range to (from) the input rate (itself capped at native, so fast input
/// still leaves a reserve in the buffer).
const FILL_GAIN: f64 = 1.0;

/// Input counts as "in the drive's range" from this multiple of the floor on (some margin,
/// so an estimate hovering at the floor does not start and stop the drive).
const START_MARGIN: f64 = 1.1;

/// How late a paced block may be before the schedule forgets it, seconds: a writer that
/// was held up catches up at most this much in a burst.
const PACE_SLACK_SECS: f64 = 0.01;

/// A paced rate this close to native is written unpaced (at full speed).
const FULL_SPEED_SHARE: f64 = 0.995;

/// Time constant of the output-rate estimate, seconds (the drive's own estimate of the host
/// rate, which its tape speed follows, is about this smooth).
const OUTPUT_SMOOTHING_SECS: f64 = 1.0;

/// Without a known drive cache, the empty buffer is bridged for this long at the floor.
const DEFAULT_GRACE_SECS: f64 = 2.0;

/// With the drive's cache estimated more than this share full, a pace at the floor is
/// lowered below it (the drive keeps streaming at its floor from the cache).
const FULL_CACHE_SHARE: f64 = 0.5;

/// The pace, as a share of the floor, that holds a drive with a well-filled cache at its
/// floor (its speed matching runs somewhat faster than the host while the cache is full).
const BELOW_FLOOR_SHARE: f64 = 0.85;

/// The pace, as a share of the floor, while the drive still seems to run faster than its
/// floor (the output-rate estimate above `DRIVE_AT_FLOOR_SHARE` of it), e.g. right after a
/// burst: its speed matching comes down sooner.
const SLOW_DOWN_SHARE: f64 = 0.5;

/// The output-rate estimate below which the drive is taken to run at its floor, as a share
/// of the floor.
const DRIVE_AT_FLOOR_SHARE: f64 = 0.9;

/// Decides, block by block, when the writer writes. See the module documentation.
#[derive(Debug, Clone)]
pub struct FlowController {
    cfg: FlowConfig,
    state: WriterState,
    stops: u64,
    /// Smoothed input rate, bytes per second (the moving average divided by its weight, so
    /// it is not biased towards 0 while the average warms up).
    input_rate: f64,
    /// The moving average of the input rate as it accumulates from 0.
    ewma: f64,
    /// The weight the moving average has gathered so far (0 at first, towards 1).
    ewma_weight: f64,
    /// Time and `produced` of the last rate sample.
    last_sample: Option<(f64, u64)>,
    /// Start of the last written block's slot in the pacing schedule.
    slot: f64,
    /// Bytes of the last written block (its slot's length at the current rate).
    slot_bytes: u64,
    /// Where the next block's slot starts, decided with the last `Write` (paced or not).
    pending_slot: Option<f64>,
    /// Adaptive: streaming in the hysteresis fallback (input below the floor), draining at
    /// the floor.
    at_floor: bool,
    /// The output rate of the last adaptive decision, bytes per second.
    rate: f64,
    /// The drive's cache size in bytes, if known (see [`FlowController::with_drive_cache`]).
    drive_cache: Option<u64>,
    /// Estimate of the bytes still in the drive's cache (written, not yet on tape).
    backlog: f64,
    /// Time of the backlog estimate.
    backlog_at: f64,
    /// Smoothed output rate (what the drive's speed matching follows), bytes per second.
    out_rate: f64,
    /// When the writer was last told to write (a write that returns much later blocked on
    /// a full drive cache).
    asked_at: f64,
}

impl FlowController {
    /// A controller in the `Waiting` state, with no input seen yet.
    pub fn new(cfg: FlowConfig) -> Self {
        FlowController {
            cfg,
            state: WriterState::Waiting,
            stops: 0,
            input_rate: 0.0,
            ewma: 0.0,
            ewma_weight: 0.0,
            last_sample: None,
            slot: 0.0,
            slot_bytes: 0,
            pending_slot: None,
            at_floor: false,
            rate: 0.0,
            drive_cache: None,
            backlog: 0.0,
            backlog_at: 0.0,
            out_rate: 0.0,
            asked_at: 0.0,
        }
    }

    /// Tells the controller the size of the drive's cache: the adaptive policy then keeps
    /// handing over what arrives while the drive may still be streaming from its cache,
    /// instead of stopping as soon as the buffer is empty, and paces below the floor while
    /// the cache is estimated well filled (see the module documentation).
    pub fn with_drive_cache(mut self, bytes: u64) -> Self {
        self.drive_cache = Some(bytes);
        self
    }

    /// The configuration this controller was made with.
    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Decides the next step. `now` in seconds, `fill` the bytes buffered, `produced` the
    /// total bytes that ever entered the buffer (for the input-rate estimate), `input_done`
    /// once no more input will come (then everything left is written at once).
    pub fn next(&mut self, now: f64, fill: u64, produced: u64, input_done: bool) -> FlowDecision {
        self.observe(now, produced);
        if input_done {
            return if fill > 0 {
                self.state = WriterState::Streaming;
                self.write_now(now)
            } else {
                self.state = WriterState::Waiting;
                FlowDecision::WaitForInput
            };
        }
        match (self.cfg.policy, self.cfg.range) {
            (FlowPolicy::Trickle, _) | (FlowPolicy::Adaptive, None) => self.trickle(now, fill),
            (FlowPolicy::Hysteresis, _) => self.hysteresis(now, fill),
            (FlowPolicy::Adaptive, Some(range)) => self.adaptive(now, fill, range),
        }
    }

    /// Tells the controller one block of `bytes` was written at `now` (when the write
    /// returned).
    pub fn wrote(&mut self, now: f64, bytes: u64) {
        self.slot = self.pending_slot.take().unwrap_or(now);
        self.slot_bytes = bytes;
        let dt = now - self.backlog_at;
        if dt > 0.0 {
            self.backlog = self.backlog_at_time(now);
            let alpha = 1.0 - (-dt / OUTPUT_SMOOTHING_SECS).exp();
            self.out_rate += alpha * (bytes as f64 / dt - self.out_rate);
            self.backlog_at = now;
        }
        let cap = self.drive_cache_size();
        self.backlog = (self.backlog + bytes as f64).min(cap);
        // A write that took longer than the drive needs for a block at its native rate
        // waited for room: the drive's cache is full.
        if let Some(range) = self.cfg.range {
            if now - self.asked_at > self.cfg.block as f64 / range.native.max(1.0) {
                self.backlog = cap;
            }
        }
    }

    /// The drive cache the backlog estimate assumes, bytes.
    fn drive_cache_size(&self) -> f64 {
        match (self.drive_cache, self.cfg.range) {
            (Some(bytes), _) => bytes as f64,
            (None, Some(range)) => range.floor * DEFAULT_GRACE_SECS,
            (None, None) => 0.0,
        }
    }

    /// The estimated drive backlog at `now`: it drains at the drive's speed, which follows
    /// the output rate and lies between the floor and the native rate.
    fn backlog_at_time(&self, now: f64) -> f64 {
        let (floor, native) = self
            .cfg
            .range
            .map_or((0.0, f64::INFINITY), |r| (r.floor, r.native.max(r.floor)));
        let drain = self.out_rate.clamp(floor, native) * (now - self.backlog_at).max(0.0);
        (self.backlog - drain).max(0.0)
    }

    /// What the writer is doing.
    pub fn state(&self) -> WriterState {
        self.state
    }

    /// Writer stops so far (streaming -> not streaming while input was still coming).
    pub fn stops(&self) -> u64 {
        self.stops
    }

    /// The smoothed input rate, bytes per second.
    pub fn input_rate(&self) -> f64 {
        self.input_rate
    }

    /// The output rate the adaptive policy paces at, bytes per second (0 before it streams;
    /// the native rate when it writes at full speed; below the floor while a well-filled
    /// drive cache keeps the tape at its floor).
    pub fn pace_rate(&self) -> f64 {
        self.rate
    }

    /// Updates the input-rate estimate from the growth of `produced` (an exponentially
    /// weighted moving average with irregular samples, corrected for its start at 0 so the
    /// first seconds already show the input's rate).
    fn observe(&mut self, now: f64, produced: u64) {
        match self.last_sample {
            None => self.last_sample = Some((now, produced)),
            Some((t, p)) => {
                let dt = now - t;
                if dt > 0.0 {
                    let bytes = produced.saturating_sub(p) as f64;
                    let alpha = 1.0 - (-dt / INPUT_SMOOTHING_SECS).exp();
                    self.ewma += alpha * (bytes / dt - self.ewma);
                    self.ewma_weight += alpha * (1.0 - self.ewma_weight);
                    self.input_rate = self.ewma / self.ewma_weight;
                    self.last_sample = Some((now, produced));
                } else if produced < p {
                    // A counter that went back (a new session): start the estimate over.
                    self.last_sample = Some((now, produced));
                }
            }
        }
    }

    /// The input rate the adaptive pacing follows: the moving average, with the weight it
    /// has not gathered yet given to `floor` (so the first seconds of a session, often one
    /// burst, do not set the pace on their own).
    fn paced_input(&self, floor: f64) -> f64 {
        self.ewma + (1.0 - self.ewma_weight) * floor
    }

    fn bytes_at(&self, share: f64) -> u64 {
        (self.cfg.capacity as f64 * share.clamp(0.0, 1.0)) as u64
    }

    /// Starts (or resumes) streaming at `now`.
    fn start(&mut self, now: f64) {
        if self.state != WriterState::Streaming {
            self.state = WriterState::Streaming;
            self.slot = now;
            self.slot_bytes = 0;
        }
    }

    /// Stops streaming; a stop mid-session is counted.
    fn stop(&mut self) -> FlowDecision {
        if self.state == WriterState::Streaming {
            self.stops += 1;
            self.state = WriterState::Paused;
        }
        self.rate = 0.0;
        FlowDecision::WaitForInput
    }

    /// Writes one block now (unpaced).
    fn write_now(&mut self, now: f64) -> FlowDecision {
        self.pending_slot = Some(now);
        self.asked_at = now;
        FlowDecision::Write
    }

    fn trickle(&mut self, now: f64, fill: u64) -> FlowDecision {
        if fill >= self.cfg.block {
            self.start(now);
            self.write_now(now)
        } else {
            self.stop()
        }
    }

    fn hysteresis(&mut self, now: f64, fill: u64) -> FlowDecision {
        let block = self.cfg.block;
        if self.state == WriterState::Streaming {
            if fill < block || fill <= self.bytes_at(self.cfg.low) {
                return self.stop();
            }
            return self.write_now(now);
        }
        // The high watermark, but never more than the buffer can hold beside one block.
        let high = self
            .bytes_at(self.cfg.high)
            .min(self.cfg.capacity.saturating_sub(block))
            .max(block);
        if fill >= high {
            self.start(now);
            self.write_now(now)
        } else {
            FlowDecision::WaitForInput
        }
    }

    fn adaptive(&mut self, now: f64, fill: u64, range: SpeedRange) -> FlowDecision {
        let block = self.cfg.block;
        let floor = range.floor.max(1.0);
        let native = range.native.max(floor);
        if fill < block {
            if self.state == WriterState::Streaming && self.backlog_at_time(now) > 0.0 {
                // The drive still streams from its cache: hand over whatever arrives.
                return FlowDecision::WaitForInput;
            }
            return self.stop();
        }
        if self.state != WriterState::Streaming {
            let high = self
                .bytes_at(self.cfg.high)
                .min(self.cfg.capacity.saturating_sub(block))
                .max(block);
            let start_fast = self.bytes_at(self.cfg.low).max(block);
            let fast = self.input_rate >= floor * START_MARGIN;
            if fill >= high || (fast && fill >= start_fast) {
                self.at_floor = !fast;
                self.start(now);
            } else {
                return FlowDecision::WaitForInput;
            }
        }
        if self.at_floor && self.paced_input(floor) >= floor * START_MARGIN {
            self.at_floor = false;
        }
        let mut rate = self.target_rate(fill, floor, native);
        if self.drive_cache.is_some()
            && rate <= floor
            && self.backlog_at_time(now) > FULL_CACHE_SHARE * self.drive_cache_size()
        {
            // The drive streams at its floor from its cache: pace below the floor so its
            // speed matching settles there (sooner while it still runs faster).
            let share = if self.out_rate > DRIVE_AT_FLOOR_SHARE * floor {
                SLOW_DOWN_SHARE
            } else {
                BELOW_FLOOR_SHARE
            };
            rate = floor * share;
        }
        self.rate = rate;
        if rate >= native * FULL_SPEED_SHARE {
            return self.write_now(now);
        }
        let due = self.slot + self.slot_bytes as f64 / rate;
        if now >= due {
            self.pending_slot = Some(due.max(now - PACE_SLACK_SECS));
            self.asked_at = now;
            FlowDecision::Write
        } else {
            FlowDecision::WaitUntil(due)
        }
    }

    /// The adaptive output rate for a buffer holding `fill` bytes, clamped to the range.
    fn target_rate(&self, fill: u64, floor: f64, native: f64) -> f64 {
        let share = fill as f64 / self.cfg.capacity.max(1) as f64;
        let (low, high) = (
            self.cfg.low.min(self.cfg.high),
            self.cfg.high.max(self.cfg.low),
        );
        let band = (high - low).max(0.05);
        let span = native - floor;
        let rate = if self.at_floor {
            // Hysteresis fallback: drain at the floor, faster only above the high watermark
            // (so the producer is not held back).
            floor + span * ((share - high) / (1.0 - high).max(0.05)).max(0.0)
        } else {
            let middle = (low + high) / 2.0;
            self.paced_input(floor).min(native) + FILL_GAIN * span * (share - middle) / (band / 2.0)
        };
        rate.clamp(floor, native)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;
    const BLOCK: u64 = 512 << 10;
    const GIB: u64 = 1 << 30;

    fn lto9() -> SpeedRange {
        SpeedRange {
            floor: 177.0 * MB,
            native: 408.0 * MB,
        }
    }

    fn cfg(policy: FlowPolicy, range: Option<SpeedRange>) -> FlowConfig {
        FlowConfig {
            policy,
            capacity: GIB,
            block: BLOCK,
            high: 0.9,
            low: 0.05,
            range,
        }
    }

    /// A simulated buffer fed at a constant rate and drained by a writer that follows the
    /// controller (writes take no time), in 1 ms steps.
    struct Sim {
        ctl: FlowController,
        now: f64,
        fill: u64,
        produced: u64,
        written: u64,
        carry: f64,
    }

    impl Sim {
        fn new(ctl: FlowController) -> Self {
            Sim {
                ctl,
                now: 0.0,
                fill: 0,
                produced: 0,
                written: 0,
                carry: 0.0,
            }
        }

        /// Runs for `secs` with input at `rate`, writes instantaneous. Returns bytes written.
        fn run(&mut self, rate: f64, secs: f64) -> u64 {
            let step = 0.001;
            let end = self.now + secs;
            let before = self.written;
            while self.now < end {
                let cap = self.ctl.config().capacity;
                self.carry += rate * step;
                let add = (self.carry as u64).min(cap - self.fill);
                self.carry -= self.carry.floor();
                self.fill += add;
                self.produced += add;
                loop {
                    match self.ctl.next(self.now, self.fill, self.produced, false) {
                        FlowDecision::Write => {
                            let n = self.fill.min(BLOCK);
                            self.fill -= n;
                            self.written += n;
                            self.ctl.wrote(self.now, n);
                        }
                        FlowDecision::WaitUntil(t) => {
                            assert!(t > self.now, "waits into the future");
                            break;
                        }
                        FlowDecision::WaitForInput => break,
                    }
                }
                self.now += step;
            }
            self.written - before
        }
    }

    #[test]
    fn trickle_writes_at_one_block() {
        let mut c = FlowController::new(cfg(FlowPolicy::Trickle, Some(lto9())));
        assert_eq!(c.state(), WriterState::Waiting);
        assert_eq!(
            c.next(0.0, BLOCK - 1, BLOCK - 1, false),
            FlowDecision::WaitForInput
        );
        assert_eq!(c.state(), WriterState::Waiting);
        assert_eq!(c.next(0.1, BLOCK, BLOCK, false), FlowDecision::Write);
        c.wrote(0.1, BLOCK);
        assert_eq!(c.state(), WriterState::Streaming);
        assert_eq!(c.next(0.1, 0, BLOCK, false), FlowDecision::WaitForInput);
        assert_eq!(c.state(), WriterState::Paused);
        assert_eq!(c.stops(), 1);
        // Waiting again while paused is not another stop.
        assert_eq!(
            c.next(0.2, 10, BLOCK + 10, false),
            FlowDecision::WaitForInput
        );
        assert_eq!(c.stops(), 1);
    }

    #[test]
    fn hysteresis_waits_for_high_and_stops_at_low() {
        let mut c = FlowController::new(cfg(FlowPolicy::Hysteresis, Some(lto9())));
        let high = (GIB as f64 * 0.9) as u64;
        let low = (GIB as f64 * 0.05) as u64;
        assert_eq!(
            c.next(0.0, high - 1, high - 1, false),
            FlowDecision::WaitForInput
        );
        assert_eq!(c.state(), WriterState::Waiting);
        assert_eq!(c.next(1.0, high, high, false), FlowDecision::Write);
        c.wrote(1.0, BLOCK);
        assert_eq!(c.state(), WriterState::Streaming);
        // Streams at full speed (no pacing) down to the low watermark.
        assert_eq!(c.next(1.0, low + 1, high, false), FlowDecision::Write);
        c.wrote(1.0, BLOCK);
        assert_eq!(c.next(1.0, low, high, false), FlowDecision::WaitForInput);
        assert_eq!(c.state(), WriterState::Paused);
        assert_eq!(c.stops(), 1);
        // Between the watermarks it does not resume.
        assert_eq!(
            c.next(2.0, high / 2, high * 2, false),
            FlowDecision::WaitForInput
        );
        assert_eq!(c.next(3.0, high, high * 3, false), FlowDecision::Write);
        assert_eq!(c.state(), WriterState::Streaming);
    }

    #[test]
    fn hysteresis_with_low_zero_drains_until_less_than_a_block() {
        let mut c = FlowController::new(FlowConfig {
            high: 0.4,
            low: 0.0,
            ..cfg(FlowPolicy::Hysteresis, None)
        });
        let high = (GIB as f64 * 0.4) as u64;
        assert_eq!(c.next(0.0, high, high, false), FlowDecision::Write);
        c.wrote(0.0, BLOCK);
        assert_eq!(c.next(0.0, BLOCK, high, false), FlowDecision::Write);
        c.wrote(0.0, BLOCK);
        assert_eq!(
            c.next(0.0, BLOCK - 1, high, false),
            FlowDecision::WaitForInput
        );
        assert_eq!(c.stops(), 1);
    }

    #[test]
    fn input_done_drains_everything_without_waiting() {
        for policy in [
            FlowPolicy::Adaptive,
            FlowPolicy::Hysteresis,
            FlowPolicy::Trickle,
        ] {
            let mut c = FlowController::new(cfg(policy, Some(lto9())));
            assert_eq!(
                c.next(0.0, 100, 100, true),
                FlowDecision::Write,
                "{policy:?}"
            );
            c.wrote(0.0, 100);
            assert_eq!(c.next(0.0, 0, 100, true), FlowDecision::WaitForInput);
            assert_eq!(c.stops(), 0, "the end of input is not a stop");
            assert_eq!(c.state(), WriterState::Waiting);
        }
        // Even mid-stream and paced: the rest goes out at once.
        let mut s = Sim::new(FlowController::new(cfg(FlowPolicy::Adaptive, Some(lto9()))));
        s.run(250.0 * MB, 20.0);
        let fill = s.fill;
        assert!(fill > 10 * BLOCK);
        let now = s.now;
        for _ in 0..fill.div_ceil(BLOCK) {
            assert_eq!(
                s.ctl.next(now, s.fill, s.produced, true),
                FlowDecision::Write
            );
            let n = s.fill.min(BLOCK);
            s.fill -= n;
            s.ctl.wrote(now, n);
        }
        assert_eq!(s.fill, 0);
        assert_eq!(s.ctl.stops(), 0);
    }

    #[test]
    fn adaptive_paces_at_the_input_rate_inside_the_range() {
        let mut s = Sim::new(FlowController::new(cfg(FlowPolicy::Adaptive, Some(lto9()))));
        s.run(250.0 * MB, 60.0);
        assert_eq!(s.ctl.state(), WriterState::Streaming);
        let out = s.run(250.0 * MB, 30.0) as f64 / 30.0;
        assert!((out - 250.0 * MB).abs() < 10.0 * MB, "writes at {out}");
        let pace = s.ctl.pace_rate();
        assert!((pace - 250.0 * MB).abs() < 25.0 * MB, "paces at {pace}");
        // The buffer settles near the middle of the watermarks, neither full nor empty.
        let share = s.fill as f64 / GIB as f64;
        assert!((0.25..0.75).contains(&share), "fill {share}");
        assert_eq!(s.ctl.stops(), 0);
        // Paced: asking again right after a write means waiting a block's time.
        let now = s.now;
        match s.ctl.next(now, s.fill, s.produced, false) {
            FlowDecision::WaitUntil(t) => assert!(t - now < 2.0 * BLOCK as f64 / (177.0 * MB)),
            FlowDecision::Write => {
                s.ctl.wrote(now, BLOCK);
                assert!(matches!(
                    s.ctl.next(now, s.fill - BLOCK, s.produced, false),
                    FlowDecision::WaitUntil(_)
                ));
            }
            FlowDecision::WaitForInput => panic!("waits for input with a full buffer"),
        }
    }

    #[test]
    fn adaptive_with_input_faster_than_native_writes_immediately() {
        let mut c = FlowController::new(cfg(FlowPolicy::Adaptive, Some(lto9())));
        // 600 MB/s for 2 s in 10 ms steps into a drive that takes 408 MB/s (7 blocks a step).
        let step = 6_000_000u64;
        let mut produced = 0;
        let mut fill = 0u64;
        let mut first = None;
        let mut written = 0u64;
        for i in 0..200 {
            let now = i as f64 * 0.01;
            produced += step;
            fill += step;
            for _ in 0..7 {
                match c.next(now, fill, produced, false) {
                    FlowDecision::Write => {
                        let n = fill.min(BLOCK);
                        fill -= n;
                        written += n;
                        c.wrote(now, n);
                        first.get_or_insert(now);
                    }
                    FlowDecision::WaitUntil(t) => {
                        assert!(t > now);
                        break;
                    }
                    FlowDecision::WaitForInput => {
                        assert!(first.is_none(), "waits for input at {now} with {fill}");
                        break;
                    }
                }
            }
        }
        // It started at once (no waiting for a watermark), never stopped, and wrote at
        // least at the floor (below native only while it builds a reserve in the buffer).
        assert!(first.is_some_and(|t| t < 0.1), "first write at {first:?}");
        assert_eq!(c.state(), WriterState::Streaming);
        assert_eq!(c.stops(), 0);
        let rate = written as f64 / 2.0;
        assert!(rate > 177.0 * MB, "wrote at {rate}");
    }

    #[test]
    fn adaptive_below_the_floor_accumulates_then_drains_at_the_floor() {
        let mut s = Sim::new(FlowController::new(cfg(FlowPolicy::Adaptive, Some(lto9()))));
        s.run(100.0 * MB, 5.0);
        assert_eq!(s.ctl.state(), WriterState::Waiting, "accumulates first");
        // Runs to the high watermark, then drains at the floor.
        s.run(100.0 * MB, 6.0);
        assert_eq!(s.ctl.state(), WriterState::Streaming);
        let out = s.run(100.0 * MB, 5.0) as f64 / 5.0;
        assert!((out - 177.0 * MB).abs() < 5.0 * MB, "drains at {out}");
        // Until the buffer is empty: one stop, then it accumulates again.
        s.run(100.0 * MB, 12.0);
        assert_eq!(s.ctl.stops(), 1);
        assert_eq!(s.ctl.state(), WriterState::Paused);
    }

    #[test]
    fn adaptive_paces_below_the_floor_while_the_drive_cache_is_full() {
        let floor = 177.0 * MB;
        let ctl =
            FlowController::new(cfg(FlowPolicy::Adaptive, Some(lto9()))).with_drive_cache(GIB);
        let mut s = Sim::new(ctl);
        // Below the floor: accumulates to the high watermark, then drains at the floor
        // (writes that never block leave the drive's cache estimate low).
        s.run(100.0 * MB, 12.0);
        assert_eq!(s.ctl.state(), WriterState::Streaming);
        assert_eq!(s.ctl.pace_rate(), floor);
        // A write that blocks for a second: the drive's cache is full.
        let now = s.now;
        let mut decision = s.ctl.next(now, s.fill, s.produced, false);
        if let FlowDecision::WaitUntil(t) = decision {
            decision = s.ctl.next(t, s.fill, s.produced, false);
        }
        assert_eq!(decision, FlowDecision::Write);
        s.fill -= BLOCK;
        s.ctl.wrote(now + 1.0, BLOCK);
        s.now = now + 1.0;
        let out = s.run(140.0 * MB, 2.0) as f64 / 2.0;
        assert!(out < 0.9 * floor && out >= 0.5 * floor, "writes at {out}");
        assert!(s.ctl.pace_rate() < floor);
        // The drive drains its cache at the floor: once the estimate says it is no longer
        // well filled, the output is back at the floor, with data still buffered, no stop.
        s.run(140.0 * MB, 25.0);
        let out = s.run(140.0 * MB, 2.0) as f64 / 2.0;
        assert!((out - floor).abs() < 0.05 * floor, "writes at {out}");
        assert!(s.fill > BLOCK);
        assert_eq!(s.ctl.stops(), 0);
        // Without a known drive cache, a blocking write changes nothing.
        let mut c = Sim::new(FlowController::new(cfg(FlowPolicy::Adaptive, Some(lto9()))));
        c.run(100.0 * MB, 12.0);
        c.ctl.wrote(c.now + 1.0, BLOCK);
        c.now += 1.0;
        c.run(100.0 * MB, 0.5);
        assert_eq!(c.ctl.pace_rate(), floor);
    }

    #[test]
    fn range_none_never_paces() {
        let mut c = FlowController::new(cfg(FlowPolicy::Adaptive, None));
        assert_eq!(
            c.next(0.0, BLOCK - 1, BLOCK - 1, false),
            FlowDecision::WaitForInput
        );
        let mut fill = 100 * BLOCK;
        let mut produced = fill;
        for i in 0..100 {
            let now = 1.0 + i as f64 * 1e-6;
            assert_eq!(c.next(now, fill, produced, false), FlowDecision::Write);
            fill -= BLOCK;
            c.wrote(now, BLOCK);
            produced += 1;
        }
        assert_eq!(c.next(2.0, 0, produced, false), FlowDecision::WaitForInput);
        assert_eq!(c.stops(), 1);
    }

    #[test]
    fn the_input_rate_estimate_follows_the_input() {
        let mut c = FlowController::new(cfg(FlowPolicy::Trickle, None));
        for i in 0..=3000 {
            let now = i as f64 * 0.01;
            c.next(now, 0, (now * 200.0 * MB) as u64, false);
        }
        let r = c.input_rate();
        assert!((r - 200.0 * MB).abs() < MB, "estimate {r}");
    }
}
