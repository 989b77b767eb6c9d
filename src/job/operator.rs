//! Waiting for the operator: a drive needs a tape, the job asks (a [`TapeRequest`] with the
//! volumes that would do), and whoever answers first is taken: the terminal's prompt, a
//! client on the job's socket (`tapedeck answer`, `attach`, the console), or, with a
//! timeout, the drive itself, looked at every few seconds. Every tape is checked by
//! `attempt` as any other; a wrong one is explained in a new request and the wait goes on.

use super::hub::Waited;
use super::model::{Answer, Candidate, TapeRequest};
use super::Job;
use std::time::{Duration, Instant};

/// How long to wait, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Someone can answer (a terminal, or a detached job reachable on its socket): wait
    /// for answers.
    pub answerable: bool,
    /// Look at the drive this often without an answer, and give up after `timeout`.
    pub timeout: Option<Duration>,
    pub poll: Duration,
}

impl WaitPolicy {
    /// Whether a tape change can be waited for at all.
    pub fn waits(&self) -> bool {
        self.answerable || self.timeout.is_some()
    }
}

/// Why a wait for a tape ended without one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The operator aborted (an answer, Ctrl-C, an abort command).
    #[error("interrupted")]
    Interrupted,
    #[error("gave up waiting {secs} s for {need} in {drive}: {reason}")]
    TimedOut {
        need: String,
        drive: String,
        secs: u64,
        reason: String,
    },
    #[error(
        "no {need} in {drive}: {reason} (nobody can answer: no terminal, no --change-timeout)"
    )]
    NoOperator {
        need: String,
        drive: String,
        reason: String,
    },
    /// The operator chose to go on without it (a restore's volume).
    #[error("{need} skipped by the operator")]
    Skipped { need: String },
}

/// What is needed, and what may be answered.
pub struct Need<'a> {
    pub drive: &'a str,
    /// "a usable tape", "volume L00003".
    pub what: String,
    pub answers: Vec<Answer>,
}

/// Waits until `attempt` finds what `need` asks for in the drive. `first_reason` is why the
/// drive's tape (or none) will not do now; `candidates` lists what would (asked again for
/// every request); `eject` unloads the drive. `attempt` returns why the tape there will
/// not do (a message for the operator).
#[allow(clippy::too_many_arguments)]
pub fn wait_for<T>(
    job: &Job,
    policy: &WaitPolicy,
    need: &Need<'_>,
    first_reason: String,
    candidates: &mut dyn FnMut() -> Vec<Candidate>,
    attempt: &mut dyn FnMut() -> Result<T, String>,
    eject: &mut dyn FnMut() -> Result<(), String>,
) -> Result<T, WaitError> {
    if !policy.waits() {
        return Err(WaitError::NoOperator {
            need: need.what.clone(),
            drive: need.drive.to_string(),
            reason: first_reason,
        });
    }
    let before = job.phase();
    let started = Instant::now();
    let give_up = policy.timeout.map(|t| started + t);
    let mut reason = first_reason;
    let result = loop {
        let id = job.ask(TapeRequest {
            id: 0,
            drive: need.drive.to_string(),
            need: need.what.clone(),
            reason: reason.clone(),
            candidates: candidates(),
            answers: need.answers.clone(),
        });
        // Polling looks at the drive again and again under one request; a new reason
        // makes a new request.
        let outcome = loop {
            let deadline = give_up.map(|end| end.min(Instant::now() + policy.poll));
            match job.await_answer(id, deadline) {
                Waited::Interrupted => break Err(WaitError::Interrupted),
                Waited::Answered(answer) => break Ok(Some(answer)),
                Waited::TimedOut if give_up.is_some_and(|end| Instant::now() >= end) => {
                    job.withdraw(id);
                    break Err(WaitError::TimedOut {
                        need: need.what.clone(),
                        drive: need.drive.to_string(),
                        secs: policy.timeout.unwrap_or_default().as_secs(),
                        reason: reason.clone(),
                    });
                }
                Waited::TimedOut => match attempt() {
                    Ok(found) => {
                        job.withdraw(id);
                        return finish(job, before, Ok(found));
                    }
                    Err(why) if why != reason => {
                        reason = why;
                        break Ok(None);
                    }
                    Err(_) => {}
                },
            }
        };
        match outcome {
            Err(e) => break Err(e),
            // A new reason: a new request.
            Ok(None) => {}
            Ok(Some(Answer::Abort)) => {
                // The operator stops the job as Ctrl-C does: aborted (exit 130) with what
                // was written recorded, not failed.
                job.interrupt().request();
                break Err(WaitError::Interrupted);
            }
            Ok(Some(Answer::Skip)) => {
                break Err(WaitError::Skipped {
                    need: need.what.clone(),
                })
            }
            Ok(Some(Answer::Eject)) => {
                reason = match eject() {
                    Ok(()) => "the tape was ejected".to_string(),
                    Err(e) => format!("cannot eject: {e}"),
                };
            }
            Ok(Some(Answer::Loaded)) => match attempt() {
                Ok(found) => break Ok(found),
                Err(why) => reason = why,
            },
        }
    };
    finish(job, before, result)
}

fn finish<T>(
    job: &Job,
    before: super::Phase,
    result: Result<T, WaitError>,
) -> Result<T, WaitError> {
    job.set_phase(before);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::Interrupt;
    use crate::job::model::{Command, JobKind};
    use crate::job::Event;
    use std::sync::Arc;

    fn need() -> Need<'static> {
        Need {
            drive: "lto9",
            what: "a usable tape".into(),
            answers: vec![Answer::Loaded, Answer::Eject, Answer::Abort],
        }
    }

    fn answerable() -> WaitPolicy {
        WaitPolicy {
            answerable: true,
            timeout: None,
            poll: Duration::from_millis(10),
        }
    }

    /// Answers every request the job makes with the next of `answers`.
    fn operator(job: &Arc<Job>, answers: Vec<Answer>) -> std::thread::JoinHandle<()> {
        let sub = job.subscribe();
        let job = job.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            // ExactSizeIterator: stops once the last answer is given.
            for e in sub.events {
                if let Event::TapeNeeded { request } = e.event {
                    let Some(answer) = answers.next() else { return };
                    let cmd = Command::Answer {
                        request: request.id,
                        answer,
                    };
                    job.command(cmd, "test").unwrap();
                    if answers.len() == 0 {
                        return;
                    }
                }
            }
        })
    }

    #[test]
    fn a_wrong_tape_is_explained_and_the_wait_goes_on() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let answers = operator(&job, vec![Answer::Loaded, Answer::Eject, Answer::Loaded]);
        let mut tries = 0;
        let mut ejected = 0;
        let got = wait_for(
            &job,
            &answerable(),
            &need(),
            "no tape".into(),
            &mut Vec::new,
            &mut || {
                tries += 1;
                if tries == 1 {
                    Err("volume L2 is of pool other".to_string())
                } else {
                    Ok(tries)
                }
            },
            &mut || {
                ejected += 1;
                Ok(())
            },
        );
        assert_eq!(got, Ok(2));
        assert_eq!(ejected, 1);
        answers.join().unwrap();
        let reasons: Vec<String> = job
            .subscribe()
            .recent
            .into_iter()
            .filter_map(|e| match e.event {
                Event::TapeNeeded { request } => Some(request.reason),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "no tape",
                "volume L2 is of pool other",
                "the tape was ejected"
            ]
        );
        assert!(job.pending().is_none());
    }

    #[test]
    fn abort_interrupts_the_job() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let answers = operator(&job, vec![Answer::Abort]);
        let got: Result<(), _> = wait_for(
            &job,
            &answerable(),
            &need(),
            "full".into(),
            &mut Vec::new,
            &mut || Err("no".into()),
            &mut || Ok(()),
        );
        assert_eq!(got, Err(WaitError::Interrupted));
        assert!(job.interrupt().requested() && !job.interrupt().hard());
        answers.join().unwrap();
    }

    #[test]
    fn polling_finds_the_tape_and_a_timeout_ends_the_wait() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let polling = WaitPolicy {
            answerable: false,
            timeout: Some(Duration::from_secs(30)),
            poll: Duration::from_millis(5),
        };
        let mut looks = 0;
        let got = wait_for(
            &job,
            &polling,
            &need(),
            "none".into(),
            &mut Vec::new,
            &mut || {
                looks += 1;
                if looks < 3 {
                    Err("none".into())
                } else {
                    Ok(looks)
                }
            },
            &mut || Ok(()),
        );
        assert_eq!(got, Ok(3));
        assert!(job.pending().is_none());
        let short = WaitPolicy {
            timeout: Some(Duration::from_millis(30)),
            ..polling
        };
        let got: Result<(), _> = wait_for(
            &job,
            &short,
            &need(),
            "none".into(),
            &mut Vec::new,
            &mut || Err("none".into()),
            &mut || Ok(()),
        );
        assert!(matches!(got, Err(WaitError::TimedOut { .. })), "{got:?}");
    }

    #[test]
    fn nobody_to_answer_fails_at_once() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let never = WaitPolicy {
            answerable: false,
            timeout: None,
            poll: Duration::from_secs(1),
        };
        let got: Result<(), _> = wait_for(
            &job,
            &never,
            &need(),
            "full".into(),
            &mut Vec::new,
            &mut || Ok(()),
            &mut || Ok(()),
        );
        assert!(matches!(got, Err(WaitError::NoOperator { .. })));
    }
}
