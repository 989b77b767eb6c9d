//! A running job's socket, `run/<id>.sock`: any number of clients of our user (or root)
//! watch the job (a hello with the state and the recent events, then the state a few
//! times a second and every event) and steer it with [`Command`] lines, each answered by a
//! reply. The wire format is [`Message`]; the README's "Job protocol" describes it.
//!
//! Each client has threads of its own, and writes to it give up after [`WRITE_TIMEOUT`]:
//! a client that stops reading is dropped, and the job's own threads never touch a socket
//! (they publish to the [`Job`], which never waits for a subscriber).

use super::event::Event;
use super::hub::{now_ms, Job};
use super::model::{Command, JobStatus, Outcome};
use super::protocol::{Message, PROTOCOL};
use super::registry::{self, JobRecord, Lock, RegistryError};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a client gets the whole state.
pub const STATE_EVERY: Duration = Duration::from_millis(250);
/// A write to a client that takes longer drops the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept thread looks for a new client and for the end.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// The longest command line a client may send.
const MAX_LINE: u64 = 64 * 1024;
/// The outcome recorded for a job whose server ends before the job finished.
const NO_OUTCOME: &str = "the job ended without recording an outcome";

/// A job's socket could not be set up or its record written.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("job {id} is running already (its lock is held)")]
    InUse { id: String },
    #[error("cannot listen on {}: {source}", .path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the job socket's thread: {0}")]
    Thread(std::io::Error),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the accept thread and the clients' threads share with the server.
#[derive(Debug, Default)]
struct Shared {
    /// The server is closing: clients get the last events and the final state.
    stop: AtomicBool,
    clients: Mutex<Vec<JoinHandle<()>>>,
}

/// A job reachable on its socket, registered in the run directory, until [`Server::finish`]
/// (or drop).
#[derive(Debug)]
pub struct Server {
    job: Arc<Job>,
    run_dir: PathBuf,
    record: Mutex<JobRecord>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    /// Held for the job's life: while it is, the job is live.
    lock: Option<Lock>,
}

impl Server {
    /// Registers `job` in `run_dir` (its lock, its record) and listens on its socket.
    pub fn start(job: Arc<Job>, run_dir: &Path) -> Result<Server, SocketError> {
        registry::ensure_run_dir(run_dir)?;
        let state = job.state();
        let id = state.id.clone();
        let lock = registry::take_lock(&registry::lock_path(run_dir, &id), false)?
            .ok_or_else(|| SocketError::InUse { id: id.clone() })?;
        // The record first: once the socket exists (what `--detach` waits for), `jobs` and
        // `answer` find the job.
        registry::write_record(run_dir, &JobRecord::of(&state))?;
        let path = registry::socket_path(run_dir, &id);
        let bind = |path: &Path| -> std::io::Result<UnixListener> {
            // Under our lock, a socket there is a dead job's.
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let listener = UnixListener::bind(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let listener = bind(&path).map_err(|source| {
            let _ = std::fs::remove_file(&path);
            SocketError::Bind {
                path: path.clone(),
                source,
            }
        })?;
        let shared = Arc::new(Shared::default());
        let accept = {
            let (job, shared) = (job.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("{id} socket"))
                .spawn(move || accept_loop(&listener, &job, &shared))
        };
        let accept = match accept {
            Ok(handle) => handle,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(registry::record_path(run_dir, &id));
                return Err(SocketError::Thread(e));
            }
        };
        tracing::debug!("job {id} listens on {}", path.display());
        Ok(Server {
            job,
            run_dir: run_dir.to_path_buf(),
            record: Mutex::new(JobRecord::of(&state)),
            shared,
            accept: Some(accept),
            lock: Some(lock),
        })
    }

    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// The job's socket.
    pub fn socket_path(&self) -> PathBuf {
        registry::socket_path(&self.run_dir, &self.job.id())
    }

    /// The job now holds a buffer of `bytes`: in its state and its record (which other
    /// jobs read to size theirs, see [`registry::running_buffers`]).
    pub fn set_buffer(&self, bytes: u64) -> Result<(), SocketError> {
        self.job.update(|s| s.buffer = bytes);
        let mut record = lock(&self.record);
        record.buffer = bytes;
        record.state = Some(self.job.state());
        registry::write_record(&self.run_dir, &record)?;
        Ok(())
    }

    /// Ends the server: the clients get the last events and the final state, the record
    /// the final state and the outcome, and the socket and the lock go.
    pub fn finish(mut self) -> Result<(), SocketError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), SocketError> {
        let Some(held) = self.lock.take() else {
            return Ok(());
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let id = self.job.id();
        remove(&registry::socket_path(&self.run_dir, &id));
        let state = self.job.state();
        let written = {
            let mut record = lock(&self.record);
            record.buffer = state.buffer;
            record.outcome =
                Some(state.outcome.clone().unwrap_or_else(|| {
                    Outcome::new(JobStatus::Failed, Some(NO_OUTCOME.to_string()))
                }));
            record.state = Some(state);
            record.finished_at = Some(now_ms() / 1000);
            registry::write_record(&self.run_dir, &record)
        };
        let clients: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.shared.clients));
        for client in clients {
            let _ = client.join();
        }
        // Removed while still held: nobody takes the lock of a finished job.
        remove(&registry::lock_path(&self.run_dir, &id));
        drop(held);
        written.map_err(SocketError::from)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("job {}: {e}", self.job.id());
        }
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
    }
}

fn accept_loop(listener: &UnixListener, job: &Arc<Job>, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (job, shared2) = (job.clone(), shared.clone());
                let spawned = std::thread::Builder::new()
                    .name("job client".into())
                    .spawn(move || serve(stream, &job, &shared2));
                let mut clients = lock(&shared.clients);
                clients.retain(|c| !c.is_finished());
                match spawned {
                    Ok(handle) => clients.push(handle),
                    Err(e) => tracing::warn!("cannot serve a job client: {e}"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                tracing::warn!("job socket: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// The writing side of one client, shared by its two threads: whole lines, each given up
/// after [`WRITE_TIMEOUT`], and the client dropped on the first failure.
struct Out {
    stream: Mutex<UnixStream>,
    dead: AtomicBool,
}

impl Out {
    fn send(&self, message: &Message) -> bool {
        if self.dead() {
            return false;
        }
        let line = match message.line() {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("job socket: cannot encode a message: {e}");
                return true;
            }
        };
        let mut stream = lock(&self.stream);
        if let Err(e) = stream.write_all(line.as_bytes()) {
            tracing::debug!("job client dropped: {e}");
            self.dead.store(true, Ordering::SeqCst);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return false;
        }
        true
    }

    fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = lock(&self.stream).shutdown(std::net::Shutdown::Both);
    }
}

/// Whether a peer of `uid` may connect to a job running as `ours`.
fn may_connect(uid: u32, ours: u32) -> bool {
    uid == ours || uid == 0
}

/// One client, on its own thread: the hello, then state and events until the job ends or
/// the server closes; its command lines are read on a second thread.
fn serve(stream: UnixStream, job: &Arc<Job>, shared: &Shared) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .and_then(|()| stream.try_clone());
    let reader = match setup {
        Ok(reader) => reader,
        Err(e) => {
            tracing::warn!("job socket: {e}");
            return;
        }
    };
    let peer = getsockopt(&stream, PeerCredentials);
    let out = Arc::new(Out {
        stream: Mutex::new(stream),
        dead: AtomicBool::new(false),
    });
    let ours = nix::unistd::getuid().as_raw();
    let by = match peer {
        Ok(cred) if may_connect(cred.uid(), ours) => format!("pid {}", cred.pid()),
        Ok(cred) => {
            tracing::warn!(
                "job socket: refused pid {} of uid {} (the job runs as uid {ours})",
                cred.pid(),
                cred.uid()
            );
            out.send(&Message::error(format!(
                "refused: uid {} may not steer a job of uid {ours}",
                cred.uid()
            )));
            out.close();
            return;
        }
        Err(e) => {
            tracing::warn!("job socket: cannot tell who connected: {e}");
            out.send(&Message::error("refused: cannot tell who connected"));
            out.close();
            return;
        }
    };
    tracing::debug!("job client {by} connected");
    let sub = job.subscribe();
    let mut ended = sub
        .recent
        .iter()
        .any(|e| matches!(e.event, Event::JobFinished { .. }));
    if !out.send(&Message::Hello {
        protocol: PROTOCOL,
        state: sub.state,
        recent: sub.recent,
    }) {
        return;
    }
    let commands = {
        let (job, out, by) = (job.clone(), out.clone(), by.clone());
        std::thread::Builder::new()
            .name("job client commands".into())
            .spawn(move || read_commands(reader, &job, &out, &by))
    };
    let commands = match commands {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("job socket: cannot read commands of {by}: {e}");
            None
        }
    };
    let mut next_state = Instant::now() + STATE_EVERY;
    while !ended && !out.dead() && !shared.stop.load(Ordering::SeqCst) {
        let wait = next_state.saturating_duration_since(Instant::now());
        match sub.events.recv_timeout(wait) {
            Ok(e) => {
                ended = matches!(e.event, Event::JobFinished { .. });
                out.send(&Message::Event(e));
            }
            Err(RecvTimeoutError::Timeout) => {
                out.send(&Message::State { state: job.state() });
                next_state = Instant::now() + STATE_EVERY;
            }
            Err(RecvTimeoutError::Disconnected) => {
                // The job dropped this subscriber: it fell too far behind.
                tracing::warn!("job client {by} fell behind: dropped");
                out.close();
            }
        }
    }
    // The end: what came meanwhile, then the final state.
    while let Ok(e) = sub.events.try_recv() {
        if !out.send(&Message::Event(e)) {
            break;
        }
    }
    out.send(&Message::State { state: job.state() });
    out.close();
    if let Some(commands) = commands {
        let _ = commands.join();
    }
    tracing::debug!("job client {by} done");
}

/// Reads `client`'s command lines and replies to each, until it closes (or is closed).
fn read_commands(client: UnixStream, job: &Job, out: &Out, by: &str) {
    let mut reader = BufReader::new(client);
    loop {
        let mut line = String::new();
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE => {
                tracing::warn!("job client {by}: a line over {MAX_LINE} bytes: dropped");
                out.send(&Message::error("line too long"));
                out.close();
                return;
            }
            Ok(_) => {}
            Err(e) => {
                if !out.dead() {
                    tracing::debug!("job client {by}: {e}");
                }
                return;
            }
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Command>(text) {
            Ok(command) => match job.command(command, by) {
                Ok(message) => Message::ok(message),
                Err(e) => Message::error(e.to_string()),
            },
            Err(e) => {
                tracing::warn!("job client {by} sent what is not a command ({e}): {text}");
                Message::error(format!("not a command: {e}"))
            }
        };
        if !out.send(&reply) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::Interrupt;
    use crate::job::client::{Client, ClientError};
    use crate::job::model::{Answer, JobKind, Phase, TapeRequest};
    use crate::job::registry::{list, run_dir};
    use std::os::unix::fs::MetadataExt;

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

    fn started(id: &str) -> (tempfile::TempDir, PathBuf, Arc<Job>, Server) {
        let t = tempfile::tempdir().unwrap();
        let run = run_dir(t.path());
        let job = Job::new(id, JobKind::Backup, "/srv", Interrupt::new());
        let server = Server::start(job.clone(), &run).unwrap();
        (t, run, job, server)
    }

    /// The next message `pick` takes, skipping others.
    fn wait_for<T>(client: &mut Client, mut pick: impl FnMut(&Message) -> Option<T>) -> T {
        loop {
            match client.next(Duration::from_secs(10)) {
                Ok(Some(m)) => {
                    if let Some(t) = pick(&m) {
                        return t;
                    }
                }
                other => panic!("no message: {other:?}"),
            }
        }
    }

    #[test]
    fn a_client_sees_the_job_and_answers_its_request() {
        let (_t, run, job, server) = started("backup-5e7000");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&run), 0o700);
        assert_eq!(mode(&server.socket_path()), 0o600);
        let listed = list(&run).unwrap();
        assert!(listed[0].live);

        let mut client = Client::connect(&run, "backup-5e7000").unwrap();
        assert_eq!(client.state().id, "backup-5e7000");
        assert!(matches!(client.recent()[0].event, Event::JobStarted { .. }));
        let id = job.ask(request());
        let pending = wait_for(&mut client, |m| match m {
            Message::Event(e) => match &e.event {
                Event::TapeNeeded { request } => Some(request.id),
                _ => None,
            },
            _ => None,
        });
        assert_eq!(pending, id);
        let answer = Command::Answer {
            request: id,
            answer: Answer::Loaded,
        };
        let reply = client.command(answer.clone()).unwrap();
        assert!(reply.contains("answered"), "{reply}");
        assert_eq!(
            job.await_answer(id, None),
            crate::job::hub::Waited::Answered(Answer::Loaded)
        );
        // The answer names its client by pid.
        let by = wait_for(&mut client, |m| match m {
            Message::Event(e) => match &e.event {
                Event::RequestAnswered { by, .. } => Some(by.clone()),
                _ => None,
            },
            _ => None,
        });
        assert_eq!(by, format!("pid {}", std::process::id()));
        match client.command(answer) {
            Err(ClientError::Refused(why)) => assert!(why.contains("not pending"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A second client sees the job's state as it is.
        let other = Client::connect(&run, "backup-5e7000").unwrap();
        assert_eq!(other.state().phase, Phase::WaitingForTape);
        assert!(other.state().pending.is_none());

        job.finish(Outcome::new(JobStatus::Complete, None));
        let final_state = wait_for(&mut client, |m| match m {
            Message::State { state } if state.outcome.is_some() => Some(state.clone()),
            _ => None,
        });
        assert_eq!(final_state.phase, Phase::Done);
        server.finish().unwrap();
        assert!(matches!(
            client.next(Duration::from_secs(10)),
            Err(ClientError::Gone)
        ));
        let listed = list(&run).unwrap();
        assert!(!listed[0].live);
        assert_eq!(
            listed[0].record.outcome.as_ref().unwrap().status,
            JobStatus::Complete
        );
        assert!(listed[0].record.finished_at.is_some());
        assert!(!registry::socket_path(&run, "backup-5e7000").exists());
        assert!(!registry::lock_path(&run, "backup-5e7000").exists());
        assert!(matches!(
            Client::connect(&run, "backup-5e7000"),
            Err(ClientError::Gone)
        ));
    }

    #[test]
    fn a_malformed_line_gets_an_error_reply_and_the_job_goes_on() {
        let (_t, run, job, _server) = started("verify-000bad");
        let mut raw = UnixStream::connect(registry::socket_path(&run, "verify-000bad")).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut lines = BufReader::new(raw.try_clone().unwrap());
        let mut read = || {
            let mut line = String::new();
            lines.read_line(&mut line).unwrap();
            serde_json::from_str::<Message>(&line).unwrap()
        };
        assert!(matches!(read(), Message::Hello { protocol: 1, .. }));
        raw.write_all(b"{\"command\":\"format\"}\nnot json\n")
            .unwrap();
        let mut errors = 0;
        while errors < 2 {
            if let Message::Reply { ok, error, .. } = read() {
                assert!(!ok);
                assert!(error.unwrap().contains("not a command"));
                errors += 1;
            }
        }
        raw.write_all(b"{\"command\":\"abort\"}\n").unwrap();
        loop {
            if let Message::Reply { ok, message, .. } = read() {
                assert!(ok, "{message:?}");
                break;
            }
        }
        assert!(job.interrupt().requested() && !job.interrupt().hard());
    }

    #[test]
    fn a_client_that_never_reads_does_not_hold_up_the_job() {
        let (_t, run, job, server) = started("backup-51de00");
        let stuck = UnixStream::connect(registry::socket_path(&run, "backup-51de00")).unwrap();
        // Connected and served (its hello is sent) before the flood.
        let mut watcher = Client::connect(&run, "backup-51de00").unwrap();
        for i in 0..20_000 {
            job.publish(Event::Warning {
                message: format!("warning {i} with some text to fill the socket's buffer"),
            });
        }
        // The job still takes commands and other clients still connect.
        let id = job.ask(request());
        let mut late = Client::connect(&run, "backup-51de00").unwrap();
        assert_eq!(late.state().pending.as_ref().map(|p| p.id), Some(id));
        let reply = late.command(Command::Answer {
            request: id,
            answer: Answer::Eject,
        });
        assert!(reply.is_ok(), "{reply:?}");
        job.finish(Outcome::new(JobStatus::Complete, None));
        server.finish().unwrap();
        drop(stuck);
        // The watcher read along (or was dropped for falling behind): either way it ends.
        loop {
            match watcher.next(Duration::from_secs(10)) {
                Ok(Some(_)) => {}
                Err(ClientError::Gone) => break,
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_job_runs_once_and_a_server_dropped_early_records_a_failure() {
        let (_t, run, job, server) = started("rebuild-000001");
        assert!(matches!(
            Server::start(job.clone(), &run),
            Err(SocketError::InUse { .. })
        ));
        server.set_buffer(4096).unwrap();
        assert_eq!(
            registry::running_buffers(&run, "x"),
            [("rebuild-000001".into(), 4096, std::process::id())]
        );
        assert_eq!(job.state().buffer, 4096);
        drop(server);
        let listed = list(&run).unwrap();
        let outcome = listed[0].record.outcome.clone().unwrap();
        assert_eq!(outcome.status, JobStatus::Failed);
        assert_eq!(outcome.message.as_deref(), Some(NO_OUTCOME));
    }

    #[test]
    fn only_our_user_and_root_may_connect() {
        assert!(may_connect(1000, 1000));
        assert!(may_connect(0, 1000));
        assert!(!may_connect(1001, 1000));
    }
}
