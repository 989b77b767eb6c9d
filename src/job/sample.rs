//! A job's state kept fresh: a thread reads the engine's numbers a few times a second
//! (a backup's telemetry snapshot, a restore's counters) into the job, with a rate
//! smoothed over a window and the ETA from it.

use super::model::{DriveView, Phase, Progress};
use super::Job;
use crate::backup::telemetry::Snapshot;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the state is refreshed.
pub const EVERY: Duration = Duration::from_millis(250);
/// The window the rate is averaged over: long enough that a drive-cache burst at the
/// start, or a stretch of small files, does not swing the ETA.
pub const RATE_WINDOW: Duration = Duration::from_secs(20);
/// No ETA until the window covers this much: the first seconds are the drive's cache.
const RATE_MIN_SPAN: Duration = Duration::from_secs(5);

/// A rate over a sliding window of (time, bytes done) samples.
#[derive(Debug, Default)]
pub struct WindowRate {
    samples: VecDeque<(Instant, u64)>,
}

impl WindowRate {
    /// Adds a sample; returns the rate over the window, bytes/s, once it spans enough.
    pub fn push(&mut self, at: Instant, done: u64) -> Option<f64> {
        self.samples.push_back((at, done));
        while let Some(&(t, _)) = self.samples.front() {
            if at.duration_since(t) > RATE_WINDOW && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let &(t0, d0) = self.samples.front()?;
        let span = at.duration_since(t0);
        (span >= RATE_MIN_SPAN).then(|| done.saturating_sub(d0) as f64 / span.as_secs_f64())
    }
}

/// What one look at the engine gives.
pub struct Sample {
    pub progress: Progress,
    pub drives: Vec<DriveView>,
    /// The phase the numbers show (streaming or paused), if they show one.
    pub phase: Option<Phase>,
}

/// Refreshes the job until dropped.
pub struct Sampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Starts a thread that calls `sample` every [`EVERY`] and puts the result into `job`.
    pub fn start(job: Arc<Job>, mut sample: impl FnMut() -> Sample + Send + 'static) -> Sampler {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("job-sampler".into())
            .spawn(move || {
                let mut rate = WindowRate::default();
                loop {
                    refresh(&job, &mut rate, sample());
                    if !matches!(
                        stopped.recv_timeout(EVERY),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    ) {
                        break;
                    }
                }
                // The last numbers, so the final state is complete.
                refresh(&job, &mut rate, sample());
            })
            .ok();
        Sampler {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn refresh(job: &Job, rate: &mut WindowRate, sample: Sample) {
    let Sample {
        mut progress,
        drives,
        phase,
    } = sample;
    // No rate and no ETA while the job waits for the operator: nobody knows how long that
    // takes, and the rate starts afresh after it.
    if job.phase() == Phase::WaitingForTape {
        *rate = WindowRate::default();
    } else if let Some(r) = rate.push(Instant::now(), progress.bytes_done) {
        progress.rate = r;
        let left = progress.bytes_total.saturating_sub(progress.bytes_done);
        progress.eta_secs = (r > 0.0 && progress.bytes_total > 0).then(|| left as f64 / r);
    }
    job.update(|s| {
        s.progress = progress;
        s.drives = drives;
    });
    // The numbers only tell streaming from paused; the other phases are set where they
    // happen (a tape request, the index) and are not overridden here.
    if let Some(p) = phase {
        if matches!(
            job.phase(),
            Phase::Preparing | Phase::Streaming | Phase::Paused | Phase::Positioning
        ) && p != job.phase()
        {
            job.set_phase(p);
        }
    }
}

/// A backup's telemetry as the job shows it.
pub fn from_backup(s: &Snapshot) -> Sample {
    use crate::backup::flow::WriterState;
    Sample {
        progress: Progress {
            files_done: s.files_done,
            files_total: s.files_total,
            // On tape, not read: reading runs ahead by the buffer and the drive cache.
            bytes_done: s.bytes_written,
            bytes_total: s.bytes_total.max(s.bytes_written),
            rate: 0.0,
            eta_secs: None,
            elapsed_secs: s.elapsed_secs,
            current_file: s.current_file.clone(),
        },
        drives: vec![DriveView {
            drive: s.drive.clone(),
            volume: s.volume.clone(),
            writer: s.writer,
            policy: s.policy,
            write_rate: s.write_rate,
            input_rate: s.input_rate,
            writer_stops: s.writer_stops,
            buffer_capacity: s.buffer_capacity,
            buffer_fill: s.buffer_fill,
            high_watermark: s.high_watermark,
            low_watermark: s.low_watermark,
        }],
        phase: match s.writer {
            Some(WriterState::Streaming) => Some(Phase::Streaming),
            Some(WriterState::Paused) => Some(Phase::Paused),
            _ => None,
        },
    }
}

/// A restore's or verify's counters as the job shows them.
pub fn from_reading(p: &crate::restore::Progress, elapsed: Duration) -> Sample {
    use std::sync::atomic::Ordering;
    Sample {
        progress: Progress {
            bytes_done: p.bytes.load(Ordering::Relaxed),
            bytes_total: p.total.load(Ordering::Relaxed),
            elapsed_secs: elapsed.as_secs_f64(),
            current_file: p.current(),
            ..Progress::default()
        },
        drives: Vec::new(),
        phase: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_burst_at_the_start_does_not_fool_the_rate() {
        let t0 = Instant::now();
        let mut rate = WindowRate::default();
        // 2 s of burst into the drive's cache (1 GB/s), then 100 MB/s.
        let mut done = 0u64;
        let mut last = None;
        for tenth in 0..400u64 {
            done += if tenth < 20 { 100_000_000 } else { 10_000_000 };
            last = rate.push(t0 + Duration::from_millis(tenth * 100), done);
            if tenth < 40 {
                assert_eq!(last, None, "no rate before the window spans 5 s");
            }
        }
        let r = last.unwrap();
        assert!((r - 100e6).abs() < 1e6, "{r}");
    }

    #[test]
    fn the_sampler_fills_the_job_in() {
        use crate::interrupt::Interrupt;
        use crate::job::JobKind;
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let snapshot = Snapshot {
            drive: "lto9".into(),
            bytes_written: 10,
            bytes_total: 100,
            writer: Some(crate::backup::flow::WriterState::Streaming),
            ..Snapshot::default()
        };
        drop(Sampler::start(job.clone(), move || from_backup(&snapshot)));
        let s = job.state();
        assert_eq!(s.progress.bytes_done, 10);
        assert_eq!(s.drives[0].drive, "lto9");
        assert_eq!(s.phase, Phase::Streaming);
    }
}
