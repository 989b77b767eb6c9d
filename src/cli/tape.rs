//! `tapedeck tape ...`: mt-like drive operations on any drive, real or virtual.

use super::output::{or_dash, print_json};
use super::{bad_input, changer};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use tapedeck::catalog::{Catalog, CatalogError, Overwrite, Volume};
use tapedeck::config::Config;
use tapedeck::drives::{self, DriveKind, DriveSpec};
use tapedeck::label::{self, TapeStart};
use tapedeck::tape::{DriveStatus, SpaceOutcome, TapeDrive};
use tapedeck::units::{format_size, parse_size};
use tapedeck::vlib::Library;

#[derive(Debug, Args)]
pub struct TapeArgs {
    /// The drive [default: $TAPEDECK_DRIVE, default_drive from the configuration, else the
    /// first drive]
    #[arg(long, short, global = true, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
    #[command(subcommand)]
    op: TapeOp,
}

#[derive(Debug, Subcommand)]
enum TapeOp {
    /// Drive, cartridge, position, block size and status flags
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Rewind to the beginning of the tape
    Rewind,
    /// Space forward over COUNT filemarks, to the start of a later tape file
    Fsf {
        #[arg(default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        count: i32,
    },
    /// Space backward over COUNT filemarks, stopping before the last one passed
    Bsf {
        #[arg(default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        count: i32,
    },
    /// Go to end of recorded data, where the next tape file is appended
    Eod,
    /// Print the position: the logical block number, counting blocks and filemarks from BOT
    Tell {
        #[arg(long)]
        json: bool,
    },
    /// Go to a logical block number (as `tell` prints it)
    Seek { position: u64 },
    /// Write COUNT filemarks at the current position (data after it is lost: refused
    /// before end of data unless --force, and for unexpired data)
    Weof {
        #[arg(default_value_t = 1)]
        count: u32,
        /// Return before the drive has flushed its buffer (MTWEOFI)
        #[arg(long)]
        immediate: bool,
        /// Write even though recorded (or unexpired) data lies after the current position
        #[arg(long)]
        force: bool,
    },
    /// Set the block size (e.g. 512KiB); 0 selects variable-block mode
    Setblk { size: String },
    /// Load the cartridge in the drive; with a changer and an empty drive, fetch one from
    /// SLOT (default: the first full slot)
    Load {
        #[arg(long)]
        slot: Option<u32>,
    },
    /// Rewind and eject the cartridge (it stays in the drive for the changer to take)
    Unload,
    /// Erase from the current position to the end of the tape (refused over recorded
    /// data unless --force, and for unexpired data)
    Erase {
        /// Erase even though recorded (or unexpired) data lies after the current position
        #[arg(long)]
        force: bool,
    },
}

/// `tape status --json`.
#[derive(Debug, Serialize)]
struct StatusReport {
    #[serde(flatten)]
    drive: DriveSpec,
    /// Barcode of the cartridge in the drive, when known.
    cartridge: Option<String>,
    #[serde(flatten)]
    status: DriveStatus,
    flags: Vec<&'static str>,
    /// Virtual drives: repositions counted by the drive model, all sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    repositions: Option<u64>,
}

fn flags(st: &DriveStatus) -> Vec<&'static str> {
    [
        (st.bot, "BOT"),
        (st.filemark, "EOF"),
        (st.early_warning, "EOT"),
        (st.eod, "EOD"),
        (st.write_protected, "WR_PROT"),
        (st.online, "ONLINE"),
        (st.door_open, "DR_OPEN"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

pub fn run(args: TapeArgs, config: &Config) -> Result<()> {
    let spec = drives::resolve(config, args.drive.as_deref())?;
    if let TapeOp::Load { slot } = args.op {
        return load(&spec, slot);
    }
    let mut drive = spec.open()?;
    let d = drive.as_mut();
    match args.op {
        TapeOp::Status { json } => status(&spec, d, json)?,
        TapeOp::Rewind => d.rewind()?,
        TapeOp::Fsf { count } => report_space(d.space_filemarks(count)?, d)?,
        TapeOp::Bsf { count } => report_space(d.space_filemarks(-count)?, d)?,
        TapeOp::Eod => d.space_to_eod()?,
        TapeOp::Tell { json } => {
            let position = d.position()?;
            if json {
                print_json(&serde_json::json!({ "drive": spec.name, "position": position }))?;
            } else {
                outln!("At block {position}.");
            }
        }
        TapeOp::Seek { position } => d.locate(position)?,
        TapeOp::Weof {
            count,
            immediate,
            force,
        } => cut(&spec, d, config, force, Cut::Filemarks, |d| {
            Ok(d.write_filemarks(count, immediate)?)
        })?,
        TapeOp::Setblk { size } => {
            let bytes = parse_size(&size).map_err(bad_input)?;
            let bytes = u32::try_from(bytes)
                .map_err(|_| bad_input(format!("block size {size} is far too large")))?;
            d.set_block_size(bytes)?;
        }
        TapeOp::Unload => d.unload()?,
        TapeOp::Erase { force } => cut(&spec, d, config, force, Cut::Erase, |d| Ok(d.erase()?))?,
        TapeOp::Load { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn report_space(outcome: SpaceOutcome, d: &mut dyn TapeDrive) -> Result<()> {
    let position = d.position()?;
    match outcome {
        SpaceOutcome::Done => Ok(()),
        SpaceOutcome::EndOfData => Err(anyhow::anyhow!(
            "{}: ran into end of data; the tape is at end of data (block {position})",
            d.name()
        )),
        SpaceOutcome::BeginningOfTape => Err(anyhow::anyhow!(
            "{}: reached the beginning of the tape; the tape is at BOT",
            d.name()
        )),
    }
}

fn virtual_entry(spec: &DriveSpec) -> Result<Option<tapedeck::vlib::DriveEntry>> {
    let DriveKind::Virtual { library, .. } = &spec.kind else {
        return Ok(None);
    };
    let file = Library::open(library)?.read()?;
    let index = file.drive_index(&spec.name)?;
    Ok(Some(file.drives[index].clone()))
}

fn status(spec: &DriveSpec, d: &mut dyn TapeDrive, json: bool) -> Result<()> {
    let st = d.status()?;
    let entry = virtual_entry(spec)?;
    let report = StatusReport {
        drive: spec.clone(),
        cartridge: entry.as_ref().and_then(|e| e.cartridge.clone()),
        flags: flags(&st),
        repositions: entry.as_ref().map(|e| e.stats.repositions),
        status: st,
    };
    if json {
        return print_json(&report);
    }
    let st = &report.status;
    let kind = match &spec.kind {
        DriveKind::St { device, .. } => format!("st device {}", device.display()),
        DriveKind::Virtual { library, model } => {
            format!("virtual {model} in {}", library.display())
        }
    };
    outln!("Drive:       {} ({kind})", spec.name);
    let cartridge = match (&report.cartridge, entry.as_ref().map(|e| e.loaded)) {
        (Some(b), Some(false)) => format!("{b} (ejected)"),
        (c, _) => or_dash(c.as_ref()),
    };
    outln!("Cartridge:   {cartridge}");
    outln!(
        "State:       {}",
        if st.online { "online" } else { "not ready" }
    );
    if let Some(p) = st.position {
        let within = match (st.file_number, st.block_number) {
            (Some(f), Some(b)) => format!(" (tape file {f}, block {b})"),
            _ => String::new(),
        };
        outln!("Position:    block {p}{within}");
    }
    let mode = if st.block_size == 0 {
        "variable".to_string()
    } else {
        format!("{} fixed", format_size(st.block_size as u64))
    };
    outln!("Block size:  {mode}");
    outln!("Flags:       {}", report.flags.join(" "));
    if let Some(r) = report.repositions {
        outln!("Repositions: {r} (drive model, all sessions)");
    }
    Ok(())
}

/// Loads the cartridge in the drive, or with a changer fetches one from a slot first.
fn load(spec: &DriveSpec, slot: Option<u32>) -> Result<()> {
    if let Some(entry) = virtual_entry(spec)? {
        if entry.cartridge.is_none() {
            return changer::load_slot(spec, slot);
        }
        if let Some(slot) = slot {
            return Err(bad_input(format!(
                "{} already holds {}; unload it before loading slot {slot}",
                spec.name,
                entry.cartridge.unwrap_or_default()
            )));
        }
    } else if slot.is_some() {
        return Err(bad_input(
            "--slot needs a changer; this drive is not in a changer tapedeck can drive",
        ));
    }
    let mut drive = spec.open()?;
    let was_online = drive.status()?.online;
    drive.load()?;
    let what = virtual_entry(spec)?
        .and_then(|e| e.cartridge)
        .unwrap_or_else(|| "a tape".into());
    match was_online {
        true => outln!("{} already holds {what}, loaded.", spec.name),
        false => outln!("{} holds {what}, loaded.", spec.name),
    }
    Ok(())
}

/// The catalogue's volume on the tape in the drive: by the virtual cartridge's barcode,
/// else by the label at BOT (the drive is put back where it was).
fn volume_in_drive(
    spec: &DriveSpec,
    d: &mut dyn TapeDrive,
    cat: &Catalog,
) -> Result<Option<Volume>> {
    if let Some(barcode) = virtual_entry(spec)?.and_then(|e| e.cartridge) {
        return Ok(cat.find_volume(&barcode)?);
    }
    let here = d.position()?;
    let start = label::read_tape_start(d)?;
    d.locate(here)
        .with_context(|| format!("returning to block {here}"))?;
    match start {
        TapeStart::Labelled(l) => Ok(cat.find_volume(&l.label)?),
        _ => Ok(None),
    }
}

/// Lets a write over volume `v` from `at` go ahead only as the catalogue decides
/// ([`Catalog::check_overwrite`]); with `force` a refusal is overridden, and said so.
pub(super) fn permit_overwrite(
    cat: &Catalog,
    v: &Volume,
    at: Overwrite,
    force: bool,
) -> Result<()> {
    match cat.check_overwrite(v, at) {
        Ok(()) => Ok(()),
        Err(CatalogError::Refused(r)) if force => {
            errln!("Overriding (--force): {}.", r.reason());
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A write that cuts the tape where it starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// `weof`: as `mt`, only the catalogue's protection stops it.
    Filemarks,
    /// `erase`: never over recorded data without --force.
    Erase,
}

/// Runs `write` (filemarks, erase) at the current position, which cuts the tape there.
/// Before end of data on a catalogued volume the catalogue decides
/// ([`Catalog::check_overwrite`]), and the backups cut off are recorded as gone, and
/// named; an erase over recorded data also needs --force.
fn cut(
    spec: &DriveSpec,
    d: &mut dyn TapeDrive,
    config: &Config,
    force: bool,
    kind: Cut,
    write: impl FnOnce(&mut dyn TapeDrive) -> Result<()>,
) -> Result<()> {
    let what = match kind {
        Cut::Filemarks => "writing filemarks",
        Cut::Erase => "erasing",
    };
    let here = d.position()?;
    let tape_file = d.status()?.file_number.map_or(0, |f| f as i64);
    d.space_to_eod()?;
    let eod = d.position()?;
    d.locate(here)
        .with_context(|| format!("returning to block {here} before {what}"))?;
    if eod <= here {
        return write(d); // at end of data: nothing is lost
    }
    let mut cat = super::catalog::open(config)?;
    let volume = volume_in_drive(spec, d, &cat)?;
    let at = Overwrite::From { tape_file };
    if let Some(v) = &volume {
        permit_overwrite(&cat, v, at, force)?;
    }
    if kind == Cut::Erase && !force {
        return Err(bad_input(format!(
            "{}: {} blocks and filemarks of recorded data lie after block {here}; \
             {what} here destroys them: add --force",
            d.name(),
            eod - here
        )));
    }
    write(d)?;
    if let Some(v) = &volume {
        let loss = cat.record_overwrite(v, at)?;
        if !loss.backups.is_empty() {
            errln!("Volume {}: gave up {loss}.", v.label);
        }
    }
    Ok(())
}
