//! The lines a job's socket sends: one JSON object a line, tagged by `"type"`. The client
//! sends [`super::Command`] lines and gets a [`Message::Reply`] for each.

use super::event::Stamped;
use super::model::JobState;
use serde::{Deserialize, Serialize};

/// The protocol's version, sent in the hello.
pub const PROTOCOL: u32 = 1;

/// A line from a job's socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The first line: the state (its pending request in `state.pending`) and the recent
    /// events.
    Hello {
        protocol: u32,
        state: JobState,
        recent: Vec<Stamped>,
    },
    /// The whole state, a few times a second, and once more as the job ends.
    State { state: JobState },
    /// An event as it happens: `seq`, `at_ms`, `event` and the event's fields.
    Event(Stamped),
    /// The answer to a command line (or, before any hello, why the connection is refused).
    Reply {
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Message {
    pub fn ok(message: impl Into<String>) -> Message {
        Message::Reply {
            ok: true,
            message: Some(message.into()),
            error: None,
        }
    }

    pub fn error(error: impl Into<String>) -> Message {
        Message::Reply {
            ok: false,
            message: None,
            error: Some(error.into()),
        }
    }

    /// The message as one line, newline included.
    pub fn line(&self) -> Result<String, serde_json::Error> {
        let mut text = serde_json::to_string(self)?;
        text.push('\n');
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::event::Event;
    use crate::job::model::{
        Answer, Candidate, DriveView, JobKind, JobStatus, Outcome, Phase, Progress, TapeRequest,
    };

    fn state() -> JobState {
        JobState {
            id: "backup-0a1b2c".into(),
            kind: JobKind::Backup,
            pid: 42,
            started_at: 1_700_000_000,
            what: "/srv to pool weekly".into(),
            phase: Phase::WaitingForTape,
            progress: Progress {
                bytes_done: 10,
                bytes_total: 100,
                rate: 1.5,
                eta_secs: Some(60.0),
                ..Progress::default()
            },
            drives: vec![DriveView {
                drive: "lto9".into(),
                volume: Some("L00001".into()),
                ..DriveView::default()
            }],
            buffer: 1 << 30,
            pending: Some(TapeRequest {
                id: 2,
                drive: "lto9".into(),
                need: "a usable tape".into(),
                reason: "volume L00001 is full".into(),
                candidates: vec![Candidate {
                    volume: "L00002".into(),
                    status: Some("empty".into()),
                    location: "slot 3".into(),
                }],
                answers: vec![Answer::Loaded, Answer::Abort],
            }),
            outcome: None,
        }
    }

    fn round_trip(m: &Message) -> String {
        let line = m.line().unwrap();
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert_eq!(&serde_json::from_str::<Message>(&line).unwrap(), m);
        line
    }

    #[test]
    fn every_message_reads_back() {
        let event = Stamped {
            seq: 3,
            at_ms: 1_700_000_000_123,
            event: Event::RequestAnswered {
                request: 2,
                answer: Answer::Loaded,
                by: "pid 7".into(),
            },
        };
        let hello = round_trip(&Message::Hello {
            protocol: PROTOCOL,
            state: state(),
            recent: vec![event.clone()],
        });
        assert!(
            hello.starts_with(r#"{"type":"hello","protocol":1,"state":{"#),
            "{hello}"
        );
        round_trip(&Message::State { state: state() });
        let line = round_trip(&Message::Event(event));
        // The stamped event's fields are the message's own.
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["event"], "request_answered");
        assert_eq!(v["by"], "pid 7");
        round_trip(&Message::Event(Stamped {
            seq: 9,
            at_ms: 1,
            event: Event::JobFinished {
                outcome: Outcome::new(JobStatus::Aborted, Some("interrupted".into())),
            },
        }));
        assert_eq!(
            round_trip(&Message::ok("done")),
            "{\"type\":\"reply\",\"ok\":true,\"message\":\"done\"}\n"
        );
        assert_eq!(
            round_trip(&Message::error("no")),
            "{\"type\":\"reply\",\"ok\":false,\"error\":\"no\"}\n"
        );
    }
}
