//! Shoe-shine benchmark: a simulation, in model time, of a bursty source feeding the ring
//! buffer and a writer that follows a [`FlowController`] into the LTO-9 drive model
//! ([`Streamer`]). Prints, per trace family, policy and buffer size, the drive's
//! repositions, the writer's stops, the effective rate and the buffer's fill, then checks
//! the targets of the adaptive policy (PASS/FAIL lines; the exit status is 1 on a FAIL).
//!
//! The source follows seeded traces like the ones a user saw with `tar | mbuffer` on slow
//! disks: bursts of 1.5-6.5 s at ~500 MB/s (large files), small-file stretches at 20-60 MB/s
//! and stalls near 0. It is a producer that is held back when the buffer is full: its trace
//! pauses, nothing is lost.
//!
//! `cargo bench --bench shoeshine`; `SHOESHINE_SEEDS` (default 5) and `SHOESHINE_SECS`
//! (model seconds per trace, default 300) make it shorter; `SHOESHINE_VERBOSE=1` prints
//! every seed's run.

use std::sync::Arc;
use tapedeck::backup::flow::{FlowConfig, FlowController, FlowDecision, FlowPolicy, SpeedRange};
use tapedeck::tape::drive_model::DriveModel;
use tapedeck::vlib::streaming::{Clock, SimClock, Streamer};

const MB: f64 = 1e6;
const GIB: u64 = 1 << 30;
/// The writer's block.
const BLOCK: u64 = 512 << 10;
/// How often the source delivers (and a waiting writer looks again), model seconds.
const TICK: f64 = 0.01;
/// Width of the fill sparkline.
const SPARK: usize = 40;

/// splitmix64: a small deterministic generator, so every run sees the same traces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// A kind of trace: its average rate and how long its small-file stretches last.
#[derive(Clone, Copy)]
struct Family {
    name: &'static str,
    /// The average the trace aims at, bytes per second.
    average: f64,
    /// Range of a small-file stretch's length, seconds.
    slow_secs: (f64, f64),
}

const FAMILIES: &[Family] = &[
    Family {
        name: "in range",
        average: 250.0 * MB,
        slow_secs: (1.5, 8.0),
    },
    Family {
        name: "below floor",
        average: 150.0 * MB,
        slow_secs: (2.0, 10.0),
    },
    Family {
        name: "fast",
        average: 450.0 * MB,
        slow_secs: (0.5, 2.5),
    },
];

/// A stretch of the trace at one rate.
#[derive(Clone, Copy)]
struct Segment {
    secs: f64,
    /// Bytes per second.
    rate: f64,
}

/// A seeded trace of about `secs` seconds. Each segment is a burst, a small-file stretch
/// or a stall; bursts are likelier while the trace is behind its family's average, so every
/// seed has about that average while the order of things stays random.
fn trace(family: Family, seed: u64, secs: f64) -> Vec<Segment> {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ family.average.to_bits());
    let mut out = Vec::new();
    let (mut t, mut bytes) = (0.0, 0.0);
    while t < secs {
        let behind = (family.average * t - bytes) / (family.average * 10.0);
        let p_burst = (0.5 + behind).clamp(0.1, 0.95);
        let seg = if rng.unit() < p_burst {
            Segment {
                secs: rng.between(1.5, 6.5),
                rate: rng.between(440.0, 560.0) * MB,
            }
        } else if rng.unit() < 0.8 {
            Segment {
                secs: rng.between(family.slow_secs.0, family.slow_secs.1),
                rate: rng.between(20.0, 60.0) * MB,
            }
        } else {
            Segment {
                secs: rng.between(0.3, 3.0),
                rate: rng.between(0.0, 2.0) * MB,
            }
        };
        let seg = Segment {
            secs: seg.secs.min(secs - t),
            ..seg
        };
        t += seg.secs;
        bytes += seg.secs * seg.rate;
        out.push(seg);
    }
    out
}

/// The producer: walks its trace, held back while the buffer is full.
struct Source {
    segments: Vec<Segment>,
    index: usize,
    /// Seconds into the current segment.
    into: f64,
    /// Model time up to which it has produced.
    t: f64,
    /// Fractional byte carried over between steps.
    carry: f64,
    produced: u64,
}

impl Source {
    fn new(segments: Vec<Segment>) -> Self {
        Source {
            segments,
            index: 0,
            into: 0.0,
            t: 0.0,
            carry: 0.0,
            produced: 0,
        }
    }

    fn done(&self) -> bool {
        self.index >= self.segments.len()
    }

    /// Produces into the buffer (`fill` of `capacity`) up to model time `to`. When the
    /// buffer is full the producer waits: the rest of the interval does not move its trace.
    fn advance(&mut self, to: f64, fill: &mut u64, capacity: u64) {
        let mut dt = to - self.t;
        if dt <= 0.0 {
            return;
        }
        self.t = to;
        while dt > 0.0 && !self.done() {
            let seg = self.segments[self.index];
            let step = dt.min(seg.secs - self.into);
            let want = seg.rate * step + self.carry;
            let room = capacity - *fill;
            if want < room as f64 {
                let bytes = want.floor();
                self.carry = want - bytes;
                *fill += bytes as u64;
                self.produced += bytes as u64;
                self.into += step;
                dt -= step;
            } else {
                // Fills the buffer and waits for room for the rest of the interval.
                *fill += room;
                self.produced += room;
                self.into += (room as f64 - self.carry).max(0.0) / seg.rate;
                self.carry = 0.0;
                dt = 0.0;
            }
            if self.into >= seg.secs - 1e-12 {
                self.index += 1;
                self.into = 0.0;
            }
        }
    }
}

/// A policy under test with its watermarks.
#[derive(Clone, Copy)]
struct Policy {
    label: &'static str,
    policy: FlowPolicy,
    high: f64,
    low: f64,
}

const POLICIES: &[Policy] = &[
    Policy {
        label: "trickle",
        policy: FlowPolicy::Trickle,
        high: 0.9,
        low: 0.05,
    },
    // mbuffer -P 40: start at 40 %, drain until empty.
    Policy {
        label: "hyst@40",
        policy: FlowPolicy::Hysteresis,
        high: 0.4,
        low: 0.0,
    },
    // tapedeck's hysteresis with its default watermarks.
    Policy {
        label: "hyst@90",
        policy: FlowPolicy::Hysteresis,
        high: 0.9,
        low: 0.05,
    },
    Policy {
        label: "adaptive",
        policy: FlowPolicy::Adaptive,
        high: 0.9,
        low: 0.05,
    },
];

const BUFFERS: &[u64] = &[GIB, 4 * GIB];

/// What one run measured.
#[derive(Clone, Default)]
struct Outcome {
    repositions: u64,
    stops: u64,
    bytes: u64,
    secs: f64,
    /// Time-weighted mean fill as a share of capacity (while input lasted).
    mean_fill: f64,
    /// Share of the time (while input lasted) with less than one block buffered.
    empty: f64,
    /// Fill share samples, one per `SAMPLE_SECS`.
    samples: Vec<f64>,
}

impl Outcome {
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9) / MB
    }
}

const SAMPLE_SECS: f64 = 0.25;

/// Runs one trace through a buffer of `capacity` and a writer following `policy`.
fn run(segments: Vec<Segment>, policy: Policy, capacity: u64) -> Outcome {
    let model = DriveModel::builtin("LTO-9").expect("LTO-9 is a built-in model");
    let range = SpeedRange {
        floor: model.floor() as f64,
        native: model.native() as f64,
    };
    let clock = SimClock::new();
    let cache = model.cache;
    let mut drive = Streamer::new(model, Arc::new(clock.clone()));
    let mut ctl = FlowController::new(FlowConfig {
        policy: policy.policy,
        capacity,
        block: BLOCK,
        high: policy.high,
        low: policy.low,
        range: Some(range),
    })
    .with_drive_cache(cache);
    let mut source = Source::new(segments);
    let mut fill = 0u64;
    let mut written = 0u64;
    let mut t = 0.0f64;
    let (mut fill_secs, mut empty_secs, mut input_secs) = (0.0, 0.0, 0.0);
    let mut samples = Vec::new();
    let mut next_sample = 0.0;
    // Moves model time to `to`: the source produces, the fill statistics accumulate.
    let mut advance = |t: &mut f64, to: f64, fill: &mut u64, source: &mut Source| {
        if to <= *t {
            return;
        }
        if !source.done() {
            let dt = to - *t;
            input_secs += dt;
            fill_secs += dt * *fill as f64 / capacity as f64;
            if *fill < BLOCK {
                empty_secs += dt;
            }
        }
        while next_sample <= to {
            samples.push(*fill as f64 / capacity as f64);
            next_sample += SAMPLE_SECS;
        }
        source.advance(to, fill, capacity);
        *t = to;
    };
    loop {
        let done = source.done();
        if done && fill == 0 {
            break;
        }
        match ctl.next(t, fill, source.produced, done) {
            FlowDecision::Write => {
                let n = fill.min(BLOCK);
                fill -= n;
                clock.advance_to(t);
                drive.write(n);
                written += n;
                // The write may wait on the drive (its cache is full): the source goes on.
                let after = clock.now().max(t);
                advance(&mut t, after, &mut fill, &mut source);
                ctl.wrote(t, n);
            }
            FlowDecision::WaitUntil(due) => {
                let to = if due > t { due.min(t + TICK) } else { t + TICK };
                advance(&mut t, to, &mut fill, &mut source);
            }
            FlowDecision::WaitForInput => {
                let to = t + TICK;
                advance(&mut t, to, &mut fill, &mut source);
            }
        }
    }
    clock.advance_to(t);
    drive.flush();
    let stats = drive.stats();
    Outcome {
        repositions: stats.repositions,
        stops: ctl.stops(),
        bytes: written,
        secs: clock.now(),
        mean_fill: fill_secs / input_secs.max(1e-9),
        empty: empty_secs / input_secs.max(1e-9),
        samples,
    }
}

/// Fill history as a fixed-width sparkline (mean fill per time bucket).
fn sparkline(samples: &[f64]) -> String {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if samples.is_empty() {
        return String::new();
    }
    (0..SPARK)
        .map(|i| {
            let a = i * samples.len() / SPARK;
            let b = ((i + 1) * samples.len() / SPARK)
                .max(a + 1)
                .min(samples.len());
            let mean = samples[a..b].iter().sum::<f64>() / (b - a) as f64;
            LEVELS[((mean * 8.0).round() as usize).min(8)]
        })
        .collect()
}

fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={v} is not a number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// All seeds' outcomes of one (family, buffer, policy).
struct Row {
    family: usize,
    buffer: u64,
    policy: usize,
    runs: Vec<Outcome>,
}

impl Row {
    fn repositions(&self) -> u64 {
        self.runs.iter().map(|o| o.repositions).sum()
    }
    fn stops(&self) -> u64 {
        self.runs.iter().map(|o| o.stops).sum()
    }
    fn mbps(&self) -> f64 {
        self.runs.iter().map(Outcome::mbps).sum::<f64>() / self.runs.len().max(1) as f64
    }
    fn mean(&self, f: impl Fn(&Outcome) -> f64) -> f64 {
        self.runs.iter().map(f).sum::<f64>() / self.runs.len().max(1) as f64
    }
}

fn main() {
    let seeds = env_number("SHOESHINE_SEEDS", 5.0).max(1.0) as u64;
    let secs = env_number("SHOESHINE_SECS", 300.0).max(10.0);
    let verbose = std::env::var_os("SHOESHINE_VERBOSE").is_some();
    println!(
        "shoe-shine simulation: LTO-9 (177-408 MB/s, 1 GiB cache, 2.5 s reposition), \
         {seeds} seeds x {secs} s per trace family, {} KiB blocks",
        BLOCK >> 10
    );
    let mut rows = Vec::new();
    for (fi, family) in FAMILIES.iter().enumerate() {
        let traces: Vec<Vec<Segment>> = (0..seeds).map(|s| trace(*family, s, secs)).collect();
        let avg = traces
            .iter()
            .map(|tr| tr.iter().map(|s| s.secs * s.rate).sum::<f64>() / secs)
            .sum::<f64>()
            / seeds as f64;
        println!(
            "\ntrace {:?}: source average {:.0} MB/s (aim {:.0})",
            family.name,
            avg / MB,
            family.average / MB
        );
        println!(
            "{:<7} {:<9} {:>6} {:>6} {:>7} {:>6} {:>6}  fill over time (seed 0)",
            "buffer", "policy", "repos", "stops", "MB/s", "fill%", "empty%"
        );
        for &buffer in BUFFERS {
            for (pi, policy) in POLICIES.iter().enumerate() {
                let runs: Vec<Outcome> = traces
                    .iter()
                    .map(|tr| run(tr.clone(), *policy, buffer))
                    .collect();
                let row = Row {
                    family: fi,
                    buffer,
                    policy: pi,
                    runs,
                };
                println!(
                    "{:<7} {:<9} {:>6} {:>6} {:>7.1} {:>6.1} {:>6.1}  |{}|",
                    format!("{}GiB", buffer / GIB),
                    policy.label,
                    row.repositions(),
                    row.stops(),
                    row.mbps(),
                    100.0 * row.mean(|o| o.mean_fill),
                    100.0 * row.mean(|o| o.empty),
                    sparkline(&row.runs[0].samples)
                );
                if verbose {
                    for (s, o) in row.runs.iter().enumerate() {
                        println!(
                            "        seed {s}: repos {} stops {} {:.1} MB/s {:.0} s",
                            o.repositions,
                            o.stops,
                            o.mbps(),
                            o.secs
                        );
                    }
                }
                rows.push(row);
            }
        }
    }
    println!();
    let failures = check(&rows);
    // A benchmark reports; it does not fail the build (tests check behaviour).
    if failures > 0 {
        println!("{failures} target(s) missed");
    } else {
        println!("all targets met");
    }
}

/// Finds the row of family `f` (by name), buffer and policy label.
fn find<'a>(rows: &'a [Row], family: &str, buffer: u64, policy: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        FAMILIES[r.family].name == family
            && r.buffer == buffer
            && POLICIES[r.policy].label == policy
    })
}

fn verdict(ok: bool, what: String) -> u64 {
    println!("{} {what}", if ok { "PASS" } else { "FAIL" });
    u64::from(!ok)
}

/// Checks the adaptive policy's targets; returns how many failed.
fn check(rows: &[Row]) -> u64 {
    let mut failures = 0;
    let row = |f: &str, b: u64, p: &str| find(rows, f, b, p).expect("every combination ran");
    // 1. In range with 4 GiB: the drive never stops.
    let a = row("in range", 4 * GIB, "adaptive");
    let h = row("in range", 4 * GIB, "hyst@40");
    failures += verdict(
        a.repositions() == 0,
        format!(
            "in range, 4 GiB: adaptive {} repositions (hyst@40 {})",
            a.repositions(),
            h.repositions()
        ),
    );
    // 2. Below the floor: at most half of mbuffer -P 40's repositions.
    for &b in BUFFERS {
        let a = row("below floor", b, "adaptive");
        let h = row("below floor", b, "hyst@40");
        failures += verdict(
            2 * a.repositions() <= h.repositions(),
            format!(
                "below floor, {} GiB: adaptive {} repositions <= 1/2 of hyst@40 {}",
                b / GIB,
                a.repositions(),
                h.repositions()
            ),
        );
    }
    // 3. At 1 GiB: never more repositions than either hysteresis, trace by trace.
    for family in FAMILIES {
        let a = row(family.name, GIB, "adaptive");
        let h40 = row(family.name, GIB, "hyst@40");
        let h90 = row(family.name, GIB, "hyst@90");
        let worse: Vec<String> = (0..a.runs.len())
            .filter(|&s| {
                let best = h40.runs[s].repositions.min(h90.runs[s].repositions);
                a.runs[s].repositions > best
            })
            .map(|s| {
                format!(
                    "seed {s}: {} vs {}/{}",
                    a.runs[s].repositions, h40.runs[s].repositions, h90.runs[s].repositions
                )
            })
            .collect();
        failures += verdict(
            worse.is_empty(),
            format!(
                "{}, 1 GiB: adaptive {} repositions, hyst@40 {}, hyst@90 {}; worse on {} of {} \
                 traces{}",
                family.name,
                a.repositions(),
                h40.repositions(),
                h90.repositions(),
                worse.len(),
                a.runs.len(),
                if worse.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", worse.join(", "))
                }
            ),
        );
    }
    // 4. Fast input: adaptive keeps (within 3 %) trickle's throughput.
    for &b in BUFFERS {
        let a = row("fast", b, "adaptive");
        let t = row("fast", b, "trickle");
        failures += verdict(
            a.mbps() >= 0.97 * t.mbps(),
            format!(
                "fast, {} GiB: adaptive {:.1} MB/s vs trickle {:.1} MB/s ({:+.1} %)",
                b / GIB,
                a.mbps(),
                t.mbps(),
                100.0 * (a.mbps() / t.mbps() - 1.0)
            ),
        );
    }
    failures
}
