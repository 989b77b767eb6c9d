//! The volume label parser: any first block of a tape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck::label::Label;

fuzz_target!(|data: &[u8]| {
    if let Some(label) = Label::from_block(data) {
        // What parses must write back into a block of its own size, or say why not.
        let _ = label.to_block();
    }
});
