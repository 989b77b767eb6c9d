//! Waiting for the operator to load a tape: a prompt on the terminal (Enter when loaded,
//! `e` to eject, `a` to abort), or, without one, polling the drive until a usable tape is
//! in it or `--change-timeout` runs out. Every tape loaded is checked by its label as any
//! other; a wrong one is explained and the wait goes on.

use super::{bad_input, describe, Interrupted};
use anyhow::Result;
use std::io::{BufRead, IsTerminal};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tapedeck::backup::volume::{self, TapeTarget};
use tapedeck::backup::BackupError;
use tapedeck::catalog::{Catalog, Volume, VolumeStatus};
use tapedeck::drives::DriveSpec;
use tapedeck::interrupt::Interrupt;
use tapedeck::job::Events;
use tapedeck::tape::{lto, Changer, Element};

/// Without a terminal, how often an unchanged need for a tape is logged again.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

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

/// What could take the backup in `spec`, as the operator reads it: the volumes (of
/// `pool`, and scratch ones) the drive can write, each with where it is (never a tape in
/// another drive as if it were free), and the slots holding cartridges the catalogue does
/// not know (blank ones are labelled when loaded).
fn qualifying(
    spec: &DriveSpec,
    generation: Option<u8>,
    cat: &Catalog,
    pool: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let writable = |media: Option<&str>, barcode: Option<&str>| {
        lto::may_take(generation, lto::cartridge_generation(media, barcode), true)
    };
    let fits = |v: &Volume| {
        v.read_only.is_none()
            && matches!(v.status, VolumeStatus::Appendable | VolumeStatus::Empty)
            && (pool.is_none() || v.pool.is_none() || v.pool.as_deref() == pool)
            && writable(v.media.as_deref(), v.barcode.as_deref().or(Some(&v.label)))
    };
    let library = spec
        .is_virtual()
        .then(|| super::changer::changer_of(spec).ok())
        .flatten()
        .and_then(|(lib, element)| Some((lib.changer().inventory().ok()?, lib, element)));
    let Some((inventory, lib, here)) = library else {
        // No changer: the catalogue's volumes and where it last saw them.
        let volumes = cat.volumes(None).unwrap_or_default();
        let listed = volumes
            .iter()
            .filter(|v| fits(v))
            .map(|v| {
                format!(
                    "{} ({}, {})",
                    v.label,
                    v.status,
                    v.location.as_deref().unwrap_or("location unknown")
                )
            })
            .collect();
        return (listed, Vec::new());
    };
    let file = lib.read().ok();
    let place = |e: Element| file.as_ref().map_or(e.to_string(), |f| f.describe(e));
    let (mut listed, mut blank) = (Vec::new(), Vec::new());
    for e in inventory.drives.iter().chain(&inventory.slots) {
        let Some(barcode) = &e.barcode else { continue };
        let at = match e.element {
            Element::Drive(_) if e.element == here => format!("in {} now", place(e.element)),
            Element::Drive(_) => format!("in {}, in use there: unload it first", place(e.element)),
            other => place(other),
        };
        match cat.find_volume(barcode).ok().flatten() {
            Some(v) if fits(&v) => listed.push(format!("{} ({}, {at})", v.label, v.status)),
            Some(_) => {}
            None if writable(None, Some(barcode)) => blank.push(format!("{barcode} ({at})")),
            None => {}
        }
    }
    (listed, blank)
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
    if let Some(label) = super::catalog::label_if_unused(drive.as_mut(), cat, spec, pool, block)? {
        errln!("Labelled the blank cartridge in {} as {label}.", spec.name);
    }
    match volume::prepare(drive, cat, pool, requested_block) {
        Ok(t) => Ok(Ok(t)),
        Err(e) if e.is_bad_input() => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
}

/// Lines typed on the terminal, read by one thread for the whole process (so that Ctrl-C is
/// seen while waiting): a thread per prompt would keep stdin after its prompt was answered
/// and take the first line typed at the next one. What was typed before the prompt is
/// dropped.
fn stdin_lines() -> std::sync::MutexGuard<'static, mpsc::Receiver<String>> {
    static LINES: std::sync::OnceLock<std::sync::Mutex<mpsc::Receiver<String>>> =
        std::sync::OnceLock::new();
    let lines = LINES.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::sync::Mutex::new(rx)
    });
    let lines = lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while lines.try_recv().is_ok() {}
    lines
}

/// Waits until the drive holds a tape the backup can use. `first` is why the current one
/// (or none) will not do.
#[allow(clippy::too_many_arguments)]
pub(super) fn wait_for_tape(
    spec: &DriveSpec,
    generation: Option<u8>,
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
        let (candidates, blank) = qualifying(spec, generation, &cat.borrow(), pool);
        let mut said = vec![
            format!("Drive {} needs a tape: {reason}.", spec.name),
            match candidates.is_empty() {
                true => "No known volume qualifies; a blank cartridge does.".to_string(),
                false => format!("Volumes that qualify: {}.", candidates.join(", ")),
            },
        ];
        if !blank.is_empty() {
            said.push(format!(
                "Cartridges the catalogue does not know (used if blank): {}.",
                blank.join(", ")
            ));
        }
        let _ = events;
        tracing::warn!("{} needs a tape: {reason}", spec.name);
        said
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
    // The progress bar stays off the terminal while the operator is asked.
    super::output::without_progress_bar(|| {
        ask_until(
            spec,
            need,
            first_reason,
            prompt,
            wait,
            interrupt,
            announce,
            attempt,
        )
    })
}

/// [`wait_until`] with the progress bar out of the way.
#[allow(clippy::too_many_arguments)]
fn ask_until<T>(
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
    // Without a terminal the need is logged once, again when the reason changes, and
    // otherwise at most once a minute: polling every few seconds must not flood the log.
    let mut announced: Option<(String, Instant)> = None;
    loop {
        let due = lines.is_some()
            || announced
                .as_ref()
                .is_none_or(|(said, at)| *said != reason || at.elapsed() >= ANNOUNCE_EVERY);
        let said = if due {
            announced = Some((reason.clone(), Instant::now()));
            announce(&reason)
        } else {
            Vec::new()
        };
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
                "a" | "abort" => {
                    // The operator stops the job as Ctrl-C does: it ends aborted (exit 130)
                    // with what was written recorded, not failed.
                    interrupt.request();
                    return Err(Interrupted.into());
                }
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
