//! `tapedeck catalog import-tape`: a tape another tool wrote (pytp's plain tar tape files)
//! catalogued from its tar headers, with progress on a terminal and a report (`--json`).

use super::output::print_json;
use super::{bad_input, Interrupted};
use anyhow::{Context, Result};
use clap::Args;
use tapedeck::config::Config;
use tapedeck::drives;
use tapedeck::rebuild::import::{self, ImportOptions, ImportReport, TapeFileOutcome};
use tapedeck::rebuild::Progress;
use tapedeck::units::format_size;

const AFTER_HELP: &str = "\
The tape in the drive is read from its beginning to end of data. Every tape file holding a
tar archive (GNU, ustar or pax) is recorded as a backup of its own (origin `import`): each
member with its place on tape and the BLAKE3 of its data, so that find, restore and verify
work on it. Filemarks at the beginning of the tape and empty tape files are passed over; a
tape file that cannot be read or is not tar is reported, and the others are recorded.

The volume is named by --label, else by the cartridge's barcode. It is recorded read-only
and full: tapedeck never writes to it. Its identity is the BLAKE3 of its first block, so
importing the same tape again records nothing twice. Where migrate-pytp recorded a backup
of the same tape file from pytp's snapshots (same volume name, same tape position), the two
become one backup, in either order.

A tape with a tapedeck label is refused: `catalog rebuild` records those.

Exit codes: 0 recorded, 1 a tape file could not be read or recorded, 2 no tape, a blank or
tapedeck tape, a name clash, unknown pool, 130 interrupted.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ImportTapeArgs {
    /// The drive holding the tape [default: $TAPEDECK_DRIVE, default_drive, else the first
    /// drive]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
    /// Put the volume in this pool (it must exist) [default: the scratch set]
    #[arg(long)]
    pool: Option<String>,
    /// The volume's name in the catalogue, e.g. pytp's label for the tape [default: the
    /// cartridge's barcode]
    #[arg(long, value_name = "NAME")]
    label: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: ImportTapeArgs, config: &Config) -> Result<()> {
    let spec = drives::resolve(config, args.drive.as_deref())?;
    let cartridge = super::catalog::virtual_cartridge(&spec.kind, &spec.name)?;
    let mut cat = super::catalog::open(config)?;
    if let Some(pool) = &args.pool {
        cat.pool(pool)?;
    }
    let mut drive = spec.open()?;
    let opts = ImportOptions {
        label: args.label.clone(),
        barcode: cartridge.as_ref().map(|c| c.0.clone()),
        pool: args.pool.clone(),
        media: cartridge.as_ref().map(|c| c.1.clone()),
        capacity: cartridge.as_ref().map(|c| c.2 as i64),
        location: Some(format!("drive {}", spec.name)),
        interrupt: tapedeck::interrupt::Interrupt::from_signals()
            .context("installing the Ctrl-C handler")?,
    };
    let bar = super::output::spinner(args.json);
    let mut show = |p: Progress| {
        let Some(bar) = &bar else { return };
        bar.set_message(match p {
            Progress::TapeFile { tape_file } => format!("tape file {tape_file}"),
            Progress::Records { tape_file, .. } => format!("tape file {tape_file}"),
            Progress::Scanned { tape_file, bytes } => {
                format!("tape file {tape_file}: {} read", format_size(bytes))
            }
        });
    };
    let result = import::import_tape(drive.as_mut(), &mut cat, &opts, &mut show);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) if e.is_interrupted() => return Err(Interrupted.into()),
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
            "volume {}: {} tape files could not be recorded (see PROBLEM above)",
            report.volume,
            report.problems.len()
        );
    }
    Ok(())
}

fn print_report(r: &ImportReport) {
    outln!(
        "Volume {} ({}, {} blocks, {}): {}, now {}, read-only.",
        r.volume,
        r.pool
            .as_ref()
            .map(|p| format!("pool {p}"))
            .unwrap_or_else(|| "scratch".into()),
        format_size(u64::from(r.block_size)),
        r.uuid,
        if r.known_before {
            "known to the catalogue"
        } else {
            "new to the catalogue"
        },
        r.status
    );
    for t in &r.tape_files {
        let what = match t.outcome {
            TapeFileOutcome::Recorded => {
                format!("recorded: {} files, {}", t.files, format_size(t.bytes))
            }
            TapeFileOutcome::Merged => format!(
                "recorded as pytp's backup: {} files, {}",
                t.files,
                format_size(t.bytes)
            ),
            TapeFileOutcome::Skipped => "skipped: in the catalogue already".to_string(),
            TapeFileOutcome::Empty => "empty".to_string(),
            TapeFileOutcome::Damaged => "DAMAGED: nothing recorded".to_string(),
        };
        let backup = t
            .backup
            .as_ref()
            .map(|b| match t.status {
                Some(s) => format!("  backup {b} ({s})"),
                None => format!("  backup {b}"),
            })
            .unwrap_or_default();
        outln!(
            "  tape file {:<4} at block {:<10} {what}{backup}",
            t.tape_file,
            t.first_block
        );
    }
    for n in &r.notes {
        outln!("note: {n}");
    }
    for p in &r.problems {
        outln!("PROBLEM: {p}");
    }
}
