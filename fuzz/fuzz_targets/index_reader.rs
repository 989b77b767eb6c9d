//! The on-tape index reader: a whole index tape file (tar + zstd + JSON lines), and the
//! JSON lines alone (most inputs never get past tar and zstd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck::index_read::{self, IndexLine, IndexReadError};

fuzz_target!(|data: &[u8]| {
    let mut records = 0u64;
    let count = |line: IndexLine| {
        if let IndexLine::Record(r) = line {
            records += 1;
            let _ = r.blake3.as_deref().map(index_read::parse_blake3);
        }
        Ok::<(), IndexReadError>(())
    };
    let _ = index_read::read_index_tape_file(data, None, count);
    let _ = index_read::read_lines(data, |line| {
        if let IndexLine::Header(h) = &line {
            let _ = index_read::parse_time(&h.started);
        }
        Ok::<(), IndexReadError>(())
    });
});
