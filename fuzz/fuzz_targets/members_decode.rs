//! The packed member records of the catalogue: any blob decodes or is reported damaged,
//! and what decodes encodes back to the same members (a part count of 0 or 1 means one
//! part: the encoder writes none then).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck::catalog::members;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = members::decode(data) {
        let mut again = Vec::new();
        for m in &decoded {
            members::encode(&mut again, m);
        }
        let round = members::decode(&again).expect("an encoded record decodes");
        let one_part = |mut m: members::Member| {
            m.parts = m.parts.max(1);
            m
        };
        let decoded: Vec<_> = decoded.into_iter().map(one_part).collect();
        assert_eq!(round, decoded);
    }
});
