//! The streaming simulation behind the virtual drive, over a [`DriveModel`]'s figures.
//!
//! An LTO drive streams at any of its speed-matching steps between a floor and its native
//! rate. Data goes through the drive's cache; when the cache runs dry because the host
//! sends less than the floor for longer than the cache covers, the tape stops, and before
//! it can write again it must reposition (back up and get up to speed): that costs
//! `reposition` seconds and a little tape wear, and is what operators call shoe-shining.
//! [`Streamer`] models exactly that in model time from a [`Clock`], so tests and
//! benchmarks can count repositions without waiting for them.

use crate::tape::drive_model::DriveModel;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Model time. [`Streamer`] asks it for the time and to wait.
pub trait Clock: Send + Sync {
    /// Seconds of model time since the clock started.
    fn now(&self) -> f64;
    /// Waits until model time `t` (returns at once if it has passed).
    fn sleep_until(&self, t: f64);
}

/// Wall-clock time multiplied by a scale: 1 = real drive speed, k = k times faster.
pub struct ScaledClock {
    start: Instant,
    scale: f64,
}

impl ScaledClock {
    pub fn new(scale: f64) -> Self {
        ScaledClock {
            start: Instant::now(),
            scale,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.scale
    }
    fn sleep_until(&self, t: f64) {
        let wait = (t - self.now()) / self.scale;
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
    }
}

/// A clock that only moves when told to: simulations advance it as their source
/// "produces" data, and waiting on it jumps ahead. Deterministic for tests and benchmarks.
#[derive(Default, Clone)]
pub struct SimClock {
    nanos: Arc<AtomicU64>,
}

impl SimClock {
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves the clock forward to `t` (never backward).
    pub fn advance_to(&self, t: f64) {
        let n = (t.max(0.0) * 1e9) as u64;
        self.nanos.fetch_max(n, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> f64 {
        self.nanos.load(Ordering::SeqCst) as f64 / 1e9
    }
    fn sleep_until(&self, t: f64) {
        self.advance_to(t);
    }
}

/// Counters of one drive session, kept in `library.json` across sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamStats {
    /// Stops with an empty cache after which the drive had to reposition to write again.
    pub repositions: u64,
    /// Bytes the drive has written to tape.
    pub bytes_written: u64,
    /// Model seconds the tape was moving while writing.
    pub streaming_secs: f64,
    /// Model seconds lost repositioning.
    pub repositioning_secs: f64,
}

/// The drive's side of a write stream: cache, speed matching, stops and repositions.
pub struct Streamer {
    model: DriveModel,
    clock: Arc<dyn Clock>,
    /// Model time the state below describes.
    t: f64,
    cache: f64,
    streaming: bool,
    /// Tape speed while streaming, bytes per second.
    rate: f64,
    /// Earliest time the tape may move again (end of a reposition).
    ready_at: f64,
    /// The cache ran dry while streaming: the next start costs a reposition.
    stopped_dry: bool,
    /// Smoothed host input rate, bytes per second.
    input_rate: f64,
    last_input: Option<f64>,
    stats: StreamStats,
}

/// Time constant of the drive's estimate of the host rate, seconds.
const INPUT_SMOOTHING_SECS: f64 = 1.0;

impl Streamer {
    pub fn new(model: DriveModel, clock: Arc<dyn Clock>) -> Self {
        let t = clock.now();
        Streamer {
            rate: model.native() as f64,
            model,
            clock,
            t,
            cache: 0.0,
            streaming: false,
            ready_at: t,
            stopped_dry: false,
            input_rate: 0.0,
            last_input: None,
            stats: StreamStats::default(),
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Bytes waiting in the drive's cache.
    pub fn cache_fill(&self) -> u64 {
        self.cache as u64
    }

    /// Whether the tape is moving.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// The current tape speed in bytes per second (0 when stopped).
    pub fn tape_rate(&self) -> f64 {
        if self.streaming {
            self.rate
        } else {
            0.0
        }
    }

    /// Runs the model forward to `now` with no new input.
    fn advance(&mut self, now: f64) {
        if now <= self.t {
            return;
        }
        if self.streaming {
            let start = self.t.max(self.ready_at);
            if start < now {
                let drained = (now - start) * self.rate;
                if drained >= self.cache {
                    let dry_at = start + self.cache / self.rate;
                    self.stats.bytes_written += self.cache as u64;
                    self.stats.streaming_secs += dry_at - start;
                    self.cache = 0.0;
                    self.streaming = false;
                    self.stopped_dry = true;
                } else {
                    self.cache -= drained;
                    self.stats.bytes_written += drained as u64;
                    self.stats.streaming_secs += now - start;
                }
            }
        }
        self.t = now;
    }

    fn start(&mut self, now: f64) {
        if self.streaming {
            return;
        }
        if self.stopped_dry {
            self.stats.repositions += 1;
            self.stats.repositioning_secs += self.model.reposition_secs;
            self.ready_at = self.ready_at.max(now) + self.model.reposition_secs;
            self.stopped_dry = false;
        } else {
            self.ready_at = self.ready_at.max(now);
        }
        self.streaming = true;
    }

    /// The host hands the drive `bytes`; returns once they are in the drive's cache
    /// (waiting on the clock while the cache is full).
    pub fn write(&mut self, bytes: u64) {
        let now = self.clock.now();
        self.advance(now);
        let n = bytes as f64;
        if let Some(last) = self.last_input {
            let dt = (now - last).max(1e-9);
            let alpha = 1.0 - (-dt / INPUT_SMOOTHING_SECS).exp();
            self.input_rate += alpha * (n / dt - self.input_rate);
        } else {
            self.input_rate = self.model.native() as f64;
        }
        self.last_input = Some(now);
        let size = self.model.cache as f64;
        if self.cache + n > size {
            // The host outruns the tape: the drive takes data at tape speed.
            self.start(now);
            self.rate = self.model.native() as f64;
            let start = self.t.max(self.ready_at);
            let room_at = start + (self.cache + n - size) / self.rate;
            self.clock.sleep_until(room_at);
            self.advance(room_at.max(self.clock.now()));
        }
        self.cache += n;
        if !self.streaming && self.cache >= size * self.model.restart_fill {
            self.start(self.t);
        }
        if self.streaming {
            // Speed matching: follow the host rate, a little slower while the cache is
            // low and a little faster while it is high, so it neither runs dry nor fills.
            let fill = self.cache / size;
            let target = self.input_rate * (0.9 + 0.2 * fill);
            self.rate = self.model.step_for(target) as f64;
        }
    }

    /// Writes out everything cached (a synchronous filemark, rewind, unload) and waits for it.
    pub fn flush(&mut self) {
        let now = self.clock.now();
        self.advance(now);
        if self.cache > 0.0 {
            self.start(self.t);
            let done = self.t.max(self.ready_at) + self.cache / self.rate;
            self.clock.sleep_until(done);
            self.advance(done.max(self.clock.now()));
        }
        // Stopping after a flush is the end of a stream, not an underrun.
        self.streaming = false;
        self.stopped_dry = false;
        self.last_input = None;
    }

    /// Waits as long as reading `bytes` at native speed takes.
    pub fn read(&mut self, bytes: u64) {
        let done = self.clock.now() + bytes as f64 / self.model.native() as f64;
        self.clock.sleep_until(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    fn lto9() -> DriveModel {
        DriveModel::builtin("lto9").unwrap()
    }

    /// Feeds the streamer 1 MB writes at `rate` bytes/s for `secs` seconds of model time.
    fn feed(s: &mut Streamer, clock: &SimClock, rate: f64, secs: f64) {
        let chunk = 1_000_000u64;
        let step = chunk as f64 / rate;
        let end = clock.now() + secs;
        while clock.now() < end {
            clock.advance_to(clock.now() + step);
            s.write(chunk);
        }
    }

    #[test]
    fn input_inside_the_speed_range_streams_without_stops() {
        let clock = SimClock::new();
        let mut s = Streamer::new(lto9(), Arc::new(clock.clone()));
        feed(&mut s, &clock, 250.0 * MB, 60.0);
        assert_eq!(s.stats().repositions, 0);
        assert!(s.is_streaming());
        let rate = s.tape_rate();
        assert!(
            (230.0 * MB..290.0 * MB).contains(&rate),
            "tape speed {rate} follows the host"
        );
    }

    #[test]
    fn input_below_the_floor_shoe_shines() {
        let clock = SimClock::new();
        let mut s = Streamer::new(lto9(), Arc::new(clock.clone()));
        feed(&mut s, &clock, 100.0 * MB, 120.0);
        let r = s.stats().repositions;
        // Each cycle: fill half the cache at 100 MB/s, drain at 177 MB/s net 77 MB/s.
        assert!((5..=30).contains(&r), "repositions {r}");
    }

    #[test]
    fn a_pause_longer_than_the_cache_covers_costs_one_reposition() {
        let clock = SimClock::new();
        let mut s = Streamer::new(lto9(), Arc::new(clock.clone()));
        feed(&mut s, &clock, 300.0 * MB, 10.0);
        clock.advance_to(clock.now() + 20.0);
        feed(&mut s, &clock, 300.0 * MB, 10.0);
        assert_eq!(s.stats().repositions, 1);
        s.flush();
        assert_eq!(s.cache_fill(), 0);
        assert_eq!(
            s.stats().repositions,
            1,
            "the final flush is not an underrun"
        );
    }

    #[test]
    fn a_fast_host_is_held_to_the_native_rate() {
        let clock = SimClock::new();
        let mut s = Streamer::new(lto9(), Arc::new(clock.clone()));
        let start = clock.now();
        for _ in 0..8000 {
            s.write(1_000_000); // as fast as the drive takes them
        }
        s.flush();
        let secs = clock.now() - start;
        let rate = 8000.0 * MB / secs;
        assert!((rate - 408.0 * MB).abs() < 10.0 * MB, "rate {rate}");
        assert_eq!(s.stats().repositions, 0);
    }

    #[test]
    fn scaled_clock_runs_faster() {
        let c = ScaledClock::new(1000.0);
        let t0 = c.now();
        c.sleep_until(t0 + 5.0);
        assert!(c.now() >= t0 + 5.0);
    }
}
