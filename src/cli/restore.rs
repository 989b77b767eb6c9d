//! `tapedeck restore`: files back from tape by their catalogued place, into `--to DIR`;
//! `--dry-run` shows what would be read. Also what restore and verify share: mounting
//! the volumes a plan needs (the drive, the library's changer, or the operator), the
//! drive model for estimates, and the progress bar.

use super::output::print_json;
use super::watch::Show;
use super::{bad_input, describe, Interrupted};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tapedeck::catalog::Catalog;
use tapedeck::config::{Config, DEFAULT_BLOCK_SIZE};
use tapedeck::drives::{self, DriveKind, DriveSpec};
use tapedeck::interrupt::Interrupt;
use tapedeck::job::operator::{self, Need, WaitPolicy};
use tapedeck::job::sample::{self, Sampler};
use tapedeck::job::{Answer, Candidate, Job, JobKind, Phase};
use tapedeck::label::{self, TapeStart};
use tapedeck::restore::extract::{Extractor, Overwrite};
use tapedeck::restore::plan::{self, PathPattern, Plan, PlanError, PlanOptions, Selection};
use tapedeck::restore::read::{self, Mode};
use tapedeck::restore::{MountError, Progress, Report, Status, VolumeSource};
use tapedeck::tape::drive_model::DriveModel;
use tapedeck::tape::{lto, Changer, Element, TapeDrive};
use tapedeck::units::{format_rate, format_size};
use tapedeck::vlib::Library;

const AFTER_HELP: &str = "\
Select with one of --file PATH (its newest version; --date or --backup for an older one; a
directory brings everything under it from that backup), --tape LABEL (everything on the
volume), --backup ID (everything in that backup), --job NAME --date DATE (the state of the
job at that date: its newest complete full backup and the incrementals after it, deletions
applied), or only --pattern. --pattern narrows any of them: with a `/` it matches the whole
path (a glob, or a directory and everything under it), without one the file name (a glob,
or a case-insensitive substring, as `find`).

Members are read in tape order, one pass per volume: LOCATE to the first needed block,
then skip to each member by its recorded offset. Every file's BLAKE3 is checked as it is
written; a file that does not match is removed and reported. Nothing is written outside
--to: absolute paths, `..`, and paths through symlinks are refused per member. Mode, mtime,
symlinks, hard links, devices, FIFOs and extended attributes are restored, owners when run
as root. Volumes not in the drive are loaded from the library, or asked for (a prompt on
a terminal, else --change-timeout).

Dates: 2024-05-01 (the end of that day), '2024-05-01 12:00', RFC 3339, @SECONDS, or now.

Exit codes: 0 every member restored (or kept by --overwrite), 1 any member damaged,
missing, refused or not written, 2 bad input, 130 interrupted.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct RestoreArgs {
    /// An absolute path: its newest version (or the one --date or --backup picks)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["tape", "job"])]
    file: Option<String>,
    /// Everything on this volume
    #[arg(long, value_name = "LABEL", conflicts_with_all = ["job", "backup", "date"])]
    tape: Option<String>,
    /// The state of this job at --date: its full backup, then its incrementals
    #[arg(
        long,
        value_name = "NAME",
        requires = "date",
        conflicts_with = "backup"
    )]
    job: Option<String>,
    /// With --file: the newest version at this time; with --job: the state at this time
    #[arg(long, value_name = "DATE")]
    date: Option<String>,
    /// A backup (uuid or a unique prefix): with --file, the version it holds; alone,
    /// everything in it
    #[arg(long, value_name = "ID", conflicts_with = "date")]
    backup: Option<String>,
    /// Only paths that match (repeatable: all must match)
    #[arg(long = "pattern", value_name = "PATTERN")]
    patterns: Vec<String>,
    /// The directory to restore into (created if missing); never the current directory
    /// unless given
    #[arg(long, value_name = "DIR", required_unless_present = "dry_run")]
    to: Option<PathBuf>,
    /// When the target already has something at a member's path
    #[arg(long, value_enum, default_value_t = Overwrite::Never)]
    overwrite: Overwrite,
    /// Show what would be read, from which volumes in which order, how many bytes and
    /// how long it would take; read nothing (pytp's `restore --verify`)
    #[arg(long, alias = "verify")]
    dry_run: bool,
    #[command(flatten)]
    reading: ReadArgs,
    /// Print the plan (--dry-run) or the report as JSON
    #[arg(long)]
    json: bool,
}

/// How restore and verify read: the drive, and how long to wait for a volume.
#[derive(Debug, Args)]
pub(super) struct ReadArgs {
    /// The drive to read with [default: $TAPEDECK_DRIVE, default_drive, else the first]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
    /// Wait this many seconds for a volume to be loaded, looking at the drive every 2 s,
    /// instead of failing its members at once (on a terminal, or detached, the job also
    /// waits for an answer: Enter, `tapedeck answer`)
    #[arg(long, value_name = "SECS")]
    change_timeout: Option<u64>,
    /// Run as a detached job: in its own session, output to its own log file, reachable
    /// with `tapedeck attach ID` and `tapedeck answer ID`; prints the job's id and returns
    #[arg(long)]
    pub detach: bool,
}

/// A plan error at the command-line edge: bad input exits 2.
pub(super) fn plan_error(e: PlanError) -> anyhow::Error {
    if e.is_bad_input() {
        bad_input(e.to_string())
    } else {
        e.into()
    }
}

/// The model of a drive, for estimates: the virtual drive's own, a configured `model`,
/// else LTO-9.
fn drive_model(spec: &DriveSpec, config: &Config) -> DriveModel {
    let configured = match &spec.kind {
        DriveKind::Virtual { library, .. } => Library::open(library)
            .and_then(|l| l.read())
            .ok()
            .and_then(|f| f.drives.into_iter().find(|d| d.name == spec.name))
            .map(|d| d.model),
        DriveKind::St { .. } => config
            .file
            .drives
            .iter()
            .find(|d| d.name == spec.name)
            .and_then(|d| d.model.as_deref())
            .and_then(DriveModel::builtin),
    };
    configured
        .or_else(|| DriveModel::builtin("LTO-9"))
        .unwrap_or_else(lto9_fallback)
}

/// LTO-9 figures, should the built-in table ever lack them.
fn lto9_fallback() -> DriveModel {
    DriveModel {
        name: "LTO-9".into(),
        generation: 9,
        speed_steps: vec![408_000_000],
        cache: 1 << 30,
        reposition_secs: 2.5,
        restart_fill: 0.5,
        max_block: 8 << 20,
    }
}

/// What the catalogue knows of a volume, for reading it.
struct KnownVolume {
    barcode: String,
    block: u64,
    /// Where the catalogue last saw it (for a tape outside the library).
    location: Option<String>,
    /// The cartridge's LTO generation, when its media or barcode says.
    generation: Option<u8>,
    /// The volume's uuid: from its label, or `first-block:...` for a tape another tool
    /// wrote.
    uuid: Option<String>,
}

/// Where the volumes are and what the drive holds, for planning and mounting.
pub(super) struct Volumes {
    /// The drive reading now.
    spec: DriveSpec,
    library: Option<(Library, Element)>,
    /// The drives a volume may be read with, and their LTO generations: the one asked
    /// for with --drive, else every drive of the virtual library (or the default drive).
    drives: Vec<(DriveSpec, Option<u8>)>,
    /// What the catalogue knows of each volume, by label.
    known: HashMap<String, KnownVolume>,
    policy: WaitPolicy,
    /// The job that reads, which asks the operator for volumes (none for a dry run).
    job: Option<Arc<Job>>,
}

impl Volumes {
    pub fn new(
        spec: DriveSpec,
        drives: Vec<(DriveSpec, Option<u8>)>,
        cat: &Catalog,
        change_timeout: Option<u64>,
    ) -> Result<Volumes> {
        let library = match &spec.kind {
            DriveKind::Virtual { .. } => Some(super::changer::changer_of(&spec)?),
            DriveKind::St { .. } => None,
        };
        let known = cat
            .volumes(None)?
            .into_iter()
            .map(|v| {
                let barcode = v.barcode.clone().unwrap_or_else(|| v.label.clone());
                let block = v
                    .block_size
                    .filter(|b| *b > 0)
                    .map_or(DEFAULT_BLOCK_SIZE, |b| b as u64);
                let generation = lto::cartridge_generation(v.media.as_deref(), Some(&barcode));
                let known = KnownVolume {
                    barcode,
                    block,
                    location: v.location,
                    generation,
                    uuid: v.uuid,
                };
                (v.label, known)
            })
            .collect();
        Ok(Volumes {
            spec,
            library,
            drives,
            known,
            policy: super::tape_change::policy(change_timeout.map(Duration::from_secs)),
            job: None,
        })
    }

    fn barcode<'a>(&'a self, label: &'a str) -> &'a str {
        self.known.get(label).map_or(label, |k| k.barcode.as_str())
    }

    /// Block size and where the volume is, as the operator reads it.
    pub fn info(&self, label: &str) -> (u64, Option<String>) {
        let (block, catalogued) = self
            .known
            .get(label)
            .map_or((DEFAULT_BLOCK_SIZE, None), |k| {
                (k.block, k.location.clone())
            });
        let place = self.library.as_ref().and_then(|(lib, _)| {
            let file = lib.read().ok()?;
            Some(match file.find(self.barcode(label)) {
                Some(e) => file.describe(e),
                None => "not in the library".to_string(),
            })
        });
        (block, place.or(catalogued))
    }

    /// The label of the volume in the drive now, when the library knows it.
    pub fn in_drive(&self) -> Option<String> {
        let (lib, element) = self.library.as_ref()?;
        let barcode = lib.read().ok()?.at(*element).ok()??.clone();
        Some(
            self.known
                .iter()
                .find(|(_, k)| k.barcode == barcode)
                .map_or(barcode, |(label, _)| label.clone()),
        )
    }

    /// Whether the drive holds `label` now (by the library's barcode, or the label on
    /// the tape), opened.
    fn holds(&self, label: &str) -> Result<Option<Box<dyn TapeDrive>>> {
        match &self.library {
            Some((lib, element)) => {
                let file = lib.read()?;
                if file.at(*element)?.map(String::as_str) != Some(self.barcode(label)) {
                    return Ok(None);
                }
                let mut drive = self.spec.open()?;
                if !drive.status()?.online {
                    drive.load()?;
                }
                Ok(Some(drive))
            }
            None => {
                let mut drive = self.spec.open()?;
                let uuid = self.known.get(label).and_then(|k| k.uuid.as_deref());
                if let Some(uuid) = uuid.filter(|u| u.starts_with(label::FIRST_BLOCK_ID)) {
                    // A tape another tool wrote: known by its first block.
                    let first = label::read_first_block(drive.as_mut())?;
                    return Ok(first.filter(|f| f.is_identity_of(uuid)).map(|_| drive));
                }
                match label::read_tape_start(drive.as_mut())? {
                    TapeStart::Labelled(l) if l.label == label => Ok(Some(drive)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Loads `label` with the library's changer, when it is in a slot (or another drive).
    fn load_from_library(&self, label: &str) -> Result<bool> {
        let Some((lib, element)) = &self.library else {
            return Ok(false);
        };
        let file = lib.read()?;
        let Some(from) = file.find(self.barcode(label)) else {
            return Ok(false);
        };
        if let Element::Drive(i) = from {
            // In another drive: taken out of it first.
            let other = &file.drives[i as usize].name;
            self.say(format!(
                "Taking {} out of drive {other} to read it in {}.",
                self.barcode(label),
                self.spec.name
            ));
            lib.open_drive(other)?.unload()?;
        }
        if let Some((barcode, slot)) = super::changer::unload_into(&self.spec, None)? {
            self.say(format!(
                "Unloaded {barcode} from {} into slot {slot}.",
                self.spec.name
            ));
        }
        lib.changer().move_medium(from, *element)?;
        self.say(format!(
            "Loaded {} from {} into {}.",
            self.barcode(label),
            file.describe(from),
            self.spec.name
        ));
        Ok(true)
    }

    /// Says what moved in the library: through the job, whose watchers print it.
    fn say(&self, message: String) {
        match &self.job {
            Some(job) => super::tape_change::media(job, &self.spec, message),
            None => errln!("{message}"),
        }
    }

    /// The drive to read `label` with: one that can read it by the LTO rules (else one
    /// clear refusal), preferring one that holds it already, then a free one; only then
    /// one whose tape must be unloaded first (which is said when it happens).
    pub fn drive_for(&self, label: &str) -> Result<DriveSpec> {
        let generation = self.known.get(label).and_then(|k| k.generation);
        let readable: Vec<&DriveSpec> = self
            .drives
            .iter()
            .filter(|(_, d)| lto::may_take(*d, generation, false))
            .map(|(spec, _)| spec)
            .collect();
        if readable.is_empty() {
            let drives: Vec<String> = self
                .drives
                .iter()
                .map(|(s, g)| match g {
                    Some(g) => format!("{} (LTO-{g})", s.name),
                    None => s.name.clone(),
                })
                .collect();
            return Err(bad_input(format!(
                "volume {label} is an LTO-{} cartridge, which no drive here can read ({}): \
                 read it in a drive of its generation or the next",
                generation.unwrap_or_default(),
                drives.join(", ")
            )));
        }
        let holding = |spec: &DriveSpec| -> Option<Option<String>> {
            let (lib, element) = super::changer::changer_of(spec).ok()?;
            Some(lib.read().ok()?.at(element).ok()?.cloned())
        };
        let barcode = self.barcode(label).to_string();
        let pick = readable
            .iter()
            .find(|s| holding(s).flatten().as_deref() == Some(barcode.as_str()))
            .or_else(|| readable.iter().find(|s| holding(s) == Some(None)))
            .or_else(|| readable.first())
            .copied()
            .cloned();
        pick.ok_or_else(|| bad_input(format!("no drive to read volume {label}")))
    }

    /// Makes `spec` the drive that reads.
    fn switch_to(&mut self, spec: DriveSpec) -> Result<()> {
        if spec.name != self.spec.name {
            self.library = match &spec.kind {
                DriveKind::Virtual { .. } => Some(super::changer::changer_of(&spec)?),
                DriveKind::St { .. } => None,
            };
            self.spec = spec;
        }
        Ok(())
    }

    fn mount_or_wait(&mut self, label: &str) -> Result<Box<dyn TapeDrive>> {
        let spec = self.drive_for(label)?;
        self.switch_to(spec)?;
        if let Some(d) = self.in_drive_or_loaded(label)? {
            return Ok(d);
        }
        let place = self
            .info(label)
            .1
            .unwrap_or_else(|| "location unknown".into());
        let reason = "it holds another tape, or none".to_string();
        let job = match &self.job {
            Some(job) if self.policy.waits() => job.clone(),
            _ => {
                return Err(bad_input(format!(
                    "volume {label} is not in {} ({place}); load it and run again, or give \
                     --change-timeout SECS to wait for it",
                    self.spec.name
                )))
            }
        };
        let spec = self.spec.clone();
        let (status, known) = match self.known.get(label) {
            Some(k) => (Some("in the catalogue".to_string()), k.barcode.clone()),
            None => (None, label.to_string()),
        };
        let candidate = Candidate {
            volume: known,
            status,
            location: place,
        };
        let this = &*self;
        let mut attempt = || -> Result<Box<dyn TapeDrive>, String> {
            // Loaded into the drive, or put back into the library.
            match this.in_drive_or_loaded(label) {
                Ok(Some(d)) => Ok(d),
                Ok(None) => Err(format!("the drive does not hold {label}")),
                Err(e) => Err(describe(&e)),
            }
        };
        let need = Need {
            drive: &spec.name,
            what: format!("volume {label}"),
            answers: vec![Answer::Loaded, Answer::Eject, Answer::Abort, Answer::Skip],
        };
        operator::wait_for(
            &job,
            &this.policy,
            &need,
            reason,
            &mut || vec![candidate.clone()],
            &mut attempt,
            &mut || super::tape_change::eject(&spec),
        )
        .map_err(super::tape_change::wait_error)
    }

    /// The drive holding `label`: as it is, or after loading it from the library.
    fn in_drive_or_loaded(&self, label: &str) -> Result<Option<Box<dyn TapeDrive>>> {
        if let Some(d) = self.holds(label)? {
            return Ok(Some(d));
        }
        if self.load_from_library(label)? {
            return self.holds(label);
        }
        Ok(None)
    }

    /// Makes `job` the one that asks the operator for volumes.
    pub fn set_job(&mut self, job: Arc<Job>) {
        self.job = Some(job);
    }
}

impl VolumeSource for Volumes {
    fn mount(&mut self, volume: &str) -> Result<Box<dyn TapeDrive>, MountError> {
        self.mount_or_wait(volume).map_err(|e| {
            if e.chain().any(|c| c.is::<Interrupted>()) {
                MountError::Interrupted(volume.to_string())
            } else {
                MountError::Unavailable {
                    volume: volume.to_string(),
                    detail: describe(&e),
                }
            }
        })
    }
}

/// The drive's volumes, the plan of reads of `members` with it (only the headers with
/// `headers_only`), and the interrupt (Ctrl-C, SIGTERM) that stops the reading.
pub(super) fn plan_reads(
    args: &ReadArgs,
    config: &Config,
    cat: &Catalog,
    members: Vec<plan::Member>,
    headers_only: bool,
) -> Result<(Volumes, Plan, Interrupt)> {
    let asked = drives::resolve(config, args.drive.as_deref())?;
    // Without --drive any drive of the library may read, each volume in one that can.
    let candidates = match (&args.drive, asked.is_virtual()) {
        (None, true) => drives::all(config)?
            .into_iter()
            .filter(DriveSpec::is_virtual)
            .collect(),
        _ => vec![asked.clone()],
    };
    let candidates: Vec<(DriveSpec, Option<u8>)> = candidates
        .into_iter()
        .map(|s| {
            let g = s.generation(config);
            (s, g)
        })
        .collect();
    let interrupt = Interrupt::from_signals().context("installing the Ctrl-C handler")?;
    let mut volumes = Volumes::new(asked, candidates, cat, args.change_timeout)?;
    // Every volume to read must have a drive that can read it: one clear refusal, not a
    // failure per member. The plan is made for the drive the first volume is read in.
    let mut labels: Vec<String> = Vec::new();
    for m in &members {
        for seg in m.version.segments.iter() {
            if !labels.contains(&seg.volume) {
                labels.push(seg.volume.clone());
            }
        }
    }
    for label in &labels {
        volumes.drive_for(label)?;
    }
    if let Some(first) = labels.first() {
        let spec = volumes.drive_for(first)?;
        volumes.switch_to(spec)?;
    }
    let spec = volumes.spec.clone();
    let model = drive_model(&spec, config);
    let info = |label: &str| volumes.info(label);
    let plan = plan::plan(
        members,
        &PlanOptions {
            model: &model,
            headers_only,
            in_drive: volumes.in_drive(),
            volume_info: &info,
        },
    );
    Ok((volumes, plan, interrupt))
}

/// Prints the outcome of a restore or verify (human or JSON) and turns it into the exit
/// status: interrupted 130, any failed member 1.
/// Runs a restore or verify (`read`) as a job of `kind` watched on this terminal, and
/// reports it.
pub(super) fn run_reading(
    config: &Config,
    (kind, what): (JobKind, &str),
    interrupt: Interrupt,
    json: bool,
    (plan, volumes): (&Plan, &mut Volumes),
    mode: Mode<'_>,
) -> Result<()> {
    super::jobrun::run_job(config, kind, what, interrupt.clone(), |running| {
        let job = &running.job;
        job.set_phase(Phase::Reading);
        let progress = Arc::new(Progress::default());
        let report = {
            let started = std::time::Instant::now();
            let _sampler = Sampler::start(job.clone(), {
                let progress = progress.clone();
                move || sample::from_reading(&progress, started.elapsed())
            });
            volumes.set_job(job.clone());
            running.watched(Show::for_terminal(json), || {
                read::execute(plan, volumes, mode, &progress, &interrupt)
            })
        };
        finish(&report, json, kind.as_str())
    })
}

pub(super) fn finish(report: &Report, json: bool, what: &str) -> Result<()> {
    tracing::info!(
        members = report.members,
        restored = report.restored,
        verified = report.verified,
        kept = report.kept,
        failed = report.failed,
        data_bytes = report.data_bytes,
        tape_bytes = report.tape_bytes,
        secs = report.elapsed_secs,
        "{what} summary"
    );
    // Every member that did not come out well, by path: in the log, and on stderr (also
    // with --json, whose report has them too).
    for o in &report.outcomes {
        let word = match o.status {
            Status::Kept => "kept",
            Status::Refused => "REFUSED",
            Status::Damaged => "DAMAGED",
            Status::Missing => "MISSING",
            Status::Failed => "FAILED",
            Status::Restored | Status::Verified => continue,
        };
        tracing::info!("{word} {}: {}", o.path, o.detail);
        errln!("{word:8} {}: {}", o.path, o.detail);
    }
    for w in &report.warnings {
        tracing::info!("warning: {w}");
        errln!("warning: {w}");
    }
    if json {
        print_json(report)?;
    } else {
        let (count, verb) = if what == "verify" {
            (report.verified, "verified")
        } else {
            (report.restored, "restored")
        };
        errln!(
            "{} {count} of {} members {verb}, {} kept, {} not; {} of data in {:.1} s ({}), \
             {} read from {}",
            if report.interrupted {
                "Interrupted:"
            } else {
                "Done:"
            },
            report.members,
            report.kept,
            report.failed,
            format_size(report.data_bytes),
            report.elapsed_secs,
            format_rate(report.rate),
            format_size(report.tape_bytes),
            if report.volumes.is_empty() {
                "no volume".to_string()
            } else {
                report.volumes.join(", ")
            }
        );
    }
    if report.interrupted {
        return Err(Interrupted.into());
    }
    if report.failed > 0 {
        return Err(anyhow::anyhow!(
            "{} of {} members were not {}",
            report.failed,
            report.members,
            if what == "verify" {
                "verified: damaged or missing"
            } else {
                "restored"
            }
        ));
    }
    Ok(())
}

/// The plan as `--dry-run --json` prints it: per volume, per run, the members.
#[derive(Serialize)]
struct PlanView<'a> {
    members: usize,
    data_bytes: u64,
    tape_bytes: u64,
    locates: usize,
    est_secs: f64,
    model: &'a str,
    volumes: Vec<VisitView<'a>>,
    unreadable: &'a [plan::Unreadable],
}

#[derive(Serialize)]
struct VisitView<'a> {
    volume: &'a str,
    location: Option<&'a str>,
    block_size: u64,
    bytes: u64,
    est_secs: f64,
    runs: Vec<RunView<'a>>,
}

#[derive(Serialize)]
struct RunView<'a> {
    tape_file: Option<i64>,
    first_block: u64,
    blocks: u64,
    members: Vec<&'a str>,
}

fn format_secs(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=99 => format!("{s} s"),
        100..=5999 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

pub(super) fn show_plan(plan: &Plan, json: bool) -> Result<()> {
    let view = PlanView {
        members: plan.members.len(),
        data_bytes: plan.data_bytes,
        tape_bytes: plan.tape_bytes,
        locates: plan.locates,
        est_secs: plan.est_secs,
        model: &plan.model,
        volumes: plan
            .visits
            .iter()
            .map(|v| VisitView {
                volume: &v.volume,
                location: v.location.as_deref(),
                block_size: v.block_size,
                bytes: v.bytes,
                est_secs: v.est_secs,
                runs: v
                    .runs
                    .iter()
                    .map(|r| RunView {
                        tape_file: r.tape_file,
                        first_block: r.first_block,
                        blocks: r.blocks,
                        members: r
                            .reads
                            .iter()
                            .map(|p| plan.members[p.member].path.as_str())
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        unreadable: &plan.unreadable,
    };
    if json {
        return print_json(&view);
    }
    outln!(
        "{} members, {} of data: {} to read from {} volume{} with {} LOCATE{}, about {} on an {}",
        view.members,
        format_size(plan.data_bytes),
        format_size(plan.tape_bytes),
        plan.visits.len(),
        if plan.visits.len() == 1 { "" } else { "s" },
        plan.locates,
        if plan.locates == 1 { "" } else { "s" },
        format_secs(plan.est_secs),
        plan.model
    );
    for (i, v) in view.volumes.iter().enumerate() {
        outln!(
            "{:>3}. {} ({}): {} in {} run{}, about {}",
            i + 1,
            v.volume,
            v.location.unwrap_or("location unknown"),
            format_size(v.bytes),
            v.runs.len(),
            if v.runs.len() == 1 { "" } else { "s" },
            format_secs(v.est_secs)
        );
        for r in &v.runs {
            outln!(
                "       tape file {}: LOCATE block {}, read {} blocks: {} member{} ({}{})",
                r.tape_file.map_or("?".to_string(), |f| f.to_string()),
                r.first_block,
                r.blocks,
                r.members.len(),
                if r.members.len() == 1 { "" } else { "s" },
                r.members.first().copied().unwrap_or(""),
                if r.members.len() > 1 { ", ..." } else { "" }
            );
        }
    }
    for u in &plan.unreadable {
        outln!("not readable: {}: {}", u.path, u.reason);
    }
    Ok(())
}

pub fn run(args: RestoreArgs, config: &Config) -> Result<()> {
    if args.reading.detach && !args.dry_run {
        return super::detach::start(config, JobKind::Restore, args.json);
    }
    let at = args
        .date
        .as_deref()
        .map(plan::parse_when)
        .transpose()
        .map_err(bad_input)?;
    let selection = match (&args.file, &args.tape, &args.job, &args.backup) {
        (Some(path), _, _, _) => Selection::File {
            path: path.clone(),
            at,
            backup: args.backup.clone(),
        },
        (None, Some(label), _, _) => Selection::Tape(label.clone()),
        (None, None, Some(job), _) => Selection::Job {
            name: job.clone(),
            at: at.ok_or_else(|| bad_input("--job needs --date"))?,
        },
        (None, None, None, Some(id)) => Selection::Backup(id.clone()),
        (None, None, None, None) => {
            if at.is_some() {
                return Err(bad_input("--date goes with --file or --job"));
            }
            Selection::Patterns
        }
    };
    let patterns: Vec<PathPattern> = args.patterns.iter().map(|p| PathPattern::new(p)).collect();
    let cat = super::catalog::open_for_reading(config)?;
    let members = plan::select(&cat, &selection, &patterns).map_err(plan_error)?;
    if members.is_empty() {
        return Err(bad_input("nothing matches the selection"));
    }
    if let Some(to) = args.to.as_deref().filter(|to| to.exists() && !to.is_dir()) {
        return Err(bad_input(format!(
            "--to {} is not a directory: restore into a directory (one that does not exist \
             yet is created)",
            to.display()
        )));
    }
    let (mut volumes, plan, interrupt) = plan_reads(&args.reading, config, &cat, members, false)?;
    if args.dry_run {
        return show_plan(&plan, args.json);
    }
    let Some(to) = &args.to else {
        return Err(bad_input("--to DIR is required: where to restore"));
    };
    drop(cat);
    let mut extractor = Extractor::new(to, args.overwrite)
        .map_err(|e| bad_input(format!("--to {}: {e}", to.display())))?;
    let what = format!("restore into {}", to.display());
    run_reading(
        config,
        (JobKind::Restore, &what),
        interrupt,
        args.json,
        (&plan, &mut volumes),
        Mode::Restore(&mut extractor),
    )
}
