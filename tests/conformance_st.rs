//! The conformance suite against a real Linux `st` tape. Every case is ignored unless asked
//! for, and then needs a scratch tape whose contents it destroys:
//!
//! ```text
//! TAPEDECK_TEST_TAPE=/dev/nst0 cargo test --test conformance_st -- --ignored --test-threads=1
//! ```
//!
//! * `TAPEDECK_TEST_TAPE`: the non-rewinding device node (required).
//! * `TAPEDECK_TEST_TAPE_WP_SYSFS`: a file that write-protects the cartridge when `1` is
//!   written to it and releases it with `0` (optional; without it the write-protect case
//!   is skipped).
//! * `TAPEDECK_TEST_TAPE_FULL_DATA`: `1`/`true` when blocks read back whole (a real drive);
//!   default false, as `scsi_debug` keeps only the first 4 bytes of a block.
//! * `TAPEDECK_TEST_TAPE_CAPACITY_BLOCKS`: blocks that fit on the cartridge, when known
//!   (`scsi_debug`: 10000).
//!
//! `.ci/tape-vm-conformance` runs this inside a throw-away VM against `scsi_debug`.

use std::path::PathBuf;
use tapedeck::conformance::Rig;
use tapedeck::tape::st::StDrive;
use tapedeck::tape::{TapeDrive, TapeError};

struct StRig {
    device: PathBuf,
    wp_sysfs: Option<PathBuf>,
    full_data: bool,
    capacity_blocks: Option<u64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl StRig {
    fn from_env() -> StRig {
        let device = env("TAPEDECK_TEST_TAPE").unwrap_or_else(|| {
            panic!("set TAPEDECK_TEST_TAPE to a scratch tape's non-rewinding device (/dev/nst0)")
        });
        let full_data = env("TAPEDECK_TEST_TAPE_FULL_DATA").is_some_and(|v| {
            matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
        });
        let capacity_blocks = env("TAPEDECK_TEST_TAPE_CAPACITY_BLOCKS").map(|v| {
            v.trim().parse().unwrap_or_else(|_| {
                panic!("TAPEDECK_TEST_TAPE_CAPACITY_BLOCKS={v:?} is not a number of blocks")
            })
        });
        StRig {
            device: PathBuf::from(device),
            wp_sysfs: env("TAPEDECK_TEST_TAPE_WP_SYSFS").map(PathBuf::from),
            full_data,
            capacity_blocks,
        }
    }
}

impl Rig for StRig {
    fn drive(&mut self) -> Box<dyn TapeDrive> {
        let drive = StDrive::open("st-under-test", &self.device)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.device.display()));
        Box::new(drive)
    }

    fn set_write_protect(&mut self, on: bool) -> bool {
        let Some(path) = &self.wp_sysfs else {
            return false;
        };
        let value = if on { "1" } else { "0" };
        std::fs::write(path, value)
            .unwrap_or_else(|e| panic!("writing {value} to {}: {e}", path.display()));
        true
    }

    fn full_data(&self) -> bool {
        self.full_data
    }

    fn capacity_blocks(&self) -> Option<u64> {
        self.capacity_blocks
    }

    fn try_drive(&mut self) -> Result<Box<dyn TapeDrive>, TapeError> {
        Ok(Box::new(StDrive::open("st-under-test", &self.device)?))
    }

    /// scsi_debug's per-device error injection (`/sys/kernel/debug/scsi_debug/<h:c:t:l>/error`,
    /// from `TAPEDECK_TEST_TAPE_READ_ERROR_INJECT`) fails the next READ(6) with MEDIUM ERROR
    /// 11/00 without moving the tape. It cannot aim at a block: the case reads right after.
    fn inject_read_error(&mut self, _object: u64) -> bool {
        let Some(inject) = env("TAPEDECK_TEST_TAPE_READ_ERROR_INJECT") else {
            return false;
        };
        // type 2 (fail the command), once, READ(6), CHECK CONDITION, MEDIUM ERROR 11/00
        std::fs::write(&inject, "2 -1 0x08 0x0 0x0 0x2 0x3 0x11 0x0\n")
            .unwrap_or_else(|e| panic!("writing {inject}: {e}"));
        true
    }
}

tapedeck::conformance_tests!(
    StRig::from_env(),
    #[ignore = "needs a real st tape: set TAPEDECK_TEST_TAPE=/dev/nst0 and run with --ignored (see .ci/tape-vm-conformance)"]
);

/// Behaviour of the `st` driver beyond the shared suite.
mod st_only {
    use super::StRig;
    use tapedeck::conformance::Rig;

    /// `TAPEDECK_TEST_TAPE_BLOCK_LIMITS=min:max` names what the drive's READ BLOCK LIMITS
    /// says (scsi_debug: 512:1048576); without it the case only checks the limits are sane.
    #[test]
    #[ignore = "needs a real st tape: set TAPEDECK_TEST_TAPE=/dev/nst0 and run with --ignored"]
    fn block_limits_come_from_the_drive() {
        let mut rig = StRig::from_env();
        let mut d = rig.drive();
        let limits = d.block_limits().expect("block limits");
        assert!(limits.min >= 1 && limits.min <= limits.max, "{limits:?}");
        if let Some(want) = super::env("TAPEDECK_TEST_TAPE_BLOCK_LIMITS") {
            let (min, max) = want
                .split_once(':')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                .unwrap_or_else(|| {
                    panic!("TAPEDECK_TEST_TAPE_BLOCK_LIMITS={want:?}: want min:max")
                });
            assert_eq!((limits.min, limits.max), (min, max));
        }
    }
}
