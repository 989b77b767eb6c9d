//! `tapedeck migrate-pytp`: import pytp's drives, libraries and backup history, and report
//! what was imported and what could not be.

use super::bad_input;
use super::output::{or_dash, print_json, Table};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tapedeck::catalog::format_time;
use tapedeck::config::Config;
use tapedeck::migrate::pytp::{self, Options, Report, Severity};

#[derive(Debug, Args)]
#[command(after_help = "\
Every snapshot entry becomes a catalogue backup of origin pytp, on the volume named by the \
tape label pytp recorded (or the placeholder volume pytp-unknown), at the tape file pytp \
recorded. Whatever pytp did not record (file lists of full backups since late 2025, unknown \
tape positions, missing labels or times) is reported, as is every entry that could not be \
imported (a damaged file is reported with its line; the entries before the damage and the \
other files are imported). Running it again imports only what is new.

Here --config (or --pytp-config) names pytp's config.json; tapedeck's own configuration comes \
from TAPEDECK_CONFIG or the usual places.

Exit codes: 0 everything imported (possibly incomplete, see the report), 1 catalogue or I/O \
failure, 2 something could not be imported or bad arguments.")]
pub struct MigrateArgs {
    /// pytp's config.json (or the older tapes.json): its drives and libraries become a
    /// tapedeck configuration snippet, printed or written with --write-config
    #[arg(long = "pytp-config", value_name = "CONFIG_JSON")]
    pub(super) pytp_config: Option<PathBuf>,
    /// pytp's snapshot directory (its *_backup.json files), or one snapshot file [default:
    /// snapshot_dir from pytp's config.json]
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,
    /// Write the configuration snippet to FILE instead of printing it; an existing FILE is
    /// never overwritten
    #[arg(long, value_name = "FILE")]
    write_config: Option<PathBuf>,
    /// Time zone pytp's timestamps were written in (they carry none), e.g. Europe/Berlin
    /// [default: this system's]
    #[arg(long, value_name = "TZ")]
    timezone: Option<String>,
    /// Say what would be imported; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: MigrateArgs, config: &Config) -> Result<()> {
    let opts = Options {
        config: args.pytp_config,
        snapshots: args.snapshots,
        write_config: args.write_config,
        dry_run: args.dry_run,
        timezone: args.timezone,
    };
    let report = pytp::migrate(&opts, &config.catalog_path(), &config.file).map_err(|e| {
        if e.is_bad_input() {
            bad_input(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    })?;
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    if report.lost_anything() {
        let lost = report
            .issues
            .iter()
            .filter(|i| i.severity == Severity::NotImported)
            .count();
        return Err(bad_input(format!(
            "not all of pytp's history and configuration could be imported ({}): see {}",
            plural(lost, "problem", "problems"),
            if args.json {
                "the issues in the report"
            } else {
                "the report above"
            }
        )));
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_report(r: &Report) {
    if r.dry_run {
        outln!("Dry run: nothing was changed.");
    }
    if let Some(c) = &r.config {
        let where_ = match (&c.written_to, r.dry_run) {
            (Some(f), false) => format!("written to {f}"),
            (Some(f), true) => format!("would be written to {f}"),
            (None, _) => "printed below".to_string(),
        };
        outln!(
            "pytp configuration {}: {} ({}), {} ({}); tapedeck configuration {where_}",
            c.path,
            plural(c.drives.len(), "drive", "drives"),
            c.drives.join(", "),
            plural(c.libraries.len(), "library", "libraries"),
            c.libraries.join(", "),
        );
    }
    if let Some(s) = &r.snapshots {
        outln!(
            "pytp history {s}: {}, {}",
            plural(r.summary.snapshot_files, "snapshot file", "snapshot files"),
            plural(r.summary.entries, "entry", "entries")
        );
        outln!("Catalogue {}", r.catalog);
    }
    if !r.files.is_empty() {
        outln!();
        let mut t = Table::new(&[
            "SNAPSHOT FILE",
            "JOB",
            "SOURCE",
            "ENTRIES",
            "IMPORTED",
            "ALREADY",
            "NOT IMPORTED",
            "DAMAGED AT",
        ]);
        for f in &r.files {
            t.row(vec![
                f.name.clone(),
                f.job.clone(),
                or_dash(f.source_dir.as_ref()),
                f.entries.to_string(),
                f.imported.to_string(),
                f.already_imported.to_string(),
                f.not_imported.to_string(),
                or_dash(f.damaged_at.as_ref()),
            ]);
        }
        t.print();
    }
    if !r.backups.is_empty() {
        outln!();
        let mut t = Table::new(&[
            "ENTRY",
            "KIND",
            "STARTED",
            "LABEL",
            "VOLUME",
            "TAPE FILE",
            "FILES",
            "OUTCOME",
        ]);
        for b in &r.backups {
            t.row(vec![
                format!("{}#{}", b.file, b.entry),
                or_dash(b.kind.as_ref()),
                or_dash(b.started_at.map(format_time)),
                or_dash(b.label.as_ref()),
                or_dash(b.volume.as_ref()),
                or_dash(b.tape_file),
                b.files.to_string(),
                b.outcome.as_str().to_string(),
            ]);
        }
        t.print();
    }
    if !r.volumes.is_empty() {
        outln!();
        let mut t = Table::new(&["VOLUME", "PYTP LABEL", "STATE", "BACKUPS"]);
        for v in &r.volumes {
            t.row(vec![
                v.label.clone(),
                or_dash(v.pytp_label.as_ref()),
                match (v.state.as_str(), v.placeholder) {
                    ("created", true) => "created (placeholder, retired)".to_string(),
                    ("created", false) => "created (full, no pool)".to_string(),
                    (s, _) => s.to_string(),
                },
                v.backups.to_string(),
            ]);
        }
        t.print();
    }
    for (severity, title) in [
        (Severity::NotImported, "Not imported"),
        (Severity::Incomplete, "Imported incompletely"),
        (Severity::Note, "Notes"),
    ] {
        let issues: Vec<_> = r.issues.iter().filter(|i| i.severity == severity).collect();
        if issues.is_empty() {
            continue;
        }
        outln!();
        outln!("{title} ({}):", issues.len());
        for i in issues {
            outln!("  {i}");
        }
    }
    let s = &r.summary;
    if r.snapshots.is_some() {
        outln!();
        outln!(
            "{} {} ({}) from {}; {} already in the catalogue; {} not imported.",
            if r.dry_run {
                "Would import"
            } else {
                "Imported"
            },
            plural(s.imported, "backup", "backups"),
            plural(s.file_records as usize, "file record", "file records"),
            plural(s.snapshot_files, "snapshot file", "snapshot files"),
            s.already_imported,
            plural(s.not_imported, "entry", "entries"),
        );
    }
    if let Some(c) = &r.config {
        if c.written_to.is_none() {
            outln!();
            out!("{}", c.snippet);
        }
    }
}
