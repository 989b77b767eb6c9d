//! `tapedeck jobs` and `tapedeck answer`: the running and recent jobs of this data
//! directory, and answering a running job's tape request over its socket.

use super::bad_input;
use super::output::{or_dash, print_json, Table};
use anyhow::Result;
use clap::Args;
use std::time::Duration;
use tapedeck::catalog::format_time;
use tapedeck::config::Config;
use tapedeck::job::registry::{self, Listed};
use tapedeck::job::{Answer, Client, ClientError, Command, JobState, RegistryError};
use tapedeck::units::format_size;

/// How long `jobs` waits for a running job's hello before showing its record instead.
const PEEK_TIMEOUT: Duration = Duration::from_secs(1);

const JOBS_HELP: &str = "\
Every backup, restore, verify and catalogue rebuild registers in $TAPEDECK_HOME/run/ while it
runs. Running jobs come first, with their state asked from the job itself; then the jobs that
ended in the last 7 days (at most 50), newest first, with how they ended. A job whose process
died without finishing is shown as failed.

WAITING is the tape request the job waits on: answer it with `tapedeck answer ID loaded`.

--json prints the list: each entry has id, kind, pid, started_at, what, buffer, state (the
job's state, as its socket sends it), outcome, finished_at and live.";

const ANSWER_HELP: &str = "\
A job that needs a tape (a full volume, a wrong cartridge, a restore's next volume) waits for
an answer from its terminal, from `tapedeck answer`, or from any client of its socket; the
first answer wins.

  loaded   a tape is in the drive now: look again (`retry` is the same)
  eject    eject the tape in the drive, then wait again
  abort    stop the job, as Ctrl-C does (what was written is recorded)
  skip     go on without this volume (a restore's damaged or missing volume)

ID is a job id from `tapedeck jobs`, or the start of one (`backup-3f`). The answer goes to the
request pending now, or to --request N only (so an answer meant for an earlier request is
not taken for a new one).

Exit codes: 0 answered, 1 the job could not be reached, 2 unknown or ended job, no pending
request, or an answer the job refused (already answered, not an answer the request takes).";

#[derive(Debug, Args)]
#[command(after_help = JOBS_HELP)]
pub struct JobsArgs {
    /// Print the list as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = ANSWER_HELP)]
pub struct AnswerArgs {
    /// The job: its id or a unique start of it
    id: String,
    /// loaded, eject, abort or skip
    #[arg(value_parser = parse_answer)]
    answer: Answer,
    /// Answer this request only [default: the request pending now]
    #[arg(long, value_name = "N")]
    request: Option<u64>,
}

fn parse_answer(s: &str) -> Result<Answer, String> {
    s.parse()
}

/// Running jobs' state from their sockets; a job that does not answer keeps its record's.
pub(super) fn refreshed(mut all: Vec<Listed>, run: &std::path::Path) -> Vec<Listed> {
    for l in all.iter_mut().filter(|l| l.live) {
        match Client::connect_timeout(run, &l.record.id, PEEK_TIMEOUT) {
            Ok(client) => l.record.state = Some(client.state().clone()),
            Err(e) => tracing::debug!("job {}: {e}", l.record.id),
        }
    }
    all
}

pub fn jobs(args: JobsArgs, config: &Config) -> Result<()> {
    let run = registry::run_dir(&config.home);
    let all = refreshed(registry::list(&run)?, &run);
    if args.json {
        return print_json(&all);
    }
    if all.is_empty() {
        outln!("No jobs running or recent.");
        return Ok(());
    }
    let mut t = Table::new(&[
        "ID", "KIND", "PHASE", "DRIVE", "VOLUME", "PROGRESS", "WAITING", "STARTED",
    ]);
    for l in &all {
        let r = &l.record;
        let state = r.state.as_ref();
        let phase = match (&r.outcome, state) {
            (Some(o), _) => o.status.to_string(),
            (None, Some(s)) => s.phase.to_string(),
            (None, None) => "running".to_string(),
        };
        let drives = |f: fn(&tapedeck::job::DriveView) -> Option<String>| {
            let names: Vec<String> = state
                .map(|s| s.drives.iter().filter_map(f).collect())
                .unwrap_or_default();
            (!names.is_empty()).then(|| names.join(","))
        };
        t.row(vec![
            r.id.clone(),
            r.kind.to_string(),
            phase,
            or_dash(drives(|d| Some(d.drive.clone()))),
            or_dash(drives(|d| d.volume.clone())),
            or_dash(state.and_then(progress)),
            or_dash(state.and_then(waiting)),
            format_time(r.started_at),
        ]);
    }
    t.print();
    for l in &all {
        if let Some(message) = l.record.outcome.as_ref().and_then(|o| o.message.as_ref()) {
            outln!("{}: {message}", l.record.id);
        }
    }
    Ok(())
}

/// The state of every running job, asked from the job itself (for `status`).
pub(super) fn live_states(config: &Config) -> Vec<JobState> {
    let run = registry::run_dir(&config.home);
    let all = registry::list(&run).unwrap_or_default();
    refreshed(all, &run)
        .into_iter()
        .filter(|l| l.live)
        .filter_map(|l| l.record.state)
        .collect()
}

/// `1.2 GiB / 4 GiB (30%)`, or what is done when the total is not known.
pub(super) fn progress(s: &JobState) -> Option<String> {
    let p = &s.progress;
    if p.bytes_total > 0 {
        let pct = (p.bytes_done as f64 / p.bytes_total as f64 * 100.0).min(100.0);
        Some(format!(
            "{} / {} ({pct:.0}%)",
            format_size(p.bytes_done),
            format_size(p.bytes_total)
        ))
    } else if p.bytes_done > 0 {
        Some(format_size(p.bytes_done))
    } else {
        None
    }
}

/// `lto9 needs a usable tape (request 2)`.
pub(super) fn waiting(s: &JobState) -> Option<String> {
    s.pending
        .as_ref()
        .map(|p| format!("{} needs {} (request {})", p.drive, p.need, p.id))
}

pub fn answer(args: AnswerArgs, config: &Config) -> Result<()> {
    let run = registry::run_dir(&config.home);
    let listed = registry::resolve(&run, &args.id).map_err(|e| match e {
        e @ (RegistryError::Unknown { .. } | RegistryError::Ambiguous { .. }) => {
            bad_input(e.to_string())
        }
        e => e.into(),
    })?;
    let id = &listed.record.id;
    let ended = |how: Option<String>| {
        bad_input(format!(
            "job {id} has ended{}: there is nothing to answer",
            how.map(|h| format!(" ({h})")).unwrap_or_default()
        ))
    };
    if !listed.live {
        return Err(ended(listed.record.outcome.map(|o| o.status.to_string())));
    }
    let mut client = match Client::connect(&run, id) {
        Ok(c) => c,
        Err(ClientError::Gone) => return Err(ended(None)),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("job {id}"))),
    };
    let request = match (args.request, client.state().pending.as_ref()) {
        (Some(n), _) => n,
        (None, Some(p)) => p.id,
        (None, None) => {
            return Err(bad_input(format!(
                "job {id} waits on no request now (phase: {})",
                client.state().phase
            )))
        }
    };
    match client.command(Command::Answer {
        request,
        answer: args.answer,
    }) {
        Ok(message) => {
            outln!("{id}: {message}");
            Ok(())
        }
        Err(ClientError::Refused(why)) => Err(bad_input(format!("job {id}: {why}"))),
        Err(ClientError::Gone) => Err(ended(None)),
        Err(e) => Err(anyhow::Error::new(e).context(format!("job {id}"))),
    }
}
