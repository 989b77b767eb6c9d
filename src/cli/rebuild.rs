//! `tapedeck catalog rebuild --tape LABEL`: a volume's catalogue entries recreated from
//! the tape in the drive, with progress on a terminal and a report (`--json`).

use super::output::print_json;
use super::{bad_input, Interrupted};
use anyhow::{Context, Result};
use clap::Args;
use tapedeck::config::Config;
use tapedeck::drives::{self, DriveSpec};
use tapedeck::job::{JobKind, Phase};
use tapedeck::rebuild::{self, Options, Outcome, Progress, RebuildError, RebuildReport};
use tapedeck::tape::Changer;
use tapedeck::units::format_size;

const AFTER_HELP: &str = "\
The volume must be loaded in the drive. Its label records the volume; every index tape file
on it records its backup (all of it, on every volume it spans: a spanned backup's index is on
its last volume). Backups the catalogue already has are skipped, unless their member records
are damaged: those are recorded again (a backup recorded with --scan, by --scan). A backup
recorded from an index replaces one recorded earlier with --scan from the same tape files.

--scan also reads the data tape files no index on the volume describes (the index is damaged,
or on another volume) and records their members from the tar headers, with positions and
BLAKE3 hashes of the data; such a backup has origin `rebuild-scan`.

A volume in a pool the catalogue does not have is refused: create the pool first.

Ctrl-C stops after the record being read; the backups recorded whole stay, the one being
recorded is removed again (exit 130).

Exit codes: 0 recorded (notes may say what was left alone), 1 a tape file could not be read
or recorded, 2 wrong or missing tape, unknown pool, 130 interrupted.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct RebuildArgs {
    /// The volume to rebuild (label or barcode); it must be loaded in the drive
    #[arg(long)]
    tape: String,
    /// Also record data tape files that no index on the volume describes, from their tar
    /// headers (reads and hashes their data)
    #[arg(long)]
    scan: bool,
    /// The drive holding the volume [default: $TAPEDECK_DRIVE, default_drive, else the
    /// first drive]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// Where the virtual library keeps a cartridge, as a hint for loading it.
fn where_is(spec: &DriveSpec, barcode: &str) -> Option<String> {
    let (lib, _) = super::changer::changer_of(spec).ok()?;
    let inventory = lib.changer().inventory().ok()?;
    let element = inventory.find_barcode(barcode)?;
    match element.element {
        tapedeck::tape::Element::Slot(n) => Some(format!(
            "; it is in slot {n}: `tapedeck load {n} --drive {}`",
            spec.name
        )),
        other => Some(format!("; it is in {other}")),
    }
}

pub fn run(args: RebuildArgs, config: &Config) -> Result<()> {
    let spec = drives::resolve(config, args.drive.as_deref())?;
    let cartridge = super::catalog::virtual_cartridge(&spec.kind, &spec.name)?;
    let mut cat = super::catalog::open(config)?;
    let mut drive = spec.open()?;
    let interrupt =
        tapedeck::interrupt::Interrupt::from_signals().context("installing the Ctrl-C handler")?;
    let opts = Options {
        scan: args.scan,
        capacity: cartridge.as_ref().map(|c| c.2 as i64),
        location: Some(format!("drive {}", spec.name)),
        interrupt: interrupt.clone(),
    };
    let what = format!("rebuild of volume {} in {}", args.tape, spec.name);
    super::jobrun::run_job(config, JobKind::Rebuild, &what, interrupt, |running| {
        running.job.set_phase(Phase::Reading);
        rebuild_in_job(&args, &spec, &mut cat, drive.as_mut(), &opts, running)
    })
}

/// The rebuild itself, as its job runs it.
fn rebuild_in_job(
    args: &RebuildArgs,
    spec: &DriveSpec,
    cat: &mut tapedeck::catalog::Catalog,
    drive: &mut dyn tapedeck::tape::TapeDrive,
    opts: &Options,
    running: &super::jobrun::Running,
) -> Result<()> {
    let bar = super::output::spinner(args.json);
    let mut show = |p: Progress| {
        let message = match p {
            Progress::TapeFile { tape_file } => format!("{}: tape file {tape_file}", args.tape),
            Progress::Records { tape_file, records } => {
                format!(
                    "{}: tape file {tape_file}: {records} index records",
                    args.tape
                )
            }
            Progress::Scanned { tape_file, bytes } => format!(
                "{}: tape file {tape_file}: {} scanned",
                args.tape,
                format_size(bytes)
            ),
        };
        running
            .job
            .update(|s| s.progress.current_file = message.clone());
        if let Some(bar) = &bar {
            bar.set_message(message);
        }
    };
    let result = rebuild::rebuild_volume(drive, cat, &args.tape, opts, &mut show);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e @ (RebuildError::NoTape { .. } | RebuildError::WrongVolume { .. })) => {
            let hint = where_is(spec, &args.tape).unwrap_or_default();
            return Err(bad_input(format!("{e}{hint}")));
        }
        Err(RebuildError::Interrupted) => return Err(Interrupted.into()),
        Err(e) if e.is_bad_input() => return Err(bad_input(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    if !report.problems.is_empty() {
        anyhow::bail!(
            "volume {}: {} tape files could not be recorded",
            report.volume,
            report.problems.len()
        );
    }
    Ok(())
}

fn source(s: &str) -> &'static str {
    match s {
        "scan" => "its tar headers",
        _ => "its on-tape index",
    }
}

fn print_report(r: &RebuildReport) {
    outln!(
        "Volume {} ({}, {} blocks): {}, now {}.",
        r.volume,
        r.pool
            .as_ref()
            .map(|p| format!("pool {p}"))
            .unwrap_or_else(|| "scratch".into()),
        format_size(u64::from(r.block_size)),
        if r.known_before {
            "known to the catalogue"
        } else {
            "new to the catalogue"
        },
        r.status
    );
    for t in &r.tape_files {
        outln!(
            "  tape file {:<4} {:<10} at block {:<10} {:>8} blocks  {}",
            t.tape_file,
            format!("{:?}", t.kind).to_lowercase(),
            t.first_block,
            t.blocks.map_or("?".into(), |b| b.to_string()),
            t.backup.as_deref().unwrap_or("-")
        );
    }
    for b in &r.backups {
        let what = match b.outcome {
            Outcome::Recorded => format!("recorded from {}", source(b.source)),
            Outcome::Replaced => format!(
                "recorded from {}, replacing {} (scanned before)",
                source(b.source),
                b.replaced.join(", ")
            ),
            Outcome::Skipped => format!(
                "skipped: already in the catalogue ({})",
                b.origin.as_deref().unwrap_or("?")
            ),
        };
        let counts = if b.outcome == Outcome::Skipped {
            String::new()
        } else {
            format!(", {} files, {}", b.files, format_size(b.bytes))
        };
        outln!(
            "Backup {} {what}: {}{counts}, on {}.",
            b.uuid,
            b.status,
            b.volumes.join(", ")
        );
    }
    for n in &r.notes {
        outln!("note: {n}");
    }
    for p in &r.problems {
        outln!("PROBLEM: {p}");
    }
}
