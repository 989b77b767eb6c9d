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
        errln!("Labelled the blank cartridge in {} as {label}.", spec.name);
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
    // Both closures need the catalogue; they never run at the same time.
    let cat = std::cell::RefCell::new(cat);
    let mut announce = |reason: &str| {
        let candidates = qualifying(&cat.borrow(), pool);
        events.send(Event::TapeNeeded {
            drive: spec.name.clone(),
            reason: reason.to_string(),
            candidates: candidates.clone(),
        });
        vec![
            format!("Drive {} needs a tape: {reason}.", spec.name),
            match candidates.is_empty() {
                true => "No known volume qualifies; a blank cartridge does.".to_string(),
                false => format!("Volumes that qualify: {}.", candidates.join(", ")),
            },
        ]
    };
    let mut attempt = || -> Result<Result<TapeTarget, String>> {
        Ok(
            try_drive(spec, &mut cat.borrow_mut(), pool, block, requested_block)?
                .map_err(|e| e.to_string()),
        )
    };
    wait_until(
        spec,
        "usable tape",
        first.to_string(),
        "Load one and press Enter; e ejects the tape in the drive; a aborts: ",
        wait,
        interrupt,
        &mut announce,
        &mut attempt,
    )
}

/// The operator's side of a tape change, for any need (a tape a backup can use, a
/// volume a restore reads): `announce` says what is needed (lines shown on the terminal;
/// without one it logs them itself), `attempt` looks at the drive (Ok(Err(why)) when the
/// tape there will not do, Err when the drive cannot be looked at now). On a terminal the
/// operator presses Enter once loaded (`e` ejects, `a` aborts); without one the drive is
/// polled until `wait.timeout` runs out, and the error names `need`.
#[allow(clippy::too_many_arguments)]
pub(super) fn wait_until<T>(
    spec: &DriveSpec,
    need: &str,
    first_reason: String,
    prompt: &str,
    wait: &Wait,
    interrupt: &Interrupt,
    announce: &mut dyn FnMut(&str) -> Vec<String>,
    attempt: &mut dyn FnMut() -> Result<Result<T, String>>,
) -> Result<T> {
    let started = Instant::now();
    let mut reason = first_reason;
    let mut lines = wait.interactive.then(stdin_lines);
    loop {
        let said = announce(&reason);
        if let Some(lines) = &mut lines {
            errln!();
            for line in &said {
                errln!("{line}");
            }
            err!("{prompt}");
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
                        Ok(()) => errln!("Ejected the tape in {}.", spec.name),
                        Err(e) => errln!("Cannot eject: {e}"),
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
                    "no {need} in {} after waiting {} s: {reason}",
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
        match attempt() {
            Ok(Ok(target)) => return Ok(target),
            Ok(Err(why)) => reason = why,
            // The drive busy or not ready while someone loads it: look again later.
            Err(e) => reason = describe(&e),
        }
    }
}
