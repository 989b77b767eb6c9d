//! `--detach`: the command runs again as a job in its own session (no controlling
//! terminal, stdin from /dev/null, stdout and stderr to the job's own log file), and this
//! process prints the job's id once the job is reachable on its socket, or the job's error
//! if it ended before that.

use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use tapedeck::config::Config;
use tapedeck::job::JobKind;

/// Set in the environment of a detached job.
const DETACHED: &str = "TAPEDECK_DETACHED";
/// The id a detached job runs under (chosen by the process that started it).
pub(super) const JOB_ID: &str = "TAPEDECK_JOB_ID";

/// Whether this process is a detached job.
pub(super) fn is_detached() -> bool {
    std::env::var_os(DETACHED).is_some()
}

/// In a detached job: leaves the starter's session, so no terminal hangs it up and its
/// process group's signals do not reach it.
pub(super) fn leave_session() {
    if is_detached() {
        // Fails only for a process-group leader, which a spawned child is not.
        if let Err(e) = nix::unistd::setsid() {
            tracing::warn!("cannot start a session of its own: {e}");
        }
    }
}

/// How long the starter waits for the job to become reachable.
const START_WAIT: Duration = Duration::from_secs(60);

/// Starts this command again, without `--detach`, as a job of `kind`; prints its id.
pub(super) fn start(config: &Config, kind: JobKind, json: bool) -> Result<()> {
    let run = tapedeck::job::registry::run_dir(&config.home);
    tapedeck::job::registry::ensure_run_dir(&run)?;
    let id = tapedeck::job::registry::new_id(&run, kind);
    let log_path = run.join(format!("{id}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    let exe = std::env::current_exe().context("finding the tapedeck binary")?;
    let mut child = std::process::Command::new(exe)
        .args(&args)
        .env(DETACHED, "1")
        .env(JOB_ID, &id)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the detached job")?;
    let socket = run.join(format!("{id}.sock"));
    let started = Instant::now();
    loop {
        if socket.exists() {
            break;
        }
        if let Some(status) = child.try_wait()? {
            // It ended before it could be reached: a refusal, most likely. Say why.
            errln!("{}", tail(&log_path));
            let code = status.code().unwrap_or(1);
            return Err(super::ExitWith(code as u8).into());
        }
        if started.elapsed() > START_WAIT {
            errln!(
                "warning: job {id} is not reachable yet; see {}",
                log_path.display()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if json {
        let value = serde_json::json!({ "id": id, "pid": child.id(), "log": log_path });
        outln!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        outln!("{id}");
        errln!(
            "Started {kind} job {id} (pid {}); `tapedeck attach {id}` shows it, `tapedeck jobs` \
             lists it; its output goes to {}",
            child.id(),
            log_path.display()
        );
    }
    Ok(())
}

/// The end of a log file, for a job that ended at once.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
