//! `tapedeck pool|volume|catalog ...`: pools, volumes and their labels, and the
//! catalogue's own upkeep.

use super::bad_input;
use super::output::{or_dash, print_json, Table};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tapedeck::catalog::{
    format_time, rebuild_hint, Catalog, CatalogError, HeldLabel, Orphan, Overwrite, PoolKind,
    Volume, VolumeStatus,
};
use tapedeck::config::Config;
use tapedeck::drives::{self, DriveKind};
use tapedeck::label::{self, Label, TapeStart, LABEL_FORMAT};
use tapedeck::units::{format_size, parse_size};
use tapedeck::vlib::cartridge::Cartridge;
use tapedeck::vlib::Library;

/// Opens the catalogue for changes.
pub fn open(config: &Config) -> Result<Catalog> {
    let mut cat = Catalog::open(&config.catalog_path())?;
    reap_orphans(&mut cat)?;
    Ok(cat)
}

/// Settles what processes that died left `running`: a backup is marked failed, a backup a
/// rebuild was recording is forgotten (the next rebuild records it whole). Every command
/// that opens the catalogue does this first, so none shows or builds on a dead job.
fn reap_orphans(cat: &mut Catalog) -> Result<()> {
    for orphan in cat.fail_orphaned_backups()? {
        match orphan {
            Orphan::Failed(uuid) => tracing::warn!(
                "backup {uuid} was left running by a process that died: marked failed"
            ),
            Orphan::Forgotten(uuid) => tracing::warn!(
                "backup {uuid} was being recorded by a rebuild that died: forgotten, \
                 run the rebuild again to record it"
            ),
        }
    }
    Ok(())
}

/// Opens the catalogue for questions; a read-only file still answers them. A catalogue
/// that knows nothing while the library holds labelled volumes (emptied, truncated to 0
/// bytes, replaced) is refused with the rebuild commands: its answers would all be
/// "nothing". Backups left `running` by a process that died are marked failed first
/// where the catalogue can be written, so no answer shows a dead backup as running.
pub fn open_for_reading(config: &Config) -> Result<Catalog> {
    let cat = open_as_is(config)?;
    if cat.is_empty()? {
        let volumes: Vec<String> = library_labels(config)?
            .into_iter()
            .filter_map(|h| h.label.map(|(label, _)| label))
            .collect();
        if !volumes.is_empty() {
            return Err(CatalogError::Lost {
                path: cat.path().to_path_buf(),
                volumes,
            }
            .into());
        }
    }
    Ok(cat)
}

/// Opens the catalogue for reading, whatever it holds.
pub fn open_as_is(config: &Config) -> Result<Catalog> {
    let path = config.catalog_path();
    match Catalog::open(&path) {
        Ok(mut c) => {
            // A catalogue that cannot be written (a full disk) still answers.
            if let Err(e) = reap_orphans(&mut c) {
                tracing::debug!("backups left running were not looked at: {e}");
            }
            Ok(c)
        }
        Err(CatalogError::ReadOnly { .. }) => Ok(Catalog::open_read_only(&path)?),
        Err(e) => Err(e.into()),
    }
}

/// What the virtual library's cartridges hold at their start (none without a library).
fn library_labels(config: &Config) -> Result<Vec<HeldLabel>> {
    if !config.vlib_enabled() {
        return Ok(Vec::new());
    }
    let lib = match Library::open(&config.vlib_dir()) {
        Ok(lib) => lib,
        Err(tapedeck::vlib::VlibError::Missing(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(lib
        .labels()?
        .into_iter()
        .map(|c| HeldLabel {
            barcode: c.barcode,
            label: c.label.map(|l| (l.label, l.uuid)),
            only_label: c.only_label,
        })
        .collect())
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create a pool: a named set of volumes whose data is kept for RETENTION days
    Create {
        #[arg(long)]
        name: String,
        /// How long a backup's data is protected from being overwritten: days, or a period
        /// such as 30d, 5w, 6m (31 days each), 10y (366 days each)
        #[arg(long, value_name = "PERIOD", value_parser = tapedeck::units::parse_days)]
        retention: i64,
        #[arg(long, default_value = "daily", value_parser = ["daily", "weekly", "monthly", "archive"])]
        kind: String,
    },
    /// Pools with their volume counts and space
    List {
        #[arg(long)]
        json: bool,
    },
    /// Put a volume into a pool (registering it if the catalogue does not know it yet)
    AddVolume {
        #[arg(long)]
        pool: String,
        /// The volume's label (or barcode)
        #[arg(long)]
        tape: String,
        /// Move it even though it holds unexpired data of another pool
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Volumes: label, pool, status, space, expiry
    List {
        /// Only this pool's volumes (`--pool ""` for the scratch set)
        #[arg(long)]
        pool: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Everything the catalogue knows about one volume
    Show {
        /// The volume's label (or barcode)
        #[arg(long)]
        tape: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the label (tape file 0) on the cartridge in a drive and record the volume;
    /// everything on the tape is lost. Refused while it holds complete backups, unless
    /// --force
    Label(LabelArgs),
    /// Let a volume's data go now: its retention, or the hold on data no retention
    /// applies to, ends, so it may be recycled or overwritten
    Expire {
        /// The volume's label (or barcode)
        #[arg(long)]
        tape: String,
    },
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// The label to write (default: the cartridge's barcode, with a changer)
    #[arg(long)]
    tape: Option<String>,
    /// Pool to put it in (default: the scratch set, which any pool may take from)
    #[arg(long)]
    pool: Option<String>,
    /// The drive holding the cartridge [default: $TAPEDECK_DRIVE, default_drive, else the
    /// first drive]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
    /// Block size for everything written to this volume [default: the drive's, 512 KiB]
    #[arg(long)]
    block_size: Option<String>,
    /// Overwrite unexpired or foreign data
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// SQLite integrity check plus the catalogue's invariants (exit 1 when damaged)
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Copy the catalogue to FILE with SQLite's online backup (consistent while backups run)
    Backup {
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Recreate a volume's catalogue entries from the tape in the drive: its label, its
    /// index tape files, and with --scan its data tape files' tar headers
    Rebuild(super::rebuild::RebuildArgs),
    /// Catalogue a tape another tool wrote (such as pytp's plain tar tape files) from its
    /// tar headers, as a read-only volume
    ImportTape(super::import_tape::ImportTapeArgs),
}

pub fn pool(cmd: PoolCommand, config: &Config) -> Result<()> {
    let mut cat = open(config)?;
    match cmd {
        PoolCommand::Create {
            name,
            retention,
            kind,
        } => {
            let kind: PoolKind = kind.parse().map_err(bad_input)?;
            let p = cat.create_pool(&name, kind, retention)?;
            outln!(
                "Created pool {} ({}, data kept {} days).",
                p.name,
                p.kind,
                p.retention_days
            );
        }
        PoolCommand::List { json } => {
            let pools = cat.pools()?;
            if json {
                return print_json(&pools);
            }
            let mut t = Table::new(&[
                "POOL",
                "KIND",
                "RETENTION",
                "VOLUMES",
                "APPENDABLE",
                "FULL",
                "USED",
                "CAPACITY",
            ]);
            for p in pools {
                t.row(vec![
                    p.pool.name,
                    p.pool.kind.to_string(),
                    format!("{} days", p.pool.retention_days),
                    p.volumes.to_string(),
                    p.appendable.to_string(),
                    p.full.to_string(),
                    format_size(p.used as u64),
                    format_size(p.capacity as u64),
                ]);
            }
            t.print();
        }
        PoolCommand::AddVolume { pool, tape, force } => {
            cat.pool(&pool)?;
            cat.register_volume(&tape, None, None)?;
            let v = cat.assign_pool(&tape, &pool, force)?;
            outln!("Volume {} is in pool {pool} ({}).", v.label, v.status);
        }
    }
    Ok(())
}

fn volume_table(volumes: &[Volume]) -> Table {
    let mut t = Table::new(&[
        "VOLUME", "POOL", "STATUS", "USED", "CAPACITY", "FILES", "EXPIRES", "LOCATION",
    ]);
    for v in volumes {
        t.row(vec![
            v.label.clone(),
            v.pool.clone().unwrap_or_else(|| "(scratch)".into()),
            match v.read_only {
                Some(_) => format!("{} read-only", v.status),
                None => v.status.to_string(),
            },
            format_size(v.used as u64),
            or_dash(v.capacity.map(|c| format_size(c as u64))),
            v.tape_files.to_string(),
            or_dash(v.keeps()),
            or_dash(v.location.as_ref()),
        ]);
    }
    t
}

/// Sets each volume's location from the virtual library's inventory, the one source of
/// truth every move of its changer updates; the catalogue's note of where a tape was
/// labelled or last read only stands for tapes outside the library.
fn place_in_library(config: &Config, volumes: &mut [Volume]) {
    if !config.vlib_enabled() {
        return;
    }
    let Ok(file) = drives::virtual_library(config).and_then(|l| l.read()) else {
        return;
    };
    for v in volumes {
        let barcode = v.barcode.clone().unwrap_or_else(|| v.label.clone());
        v.location = Some(match file.find(&barcode) {
            Some(e) => file.describe(e),
            None => "outside the library".to_string(),
        });
    }
}

pub fn volume(cmd: VolumeCommand, config: &Config) -> Result<()> {
    match cmd {
        VolumeCommand::List { pool, json } => {
            let cat = open_for_reading(config)?;
            let mut volumes = cat.volumes(pool.as_deref())?;
            place_in_library(config, &mut volumes);
            if json {
                return print_json(&volumes);
            }
            volume_table(&volumes).print();
        }
        VolumeCommand::Show { tape, json } => {
            let cat = open_for_reading(config)?;
            let mut v = cat.volume(&tape)?;
            place_in_library(config, std::slice::from_mut(&mut v));
            if json {
                return print_json(&v);
            }
            let rows = [
                ("Volume", v.label.clone()),
                ("Barcode", or_dash(v.barcode.as_ref())),
                ("UUID", or_dash(v.uuid.as_ref())),
                ("Pool", v.pool.clone().unwrap_or_else(|| "(scratch)".into())),
                ("Status", v.status.to_string()),
                ("Media", or_dash(v.media.as_ref())),
                ("Used", format_size(v.used as u64)),
                (
                    "Capacity",
                    or_dash(v.capacity.map(|c| format_size(c as u64))),
                ),
                (
                    "Block size",
                    or_dash(v.block_size.map(|b| format_size(b as u64))),
                ),
                ("Tape files", v.tape_files.to_string()),
                ("Protected until", or_dash(v.keeps())),
                ("Read-only", or_dash(v.read_only.as_ref())),
                ("Passes", v.passes.to_string()),
                ("Labelled", or_dash(v.labelled_at.map(format_time))),
                ("Last written", or_dash(v.written_at.map(format_time))),
                ("Location", or_dash(v.location.as_ref())),
                ("Error", or_dash(v.error.as_ref())),
                ("Read-only", or_dash(v.read_only.as_ref())),
            ];
            for (k, val) in rows {
                outln!("{:<16} {val}", format!("{k}:"));
            }
        }
        VolumeCommand::Label(args) => label_volume(args, config)?,
        VolumeCommand::Expire { tape } => {
            let mut cat = open(config)?;
            let v = cat.expire_volume(&tape)?;
            outln!(
                "Volume {}: its data expired now; {} complete backup{} on it may be \
                 overwritten.",
                v.label,
                v.complete_backups,
                if v.complete_backups == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

/// Barcode, media and capacity of the cartridge in a virtual drive.
pub(super) fn virtual_cartridge(
    kind: &DriveKind,
    drive: &str,
) -> Result<Option<(String, String, u64)>> {
    let DriveKind::Virtual { library, .. } = kind else {
        return Ok(None);
    };
    let lib = Library::open(library)?;
    let file = lib.read()?;
    let entry = &file.drives[file.drive_index(drive)?];
    let Some(barcode) = entry.cartridge.clone() else {
        return Ok(None);
    };
    let meta = Cartridge::read_meta(&lib.cartridge_dir(&barcode))?;
    Ok(Some((
        barcode,
        format!("LTO-{}", meta.generation),
        meta.capacity,
    )))
}

/// Writes a new label at BOT and records it: the volume starts empty.
pub(super) fn write_new_label(
    drive: &mut dyn tapedeck::tape::TapeDrive,
    cat: &mut Catalog,
    spec: &drives::DriveSpec,
    label_text: &str,
    cartridge: Option<&(String, String, u64)>,
    pool: Option<&str>,
    block_size: u32,
) -> Result<tapedeck::catalog::Volume> {
    let new = Label {
        format: LABEL_FORMAT,
        label: label_text.to_string(),
        barcode: cartridge.map(|c| c.0.clone()),
        uuid: uuid::Uuid::new_v4().to_string(),
        pool: pool.map(str::to_string),
        media: cartridge.map(|c| c.1.clone()),
        block_size,
        created: jiff::Timestamp::now().to_string(),
        tapedeck: env!("CARGO_PKG_VERSION").to_string(),
    };
    label::write_label(drive, &new)
        .with_context(|| format!("writing the label on the tape in {}", spec.name))?;
    let location = format!("drive {}", spec.name);
    Ok(cat.record_label(&tapedeck::catalog::LabelRecord {
        label: &new.label,
        barcode: new.barcode.as_deref(),
        uuid: &new.uuid,
        pool,
        media: new.media.as_deref(),
        capacity: cartridge.map(|c| c.2 as i64),
        block_size: block_size as i64,
        used: block_size as i64,
        location: Some(&location),
    })?)
}

/// Labels the tape in `drive` when it is unused and its barcode is known (a virtual
/// cartridge): blank, or holding nothing but a tapedeck label the catalogue does not know
/// (a labelling cut short before its record). Nothing on it can be lost. Returns the new
/// volume's label.
pub(super) fn label_if_unused(
    drive: &mut dyn tapedeck::tape::TapeDrive,
    cat: &mut Catalog,
    spec: &drives::DriveSpec,
    pool: Option<&str>,
    block_size: u32,
) -> Result<Option<String>> {
    if !drive.status()?.online {
        return Ok(None);
    }
    let unused = match label::read_tape_start(drive)? {
        TapeStart::Blank => true,
        TapeStart::Labelled(l) => {
            cat.find_volume(&l.label)?.is_none() && label::holds_only_first_block(drive)?
        }
        TapeStart::Foreign(_) => false,
    };
    if !unused {
        return Ok(None);
    }
    let Some(cartridge) = virtual_cartridge(&spec.kind, &spec.name)? else {
        return Ok(None);
    };
    if cat.find_volume(&cartridge.0)?.is_some() {
        // A known volume that reads blank was erased elsewhere: let the operator decide.
        return Ok(None);
    }
    let v = write_new_label(
        drive,
        cat,
        spec,
        &cartridge.0,
        Some(&cartridge),
        pool,
        block_size,
    )?;
    Ok(Some(v.label))
}

fn label_volume(args: LabelArgs, config: &Config) -> Result<()> {
    let spec = drives::resolve(config, args.drive.as_deref())?;
    let cartridge = virtual_cartridge(&spec.kind, &spec.name)?;
    let barcode = cartridge.as_ref().map(|c| c.0.clone());
    let label_text = match (&args.tape, &barcode) {
        (Some(t), _) => t.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => return Err(bad_input(
            "give the label with --tape (the drive's cartridge has no barcode tapedeck can read)",
        )),
    };
    let mut cat = open(config)?;
    if let Some(pool) = &args.pool {
        cat.pool(pool)?;
    }
    let mut drive = spec.open()?;
    let status = drive.status()?;
    if !status.online {
        return Err(tapedeck::tape::TapeError::NotReady {
            drive: spec.name.clone(),
        }
        .into());
    }
    let block_size = match &args.block_size {
        Some(text) => parse_size(text).map_err(bad_input)?,
        None => config.drive_block_size(&spec.name),
    };
    let block_size = u32::try_from(block_size)
        .ok()
        .filter(|b| tapedeck::config::allowed_block_size(*b as u64))
        .ok_or_else(|| {
            bad_input(format!(
                "block size {} is not allowed: {}",
                format_size(block_size),
                tapedeck::config::block_size_rule()
            ))
        })?;
    // What is on the tape now decides whether we may overwrite it.
    let (mut lost, mut checked) = (Vec::new(), None);
    match label::read_tape_start(drive.as_mut())? {
        TapeStart::Blank => {}
        TapeStart::Foreign(what) if !args.force => {
            return Err(bad_input(format!(
                "the tape in {} holds {what}, not written by tapedeck; use --force to overwrite it",
                spec.name
            )))
        }
        TapeStart::Foreign(_) => {}
        TapeStart::Labelled(old) => {
            if old.label != label_text && !args.force {
                return Err(bad_input(format!(
                    "the tape in {} is labelled {}; use --force to relabel it as {label_text}",
                    spec.name, old.label
                )));
            }
            if let Some(v) = cat.find_volume(&old.label)? {
                super::tape::permit_overwrite(&cat, &v, Overwrite::Relabel, args.force)?;
                lost.push(cat.overwrite_loss(&v, Overwrite::Relabel)?);
                checked = Some(v.id);
            }
        }
    }
    if let Some(v) = cat.find_volume(&label_text)? {
        if checked != Some(v.id) {
            super::tape::permit_overwrite(&cat, &v, Overwrite::Relabel, args.force)?;
            lost.push(cat.overwrite_loss(&v, Overwrite::Relabel)?);
        }
        if !v.status.can_become(VolumeStatus::Empty) {
            return Err(CatalogError::Transition {
                label: v.label,
                from: v.status,
                to: VolumeStatus::Empty,
            }
            .into());
        }
    }
    let v = write_new_label(
        drive.as_mut(),
        &mut cat,
        &spec,
        &label_text,
        cartridge.as_ref(),
        args.pool.as_deref(),
        block_size,
    )?;
    outln!(
        "Labelled {} in {} ({}, {} blocks).",
        v.label,
        spec.name,
        v.pool
            .map(|p| format!("pool {p}"))
            .unwrap_or_else(|| "scratch".into()),
        format_size(block_size as u64)
    );
    for loss in lost.iter().filter(|l| !l.backups.is_empty()) {
        errln!("Gave up {loss}.");
    }
    Ok(())
}

pub fn catalog(cmd: CatalogCommand, config: &Config) -> Result<()> {
    match cmd {
        CatalogCommand::Check { json } => {
            let cat = open_as_is(config)?;
            let mut report = cat.check()?;
            let held = library_labels(config)?;
            if cat.is_empty()? && held.iter().any(|h| h.label.is_some()) {
                report.problems.push(
                    "the catalogue knows no volume or backup, but the library holds labelled \
                     volumes: it is empty or was replaced"
                        .into(),
                );
            }
            cat.check_library(&held, &mut report)?;
            if json {
                print_json(&report)?;
            } else {
                for line in report.integrity.iter().chain(&report.problems) {
                    outln!("DAMAGE  {line}");
                }
                for line in &report.notes {
                    outln!("note    {line}");
                }
                if report.is_ok() {
                    outln!("Catalogue {} is consistent.", cat.path().display());
                }
            }
            if !report.is_ok() {
                anyhow::bail!(
                    "catalogue {}: {} problems found; {}",
                    cat.path().display(),
                    report.integrity.len() + report.problems.len(),
                    rebuild_hint(&[])
                );
            }
        }
        CatalogCommand::Backup { to } => {
            let cat = open_as_is(config)?;
            cat.backup_to(&to)?;
            outln!("Copied the catalogue to {}.", to.display());
        }
        CatalogCommand::Rebuild(args) => super::rebuild::run(args, config)?,
        CatalogCommand::ImportTape(args) => super::import_tape::run(args, config)?,
    }
    Ok(())
}
