//! The virtual library's robot: moves cartridges between storage slots, import/export
//! slots and drives by rewriting `library.json` under its lock, with the rules of a real
//! changer (source full, destination empty, a drive in use keeps its cartridge).

use super::cartridge::Cartridge;
use super::{Library, VlibError};
use crate::tape::{Changer, Element, ElementStatus, Inventory, Result};

pub struct VirtualChanger {
    lib: Library,
}

impl VirtualChanger {
    pub fn new(lib: Library) -> Self {
        VirtualChanger { lib }
    }
}

impl Changer for VirtualChanger {
    fn name(&self) -> &str {
        "vlib"
    }

    fn inventory(&mut self) -> Result<Inventory> {
        let f = self.lib.read()?;
        let cell = |element, barcode: &Option<String>| ElementStatus {
            element,
            barcode: barcode.clone(),
            drive_name: None,
            source: None,
        };
        Ok(Inventory {
            drives: f
                .drives
                .iter()
                .enumerate()
                .map(|(i, d)| ElementStatus {
                    element: Element::Drive(i as u32),
                    barcode: d.cartridge.clone(),
                    drive_name: Some(d.name.clone()),
                    source: d.source,
                })
                .collect(),
            slots: f
                .slots
                .iter()
                .enumerate()
                .map(|(i, b)| cell(Element::Slot(i as u32 + 1), b))
                .collect(),
            import_export: f
                .import_export
                .iter()
                .enumerate()
                .map(|(i, b)| cell(Element::ImportExport(i as u32 + 1), b))
                .collect(),
        })
    }

    fn move_medium(&mut self, from: Element, to: Element) -> Result<()> {
        let lib = self.lib.clone();
        let loaded_into = lib.update(|f| {
            if f.changer_jammed {
                return Err(VlibError::ChangerFailed {
                    from: f.describe(from),
                    to: f.describe(to),
                    detail: "injected fault: the gripper is jammed (changer_jammed in \
                             library.json)"
                        .into(),
                });
            }
            let barcode = f.at(from)?.cloned().ok_or_else(|| VlibError::Element {
                element: f.describe(from),
                state: "empty".into(),
            })?;
            if let Some(there) = f.at(to)? {
                return Err(VlibError::Element {
                    element: f.describe(to),
                    state: format!("full (holds {there})"),
                });
            }
            let generation = Cartridge::read_meta(&lib.cartridge_dir(&barcode))?.generation;
            if let Element::Drive(i) = to {
                let model = &f.drives[i as usize].model;
                if !model.reads(generation) {
                    return Err(VlibError::Invalid(format!(
                        "LTO-{generation} cartridge {barcode} cannot be loaded in drive {} ({})",
                        f.drives[i as usize].name, model.name
                    )));
                }
            }
            match from {
                Element::Slot(n) => f.slots[n as usize - 1] = None,
                Element::ImportExport(n) => f.import_export[n as usize - 1] = None,
                Element::Drive(i) => {
                    let d = &mut f.drives[i as usize];
                    if d.loaded {
                        // A drive with its tape threaded keeps it while a process has it
                        // open (st locks the door); otherwise the robot unloads it first.
                        let _free =
                            lib.lock(&format!("drive-{}", d.name), false)
                                .map_err(|e| match e {
                                    VlibError::InUse { holders, .. } => VlibError::InUse {
                                        what: format!("drive {} (its tape is loaded)", d.name),
                                        holders,
                                    },
                                    other => other,
                                })?;
                    }
                    d.cartridge = None;
                    d.loaded = false;
                    d.source = None;
                    d.position = None;
                }
            }
            match to {
                Element::Slot(n) => f.slots[n as usize - 1] = Some(barcode),
                Element::ImportExport(n) => f.import_export[n as usize - 1] = Some(barcode),
                Element::Drive(i) => {
                    let d = &mut f.drives[i as usize];
                    d.cartridge = Some(barcode.clone());
                    d.loaded = true;
                    d.source = match from {
                        Element::Drive(_) => None,
                        other => Some(other),
                    };
                    d.position = Some(0);
                    return Ok(Some(barcode));
                }
            }
            Ok(None)
        })?;
        if let Some(barcode) = loaded_into {
            lib.update_cartridge(&barcode, |m| m.counters.loads += 1)?;
        }
        Ok(())
    }
}
