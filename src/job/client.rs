//! The other end of a job's socket (see [`super::socket`]): connect, read the hello, then
//! take the job's messages as they come and send it commands.

use super::event::Stamped;
use super::model::{Command, JobState};
use super::protocol::Message;
use super::registry;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long [`Client::connect`] waits for the hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Client::command`] waits for the reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a command line may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to a job.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The job said no (an `ok: false` reply): the reason, as it gave it.
    #[error("{0}")]
    Refused(String),
    /// The job has ended (or never listened): no socket, or the socket closed.
    #[error("the job has ended")]
    Gone,
    #[error("the job did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the job sent what is not a message ({source}): {line}")]
    Protocol {
        line: String,
        source: serde_json::Error,
    },
    #[error("the job's first message is not a hello")]
    NoHello,
    #[error("talking to the job: {0}")]
    Io(#[from] std::io::Error),
}

/// A connection to a running job.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    lines: Receiver<Result<Message, ClientError>>,
    /// Messages that came while a command waited for its reply, for [`Client::next`].
    held: VecDeque<Message>,
    state: JobState,
    recent: Vec<Stamped>,
}

impl Client {
    /// Connects to job `id` (an exact id) in `run_dir` and reads its hello.
    pub fn connect(run_dir: &Path, id: &str) -> Result<Client, ClientError> {
        Client::connect_timeout(run_dir, id, HELLO_TIMEOUT)
    }

    /// As [`Client::connect`], waiting at most `timeout` for the hello.
    pub fn connect_timeout(
        run_dir: &Path,
        id: &str,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let path = registry::socket_path(run_dir, id);
        let stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::Gone
            }
            _ => ClientError::Io(e),
        })?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let reader = stream.try_clone()?;
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{id} client"))
            .spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let message = match line {
                        Ok(line) => serde_json::from_str::<Message>(&line)
                            .map_err(|source| ClientError::Protocol { line, source }),
                        // Closed under us (our drop): the end, not an error.
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                        Err(e) => Err(ClientError::Io(e)),
                    };
                    let failed = message.is_err();
                    if tx.send(message).is_err() || failed {
                        return;
                    }
                }
            })?;
        let first = match lines.recv_timeout(timeout) {
            Ok(m) => m?,
            Err(RecvTimeoutError::Timeout) => return Err(ClientError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Gone),
        };
        match first {
            Message::Hello { state, recent, .. } => Ok(Client {
                stream,
                lines,
                held: VecDeque::new(),
                state,
                recent,
            }),
            Message::Reply {
                ok: false, error, ..
            } => Err(ClientError::Refused(error.unwrap_or_default())),
            _ => Err(ClientError::NoHello),
        }
    }

    /// The job's state as last heard: from the hello, then from each state message taken.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    /// The events the job sent in its hello, oldest first.
    pub fn recent(&self) -> &[Stamped] {
        &self.recent
    }

    /// The next message, waiting at most `timeout`: `None` if none came. [`ClientError::Gone`]
    /// once the job has closed the connection and every message is taken.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        if let Some(m) = self.held.pop_front() {
            return Ok(Some(m));
        }
        match self.lines.recv_timeout(timeout) {
            Ok(m) => Ok(Some(self.seen(m?))),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::Gone),
        }
    }

    /// Sends `command` and waits for its reply: the reply's message, or
    /// [`ClientError::Refused`] with why not. What comes meanwhile is kept for
    /// [`Client::next`].
    pub fn command(&mut self, command: Command) -> Result<String, ClientError> {
        let mut line = serde_json::to_string(&command).map_err(std::io::Error::other)?;
        line.push('\n');
        self.stream.write_all(line.as_bytes()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                ClientError::Gone
            } else {
                ClientError::Io(e)
            }
        })?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = match self.lines.recv_timeout(left) {
                Ok(m) => self.seen(m?),
                Err(RecvTimeoutError::Timeout) => return Err(ClientError::Timeout(REPLY_TIMEOUT)),
                Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Gone),
            };
            match m {
                Message::Reply {
                    ok: true, message, ..
                } => return Ok(message.unwrap_or_default()),
                Message::Reply { error, .. } => {
                    return Err(ClientError::Refused(error.unwrap_or_default()))
                }
                other => self.held.push_back(other),
            }
        }
    }

    /// Notes what a message says of the state.
    fn seen(&mut self, m: Message) -> Message {
        if let Message::State { state } = &m {
            self.state = state.clone();
        }
        m
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Ends the reading thread.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
