//! The tar format layer: any bytes through `tarfmt::MemberReader` (headers, data read
//! from the buffer in pieces) and through `tarfmt::HeaderDecoder` driven push-style as
//! the dd strategy drives it. Both must find the same members at the same places.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::BufReader;
use tapedeck::tarfmt::{self, HeaderDecoder, MemberKind, MemberReader, Step, RECORD};

/// What both drivers must agree on: start, header bytes, name, kind, data size.
type Seen = (u64, u64, Vec<u8>, MemberKind, u64);

fn pull(data: &[u8]) -> Vec<Seen> {
    let mut r = MemberReader::new(BufReader::with_capacity(700, data));
    let mut seen = Vec::new();
    while let Ok(Some(h)) = r.next_header() {
        assert_eq!(h.start + h.header_bytes, r.position());
        assert!(h.header_bytes >= RECORD as u64 && h.header_bytes % RECORD as u64 == 0);
        assert!(r.position() <= data.len() as u64);
        seen.push((h.start, h.header_bytes, h.name.clone(), h.kind, h.size));
        // The data, from the reader's buffer, in pieces.
        let mut got = 0u64;
        loop {
            match r.data_chunk() {
                Ok([]) => break,
                Ok(chunk) => {
                    let n = chunk.len().min(1 + got as usize % 997);
                    r.consume_data(n);
                    got += n as u64;
                }
                Err(_) => break,
            }
        }
        assert!(got <= h.size);
        assert_eq!(got + r.data_left(), h.size);
    }
    seen
}

fn push(data: &[u8]) -> Vec<Seen> {
    let mut d = HeaderDecoder::new();
    let mut seen = Vec::new();
    let (mut at, mut start) = (0usize, 0usize);
    while let Some(record) = data.get(at..at + RECORD) {
        let record: &[u8; RECORD] = record.try_into().expect("a whole record");
        let step = match d.record(record, at as u64) {
            Ok(step) => step,
            Err(_) => break,
        };
        at += RECORD;
        match step {
            Step::End => break,
            Step::SparseRecord => {}
            Step::Extension { size } => {
                let size = size as usize;
                let Some(ext) = data.get(at..at + size) else {
                    break;
                };
                d.extension(ext);
                at += size + tarfmt::padding(size as u64) as usize;
            }
            Step::Member(h) => {
                seen.push((start as u64, (at - start) as u64, h.name.clone(), h.kind, h.size));
                let next = h
                    .size
                    .checked_add(tarfmt::padding(h.size))
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| n.checked_add(at));
                match next {
                    Some(n) if n <= data.len() => at = n,
                    _ => break,
                }
                start = at;
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let pulled = pull(data);
    let pushed = push(data);
    assert_eq!(pulled, pushed);
});
