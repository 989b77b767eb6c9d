//! `tapedeck load|unload|move`: the changer commands (pytp's names), on the virtual
//! library's changer.

use super::bad_input;
use anyhow::Result;
use clap::Args;
use tapedeck::config::Config;
use tapedeck::drives::{self, DriveKind, DriveSpec};
use tapedeck::tape::{Changer, Element};
use tapedeck::vlib::{Library, LibraryFile};

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Storage slot holding the cartridge (numbered from 1)
    slot: u32,
    /// Drive to load [default: $TAPEDECK_DRIVE, default_drive, else the first drive]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnloadArgs {
    /// Storage slot to put the cartridge in [default: the slot it came from, else the first
    /// empty one]
    slot: Option<u32>,
    /// Drive to unload [default: $TAPEDECK_DRIVE, default_drive, else the first drive]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Elements: a slot number (3, s3, slot:3), an import/export slot \
(ie1, ie:1), or a drive (its name, or drive:NAME)."
)]
pub struct MoveArgs {
    /// Where the cartridge is
    from: String,
    /// Where it goes (must be empty)
    to: String,
}

/// The virtual library a drive belongs to, and the drive's element.
pub(super) fn changer_of(spec: &DriveSpec) -> Result<(Library, Element)> {
    match &spec.kind {
        DriveKind::Virtual { library, .. } => {
            let lib = Library::open(library)?;
            let index = lib.read()?.drive_index(&spec.name)?;
            Ok((lib, Element::Drive(index as u32)))
        }
        DriveKind::St { .. } => Err(bad_input(format!(
            "drive {} is not in a changer tapedeck can drive; move the cartridge by hand \
             and use `tapedeck tape load`",
            spec.name
        ))),
    }
}

/// Moves the cartridge of `slot` (default: the first full one) into the drive.
pub fn load_slot(spec: &DriveSpec, slot: Option<u32>) -> Result<()> {
    let (lib, drive) = changer_of(spec)?;
    let file = lib.read()?;
    let slot = match slot {
        Some(s) => s,
        None => file
            .slots
            .iter()
            .position(Option::is_some)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| bad_input("every storage slot is empty"))?,
    };
    let barcode = file.at(Element::Slot(slot))?.cloned();
    lib.changer().move_medium(Element::Slot(slot), drive)?;
    outln!(
        "Loaded {} from slot {slot} into {}.",
        barcode.unwrap_or_default(),
        spec.name
    );
    Ok(())
}

pub fn load(args: LoadArgs, config: &Config) -> Result<()> {
    let spec = drives::resolve(config, args.drive.as_deref())?;
    load_slot(&spec, Some(args.slot))
}

pub fn unload(args: UnloadArgs, config: &Config) -> Result<()> {
    let spec = drives::resolve(config, args.drive.as_deref())?;
    match unload_into(&spec, args.slot)? {
        Some((barcode, slot)) => {
            outln!("Unloaded {barcode} from {} into slot {slot}.", spec.name);
            Ok(())
        }
        None => Err(bad_input(format!("{} is empty", spec.name))),
    }
}

/// Ejects the drive's cartridge and puts it into `slot` (default: where it came from, else
/// the first empty slot). Returns its barcode and slot, or `None` if the drive was empty.
pub(super) fn unload_into(spec: &DriveSpec, slot: Option<u32>) -> Result<Option<(String, u32)>> {
    let (lib, element) = changer_of(spec)?;
    let file = lib.read()?;
    let Some(barcode) = file.at(element)?.cloned() else {
        return Ok(None);
    };
    let target = match slot {
        Some(s) => s,
        None => home_slot(&file, element)
            .ok_or_else(|| bad_input("no empty storage slot to unload into"))?,
    };
    // Rewind and eject first (a filemark is written if the last thing done was a write).
    spec.open()?.unload()?;
    lib.changer().move_medium(element, Element::Slot(target))?;
    Ok(Some((barcode, target)))
}

/// Where a drive's cartridge goes back to: its source slot if empty, else the first empty.
fn home_slot(file: &LibraryFile, drive: Element) -> Option<u32> {
    let Element::Drive(i) = drive else {
        return None;
    };
    if let Some(Element::Slot(s)) = file.drives[i as usize].source {
        if matches!(file.at(Element::Slot(s)), Ok(None)) {
            return Some(s);
        }
    }
    file.slots
        .iter()
        .position(Option::is_none)
        .map(|i| i as u32 + 1)
}

/// Parses an element as the operator writes it.
fn parse_element(text: &str, file: &LibraryFile) -> Result<Element> {
    let t = text.trim().to_ascii_lowercase();
    let number = |s: &str| s.parse::<u32>().ok().filter(|n| *n >= 1);
    let slot = t
        .strip_prefix("slot:")
        .or_else(|| t.strip_prefix("slot"))
        .or_else(|| t.strip_prefix('s'))
        .unwrap_or(&t);
    if let Some(n) = number(slot) {
        return Ok(Element::Slot(n));
    }
    if let Some(n) = t
        .strip_prefix("ie:")
        .or_else(|| t.strip_prefix("ie"))
        .and_then(number)
    {
        return Ok(Element::ImportExport(n));
    }
    let name = text.trim().strip_prefix("drive:").unwrap_or(text.trim());
    if let Ok(i) = file.drive_index(name) {
        return Ok(Element::Drive(i as u32));
    }
    Err(bad_input(format!(
        "`{text}` is not an element: write a slot (3, s3, slot:3), an import/export slot \
         (ie1) or a drive ({})",
        file.drives
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

pub fn move_medium(args: MoveArgs, config: &Config) -> Result<()> {
    if !config.vlib_enabled() {
        return Err(bad_input(
            "no changer tapedeck can drive is configured (the virtual library is disabled)",
        ));
    }
    let lib = drives::virtual_library(config)?;
    let file = lib.read()?;
    let from = parse_element(&args.from, &file)?;
    let to = parse_element(&args.to, &file)?;
    let barcode = file.at(from)?.cloned().unwrap_or_default();
    lib.changer().move_medium(from, to)?;
    outln!(
        "Moved {barcode} from {} to {}.",
        file.describe(from),
        file.describe(to)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck::vlib::InitOptions;

    #[test]
    fn elements_parse_in_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let lib = Library::init(dir.path(), &InitOptions::default()).unwrap();
        let f = lib.read().unwrap();
        assert_eq!(parse_element("3", &f).unwrap(), Element::Slot(3));
        assert_eq!(parse_element("s3", &f).unwrap(), Element::Slot(3));
        assert_eq!(parse_element("slot:3", &f).unwrap(), Element::Slot(3));
        assert_eq!(parse_element("ie1", &f).unwrap(), Element::ImportExport(1));
        assert_eq!(parse_element("lto6", &f).unwrap(), Element::Drive(1));
        assert_eq!(parse_element("drive:lto9", &f).unwrap(), Element::Drive(0));
        assert!(parse_element("0", &f).is_err());
        assert!(parse_element("shelf", &f).is_err());
    }
}
