//! How late a client of a job's socket hears what the job's writer did, in one process:
//! a [`Job`] with its [`Server`] in a temporary run directory and one [`Client`].
//!
//! - Events: `job.publish` at a known instant, until the client takes that event (each
//!   published after the one before arrived, at irregular gaps).
//! - State: `job.update` setting `progress.bytes_done` to a counter every few
//!   milliseconds; each update's latency is the time until the client takes the first
//!   state message showing it (or a later value). The socket sends the state every
//!   [`STATE_EVERY`], so this is spread over 0 to that.
//! - State the way the CLI has it: the counter goes into the backup's telemetry
//!   (`bytes_written`), the job's sampler reads it into the job every [`sample::EVERY`],
//!   the socket sends it every [`STATE_EVERY`]: bounded by about the sum.
//!
//! Prints median and p99 of each; nothing is asserted. `cargo bench --bench latency`.
//! Environment: LATENCY_EVENTS (default 500), LATENCY_STATE_SECS (each state phase,
//! default 12).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tapedeck::backup::telemetry::Telemetry;
use tapedeck::interrupt::Interrupt;
use tapedeck::job::sample::{self, Sampler};
use tapedeck::job::socket::{Server, STATE_EVERY};
use tapedeck::job::{Client, Event, Job, JobKind, Message};

const ID: &str = "backup-1a7e00";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pseudo-random gaps (xorshift), so that samples do not line up with the state ticks.
struct Gaps(u64);

impl Gaps {
    /// A gap of `lo_ms` to `hi_ms`.
    fn next(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span_us = (hi_ms - lo_ms) * 1000;
        Duration::from_micros(lo_ms * 1000 + self.0 % span_us.max(1))
    }
}

/// Median, p99 and max of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let n = samples.len();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = samples[(n * 99).div_ceil(100).max(1) - 1];
    format!(
        "median {:.3} ms, p99 {:.3} ms, max {:.3} ms ({n} samples)",
        ms(samples[n / 2]),
        ms(p99),
        ms(samples[n - 1])
    )
}

/// Each event's time from `publish` until the client takes it.
fn events(job: &Job, client: &mut Client, count: u64) -> Vec<Duration> {
    let mut gaps = Gaps(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for i in 0..count {
        std::thread::sleep(gaps.next(2, 12));
        let start = Instant::now();
        let sent = job.publish(Event::Warning {
            message: format!("latency sample {i}"),
        });
        loop {
            match client.next(Duration::from_secs(10)) {
                Ok(Some(Message::Event(e))) if e.seq == sent.seq => break,
                Ok(Some(_)) => {}
                other => panic!("event {i} did not arrive: {other:?}"),
            }
        }
        out.push(start.elapsed());
    }
    out
}

/// Each update's time until the client takes a state showing it: `set(n)` puts counter
/// value `n` where the state will show it as `progress.bytes_done`, every few ms for
/// `secs`.
fn states(client: &mut Client, secs: u64, set: impl FnMut(u64) + Send + 'static) -> Vec<Duration> {
    let run_for = Duration::from_secs(secs);
    let writer = std::thread::spawn(move || {
        let mut set = set;
        let mut gaps = Gaps(0x2545_f491_4f6c_dd1d);
        let mut at = Vec::new();
        let start = Instant::now();
        while start.elapsed() < run_for {
            std::thread::sleep(gaps.next(2, 12));
            at.push(Instant::now());
            set(at.len() as u64);
        }
        at
    });
    // What the client saw, as (value, when): until a state shows the writer's last value.
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    let deadline = Instant::now() + run_for + Duration::from_secs(5);
    let mut writer = Some(writer);
    let mut updates = Vec::new();
    loop {
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            updates = writer
                .take()
                .map(|w| w.join().expect("writer"))
                .unwrap_or_default();
        }
        if writer.is_none() && seen.last().is_some_and(|&(v, _)| v >= updates.len() as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "the last update never arrived");
        match client.next(Duration::from_secs(10)) {
            Ok(Some(Message::State { state })) => {
                seen.push((state.progress.bytes_done, Instant::now()));
            }
            Ok(Some(_)) => {}
            other => panic!("no state: {other:?}"),
        }
    }
    let mut latencies = Vec::with_capacity(updates.len());
    let mut k = 0;
    for (i, at) in updates.iter().enumerate() {
        let value = i as u64 + 1;
        while seen[k].0 < value {
            k += 1;
        }
        latencies.push(seen[k].1.saturating_duration_since(*at));
    }
    latencies
}

fn main() {
    let event_count = env_u64("LATENCY_EVENTS", 500).max(1);
    let state_secs = env_u64("LATENCY_STATE_SECS", 12).max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tapedeck::job::registry::run_dir(tmp.path());
    let job = Job::new(ID, JobKind::Backup, "latency bench", Interrupt::new());
    let server = Server::start(job.clone(), &run).expect("job socket");
    let mut client = Client::connect(&run, ID).expect("client");

    let mut e = events(&job, &mut client, event_count);
    println!("event latency publish -> client: {}", summary(&mut e));

    reset(&job, &mut client);
    let direct = job.clone();
    let mut s = states(&mut client, state_secs, move |n| {
        direct.update(|s| s.progress.bytes_done = n)
    });
    println!(
        "state latency job.update -> client (state every {} ms): {}",
        STATE_EVERY.as_millis(),
        summary(&mut s)
    );

    reset(&job, &mut client);
    let telemetry = Arc::new(Telemetry::default());
    let sampler = Sampler::start(job.clone(), {
        let telemetry = telemetry.clone();
        move || sample::from_backup(&telemetry.snapshot())
    });
    let mut s = states(&mut client, state_secs, move |n| {
        telemetry.update(|s| s.bytes_written = n)
    });
    drop(sampler);
    println!(
        "state latency telemetry -> client (sampled every {} ms, sent every {} ms, bound ~{} ms): {}",
        sample::EVERY.as_millis(),
        STATE_EVERY.as_millis(),
        (sample::EVERY + STATE_EVERY).as_millis(),
        summary(&mut s)
    );
    drop(client);
    server.finish().expect("server finish");
}

/// Sets the counter back to 0 and reads on until a state shows it, so that no state from
/// before is taken as a sample.
fn reset(job: &Job, client: &mut Client) {
    job.update(|s| s.progress.bytes_done = 0);
    loop {
        match client.next(Duration::from_secs(10)) {
            Ok(Some(Message::State { state })) if state.progress.bytes_done == 0 => return,
            Ok(Some(_)) => {}
            other => panic!("no state: {other:?}"),
        }
    }
}
