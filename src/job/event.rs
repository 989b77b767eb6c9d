//! Things that happen once in a job: each is logged, stamped with the job's sequence number
//! and the time, and handed to every subscriber of the job (see [`super::Job`]). The engine
//! sends them through [`Events`] and knows nothing of who watches.

use super::model::{Answer, JobKind, Outcome, Phase, TapeRequest};
use super::Job;
use crate::backup::flow::FlowPolicy;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Something that happened, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    JobStarted {
        id: String,
        kind: JobKind,
        what: String,
    },
    PhaseChanged {
        phase: Phase,
    },
    BackupStarted {
        uuid: String,
        drive: String,
        volume: Option<String>,
        files: u64,
        bytes: u64,
        buffer: u64,
        policy: FlowPolicy,
    },
    TapeFileStarted {
        volume: String,
        tape_file: u64,
        block: u64,
    },
    /// The writer stopped while input was still coming (a potential reposition).
    WriterStopped {
        at_bytes: u64,
        buffer_fill: u64,
    },
    FileSkipped {
        path: String,
        reason: String,
    },
    FileChanged {
        path: String,
        reason: String,
        saved: bool,
    },
    Interrupted {
        hard: bool,
    },
    /// A drive needs a (different) tape before the job can go on: the job waits for an
    /// answer to this request (see [`super::Command::Answer`]).
    TapeNeeded {
        request: TapeRequest,
    },
    /// Someone answered a pending request (`by`: the terminal, a socket client's pid).
    RequestAnswered {
        request: u64,
        answer: Answer,
        by: String,
    },
    /// A request no longer needs an answer: the drive holds a usable tape now, or a new
    /// request (another reason) replaced it.
    RequestWithdrawn {
        request: u64,
    },
    /// A cartridge was moved, loaded, unloaded, labelled or relabelled for the job.
    Media {
        drive: String,
        message: String,
    },
    /// A volume is in a drive and will be read or written.
    VolumeMounted {
        volume: String,
        drive: String,
    },
    /// A volume failed to take data: it is in error and should be pulled; the backup
    /// goes on on another volume, writing `file` (the member in flight) again whole.
    VolumeFailed {
        volume: String,
        drive: String,
        error: String,
        file: Option<String>,
    },
    Warning {
        message: String,
    },
    Error {
        message: String,
    },
    BackupFinished {
        uuid: String,
        status: String,
    },
    JobFinished {
        outcome: Outcome,
    },
}

/// An event as a job's subscribers get it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// 1, 2, 3, ... within the job: a client that saw `seq` N has missed nothing before it.
    pub seq: u64,
    /// Unix time, milliseconds.
    pub at_ms: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// Where events go: the log always, and the job (its subscribers) when there is one.
#[derive(Debug, Clone, Default)]
pub struct Events {
    job: Option<Arc<Job>>,
}

impl Events {
    /// Events that are only logged (a test, a job nobody can watch).
    pub fn new() -> Events {
        Events::default()
    }

    /// Events of `job`: logged and published to its subscribers.
    pub fn of(job: Arc<Job>) -> Events {
        Events { job: Some(job) }
    }

    /// Moves the job (if any) to `phase`.
    pub fn phase(&self, phase: Phase) {
        if let Some(job) = &self.job {
            job.set_phase(phase);
        }
    }

    pub fn send(&self, event: Event) {
        match &self.job {
            // The job logs what it publishes.
            Some(job) => {
                job.publish(event);
            }
            None => log(&event),
        }
    }
}

/// The log line of an event.
pub(super) fn log(event: &Event) {
    match event {
        Event::FileSkipped { path, reason } => tracing::warn!("skipped {path}: {reason}"),
        Event::FileChanged {
            path,
            reason,
            saved,
        } => {
            tracing::warn!(
                "{path}: {reason}{}",
                if *saved { "" } else { " (not saved)" }
            )
        }
        Event::Warning { message } => tracing::warn!("{message}"),
        Event::TapeNeeded { request } => tracing::warn!(
            "{} needs {}: {}; {} (request {})",
            request.drive,
            request.need,
            request.reason,
            if request.candidates.is_empty() {
                "no known volume qualifies (a blank cartridge does)".to_string()
            } else {
                let listed: Vec<String> =
                    request.candidates.iter().map(|c| c.to_string()).collect();
                format!("qualifying: {}", listed.join(", "))
            },
            request.id
        ),
        Event::RequestAnswered {
            request,
            answer,
            by,
        } => tracing::info!("request {request} answered `{}` by {by}", answer.as_str()),
        Event::Error { message } => tracing::error!("{message}"),
        Event::Media { message, .. } => tracing::info!("{message}"),
        Event::VolumeFailed {
            volume,
            drive,
            error,
            file,
        } => tracing::error!(
            "volume {volume} in {drive} failed ({error}); it is marked in error: pull it. \
             The backup goes on on another volume{}",
            file.as_ref()
                .map(|f| format!(", writing {f} again from its start"))
                .unwrap_or_default()
        ),
        Event::WriterStopped { .. } | Event::PhaseChanged { .. } => {
            tracing::debug!(?event, "job event")
        }
        Event::Interrupted { hard: false } => tracing::warn!(
            "interrupted: no more files are read; what is buffered goes to tape \
             (interrupt again to stop at once)"
        ),
        Event::Interrupted { hard: true } => {
            tracing::warn!("interrupted again: stopping the writer now")
        }
        other => tracing::info!(event = ?other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_events_read_back() {
        let e = Stamped {
            seq: 7,
            at_ms: 1_700_000_000_000,
            event: Event::RequestAnswered {
                request: 2,
                answer: Answer::Eject,
                by: "terminal".into(),
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""event":"request_answered""#), "{text}");
        assert_eq!(serde_json::from_str::<Stamped>(&text).unwrap(), e);
    }
}
