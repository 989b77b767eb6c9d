//! `tapedeck attach ID`: a running job on this terminal, as if it had been started here: its
//! progress, and its tape requests asked and answered here. Leaving (Ctrl-C, closing the
//! terminal, a lost SSH link) stops nothing: the job goes on.

use super::watch::{watch, Feed, Show, Update};
use anyhow::Result;
use clap::Args;
use std::time::Duration;
use tapedeck::config::Config;
use tapedeck::job::registry;
use tapedeck::job::{Client, ClientError, Command, Message};

const AFTER_HELP: &str = "\
On a terminal: the job's progress bar and, when it needs a tape, the prompt (Enter when
loaded, e ejects, a aborts the job); the first answer from anywhere wins. Without a terminal,
a progress line every few seconds. --json prints the job's socket messages as they come, one
JSON object per line (see the README's \"Job protocol\").

Ctrl-C leaves the job running; `tapedeck answer ID abort` (or `a` at the prompt) stops it.

Exit codes: the job's own (0 complete, 1 failed, 2 refused, 130 aborted) once it ends; 1 when
the connection is lost first; 2 for an unknown or ended job.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct AttachArgs {
    /// The job: its id or a unique start of it
    id: String,
    /// Print the job's messages as JSON lines instead
    #[arg(long)]
    json: bool,
}

/// A job over its socket.
struct RemoteFeed {
    client: Client,
}

impl Feed for RemoteFeed {
    fn next(&mut self, timeout: Duration) -> Option<Update> {
        match self.client.next(timeout) {
            Ok(Some(Message::State { state })) | Ok(Some(Message::Hello { state, .. })) => {
                Some(Update::State(Box::new(state)))
            }
            Ok(Some(Message::Event(e))) => Some(Update::Event(Box::new(e))),
            Ok(Some(Message::Reply { .. })) | Ok(None) => None,
            Err(_) => Some(Update::Ended),
        }
    }

    fn send(&mut self, command: Command) -> Result<String, String> {
        self.client.command(command).map_err(|e| e.to_string())
    }
}

pub fn run(args: AttachArgs, config: &Config) -> Result<()> {
    let run = registry::run_dir(&config.home);
    let listed = registry::resolve(&run, &args.id)?;
    let id = listed.record.id;
    if !listed.live {
        let how = listed
            .record
            .outcome
            .map(|o| o.status.to_string())
            .unwrap_or_else(|| "ended".into());
        return Err(super::bad_input(format!(
            "job {id} is not running ({how}); `tapedeck jobs` shows how it ended"
        )));
    }
    let mut client = Client::connect(&run, &id)?;
    // Ctrl-C ends this process only: the job is another one and goes on.
    if args.json {
        return print_messages(&mut client);
    }
    let state = client.state().clone();
    errln!(
        "Attached to {} job {id}: {} ({}).",
        state.kind,
        state.what,
        state.phase
    );
    // The request pending now is asked at once, as if it had just been made.
    let mut feed = RemoteFeed { client };
    let last = watch(&mut feed, &Show::for_terminal(false));
    match last.and_then(|s| s.outcome) {
        Some(outcome) => {
            errln!(
                "Job {id} ended {}{}.",
                outcome.status,
                outcome
                    .message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            match outcome.exit_code {
                0 => Ok(()),
                code => Err(super::ExitWith(code).into()),
            }
        }
        None => Err(anyhow::anyhow!("lost the connection to job {id}")),
    }
}

/// Every message of the job as a JSON line, until it ends.
fn print_messages(client: &mut Client) -> Result<()> {
    let hello = Message::Hello {
        protocol: tapedeck::job::protocol::PROTOCOL,
        state: client.state().clone(),
        recent: client.recent().to_vec(),
    };
    outln!("{}", serde_json::to_string(&hello)?);
    let mut code = None;
    loop {
        match client.next(Duration::from_millis(500)) {
            Ok(Some(m)) => {
                if let Message::State { state } = &m {
                    code = state.outcome.as_ref().map(|o| o.exit_code);
                }
                outln!("{}", serde_json::to_string(&m)?);
            }
            Ok(None) => {}
            Err(ClientError::Gone) => break,
            Err(e) => return Err(e.into()),
        }
    }
    match code {
        Some(0) => Ok(()),
        Some(c) => Err(super::ExitWith(c).into()),
        None => Err(anyhow::anyhow!("lost the connection to the job")),
    }
}
