//! Waiting for the operator to load a tape: a prompt on the terminal (Enter when loaded,
//! `e` to eject, `a` to abort), or, without one, polling the drive until a usable tape is
//! in it or `--change-timeout` runs out. Every tape loaded is checked by its label as any
//! other; a wrong one is explained and the wait goes on.

use super::{bad_input, describe, Interrupted};
use anyhow::Result;
use std::io::{BufRead, IsTerminal};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tapedeck::backup::telemetry::{Event, Events};
use tapedeck::backup::volume::{self, TapeTarget};
use tapedeck::backup::{BackupError, Interrupt};
use tapedeck::catalog::{Catalog, VolumeStatus};
use tapedeck::drives::DriveSpec;

/// How long to wait, and how.
pub(super) struct Wait {
    /// Prompt on the terminal (stdin and stderr are one).
    pub interactive: bool,
    /// Without a terminal: poll this long (None: do not wait).
    pub timeout: Option<Duration>,
    /// How often the drive is looked at while polling.
    pub poll: Duration,
}

impl Wait {
    pub fn from_terminal(timeout: Option<Duration>) -> Wait {
        Wait {
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            timeout,
            poll: Duration::from_secs(2),
        }
    }

    pub fn waits(&self) -> bool {
        self.interactive || self.timeout.is_some()
    }
}

/// Volumes of `pool` (or scratch volumes) that could take the backup, with their place.
fn qualifying(cat: &Catalog, pool: Option<&str>) -> Vec<String> {
    let volumes = match cat.volumes(pool) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    volumes
        .into_iter()
        .filter(|v| matches!(v.status, VolumeStatus::Appendable | VolumeStatus::Empty))
        .map(|v| {
            format!(
                "{} ({}, {})",
                v.label,
                v.status,
                v.location.as_deref().unwrap_or("location unknown")
            )
        })
        .collect()
}

/// One look at the drive: a usable tape positioned for appending, or why not (a blank
/// virtual cartridge is labelled first).
pub(super) fn try_drive(
    spec: &DriveSpec,
    cat: &mut Catalog,
    pool: Option<&str>,
    block: u32,
    requested_block: Option<u32>,
) -> Result<Result<TapeTarget, BackupError>> {
    let mut drive = spec.open()?;
    if let Some(label) = super::catalog::label_if_blank(drive.as_mut(), cat, spec, pool, block)? {
        eprintln!("Labelled the blank cartridge in {} as {label}.", spec.name);
    }
    match volume::prepare(drive, cat, pool, requested_block) {
        Ok(t) => Ok(Ok(t)),
        Err(e) if e.is_bad_input() => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
}

/// Lines typed on the terminal, read by a thread so that Ctrl-C is seen while waiting.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits until the drive holds a tape the backup can use. `first` is why the current one
/// (or none) will not do.
#[allow(clippy::too_many_arguments)]
pub(super) fn wait_for_tape(
    spec: &DriveSpec,
    cat: &mut Catalog,
    pool: Option<&str>,
    block: u32,
    requested_block: Option<u32>,
    first: BackupError,
    wait: &Wait,
    events: &Events,
    interrupt: &Interrupt,
) -> Result<TapeTarget> {
    let started = Instant::now();
    let mut reason = first.to_string();
    let mut lines = wait.interactive.then(stdin_lines);
    loop {
        let candidates = qualifying(cat, pool);
        events.send(Event::TapeNeeded {
            drive: spec.name.clone(),
            reason: reason.clone(),
            candidates: candidates.clone(),
        });
        if let Some(lines) = &mut lines {
            eprintln!();
            eprintln!("Drive {} needs a tape: {reason}.", spec.name);
            match candidates.is_empty() {
                true => eprintln!("No known volume qualifies; a blank cartridge does."),
                false => eprintln!("Volumes that qualify: {}.", candidates.join(", ")),
            }
            eprint!("Load one and press Enter; e ejects the tape in the drive; a aborts: ");
            let answer = loop {
                if interrupt.requested() {
                    return Err(Interrupted.into());
                }
                match lines.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => break line,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(bad_input("no tape loaded (the terminal closed)"));
                    }
                }
            };
            match answer.trim() {
                "a" | "abort" => return Err(Interrupted.into()),
                "e" | "eject" => {
                    match spec.open().and_then(|mut d| d.unload()) {
                        Ok(()) => eprintln!("Ejected the tape in {}.", spec.name),
                        Err(e) => eprintln!("Cannot eject: {e}"),
                    }
                    reason = "the tape was ejected".into();
                    continue;
                }
                _ => {}
            }
        } else {
            let timeout = wait.timeout.unwrap_or_default();
            if started.elapsed() >= timeout {
                return Err(bad_input(format!(
                    "no usable tape in {} after waiting {} s: {reason}",
                    spec.name,
                    timeout.as_secs()
                )));
            }
            let until = Instant::now() + wait.poll;
            while Instant::now() < until {
                if interrupt.requested() {
                    return Err(Interrupted.into());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        match try_drive(spec, cat, pool, block, requested_block) {
            Ok(Ok(target)) => return Ok(target),
            Ok(Err(e)) => reason = e.to_string(),
            // The drive busy or not ready while someone loads it: look again later.
            Err(e) => reason = describe(&e),
        }
    }
}
