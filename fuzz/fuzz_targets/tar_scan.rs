//! The `catalog rebuild --scan` tar header walker: any tape file bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck::rebuild::tar_scan::{self, ScanError};

fuzz_target!(|data: &[u8]| {
    let mut last_start = None;
    let result = tar_scan::walk(data, true, |m| {
        // Members come in order, each inside what was read.
        assert!(last_start.is_none_or(|s| m.start > s));
        assert!(m.start < data.len() as u64);
        assert!(m.length <= m.size.max(m.length));
        last_start = Some(m.start);
        Ok::<(), ScanError>(())
    });
    if let Ok(summary) = result {
        assert!(summary.bytes <= data.len() as u64);
    }
});
