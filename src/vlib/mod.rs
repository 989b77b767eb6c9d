//! The virtual tape library: file-backed drives, cartridges and a changer with the
//! semantics of Linux `st` and a SCSI media changer. It is the test double for every
//! test above the tape layer and the library a new user gets with no configuration.
//! It implements the tape layer's traits over the drive figures of
//! [`crate::tape::drive_model`] and reports its failures to the tape layer as
//! [`TapeError`]s; the tape layer knows nothing of it.
//!
//! On-disk layout (a contract, see the README's format section):
//! ```text
//! DIR/library.json                       drives, slots, import/export slots, what is where
//! DIR/cartridges/LABEL/cartridge.json    capacity, early-warning gap, counters, faults
//! DIR/cartridges/LABEL/00000.tar         tape file 0, then 00001.tar, ...
//! DIR/locks/                             flock files: the library, one per drive
//! ```

pub mod cartridge;
pub mod changer;
pub mod drive;
pub mod streaming;

use crate::tape::drive_model::{native_capacity, DriveModel};
use crate::tape::{Element, Holder, TapeError};
use cartridge::{Cartridge, CartridgeMeta};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use streaming::StreamStats;

pub use changer::VirtualChanger;
pub use drive::VirtualDrive;

/// Errors of the virtual library.
#[derive(Debug, thiserror::Error)]
pub enum VlibError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A block write to a virtual cartridge failed; nothing of the block stays on it.
    #[error("{}: block not written: {source}", path.display())]
    BlockWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: damaged, not touched: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("no virtual library at {} (create one with `tapedeck vlib init --dir {}`)", .0.display(), .0.display())]
    Missing(PathBuf),
    #[error("{} already exists; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    #[error("unknown drive `{name}`; the library has: {}", known.join(", "))]
    UnknownDrive { name: String, known: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    #[error("{element} is {state}")]
    Element { element: String, state: String },
    #[error("{what} is in use by {}", crate::tape::holders::describe(.holders))]
    InUse { what: String, holders: Vec<Holder> },
    #[error("the changer failed to move {from} to {to}: {detail}")]
    ChangerFailed {
        from: String,
        to: String,
        detail: String,
    },
}

impl VlibError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        VlibError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Errors the operator caused by asking (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            VlibError::UnknownDrive { .. }
                | VlibError::Invalid(_)
                | VlibError::Element { .. }
                | VlibError::Exists(_)
                | VlibError::Missing(_)
        )
    }
}

/// The library's errors as its drives and changer report them to the tape layer: a lock
/// held elsewhere is [`TapeError::InUse`], what the operator asked for and the library
/// cannot do is [`TapeError::Refused`] (exit code 2), anything else a failure of the
/// library ([`TapeError::Library`]). The message stays the library's.
impl From<VlibError> for TapeError {
    fn from(e: VlibError) -> Self {
        match e {
            VlibError::InUse { what, holders } => TapeError::InUse { what, holders },
            e if e.is_bad_input() => TapeError::Refused(Box::new(e)),
            e => TapeError::Library(Box::new(e)),
        }
    }
}

/// Writes JSON to a temporary file and renames it over `path`, so a crash never leaves
/// half a file.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), VlibError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| VlibError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(|e| VlibError::io(&tmp, e))?;
    let (head, tail) = text.as_bytes().split_at(text.len() / 2);
    f.write_all(head)
        .and_then(|_| crate::fault::hit(crate::fault::Point::VtapeMeta))
        .and_then(|_| f.write_all(tail))
        .and_then(|_| f.sync_data())
        .map_err(|e| VlibError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| VlibError::io(path, e))
}

/// One drive of the library, as `library.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveEntry {
    pub name: String,
    pub model: DriveModel,
    /// Barcode of the cartridge in the drive.
    #[serde(default)]
    pub cartridge: Option<String>,
    /// The cartridge is loaded (threaded, ready); false while it sits ejected.
    #[serde(default)]
    pub loaded: bool,
    /// Where the cartridge came from, so `unload` can put it back.
    #[serde(default)]
    pub source: Option<Element>,
    /// The drive's block-size setting (0 = variable), kept across opens as a drive does.
    pub block_size: u32,
    /// Logical position, kept across opens as a non-rewinding device does.
    #[serde(default)]
    pub position: Option<u64>,
    #[serde(default)]
    pub stats: StreamStats,
}

/// `library.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryFile {
    pub format: u32,
    /// 0 = no waiting, 1 = real drive speed, k = k times faster.
    pub time_scale: f64,
    pub drives: Vec<DriveEntry>,
    /// Storage slots 1..=n: the barcode in each, if any.
    pub slots: Vec<Option<String>>,
    /// Import/export slots 1..=n.
    pub import_export: Vec<Option<String>>,
    /// Injected fault: every move of the changer fails (a jammed gripper).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changer_jammed: bool,
}

pub const LIBRARY_FORMAT: u32 = 1;

/// The default block size a new drive is set to.
pub const DEFAULT_BLOCK_SIZE: u32 = 512 * 1024;

impl LibraryFile {
    pub fn drive_index(&self, name: &str) -> Result<usize, VlibError> {
        self.drives
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| VlibError::UnknownDrive {
                name: name.to_string(),
                known: self.drives.iter().map(|d| d.name.clone()).collect(),
            })
    }

    /// The cartridge at an element, if any.
    pub fn at(&self, element: Element) -> Result<Option<&String>, VlibError> {
        let cell = match element {
            Element::Slot(n) => self.slots.get((n as usize).wrapping_sub(1)),
            Element::ImportExport(n) => self.import_export.get((n as usize).wrapping_sub(1)),
            Element::Drive(n) => self.drives.get(n as usize).map(|d| &d.cartridge),
        };
        cell.map(Option::as_ref)
            .ok_or_else(|| VlibError::Invalid(format!("{element} does not exist in this library")))
    }

    /// An element as the operator knows it: `slot 3`, `drive lto9`.
    pub fn describe(&self, element: Element) -> String {
        match element {
            Element::Drive(i) => match self.drives.get(i as usize) {
                Some(d) => format!("drive {}", d.name),
                None => element.to_string(),
            },
            other => other.to_string(),
        }
    }

    /// Where the cartridge with this barcode is.
    pub fn find(&self, barcode: &str) -> Option<Element> {
        let is = |c: &Option<String>| c.as_deref() == Some(barcode);
        if let Some(i) = self.drives.iter().position(|d| is(&d.cartridge)) {
            return Some(Element::Drive(i as u32));
        }
        if let Some(i) = self.slots.iter().position(is) {
            return Some(Element::Slot(i as u32 + 1));
        }
        self.import_export
            .iter()
            .position(is)
            .map(|i| Element::ImportExport(i as u32 + 1))
    }
}

/// How `vlib init` builds a library.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Drive names with their models.
    pub drives: Vec<(String, DriveModel)>,
    pub slots: u32,
    pub import_export: u32,
    /// Capacity of every cartridge; `None` = 1/1000 of the real medium.
    pub capacity: Option<u64>,
    pub time_scale: f64,
    /// Barcode prefix; barcodes are PREFIX + 4 digits + `L` + generation.
    pub barcode_prefix: String,
}

impl Default for InitOptions {
    /// What a new user gets: an LTO-9 and an LTO-6 drive, 8 slots, 1 mail slot.
    fn default() -> Self {
        let model = |n: &str| DriveModel::builtin(n).expect("built-in model");
        InitOptions {
            drives: vec![
                ("lto9".to_string(), model("LTO-9")),
                ("lto6".to_string(), model("LTO-6")),
            ],
            slots: 8,
            import_export: 1,
            capacity: None,
            time_scale: 1.0,
            barcode_prefix: "TD".to_string(),
        }
    }
}

/// Parses `lto9,lto6` or `a=LTO-9,b=LTO-9`: a bare name is also its model.
pub fn parse_drive_list(text: &str) -> Result<Vec<(String, DriveModel)>, VlibError> {
    let mut drives: Vec<(String, DriveModel)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, model_name) = item.split_once('=').unwrap_or((item, item));
        let model = DriveModel::builtin(model_name).ok_or_else(|| {
            VlibError::Invalid(format!(
                "unknown drive model `{model_name}`; known models: {} (write NAME=MODEL to name a drive)",
                DriveModel::BUILTIN.join(", ")
            ))
        })?;
        if drives.iter().any(|(n, _)| n == name) {
            return Err(VlibError::Invalid(format!(
                "drive name `{name}` given twice"
            )));
        }
        valid_name(name)?;
        drives.push((name.to_string(), model));
    }
    if drives.is_empty() {
        return Err(VlibError::Invalid(
            "a library needs at least one drive".into(),
        ));
    }
    Ok(drives)
}

fn valid_name(name: &str) -> Result<(), VlibError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(VlibError::Invalid(format!(
            "`{name}` is not a usable name: use letters, digits, `-` and `_`"
        )));
    }
    Ok(())
}

/// A virtual library at a directory.
/// What a cartridge holds at its start, as [`Library::labels`] reads it from its files.
#[derive(Debug, Clone, PartialEq)]
pub struct CartridgeLabel {
    pub barcode: String,
    /// The tapedeck label in tape file 0, if it holds one.
    pub label: Option<crate::label::Label>,
    /// A label and nothing after it: no backup was ever written on this pass.
    pub only_label: bool,
}

#[derive(Debug, Clone)]
pub struct Library {
    dir: PathBuf,
}

impl Library {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file_path(dir: &Path) -> PathBuf {
        dir.join("library.json")
    }

    /// Opens an existing library.
    pub fn open(dir: &Path) -> Result<Library, VlibError> {
        if !Self::file_path(dir).exists() {
            return Err(VlibError::Missing(dir.to_path_buf()));
        }
        let lib = Library {
            dir: dir.to_path_buf(),
        };
        lib.read()?;
        Ok(lib)
    }

    /// Opens the library at `dir`, creating the default one if nothing is there yet.
    pub fn open_or_init_default(dir: &Path) -> Result<Library, VlibError> {
        if Self::file_path(dir).exists() {
            Self::open(dir)
        } else {
            tracing::info!("creating the default virtual library in {}", dir.display());
            Self::init(dir, &InitOptions::default())
        }
    }

    /// Creates a library with blank cartridges in every storage slot. Refuses to touch a
    /// directory that already holds one.
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Library, VlibError> {
        if Self::file_path(dir).exists() {
            return Err(VlibError::Exists(Self::file_path(dir)));
        }
        if opts.drives.is_empty() {
            return Err(VlibError::Invalid(
                "a library needs at least one drive".into(),
            ));
        }
        if !(opts.time_scale >= 0.0 && opts.time_scale.is_finite()) {
            return Err(VlibError::Invalid(format!(
                "time scale {} must be 0 (no waiting) or positive",
                opts.time_scale
            )));
        }
        if let Some(c) = opts.capacity {
            if c < 4 << 20 {
                return Err(VlibError::Invalid(format!(
                    "capacity {c} bytes is too small: at least 4 MiB"
                )));
            }
        }
        fs::create_dir_all(dir.join("cartridges")).map_err(|e| VlibError::io(dir, e))?;
        fs::create_dir_all(dir.join("locks")).map_err(|e| VlibError::io(dir, e))?;
        // Share the slots out between the drive generations present, in drive order.
        let mut generations: Vec<u8> = Vec::new();
        for (_, m) in &opts.drives {
            if !generations.contains(&m.generation) {
                generations.push(m.generation);
            }
        }
        let mut slots = Vec::new();
        let per = opts.slots as usize / generations.len();
        let extra = opts.slots as usize % generations.len();
        let mut serial = 1;
        for (gi, generation) in generations.iter().enumerate() {
            let count = per + usize::from(gi < extra);
            for _ in 0..count {
                let barcode = format!("{}{serial:04}L{generation}", opts.barcode_prefix);
                serial += 1;
                let capacity = opts
                    .capacity
                    .unwrap_or_else(|| native_capacity(*generation) / 1000);
                let meta = CartridgeMeta::blank(&barcode, *generation, capacity);
                Cartridge::create(&dir.join("cartridges").join(&barcode), &meta)?;
                slots.push(Some(barcode));
            }
        }
        let file = LibraryFile {
            format: LIBRARY_FORMAT,
            time_scale: opts.time_scale,
            drives: opts
                .drives
                .iter()
                .map(|(name, model)| DriveEntry {
                    name: name.clone(),
                    model: model.clone(),
                    cartridge: None,
                    loaded: false,
                    source: None,
                    block_size: DEFAULT_BLOCK_SIZE,
                    position: None,
                    stats: StreamStats::default(),
                })
                .collect(),
            slots,
            import_export: vec![None; opts.import_export as usize],
            changer_jammed: false,
        };
        write_json_atomic(&Self::file_path(dir), &file)?;
        Ok(Library {
            dir: dir.to_path_buf(),
        })
    }

    /// Reads `library.json`. A damaged file is reported with its name, never reset.
    pub fn read(&self) -> Result<LibraryFile, VlibError> {
        let path = Self::file_path(&self.dir);
        let text = fs::read_to_string(&path).map_err(|e| VlibError::io(&path, e))?;
        let file: LibraryFile = serde_json::from_str(&text).map_err(|e| VlibError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if file.format != LIBRARY_FORMAT {
            return Err(VlibError::Corrupt {
                path,
                detail: format!(
                    "format {} is not one this tapedeck knows ({LIBRARY_FORMAT})",
                    file.format
                ),
            });
        }
        Ok(file)
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.dir.join("locks").join(format!("{name}.lock"))
    }

    /// Takes an exclusive flock on `locks/NAME.lock`; `wait` blocks, else a held lock is
    /// reported with the processes holding it.
    pub(crate) fn lock(&self, name: &str, wait: bool) -> Result<Flock<File>, VlibError> {
        let path = self.lock_path(name);
        fs::create_dir_all(self.dir.join("locks")).map_err(|e| VlibError::io(&path, e))?;
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| VlibError::io(&path, e))?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        Flock::lock(f, arg).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                VlibError::InUse {
                    what: name.to_string(),
                    holders: crate::tape::holders::holders_of(&path),
                }
            } else {
                VlibError::io(&path, errno.into())
            }
        })
    }

    /// Reads, changes and writes `library.json` under the library lock.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut LibraryFile) -> Result<T, VlibError>,
    ) -> Result<T, VlibError> {
        let _guard = self.lock("library", true)?;
        let mut file = self.read()?;
        let result = change(&mut file)?;
        write_json_atomic(&Self::file_path(&self.dir), &file)?;
        Ok(result)
    }

    pub fn cartridge_dir(&self, barcode: &str) -> PathBuf {
        self.dir.join("cartridges").join(barcode)
    }

    /// Every cartridge's metadata, by barcode.
    pub fn cartridges(&self) -> Result<Vec<CartridgeMeta>, VlibError> {
        let root = self.dir.join("cartridges");
        let mut all = Vec::new();
        let entries = fs::read_dir(&root).map_err(|e| VlibError::io(&root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| VlibError::io(&root, e))?;
            if entry.path().is_dir() {
                all.push(Cartridge::read_meta(&entry.path())?);
            }
        }
        all.sort_by(|a, b| a.barcode.cmp(&b.barcode));
        Ok(all)
    }

    /// What tape file 0 of each cartridge holds, by barcode: the tapedeck label, or
    /// `None` (blank, or not a tapedeck label), and whether nothing is recorded after it.
    /// Read from the files, no drive moved.
    pub fn labels(&self) -> Result<Vec<CartridgeLabel>, VlibError> {
        let mut out = Vec::new();
        for meta in self.cartridges()? {
            let dir = self.cartridge_dir(&meta.barcode);
            let path = Cartridge::tape_file_path(&dir, 0);
            let mut block = Vec::new();
            if meta.block_size > 0 {
                match File::open(&path) {
                    Ok(f) => {
                        use std::io::Read;
                        f.take(u64::from(meta.block_size))
                            .read_to_end(&mut block)
                            .map_err(|e| VlibError::io(&path, e))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(VlibError::io(&path, e)),
                }
            }
            let label = crate::label::Label::from_block(&block);
            let only_label = label.is_some() && Self::holds_one_block(&dir, &meta)?;
            out.push(CartridgeLabel {
                barcode: meta.barcode,
                label,
                only_label,
            });
        }
        Ok(out)
    }

    /// Whether the cartridge holds one block in tape file 0 (and at most the filemark
    /// after it) and nothing else.
    fn holds_one_block(dir: &Path, meta: &CartridgeMeta) -> Result<bool, VlibError> {
        if meta.filemarks > 1 {
            return Ok(false);
        }
        for index in 0..=meta.filemarks {
            let path = Cartridge::tape_file_path(dir, index);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(VlibError::io(&path, e)),
            };
            let expected = if index == 0 {
                meta.block_size as u64
            } else {
                0
            };
            if len != expected {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Changes a cartridge's `cartridge.json` (faults, write protection) while no drive
    /// has it open.
    pub fn update_cartridge(
        &self,
        barcode: &str,
        change: impl FnOnce(&mut CartridgeMeta),
    ) -> Result<(), VlibError> {
        let dir = self.cartridge_dir(barcode);
        let mut meta = Cartridge::read_meta(&dir)?;
        change(&mut meta);
        write_json_atomic(&Cartridge::meta_path(&dir), &meta)
    }

    /// Opens a drive for exclusive use by this process.
    pub fn open_drive(&self, name: &str) -> Result<VirtualDrive, VlibError> {
        VirtualDrive::open(self.clone(), name)
    }

    /// The library's changer.
    pub fn changer(&self) -> VirtualChanger {
        VirtualChanger::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_library_has_two_drives_and_blank_cartridges() {
        let dir = tempfile::tempdir().unwrap();
        let lib = Library::init(dir.path(), &InitOptions::default()).unwrap();
        let f = lib.read().unwrap();
        assert_eq!(f.drives.len(), 2);
        assert_eq!(f.slots.len(), 8);
        assert_eq!(f.import_export, vec![None]);
        let barcodes: Vec<_> = f.slots.iter().flatten().cloned().collect();
        assert_eq!(barcodes[0], "TD0001L9");
        assert_eq!(barcodes[7], "TD0008L6");
        let metas = lib.cartridges().unwrap();
        assert_eq!(metas.len(), 8);
        assert_eq!(metas[0].capacity, 18_000_000_000);
        assert!(matches!(
            Library::init(dir.path(), &InitOptions::default()),
            Err(VlibError::Exists(_))
        ));
    }

    #[test]
    fn damaged_library_json_is_named() {
        let dir = tempfile::tempdir().unwrap();
        Library::init(dir.path(), &InitOptions::default()).unwrap();
        fs::write(dir.path().join("library.json"), "{\"format\": 1,").unwrap();
        let err = Library::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("library.json"), "{err}");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn errors_reach_the_tape_layer_with_their_message_and_meaning() {
        use crate::tape::Changer;
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions {
            time_scale: 0.0,
            ..InitOptions::default()
        };
        let lib = Library::init(dir.path(), &opts).unwrap();
        let mut changer = lib.changer();
        // Asking for what cannot be: the mail slot is empty.
        let err = changer
            .move_medium(Element::ImportExport(1), Element::Slot(1))
            .unwrap_err();
        assert!(err.is_bad_input() && !err.is_busy(), "{err:?}");
        assert_eq!(err.to_string(), "import/export slot 1 is empty");
        let missing: TapeError = Library::open(&dir.path().join("none")).unwrap_err().into();
        assert!(missing.is_bad_input(), "{missing:?}");
        // A drive open elsewhere keeps its tape.
        changer
            .move_medium(Element::Slot(1), Element::Drive(0))
            .unwrap();
        let held = lib.open_drive("lto9").unwrap();
        let err = changer
            .move_medium(Element::Drive(0), Element::Slot(1))
            .unwrap_err();
        assert!(err.is_busy() && !err.is_bad_input(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("drive lto9 (its tape is loaded) is in use by"),
            "{err}"
        );
        drop(held);
        // A jammed robot is a failure of the library, not of the medium.
        lib.update(|f| {
            f.changer_jammed = true;
            Ok(())
        })
        .unwrap();
        let err = changer
            .move_medium(Element::Drive(0), Element::Slot(1))
            .unwrap_err();
        assert!(
            !err.is_bad_input() && !err.is_busy() && !err.is_medium_failure(),
            "{err:?}"
        );
        assert!(err.to_string().contains("the gripper is jammed"), "{err}");
    }

    #[test]
    fn drive_lists_parse() {
        let d = parse_drive_list("lto9,lto6").unwrap();
        assert_eq!(d[0].0, "lto9");
        assert_eq!(d[1].1.generation, 6);
        let d = parse_drive_list("a=LTO-9, b=LTO-9").unwrap();
        assert_eq!(d[1].0, "b");
        assert!(parse_drive_list("lto42").is_err());
        assert!(parse_drive_list("lto9,lto9").is_err());
        assert!(parse_drive_list("").is_err());
    }
}
