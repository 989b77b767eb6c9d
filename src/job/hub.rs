//! A running job as its watchers and its controllers meet it: the state a few times a
//! second, events with sequence numbers fanned out to any number of subscribers (the
//! last [`RECENT`] kept for late joiners), and typed commands (abort, answers to its tape
//! requests). The terminal, a socket client and the log are all subscribers alike.

use super::event::{Event, Stamped};
use super::model::{Answer, Command, JobKind, JobState, Outcome, Phase, Progress, TapeRequest};
use crate::interrupt::Interrupt;
use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Events kept for a subscriber that joins late.
pub const RECENT: usize = 200;
/// Events a subscriber may fall behind by before it is dropped (it stops reading: the job
/// never waits for it).
const BACKLOG: usize = 4096;

/// A command a job could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("request {request} is not pending: {}", match .pending {
        Some(p) => format!("the job waits on request {p}"),
        None => "it was answered already, or withdrawn".to_string(),
    })]
    NotPending { request: u64, pending: Option<u64> },
    #[error("request {request} does not take `{}` (it takes {})", .answer.as_str(), .takes)]
    Unsupported {
        request: u64,
        answer: Answer,
        takes: String,
    },
    #[error("the job has ended")]
    Ended,
}

/// What a subscriber starts from: the state and the recent events, then every event as it
/// happens.
pub struct Subscription {
    pub state: JobState,
    pub recent: Vec<Stamped>,
    pub events: Receiver<Stamped>,
}

#[derive(Debug, Default)]
struct EventLog {
    next_seq: u64,
    recent: VecDeque<Stamped>,
    subscribers: Vec<SyncSender<Stamped>>,
}

/// How a wait for an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Answered(Answer),
    /// The deadline came first.
    TimedOut,
    /// The job was asked to stop.
    Interrupted,
}

/// One running job.
#[derive(Debug)]
pub struct Job {
    state: Mutex<JobState>,
    log: Mutex<EventLog>,
    /// The answer to the pending request, once given; the request's id with it.
    answer: Mutex<Option<(u64, Answer)>>,
    answered: Condvar,
    interrupt: Interrupt,
    next_request: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Unix time now, milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Job {
    /// A job `id` of `kind` working on `what`, stopped through `interrupt`.
    pub fn new(id: &str, kind: JobKind, what: &str, interrupt: Interrupt) -> Arc<Job> {
        let job = Arc::new(Job {
            state: Mutex::new(JobState {
                id: id.to_string(),
                kind,
                pid: std::process::id(),
                started_at: now_ms() / 1000,
                what: what.to_string(),
                phase: Phase::Preparing,
                progress: Progress::default(),
                drives: Vec::new(),
                buffer: 0,
                pending: None,
                outcome: None,
            }),
            log: Mutex::default(),
            answer: Mutex::new(None),
            answered: Condvar::new(),
            interrupt,
            next_request: Mutex::new(0),
        });
        job.publish(Event::JobStarted {
            id: id.to_string(),
            kind,
            what: what.to_string(),
        });
        job
    }

    pub fn id(&self) -> String {
        lock(&self.state).id.clone()
    }

    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    pub fn state(&self) -> JobState {
        lock(&self.state).clone()
    }

    /// Changes the state (progress, drives); phase changes go through [`Job::set_phase`].
    pub fn update(&self, f: impl FnOnce(&mut JobState)) {
        f(&mut lock(&self.state));
    }

    /// Moves the job to `phase`, with an event when it changes. A final phase stays.
    pub fn set_phase(&self, phase: Phase) {
        let changed = {
            let mut s = lock(&self.state);
            let changed = s.phase != phase && !s.phase.is_final();
            if changed {
                s.phase = phase;
            }
            changed
        };
        if changed {
            self.publish(Event::PhaseChanged { phase });
        }
    }

    pub fn phase(&self) -> Phase {
        lock(&self.state).phase
    }

    /// Stamps `event` and hands it to every subscriber; one that has fallen too far behind
    /// (or gone) is dropped.
    pub fn publish(&self, event: Event) -> Stamped {
        super::event::log(&event);
        let mut log = lock(&self.log);
        log.next_seq += 1;
        let stamped = Stamped {
            seq: log.next_seq,
            at_ms: now_ms(),
            event,
        };
        if log.recent.len() == RECENT {
            log.recent.pop_front();
        }
        log.recent.push_back(stamped.clone());
        log.subscribers
            .retain(|tx| match tx.try_send(stamped.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            });
        stamped
    }

    /// The state, the recent events, and from now on every event.
    pub fn subscribe(&self) -> Subscription {
        let mut log = lock(&self.log);
        let (tx, rx) = mpsc::sync_channel(BACKLOG);
        log.subscribers.push(tx);
        Subscription {
            state: self.state(),
            recent: log.recent.iter().cloned().collect(),
            events: rx,
        }
    }

    /// Takes a command from `by` (the terminal, a client); the reply says what it did.
    pub fn command(&self, command: Command, by: &str) -> Result<String, CommandError> {
        if lock(&self.state).outcome.is_some() {
            return Err(CommandError::Ended);
        }
        match command {
            Command::Abort { hard } => {
                if hard {
                    self.interrupt.request_hard();
                } else {
                    self.interrupt.request();
                }
                tracing::warn!(
                    "abort ({}) asked by {by}",
                    if hard { "hard" } else { "soft" }
                );
                // A job waiting on the operator stops waiting.
                self.answered.notify_all();
                Ok(if hard {
                    "stopping now".into()
                } else {
                    "stopping after the file in flight; what is buffered is written".into()
                })
            }
            Command::Answer { request, answer } => self.answer(request, answer, by),
        }
    }

    fn answer(&self, request: u64, answer: Answer, by: &str) -> Result<String, CommandError> {
        {
            let mut state = lock(&self.state);
            let pending = state.pending.as_ref().map(|p| p.id);
            let Some(p) = state.pending.as_ref().filter(|p| p.id == request) else {
                return Err(CommandError::NotPending { request, pending });
            };
            if !p.answers.contains(&answer) {
                let takes: Vec<&str> = p.answers.iter().map(|a| a.as_str()).collect();
                return Err(CommandError::Unsupported {
                    request,
                    answer,
                    takes: takes.join(", "),
                });
            }
            // The first answer wins: the request is no longer pending.
            state.pending = None;
            *lock(&self.answer) = Some((request, answer));
        }
        self.answered.notify_all();
        self.publish(Event::RequestAnswered {
            request,
            answer,
            by: by.to_string(),
        });
        Ok(format!("request {request} answered: {}", answer.as_str()))
    }

    /// Asks the operator: `request` (its id is filled in) becomes the pending one, replacing
    /// any before it. Returns the id.
    pub fn ask(&self, mut request: TapeRequest) -> u64 {
        let id = {
            let mut n = lock(&self.next_request);
            *n += 1;
            *n
        };
        request.id = id;
        let replaced = {
            let mut state = lock(&self.state);
            *lock(&self.answer) = None;
            state.pending.replace(request.clone()).map(|p| p.id)
        };
        if let Some(old) = replaced {
            self.publish(Event::RequestWithdrawn { request: old });
        }
        self.set_phase(Phase::WaitingForTape);
        self.publish(Event::TapeNeeded { request });
        id
    }

    /// Waits until request `id` is answered, `deadline` passes, or the job is interrupted.
    pub fn await_answer(&self, id: u64, deadline: Option<Instant>) -> Waited {
        let mut answer = lock(&self.answer);
        loop {
            if let Some((request, a)) = *answer {
                if request == id {
                    *answer = None;
                    return Waited::Answered(a);
                }
            }
            if self.interrupt.requested() {
                return Waited::Interrupted;
            }
            let mut slice = Duration::from_millis(200);
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Waited::TimedOut;
                }
                slice = slice.min(left);
            }
            answer = self
                .answered
                .wait_timeout(answer, slice)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Request `id` needs no answer any more (the drive holds a usable tape now).
    pub fn withdraw(&self, id: u64) {
        let was = {
            let mut state = lock(&self.state);
            match state.pending.as_ref() {
                Some(p) if p.id == id => state.pending.take().is_some(),
                _ => false,
            }
        };
        if was {
            self.publish(Event::RequestWithdrawn { request: id });
        }
    }

    /// The pending request, if any.
    pub fn pending(&self) -> Option<TapeRequest> {
        lock(&self.state).pending.clone()
    }

    /// Ends the job: its outcome and final phase, and the event that says so.
    pub fn finish(&self, outcome: Outcome) {
        {
            let mut state = lock(&self.state);
            state.pending = None;
            state.phase = outcome.status.phase();
            state.progress.eta_secs = None;
            state.outcome = Some(outcome.clone());
        }
        self.publish(Event::JobFinished { outcome });
        self.answered.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::JobStatus;

    fn request() -> TapeRequest {
        TapeRequest {
            id: 0,
            drive: "lto9".into(),
            need: "a usable tape".into(),
            reason: "volume L1 is full".into(),
            candidates: Vec::new(),
            answers: vec![Answer::Loaded, Answer::Eject, Answer::Abort],
        }
    }

    #[test]
    fn late_subscribers_get_the_recent_events_then_the_new_ones() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        job.set_phase(Phase::Streaming);
        let sub = job.subscribe();
        assert_eq!(sub.state.phase, Phase::Streaming);
        let seqs: Vec<u64> = sub.recent.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2]);
        job.publish(Event::Warning {
            message: "x".into(),
        });
        assert_eq!(sub.events.try_recv().unwrap().seq, 3);
    }

    #[test]
    fn the_first_answer_wins_and_the_second_is_told() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let id = job.ask(request());
        assert_eq!(job.phase(), Phase::WaitingForTape);
        let answer = Command::Answer {
            request: id,
            answer: Answer::Loaded,
        };
        assert!(job.command(answer.clone(), "a").is_ok());
        assert_eq!(
            job.command(answer, "b"),
            Err(CommandError::NotPending {
                request: id,
                pending: None
            })
        );
        assert_eq!(job.await_answer(id, None), Waited::Answered(Answer::Loaded));
    }

    #[test]
    fn an_answer_the_request_does_not_take_is_refused() {
        let job = Job::new("restore-1", JobKind::Restore, "x", Interrupt::new());
        let id = job.ask(request());
        let skip = Command::Answer {
            request: id,
            answer: Answer::Skip,
        };
        assert!(matches!(
            job.command(skip, "a"),
            Err(CommandError::Unsupported { .. })
        ));
        assert!(job.pending().is_some());
    }

    #[test]
    fn an_abort_ends_a_wait_and_a_hard_abort_is_hard() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let id = job.ask(request());
        let waiter = {
            let job = job.clone();
            std::thread::spawn(move || job.await_answer(id, None))
        };
        job.command(Command::Abort { hard: true }, "test").unwrap();
        assert_eq!(waiter.join().unwrap(), Waited::Interrupted);
        assert!(job.interrupt().hard());
    }

    #[test]
    fn a_wait_times_out() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let id = job.ask(request());
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(job.await_answer(id, Some(deadline)), Waited::TimedOut);
    }

    #[test]
    fn a_subscriber_that_stops_reading_is_dropped_not_waited_for() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        let sub = job.subscribe();
        for _ in 0..BACKLOG + 10 {
            job.publish(Event::Warning {
                message: "x".into(),
            });
        }
        assert_eq!(lock(&job.log).subscribers.len(), 0);
        drop(sub);
    }

    #[test]
    fn an_ended_job_takes_no_commands() {
        let job = Job::new("backup-1", JobKind::Backup, "/srv", Interrupt::new());
        job.finish(Outcome::new(JobStatus::Complete, None));
        assert_eq!(job.phase(), Phase::Done);
        assert_eq!(
            job.command(Command::Abort { hard: false }, "x"),
            Err(CommandError::Ended)
        );
    }
}
