//! The conformance suite against the virtual drive. The same cases run against the real
//! Linux `st` driver in `tests/conformance_st.rs` (inside a VM, from `.ci/run`).

use tapedeck::conformance::Rig;
use tapedeck::tape::{Changer, Element, TapeDrive, TapeError};
use tapedeck::vlib::{InitOptions, Library};

const BLOCK: u64 = 4096;
/// Shaped like the scsi_debug tape the st run uses: 10000 blocks, early warning 20 before the end.
const CAPACITY_BLOCKS: u64 = 10_000;

struct VirtualRig {
    _dir: tempfile::TempDir,
    lib: Library,
    barcode: String,
}

impl VirtualRig {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = InitOptions {
            slots: 1,
            import_export: 0,
            capacity: Some(CAPACITY_BLOCKS * BLOCK),
            time_scale: 0.0,
            ..InitOptions::default()
        };
        let lib = Library::init(dir.path(), &opts).expect("vlib init");
        let barcode = lib.read().unwrap().slots[0].clone().unwrap();
        lib.update_cartridge(&barcode, |m| m.early_warning_gap = 20 * BLOCK)
            .unwrap();
        lib.changer()
            .move_medium(Element::Slot(1), Element::Drive(0))
            .expect("load the cartridge");
        VirtualRig {
            _dir: dir,
            lib,
            barcode,
        }
    }
}

impl Rig for VirtualRig {
    fn drive(&mut self) -> Box<dyn TapeDrive> {
        Box::new(self.lib.open_drive("lto9").expect("open drive"))
    }
    fn set_write_protect(&mut self, on: bool) -> bool {
        self.lib
            .update_cartridge(&self.barcode, |m| m.write_protected = on)
            .expect("write-protect the cartridge");
        true
    }
    fn full_data(&self) -> bool {
        true
    }
    fn capacity_blocks(&self) -> Option<u64> {
        Some(CAPACITY_BLOCKS)
    }
    fn try_drive(&mut self) -> Result<Box<dyn TapeDrive>, TapeError> {
        Ok(Box::new(self.lib.open_drive("lto9")?))
    }
    fn inject_read_error(&mut self, object: u64) -> bool {
        self.lib
            .update_cartridge(&self.barcode, |m| m.faults.read_error_at = Some(object))
            .expect("inject a read error");
        true
    }
    fn clear_read_error(&mut self) {
        self.lib
            .update_cartridge(&self.barcode, |m| m.faults.read_error_at = None)
            .expect("clear the read error");
    }
}

tapedeck::conformance_tests!(VirtualRig::new());
