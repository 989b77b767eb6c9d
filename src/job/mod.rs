//! Jobs: a backup, restore, verify or catalogue rebuild as something that can be watched and
//! steered while it runs, by the terminal that started it, by `tapedeck attach` and
//! `tapedeck answer`, and by the console, all alike.
//!
//! - [`model`]: the job's state, its requests and commands (the wire format).
//! - [`event`]: what happens once, stamped and fanned out.
//! - [`hub`]: the running job: state, subscribers, commands.
//! - [`operator`]: waiting for a tape, answered by whoever answers first.
//! - [`sample`]: the engine's numbers read into the job a few times a second.
//! - [`registry`]: the run directory: who runs, who ran, and how it ended.
//! - [`socket`]: a running job on its Unix socket; [`client`]: the other end;
//!   [`protocol`]: the lines between them.

pub mod client;
pub mod event;
pub mod hub;
pub mod model;
pub mod operator;
pub mod protocol;
pub mod registry;
pub mod sample;
pub mod socket;

pub use client::{Client, ClientError};
pub use event::{Event, Events, Stamped};
pub use hub::{CommandError, Job, Subscription};
pub use model::{
    Answer, Candidate, Command, DriveView, JobKind, JobState, JobStatus, Outcome, Phase, Progress,
    TapeRequest,
};
pub use protocol::Message;
pub use registry::{JobRecord, Listed, RegistryError};
pub use socket::{Server, SocketError};
