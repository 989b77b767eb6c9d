//! The CLI's side of a tape change: what qualifies (the catalogue's volumes and the
//! library's cartridges, with where they are), how a drive is looked at, and the policy
//! for waiting. The waiting itself is the job's (`tapedeck::job::operator`): the terminal's
//! prompt (`super::watch`), `tapedeck answer`, `attach` and polling the drive are ways of
//! answering it.

use super::{bad_input, describe, Interrupted};
use anyhow::Result;
use std::io::IsTerminal;
use std::time::Duration;
use tapedeck::backup::volume::{self, TapeTarget};
use tapedeck::backup::BackupError;
use tapedeck::catalog::{Catalog, Volume, VolumeStatus};
use tapedeck::drives::DriveSpec;
use tapedeck::job::operator::{self, Need, WaitError, WaitPolicy};
use tapedeck::job::{Answer, Candidate, Job};
use tapedeck::tape::{lto, Changer, Element};

/// How a job of this process waits for a tape: it can be answered when it runs on a
/// terminal or detached (reachable on its socket, with someone expected to attach);
/// `timeout` (--change-timeout) polls the drive and gives up after it.
pub(super) fn policy(timeout: Option<Duration>) -> WaitPolicy {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    WaitPolicy {
        answerable: terminal || super::detach::is_detached(),
        timeout,
        poll: Duration::from_secs(2),
    }
}

/// A wait that ended without a tape, as the CLI's errors say it: interrupted stays
/// interrupted (exit 130), the rest is bad input (exit 2).
pub(super) fn wait_error(e: WaitError) -> anyhow::Error {
    match e {
        WaitError::Interrupted => Interrupted.into(),
        other => bad_input(other.to_string()),
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
) -> Vec<Candidate> {
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
        return volumes
            .iter()
            .filter(|v| fits(v))
            .map(|v| Candidate {
                volume: v.label.clone(),
                status: Some(v.status.to_string()),
                location: v
                    .location
                    .clone()
                    .unwrap_or_else(|| "location unknown".into()),
            })
            .collect();
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
            Some(v) if fits(&v) => listed.push(Candidate {
                volume: v.label,
                status: Some(v.status.to_string()),
                location: at,
            }),
            Some(_) => {}
            None if writable(None, Some(barcode)) => blank.push(Candidate {
                volume: barcode.clone(),
                status: None,
                location: at,
            }),
            None => {}
        }
    }
    listed.extend(blank);
    listed
}

/// One look at the drive: a usable tape positioned for appending, or why not (a blank
/// virtual cartridge is labelled first).
pub(super) fn try_drive(
    spec: &DriveSpec,
    cat: &mut Catalog,
    pool: Option<&str>,
    block: u32,
    requested_block: Option<u32>,
    job: &Job,
) -> Result<Result<TapeTarget, BackupError>> {
    let mut drive = spec.open()?;
    if let Some(label) = super::catalog::label_if_unused(drive.as_mut(), cat, spec, pool, block)? {
        media(
            job,
            spec,
            format!("Labelled the blank cartridge in {} as {label}.", spec.name),
        );
    }
    match volume::prepare(drive, cat, pool, requested_block) {
        Ok(t) => Ok(Ok(t)),
        Err(e) if e.is_bad_input() => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
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
    policy: &WaitPolicy,
    job: &Job,
) -> Result<TapeTarget> {
    // Both closures need the catalogue; they never run at the same time.
    let cat = std::cell::RefCell::new(cat);
    let mut candidates = || qualifying(spec, generation, &cat.borrow(), pool);
    let mut attempt = || match try_drive(
        spec,
        &mut cat.borrow_mut(),
        pool,
        block,
        requested_block,
        job,
    ) {
        Ok(Ok(target)) => Ok(target),
        Ok(Err(why)) => Err(why.to_string()),
        // The drive busy or not ready while someone loads it: look again later.
        Err(e) => Err(describe(&e)),
    };
    let need = Need {
        drive: &spec.name,
        what: "a tape".into(),
        answers: vec![Answer::Loaded, Answer::Eject, Answer::Abort],
    };
    operator::wait_for(
        job,
        policy,
        &need,
        first.to_string(),
        &mut candidates,
        &mut attempt,
        &mut || eject(spec),
    )
    .map_err(wait_error)
}

/// Says what moved in the library for `job` (its watchers print it).
pub(super) fn media(job: &Job, spec: &DriveSpec, message: String) {
    job.publish(tapedeck::job::Event::Media {
        drive: spec.name.clone(),
        message,
    });
}

/// Unloads the tape in the drive (the operator's `eject`).
pub(super) fn eject(spec: &DriveSpec) -> Result<(), String> {
    spec.open()
        .and_then(|mut d| d.unload())
        .map(|()| tracing::info!("ejected the tape in {}", spec.name))
        .map_err(|e| e.to_string())
}
