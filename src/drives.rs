//! Finding drives by name: configured `[[drive]]`s (Linux `st`) and, when enabled, the
//! virtual library's drives. Opening one gives a `Box<dyn TapeDrive>`; nothing above this
//! module knows which kind it holds.

use crate::backup::flow::SpeedRange;
use crate::config::Config;
use crate::tape::drive_model::DriveModel;
use crate::tape::st::StDrive;
use crate::tape::{TapeDrive, TapeError};
use crate::vlib::{Library, VlibError};
use serde::Serialize;
use std::path::PathBuf;

/// What kind of drive a name stands for.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DriveKind {
    /// A real drive through the Linux `st` driver.
    St {
        device: PathBuf,
        sg_device: Option<PathBuf>,
    },
    /// A drive of the virtual library.
    Virtual { library: PathBuf, model: String },
}

/// A drive known by name.
#[derive(Debug, Clone, Serialize)]
pub struct DriveSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: DriveKind,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("unknown drive `{name}`; configured drives: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    Unknown { name: String, known: Vec<String> },
    #[error(
        "no drives: configure a [[drive]] or enable the virtual library ([vlib] enabled = true)"
    )]
    NoDrives,
    #[error(transparent)]
    Library(#[from] VlibError),
}

impl LookupError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            LookupError::Library(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

/// The virtual library, created with the defaults on first use when it lives in the
/// default place; an explicitly configured directory must already hold one.
pub fn virtual_library(config: &Config) -> Result<Library, VlibError> {
    let dir = config.vlib_dir();
    if config.vlib_dir_is_default() {
        Library::open_or_init_default(&dir)
    } else {
        Library::open(&dir)
    }
}

/// Every drive, configured ones first.
pub fn all(config: &Config) -> Result<Vec<DriveSpec>, LookupError> {
    let mut drives: Vec<DriveSpec> = config
        .file
        .drives
        .iter()
        .map(|d| DriveSpec {
            name: d.name.clone(),
            kind: DriveKind::St {
                device: d.device.clone(),
                sg_device: d.sg_device.clone(),
            },
        })
        .collect();
    if config.vlib_enabled() {
        let lib = virtual_library(config)?;
        for d in lib.read()?.drives {
            if drives.iter().all(|x| x.name != d.name) {
                drives.push(DriveSpec {
                    name: d.name,
                    kind: DriveKind::Virtual {
                        library: lib.dir().to_path_buf(),
                        model: d.model.name,
                    },
                });
            }
        }
    }
    Ok(drives)
}

/// The drive called `name`, or the default one: `default_drive` from the configuration,
/// else the first drive.
pub fn resolve(config: &Config, name: Option<&str>) -> Result<DriveSpec, LookupError> {
    let drives = all(config)?;
    let wanted = name.or(config.file.default_drive.as_deref());
    match wanted {
        Some(n) => {
            drives
                .iter()
                .find(|d| d.name == n)
                .cloned()
                .ok_or_else(|| LookupError::Unknown {
                    name: n.to_string(),
                    known: drives.iter().map(|d| d.name.clone()).collect(),
                })
        }
        None => drives.first().cloned().ok_or(LookupError::NoDrives),
    }
}

impl DriveSpec {
    /// Whether the drive is in the virtual library (whose changer tapedeck drives).
    pub fn is_virtual(&self) -> bool {
        matches!(self.kind, DriveKind::Virtual { .. })
    }

    /// The drive's LTO generation: the virtual drive's model, or the configured `model`
    /// of a real one; `None` when unknown.
    pub fn generation(&self, config: &Config) -> Option<u8> {
        let name = match &self.kind {
            DriveKind::Virtual { model, .. } => model.clone(),
            DriveKind::St { .. } => config
                .file
                .drives
                .iter()
                .find(|d| d.name == self.name)?
                .model
                .clone()?,
        };
        crate::tape::lto::generation_from_media(&name)
    }

    /// Whether the drive can write (`write`) or read a cartridge of generation `media`;
    /// unknown generations are let through (the drive itself has the last word).
    pub fn takes(&self, config: &Config, media: Option<u8>, write: bool) -> bool {
        crate::tape::lto::may_take(self.generation(config), media, write)
    }

    /// The rates the drive streams at (speed-matching floor to native), in bytes per
    /// second of real time, and its cache in bytes: from the configured model of a real
    /// drive, or the virtual drive's model at the library's time scale. `None` when
    /// unknown or unlimited (a virtual library at time scale 0).
    pub fn streaming(&self, config: &Config) -> Option<(SpeedRange, u64)> {
        let (model, scale) = match &self.kind {
            DriveKind::St { .. } => {
                let name = config
                    .file
                    .drives
                    .iter()
                    .find(|d| d.name == self.name)?
                    .model
                    .clone()?;
                (DriveModel::builtin(&name)?, 1.0)
            }
            DriveKind::Virtual { library, .. } => {
                let file = Library::open(library).ok()?.read().ok()?;
                let entry = file.drives.iter().find(|d| d.name == self.name)?;
                (entry.model.clone(), file.time_scale)
            }
        };
        (scale > 0.0).then(|| {
            (
                SpeedRange {
                    floor: model.floor() as f64 * scale,
                    native: model.native() as f64 * scale,
                },
                model.cache,
            )
        })
    }

    /// Opens the drive for exclusive use by this process.
    pub fn open(&self) -> Result<Box<dyn TapeDrive>, TapeError> {
        Ok(match &self.kind {
            DriveKind::St { device, .. } => Box::new(StDrive::open(&self.name, device)?),
            DriveKind::Virtual { library, .. } => {
                Box::new(Library::open(library)?.open_drive(&self.name)?)
            }
        })
    }
}
