//! What a job is, as its watchers see it: its identity, its phase, its progress and the
//! telemetry of each drive and buffer it uses, the request it waits on, how it ended; and
//! the commands it takes. Everything here is serde both ways: it is the wire format of a
//! job's socket (see the README's "Job protocol").

use crate::backup::flow::{FlowPolicy, WriterState};
use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Restore,
    Verify,
    Rebuild,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::Verify => "verify",
            JobKind::Rebuild => "rebuild",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Checking sources, opening the catalogue, finding a tape.
    #[default]
    Preparing,
    /// A drive needs a (different) tape: see the job's pending request.
    WaitingForTape,
    /// Moving the tape to where it is read or written.
    Positioning,
    /// Writing (or paced writing) to the drive.
    Streaming,
    /// Flow control stopped the writer until the buffer refills.
    Paused,
    /// No more input: what is buffered goes to tape.
    Draining,
    /// The backup's index tape file.
    WritingIndex,
    /// Reading from tape (restore, verify, rebuild).
    Reading,
    Done,
    Failed,
    Aborted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::WaitingForTape => "waiting for tape",
            Phase::Positioning => "positioning",
            Phase::Streaming => "streaming",
            Phase::Paused => "paused by flow control",
            Phase::Draining => "draining",
            Phase::WritingIndex => "writing index",
            Phase::Reading => "reading",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Aborted => "aborted",
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Aborted)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a job has come, in files and bytes, with a smoothed rate and the ETA from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub files_done: u64,
    /// Files the job will handle, as far as known (a backup's scan may still be counting).
    pub files_total: u64,
    /// Bytes on tape (a backup) or read from it (a restore).
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes/s, smoothed over several seconds: a drive-cache burst does not fool it.
    pub rate: f64,
    pub eta_secs: Option<f64>,
    pub elapsed_secs: f64,
    pub current_file: String,
}

/// One drive and the buffer that feeds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriveView {
    pub drive: String,
    pub volume: Option<String>,
    pub writer: Option<WriterState>,
    pub policy: Option<FlowPolicy>,
    /// Bytes/s over the last second.
    pub write_rate: f64,
    pub input_rate: f64,
    pub writer_stops: u64,
    pub buffer_capacity: u64,
    pub buffer_fill: u64,
    pub high_watermark: f64,
    pub low_watermark: f64,
}

/// A job's whole state at one moment: what a client gets on connecting and a few times a
/// second after that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub id: String,
    pub kind: JobKind,
    pub pid: u32,
    /// Unix time, seconds.
    pub started_at: i64,
    /// What the job works on, as the operator reads it ("/srv/data to pool weekly").
    pub what: String,
    pub phase: Phase,
    pub progress: Progress,
    pub drives: Vec<DriveView>,
    /// The ring buffer the job holds, bytes (0 for jobs without one).
    pub buffer: u64,
    pub pending: Option<TapeRequest>,
    pub outcome: Option<Outcome>,
}

/// A drive needs a tape: what the operator is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeRequest {
    /// Answers name the request by this id; a new request (a new reason) has a new id.
    pub id: u64,
    pub drive: String,
    /// What is needed: "a usable tape", "volume L00003".
    pub need: String,
    /// Why the tape in the drive (or none) will not do.
    pub reason: String,
    /// Volumes that would do, with where they are.
    pub candidates: Vec<Candidate>,
    /// The answers this request takes.
    pub answers: Vec<Answer>,
}

/// A cartridge that would satisfy a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The volume label, or the barcode of a cartridge the catalogue does not know.
    pub volume: String,
    /// The catalogue's status of the volume; `None` for an unknown cartridge (used if blank).
    pub status: Option<String>,
    /// Where it is: a slot, a drive, the import/export slot, or the catalogue's last location.
    pub location: String,
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.status {
            Some(status) => write!(f, "{} ({status}, {})", self.volume, self.location),
            None => write!(f, "{} ({})", self.volume, self.location),
        }
    }
}

/// An answer to a tape request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// A tape is loaded: look at the drive again (retry).
    Loaded,
    /// Eject the tape in the drive, then wait again.
    Eject,
    /// Stop the job (as Ctrl-C: aborted, exit 130).
    Abort,
    /// Go on without this volume (a restore's damaged or missing volume).
    Skip,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Loaded => "loaded",
            Answer::Eject => "eject",
            Answer::Abort => "abort",
            Answer::Skip => "skip",
        }
    }
}

impl std::str::FromStr for Answer {
    type Err = String;
    fn from_str(s: &str) -> Result<Answer, String> {
        match s {
            "loaded" | "retry" => Ok(Answer::Loaded),
            "eject" => Ok(Answer::Eject),
            "abort" => Ok(Answer::Abort),
            "skip" => Ok(Answer::Skip),
            other => Err(format!(
                "`{other}` is not an answer: loaded, eject, abort or skip"
            )),
        }
    }
}

/// A command to a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Stop: soft after the member in flight (what is buffered is written), hard at once.
    Abort {
        #[serde(default)]
        hard: bool,
    },
    /// The answer to a pending tape request, named by its id.
    Answer { request: u64, answer: Answer },
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Complete,
    /// Ended by the operator (Ctrl-C, SIGTERM, an abort): what was done is recorded.
    Aborted,
    /// Refused before or while it ran: bad input, no usable tape, no answer in time.
    Refused,
    Failed,
}

impl JobStatus {
    /// The exit code a command running the job ends with.
    pub fn exit_code(self) -> u8 {
        match self {
            JobStatus::Complete => 0,
            JobStatus::Failed => 1,
            JobStatus::Refused => 2,
            JobStatus::Aborted => 130,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Complete => "complete",
            JobStatus::Aborted => "aborted",
            JobStatus::Refused => "refused",
            JobStatus::Failed => "failed",
        }
    }

    /// The final phase of a job that ended so.
    pub fn phase(self) -> Phase {
        match self {
            JobStatus::Complete => Phase::Done,
            JobStatus::Aborted => Phase::Aborted,
            JobStatus::Refused | JobStatus::Failed => Phase::Failed,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: JobStatus,
    pub exit_code: u8,
    /// The error, for a job that did not complete.
    pub message: Option<String>,
}

impl Outcome {
    pub fn new(status: JobStatus, message: Option<String>) -> Outcome {
        Outcome {
            status,
            exit_code: status.exit_code(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_documented() {
        let c: Command = serde_json::from_str(r#"{"command":"abort"}"#).unwrap();
        assert_eq!(c, Command::Abort { hard: false });
        let c: Command =
            serde_json::from_str(r#"{"command":"answer","request":3,"answer":"loaded"}"#).unwrap();
        assert_eq!(
            c,
            Command::Answer {
                request: 3,
                answer: Answer::Loaded
            }
        );
        assert!(serde_json::from_str::<Command>(r#"{"command":"format"}"#).is_err());
    }

    #[test]
    fn exit_codes_follow_the_status() {
        assert_eq!(Outcome::new(JobStatus::Aborted, None).exit_code, 130);
        assert_eq!(Outcome::new(JobStatus::Refused, None).exit_code, 2);
        assert_eq!(JobStatus::Failed.phase(), Phase::Failed);
    }

    #[test]
    fn answers_parse_from_the_command_line() {
        assert_eq!("retry".parse::<Answer>(), Ok(Answer::Loaded));
        assert!("later".parse::<Answer>().is_err());
    }
}
