//! A command's work as a job: created with its id (the one `--detach` chose, else a new
//! one), reachable on its socket while it runs, watched on this terminal, and ended with
//! an outcome that follows the command's exit code.

use super::watch::{watch, LocalFeed, Show};
use anyhow::Result;
use std::sync::Arc;
use tapedeck::config::Config;
use tapedeck::interrupt::Interrupt;
use tapedeck::job::registry;
use tapedeck::job::socket::Server;
use tapedeck::job::{Job, JobKind, JobStatus, Outcome};

/// A job of this process.
pub(super) struct Running {
    pub job: Arc<Job>,
    server: Option<Server>,
}

impl Running {
    /// The job that runs `kind` on `what`, reachable on its socket (a job that cannot be
    /// reached still runs, with a warning).
    pub fn start(config: &Config, kind: JobKind, what: &str, interrupt: Interrupt) -> Running {
        let run = registry::run_dir(&config.home);
        let id = std::env::var(super::detach::JOB_ID)
            .ok()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| registry::new_id(&run, kind));
        let job = Job::new(&id, kind, what, interrupt);
        let server = match Server::start(job.clone(), &run) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("job {id} cannot be reached from other terminals: {e}");
                None
            }
        };
        tracing::info!("job {id}: {kind} of {what}");
        Running { job, server }
    }

    /// Records the buffer the job holds, for the RAM guard of jobs that start after it.
    pub fn set_buffer(&self, bytes: u64) {
        match &self.server {
            // The server puts it into the job's state and its record.
            Some(s) => {
                if let Err(e) = s.set_buffer(bytes) {
                    tracing::warn!("the buffer of this job is not recorded for other jobs: {e}");
                }
            }
            None => self.job.update(|s| s.buffer = bytes),
        }
    }

    /// Runs `work` while this terminal watches the job.
    pub fn watched<T>(&self, show: Show, work: impl FnOnce() -> T) -> T {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let watcher = {
            let job = self.job.clone();
            std::thread::spawn(move || watch(&mut LocalFeed::new(job, finished), &show))
        };
        let result = work();
        drop(done);
        let _ = watcher.join();
        result
    }

    /// Ends the job as `result` ends the command.
    pub fn finish(self, result: &Result<()>) {
        let outcome = match result {
            Ok(()) => Outcome::new(JobStatus::Complete, None),
            Err(e) => {
                let status = match super::exit_code(e) {
                    130 => JobStatus::Aborted,
                    2 => JobStatus::Refused,
                    _ => JobStatus::Failed,
                };
                Outcome::new(status, Some(super::describe(e)))
            }
        };
        self.job.finish(outcome);
        if let Some(s) = self.server {
            if let Err(e) = s.finish() {
                tracing::warn!("the job's record is not complete: {e}");
            }
        }
    }
}

/// Runs `work` as a job of `kind`, ended with the work's result.
pub(super) fn run_job(
    config: &Config,
    kind: JobKind,
    what: &str,
    interrupt: Interrupt,
    work: impl FnOnce(&Running) -> Result<()>,
) -> Result<()> {
    let running = Running::start(config, kind, what, interrupt);
    let result = work(&running);
    running.finish(&result);
    result
}
