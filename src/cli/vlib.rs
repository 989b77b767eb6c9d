//! `tapedeck vlib ...`: create, inspect and rig the virtual library.

use super::bad_input;
use super::output::{or_dash, print_json, Table};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use tapedeck::config::Config;
use tapedeck::units::{format_size, parse_size};
use tapedeck::vlib::cartridge::CartridgeMeta;
use tapedeck::vlib::{parse_drive_list, InitOptions, Library, LibraryFile};

#[derive(Debug, Subcommand)]
pub enum VlibCommand {
    /// Create a virtual library: drives, storage slots full of blank cartridges with
    /// barcodes, and import/export slots
    Init(InitArgs),
    /// Drives, slots and cartridges of the virtual library
    Show {
        /// Library directory [default: [vlib] dir, else $TAPEDECK_HOME/vlib]
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Change a cartridge: write protection and injected faults (for testing failure paths)
    Set(SetArgs),
    /// Change the changer: injected faults (for testing failure paths)
    Changer(ChangerFaultArgs),
}

#[derive(Debug, Args)]
pub struct ChangerFaultArgs {
    /// Library directory [default: [vlib] dir, else $TAPEDECK_HOME/vlib]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Every move fails, as with a jammed gripper: on or off
    #[arg(long, value_parser = parse_switch)]
    jam: Option<bool>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Library directory [default: [vlib] dir, else $TAPEDECK_HOME/vlib]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Drives as NAME or NAME=MODEL, comma-separated; a bare name is its model
    /// (LTO-5 .. LTO-9)
    #[arg(long, default_value = "lto9,lto6")]
    drives: String,
    /// Storage slots, all filled with blank cartridges shared out between the drive
    /// generations
    #[arg(long, default_value_t = 8)]
    slots: u32,
    /// Import/export (mail) slots, left empty
    #[arg(long, default_value_t = 1)]
    ie_slots: u32,
    /// Capacity of every cartridge, e.g. 4GiB [default: 1/1000 of the real medium,
    /// 18 GB for LTO-9, 2.5 GB for LTO-6]
    #[arg(long)]
    capacity: Option<String>,
    /// 0 = no waiting, 1 = real drive speed, k = k times faster
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Barcode prefix (barcodes are PREFIX, 4 digits, L and the generation)
    #[arg(long, default_value = "TD")]
    barcode_prefix: String,
}

/// `on` or `off`.
fn parse_switch(text: &str) -> std::result::Result<bool, String> {
    match text {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("`{text}`: write on or off")),
    }
}

/// A block number, or `none` to clear.
#[derive(Debug, Clone, Copy)]
struct At(Option<u64>);

fn parse_at(text: &str) -> std::result::Result<At, String> {
    if text == "none" {
        return Ok(At(None));
    }
    text.parse()
        .map(|n| At(Some(n)))
        .map_err(|_| format!("`{text}`: write a block number or none"))
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The cartridge's barcode
    barcode: String,
    /// Library directory [default: [vlib] dir, else $TAPEDECK_HOME/vlib]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write-protect tab: on or off
    #[arg(long, value_parser = parse_switch)]
    write_protect: Option<bool>,
    /// Fail the write of this logical block (or `none`)
    #[arg(long, value_name = "BLOCK", value_parser = parse_at)]
    write_error_at: Option<At>,
    /// Fail the read of this logical block with a medium error (or `none`)
    #[arg(long, value_name = "BLOCK", value_parser = parse_at)]
    read_error_at: Option<At>,
    /// Report early warning once the tape holds this much (e.g. 100MiB, or none)
    #[arg(long, value_name = "SIZE")]
    early_warning_at: Option<String>,
    /// The drive reports not ready with this cartridge: on or off
    #[arg(long, value_parser = parse_switch)]
    not_ready: Option<bool>,
}

fn library_dir(config: &Config, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| config.vlib_dir())
}

fn open(config: &Config, dir: Option<PathBuf>) -> Result<Library> {
    match dir {
        Some(d) => Ok(Library::open(&d)?),
        None => Ok(tapedeck::drives::virtual_library(config)?),
    }
}

pub fn run(cmd: VlibCommand, config: &Config) -> Result<()> {
    match cmd {
        VlibCommand::Init(args) => init(args, config),
        VlibCommand::Show { dir, json } => show(&open(config, dir)?, json),
        VlibCommand::Set(args) => set(args, config),
        VlibCommand::Changer(args) => changer_faults(args, config),
    }
}

fn changer_faults(args: ChangerFaultArgs, config: &Config) -> Result<()> {
    let lib = open(config, args.dir)?;
    if let Some(on) = args.jam {
        lib.update(|f| {
            f.changer_jammed = on;
            Ok(())
        })?;
    }
    outln!(
        "The changer {}.",
        if lib.read()?.changer_jammed {
            "is jammed: every move fails"
        } else {
            "works"
        }
    );
    Ok(())
}

fn init(args: InitArgs, config: &Config) -> Result<()> {
    let capacity = args
        .capacity
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(bad_input)?;
    let opts = InitOptions {
        drives: parse_drive_list(&args.drives)?,
        slots: args.slots,
        import_export: args.ie_slots,
        capacity,
        time_scale: args.time_scale,
        barcode_prefix: args.barcode_prefix,
    };
    let dir = library_dir(config, args.dir);
    let lib = Library::init(&dir, &opts)?;
    let file = lib.read()?;
    outln!(
        "Created a virtual library in {}: {} drives ({}), {} slots, {} import/export slots, time scale {}.",
        dir.display(),
        file.drives.len(),
        file.drives
            .iter()
            .map(|d| format!("{} {}", d.name, d.model.name))
            .collect::<Vec<_>>()
            .join(", "),
        file.slots.len(),
        file.import_export.len(),
        file.time_scale
    );
    Ok(())
}

#[derive(Serialize)]
struct ShowReport {
    dir: PathBuf,
    library: LibraryFile,
    cartridges: Vec<CartridgeReport>,
}

#[derive(Serialize)]
struct CartridgeReport {
    #[serde(flatten)]
    meta: CartridgeMeta,
    used: u64,
}

fn show(lib: &Library, json: bool) -> Result<()> {
    let file = lib.read()?;
    let mut cartridges = Vec::new();
    for meta in lib.cartridges()? {
        let used = tapedeck::vlib::cartridge::Cartridge::open(&lib.cartridge_dir(&meta.barcode))?
            .used_bytes();
        cartridges.push(CartridgeReport { meta, used });
    }
    if json {
        return print_json(&ShowReport {
            dir: lib.dir().to_path_buf(),
            library: file,
            cartridges,
        });
    }
    outln!(
        "Virtual library {} (time scale {})\n",
        lib.dir().display(),
        file.time_scale
    );
    let mut drives = Table::new(&[
        "DRIVE",
        "MODEL",
        "CARTRIDGE",
        "STATE",
        "POSITION",
        "BLOCK",
        "REPOSITIONS",
    ]);
    for d in &file.drives {
        let state = match (&d.cartridge, d.loaded) {
            (None, _) => "empty",
            (Some(_), true) => "loaded",
            (Some(_), false) => "ejected",
        };
        drives.row(vec![
            d.name.clone(),
            d.model.name.clone(),
            or_dash(d.cartridge.as_ref()),
            state.into(),
            or_dash(d.position.filter(|_| d.cartridge.is_some())),
            if d.block_size == 0 {
                "variable".into()
            } else {
                format_size(d.block_size as u64)
            },
            d.stats.repositions.to_string(),
        ]);
    }
    drives.print();
    outln!();
    let mut slots = Table::new(&["SLOT", "CARTRIDGE"]);
    for (i, s) in file.slots.iter().enumerate() {
        slots.row(vec![(i + 1).to_string(), or_dash(s.as_ref())]);
    }
    for (i, s) in file.import_export.iter().enumerate() {
        slots.row(vec![format!("ie{}", i + 1), or_dash(s.as_ref())]);
    }
    slots.print();
    outln!();
    let mut carts = Table::new(&[
        "CARTRIDGE",
        "MEDIA",
        "WHERE",
        "CAPACITY",
        "USED",
        "FILES",
        "BLOCK",
        "NOTES",
    ]);
    for c in &cartridges {
        let m = &c.meta;
        let mut notes = Vec::new();
        if m.write_protected {
            notes.push("write-protected".to_string());
        }
        if let Some(b) = m.faults.write_error_at {
            notes.push(format!("write error at {b}"));
        }
        if let Some(b) = m.faults.read_error_at {
            notes.push(format!("read error at {b}"));
        }
        if let Some(b) = m.faults.early_warning_at_bytes {
            notes.push(format!("early warning at {}", format_size(b)));
        }
        if m.faults.not_ready {
            notes.push("not ready".into());
        }
        carts.row(vec![
            m.barcode.clone(),
            format!("LTO-{}", m.generation),
            or_dash(file.find(&m.barcode).map(|e| file.describe(e))),
            format_size(m.capacity),
            format_size(c.used),
            if c.used == 0 {
                "0".into()
            } else {
                (m.filemarks + 1).to_string()
            },
            if m.block_size == 0 {
                "-".into()
            } else {
                format_size(m.block_size as u64)
            },
            notes.join(", "),
        ]);
    }
    carts.print();
    Ok(())
}

fn set(args: SetArgs, config: &Config) -> Result<()> {
    let lib = open(config, args.dir)?;
    let early_warning = match args.early_warning_at.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(text) => Some(Some(parse_size(text).map_err(bad_input)?)),
    };
    if !lib
        .cartridge_dir(&args.barcode)
        .join("cartridge.json")
        .exists()
    {
        let known: Vec<String> = lib.cartridges()?.into_iter().map(|m| m.barcode).collect();
        return Err(bad_input(format!(
            "no cartridge `{}` in {}; it has: {}",
            args.barcode,
            lib.dir().display(),
            known.join(", ")
        )));
    }
    lib.update_cartridge(&args.barcode, |m| {
        if let Some(on) = args.write_protect {
            m.write_protected = on;
        }
        if let Some(at) = args.write_error_at {
            m.faults.write_error_at = at.0;
        }
        if let Some(at) = args.read_error_at {
            m.faults.read_error_at = at.0;
        }
        if let Some(at) = early_warning {
            m.faults.early_warning_at_bytes = at;
        }
        if let Some(on) = args.not_ready {
            m.faults.not_ready = on;
        }
    })?;
    outln!("Updated {}.", args.barcode);
    Ok(())
}
