//! `tapedeck find|list|inventory|status`: answers from the catalogue, no tape read.

use super::bad_input;
use super::catalog::open_for_reading;
use super::output::{or_dash, print_json, BufferedStdout, Table};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tapedeck::catalog::{
    closest, format_time, BackupStatus, Catalog, FileKind, FileVersion, Volume,
};
use tapedeck::config::Config;
use tapedeck::drives::{self, DriveKind};
use tapedeck::tape::{Changer, Element};
use tapedeck::units::format_size;

#[derive(Debug, Args)]
#[command(
    after_help = "A PATTERN is a case-insensitive substring of a file name, or a glob \
over the whole name when it holds * or ?: `find holiday`, `find '*.mkv'`."
)]
pub struct FindArgs {
    /// Part of a file name (or a glob)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pattern: Option<String>,
    /// An exact absolute path: every version of it, with the deletions incremental backups
    /// recorded
    #[arg(long, value_name = "PATH")]
    file: Option<String>,
    /// Show at most this many versions
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Files on this volume, in tape order
    #[arg(long, conflicts_with = "pool", required_unless_present = "pool")]
    tape: Option<String>,
    /// Volumes of this pool
    #[arg(long)]
    pool: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this job's backups
    #[arg(long)]
    job: Option<String>,
    /// How many recent backups to show
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

/// `TD0001L9 file 1 block 2` for each part.
fn where_on_tape(v: &FileVersion) -> String {
    if v.segments.is_empty() {
        return "-".into();
    }
    v.segments
        .iter()
        .map(|s| {
            let mut t = s.volume.clone();
            if let Some(f) = s.tape_file {
                t.push_str(&format!(" file {f}"));
            }
            if let Some(b) = s.block {
                t.push_str(&format!(" block {b}"));
            }
            t
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn versions_table(versions: &[FileVersion]) -> Table {
    let mut t = Table::new(&["BACKUP", "KIND", "SIZE", "MODIFIED", "WHERE", "PATH"]);
    for v in versions {
        // A version that records a deletion has no size, time or place.
        let size = match v.kind {
            FileKind::Deleted => "deleted".to_string(),
            _ => format_size(v.size.max(0) as u64),
        };
        t.row(vec![
            format!(
                "{} {}",
                format_time(v.backup.started_at),
                v.backup.job.clone().unwrap_or_default()
            )
            .trim_end()
            .to_string(),
            v.backup.kind.clone(),
            size,
            or_dash(
                v.mtime_ns
                    .map(|ns| format_time(ns.div_euclid(1_000_000_000))),
            ),
            where_on_tape(v),
            v.path.clone(),
        ]);
    }
    t
}

pub fn find(args: FindArgs, config: &Config) -> Result<()> {
    let cat = open_for_reading(config)?;
    let (versions, more) = match (&args.file, &args.pattern) {
        (Some(path), _) => {
            if !path.starts_with('/') {
                return Err(bad_input(format!(
                    "`{path}` is not an absolute path; give the full path, e.g. /home/me/file"
                )));
            }
            (cat.find_path(path)?, false)
        }
        (None, Some(pattern)) => {
            if pattern.is_empty() {
                return Err(bad_input("the pattern is empty"));
            }
            cat.find_pattern(pattern, args.limit)?
        }
        (None, None) => return Err(bad_input("give a PATTERN or --file PATH")),
    };
    if args.json {
        return print_json(&versions);
    }
    if versions.is_empty() {
        outln!("No backed-up file matches.");
        return Ok(());
    }
    versions_table(&versions).print();
    if more {
        errln!(
            "(showing the first {}; narrow the pattern or raise --limit)",
            args.limit
        );
    }
    Ok(())
}

pub fn list(args: ListArgs, config: &Config) -> Result<()> {
    let cat = open_for_reading(config)?;
    if let Some(pool) = &args.pool {
        let volumes = cat.volumes(Some(pool))?;
        if args.json {
            return print_json(&volumes);
        }
        let mut t = Table::new(&["VOLUME", "STATUS", "USED", "CAPACITY", "FILES", "EXPIRES"]);
        for v in &volumes {
            t.row(vec![
                v.label.clone(),
                v.status.to_string(),
                format_size(v.used as u64),
                or_dash(v.capacity.map(|c| format_size(c as u64))),
                v.tape_files.to_string(),
                or_dash(v.expires_at.map(format_time)),
            ]);
        }
        t.print();
        return Ok(());
    }
    let label = cat.volume(&args.tape.unwrap_or_default())?.label;
    // Millions of lines may follow: written through one buffer, a failed write ends the
    // command as any output to stdout does (a closed pipe quietly).
    let mut out = BufferedStdout::new();
    if args.json {
        // A stream of JSON: an array written element by element.
        out.put(format_args!("["));
        let mut first = true;
        cat.files_on_volume(&label, |v| {
            let sep = if first { "\n" } else { ",\n" };
            first = false;
            let text = serde_json::to_string(&v)
                .map_err(|e| tapedeck::catalog::CatalogError::Invalid(e.to_string()))?;
            out.put(format_args!("{sep}{text}"));
            Ok(())
        })?;
        out.put(format_args!("\n]\n"));
    } else {
        let mut count = 0u64;
        let mut bytes = 0i64;
        // Fixed widths, as the rows stream: a tape file number, a block address, a size.
        out.put(format_args!(
            "{:>9}  {:>12}  {:>10}  PATH\n",
            "TAPE FILE", "BLOCK", "SIZE"
        ));
        cat.files_on_volume(&label, |v| {
            let seg = v.segments.iter().find(|s| s.volume == label);
            count += 1;
            bytes += v.size;
            out.put(format_args!(
                "{:>9}  {:>12}  {:>10}  {}\n",
                or_dash(seg.and_then(|s| s.tape_file)),
                or_dash(seg.and_then(|s| s.block)),
                format_size(v.size.max(0) as u64),
                v.path
            ));
            Ok(())
        })?;
        out.put(format_args!(
            "{count} files, {} on {label}\n",
            format_size(bytes.max(0) as u64)
        ));
    }
    out.finish();
    Ok(())
}

/// One row of the inventory.
#[derive(Debug, Serialize)]
struct InventoryRow {
    element: String,
    barcode: Option<String>,
    volume: Option<Volume>,
}

#[derive(Debug, Serialize)]
struct InventoryReport {
    drives: Vec<DriveRow>,
    elements: Vec<InventoryRow>,
}

#[derive(Debug, Serialize)]
struct DriveRow {
    name: String,
    #[serde(flatten)]
    kind: DriveKind,
}

pub fn inventory(args: InventoryArgs, config: &Config) -> Result<()> {
    // What the library holds is worth seeing even when the catalogue was lost.
    let cat = super::catalog::open_as_is(config)?;
    let mut elements = Vec::new();
    if config.vlib_enabled() {
        let lib = drives::virtual_library(config)?;
        let file = lib.read()?;
        let inv = lib.changer().inventory()?;
        for e in inv.elements() {
            let name = match e.element {
                Element::Slot(n) => format!("slot {n}"),
                Element::ImportExport(n) => format!("ie{n}"),
                Element::Drive(_) => file.describe(e.element),
            };
            let volume = match &e.barcode {
                Some(b) => cat.find_volume(b)?,
                None => None,
            };
            elements.push(InventoryRow {
                element: name,
                barcode: e.barcode.clone(),
                volume,
            });
        }
    }
    let drives: Vec<DriveRow> = drives::all(config)?
        .into_iter()
        .map(|d| DriveRow {
            name: d.name,
            kind: d.kind,
        })
        .collect();
    // Volumes the catalogue knows that no element holds (offsite, on a shelf).
    let placed: Vec<String> = elements.iter().filter_map(|e| e.barcode.clone()).collect();
    for v in cat.volumes(None)? {
        let here = placed
            .iter()
            .any(|b| Some(b) == v.barcode.as_ref() || *b == v.label);
        if !here {
            elements.push(InventoryRow {
                element: v
                    .location
                    .clone()
                    .unwrap_or_else(|| "outside the library".into()),
                barcode: v.barcode.clone(),
                volume: Some(v),
            });
        }
    }
    if args.json {
        return print_json(&InventoryReport { drives, elements });
    }
    let mut t = Table::new(&["DRIVE", "KIND"]);
    for d in &drives {
        let kind = match &d.kind {
            DriveKind::St { device, .. } => format!("st {}", device.display()),
            DriveKind::Virtual { model, .. } => format!("virtual {model}"),
        };
        t.row(vec![d.name.clone(), kind]);
    }
    t.print();
    outln!();
    let mut t = Table::new(&[
        "ELEMENT", "BARCODE", "VOLUME", "POOL", "STATUS", "USED", "CAPACITY",
    ]);
    for e in &elements {
        let v = e.volume.as_ref();
        t.row(vec![
            e.element.clone(),
            or_dash(e.barcode.as_ref()),
            or_dash(v.map(|v| v.label.clone())),
            or_dash(v.map(|v| v.pool.clone().unwrap_or_else(|| "(scratch)".into()))),
            match (v, &e.barcode) {
                (Some(v), _) => v.status.to_string(),
                (None, Some(_)) => "not in catalogue".into(),
                (None, None) => "-".into(),
            },
            or_dash(v.map(|v| format_size(v.used as u64))),
            or_dash(v.and_then(|v| v.capacity).map(|c| format_size(c as u64))),
        ]);
    }
    t.print();
    Ok(())
}

fn check_job(cat: &Catalog, job: &str) -> Result<()> {
    if cat.job_exists(job)? {
        return Ok(());
    }
    let known = cat.job_names()?;
    let hint = match closest(job, known.iter().map(String::as_str)) {
        Some(s) => format!("; did you mean `{s}`?"),
        None if known.is_empty() => "; no backups have run yet".into(),
        None => format!("; known jobs: {}", known.join(", ")),
    };
    Err(bad_input(format!("no job `{job}`{hint}")))
}

pub fn status(args: StatusArgs, config: &Config) -> Result<()> {
    let cat = open_for_reading(config)?;
    if let Some(job) = &args.job {
        check_job(&cat, job)?;
    }
    let backups = cat.backups(args.job.as_deref(), args.limit)?;
    // A running backup's live numbers come from its job, the one of the same kind on the
    // same drive.
    let live = super::jobs::live_states(config);
    let job_of = |b: &tapedeck::catalog::BackupSummary| {
        (b.status == BackupStatus::Running)
            .then(|| {
                live.iter().find(|s| {
                    s.kind == tapedeck::job::JobKind::Backup
                        && s.drives.first().map(|d| Some(&d.drive)) == Some(b.drive.as_ref())
                })
            })
            .flatten()
    };
    if args.json {
        let mut rows = Vec::new();
        for b in &backups {
            let mut row = serde_json::to_value(b)?;
            if let (Some(s), Some(obj)) = (job_of(b), row.as_object_mut()) {
                obj.insert("live".into(), serde_json::to_value(s)?);
            }
            rows.push(row);
        }
        return print_json(&rows);
    }
    if backups.is_empty() {
        outln!("No backups yet.");
        return Ok(());
    }
    let mut t = Table::new(&[
        "DRIVE", "STATUS", "JOB", "KIND", "STARTED", "FINISHED", "FILES", "SIZE", "VOLUMES",
    ]);
    for b in &backups {
        let live = job_of(b);
        let status = match (b.status, live) {
            (BackupStatus::Running, Some(s)) => format!("RUNNING ({}, {})", s.phase, s.id),
            (BackupStatus::Running, None) => "RUNNING".to_string(),
            (s, _) => s.to_string(),
        };
        let (files, size) = match live {
            Some(s) => (
                s.progress.files_done.to_string(),
                super::jobs::progress(s).unwrap_or_else(|| "-".into()),
            ),
            None => (b.files.to_string(), format_size(b.bytes.max(0) as u64)),
        };
        t.row(vec![
            b.drive.clone().unwrap_or_else(|| "-".into()),
            status,
            b.job.clone().unwrap_or_else(|| "-".into()),
            b.kind.clone(),
            format_time(b.started_at),
            or_dash(b.finished_at.map(format_time)),
            files,
            size,
            if b.volumes.is_empty() {
                "-".into()
            } else {
                b.volumes.join(",")
            },
        ]);
    }
    t.print();
    for s in &live {
        let rate = tapedeck::units::format_rate(s.progress.rate);
        let eta = s
            .progress
            .eta_secs
            .map(super::watch::format_eta)
            .unwrap_or_else(|| "-".into());
        outln!(
            "{} {} {}: {}, {rate}, ETA {eta}{}",
            s.id,
            s.kind,
            s.phase,
            super::jobs::progress(s).unwrap_or_else(|| "starting".into()),
            super::jobs::waiting(s)
                .map(|w| format!(
                    "; WAITING: {w}, answer with `tapedeck answer {} loaded`",
                    s.id
                ))
                .unwrap_or_default()
        );
    }
    for b in backups.iter().filter(|b| b.error.is_some()) {
        outln!(
            "{} {}: {}",
            format_time(b.started_at),
            b.job.clone().unwrap_or_default(),
            b.error.clone().unwrap_or_default()
        );
    }
    Ok(())
}
