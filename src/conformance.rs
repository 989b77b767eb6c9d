//! One conformance suite for every [`TapeDrive`]: the virtual drive runs it in `cargo test`
//! (`tests/conformance_virtual.rs`), the Linux `st` driver runs it against a real `st`
//! device inside a throw-away VM (`tests/conformance_st.rs`, `.ci/tape-vm-conformance`).
//! Where the two disagree, the virtual drive is wrong.
//!
//! Each case takes a [`Rig`] (which hands out a drive with a scratch cartridge loaded),
//! writes from BOT and panics with a message naming what differed. Blocks carry their
//! number in their first four bytes, because the `scsi_debug` tape keeps only those; the
//! rest is checked where the rig keeps whole blocks.

use crate::tape::{ReadOutcome, SpaceOutcome, TapeDrive, TapeError, WriteOutcome};

/// What a conformance case needs from the drive under test.
pub trait Rig {
    /// A drive with a writable cartridge loaded (position unknown, content unknown).
    fn drive(&mut self) -> Box<dyn TapeDrive>;
    /// Write-protects (or releases) the cartridge; the next [`Rig::drive`] sees it.
    /// Returns false when this rig cannot, and the case is skipped with a message.
    fn set_write_protect(&mut self, on: bool) -> bool;
    /// True when blocks read back whole; false when only the first 4 bytes survive.
    fn full_data(&self) -> bool;
    /// The block size the cases use.
    fn block_size(&self) -> u32 {
        4096
    }
    /// Blocks of [`Rig::block_size`] that fit on the cartridge, when known.
    fn capacity_blocks(&self) -> Option<u64>;
    /// Opens the drive, reporting failure instead of panicking (for the busy case).
    fn try_drive(&mut self) -> Result<Box<dyn TapeDrive>, TapeError>;
    /// Makes the next read of logical block `object` fail with a medium error; false when
    /// this rig cannot, and the case is skipped with a message.
    fn inject_read_error(&mut self, object: u64) -> bool;
    /// Takes back an injected read error that is still pending.
    fn clear_read_error(&mut self) {}
}

/// A block of `size` bytes whose first four bytes are `tag` (little-endian).
pub fn stamped_block(tag: u32, size: usize) -> Vec<u8> {
    let mut block: Vec<u8> = (0..size)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(tag.wrapping_mul(7)) as u8
        })
        .collect();
    block[..4].copy_from_slice(&tag.to_le_bytes());
    block
}

fn fresh(rig: &mut dyn Rig) -> (Box<dyn TapeDrive>, usize) {
    let bs = rig.block_size();
    let mut d = rig.drive();
    d.set_block_size(bs).expect("set block size");
    d.rewind().expect("rewind");
    (d, bs as usize)
}

fn write(d: &mut dyn TapeDrive, tag: u32, bs: usize) {
    let outcome = d
        .write_block(&stamped_block(tag, bs))
        .unwrap_or_else(|e| panic!("write block {tag}: {e}"));
    assert_eq!(outcome, WriteOutcome::Written, "write block {tag}");
}

fn expect_block(rig: &dyn Rig, d: &mut dyn TapeDrive, tag: u32, bs: usize) {
    let mut buf = vec![0u8; bs];
    let outcome = d
        .read_block(&mut buf)
        .unwrap_or_else(|e| panic!("read block {tag}: {e}"));
    assert_eq!(outcome, ReadOutcome::Block(bs), "reading block {tag}");
    let got = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    assert_eq!(got, tag, "block read back carries the wrong stamp");
    if rig.full_data() {
        assert!(
            buf == stamped_block(tag, bs),
            "block {tag} read back with different content"
        );
    }
}

fn expect_read(d: &mut dyn TapeDrive, want: ReadOutcome, bs: usize, what: &str) {
    let mut buf = vec![0u8; bs];
    let got = d
        .read_block(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(got, want, "{what}");
}

fn pos(d: &mut dyn TapeDrive) -> u64 {
    d.position().expect("position")
}

/// Lays down the tape used by several cases:
/// objects 0..=4 blocks 0..4, 5 filemark, 6..=8 blocks 10..12, 9 filemark; EOD at 10.
fn two_files(d: &mut dyn TapeDrive, bs: usize) {
    for tag in 0..5 {
        write(d, tag, bs);
    }
    d.write_filemarks(1, false).expect("filemark");
    for tag in 10..13 {
        write(d, tag, bs);
    }
    d.write_filemarks(1, true).expect("immediate filemark");
    assert_eq!(pos(d), 10, "two tape files: 8 blocks + 2 filemarks");
}

/// Blocks and filemarks written read back in order, ending in end of data.
pub fn blocks_and_filemarks_read_back(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.rewind().expect("rewind");
    for tag in 0..5 {
        expect_block(rig, d.as_mut(), tag, bs);
    }
    expect_read(d.as_mut(), ReadOutcome::Filemark, bs, "first filemark");
    assert_eq!(pos(d.as_mut()), 6, "reading a filemark passes it");
    for tag in 10..13 {
        expect_block(rig, d.as_mut(), tag, bs);
    }
    expect_read(d.as_mut(), ReadOutcome::Filemark, bs, "second filemark");
    expect_read(
        d.as_mut(),
        ReadOutcome::EndOfData,
        bs,
        "after the last filemark",
    );
    assert_eq!(pos(d.as_mut()), 10, "reading end of data does not move");
}

/// Logical object numbers count blocks and filemarks, immediate filemarks included.
pub fn positions_count_blocks_and_filemarks(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    assert_eq!(pos(d.as_mut()), 0, "rewind puts the tape at object 0");
    for tag in 0..3 {
        write(d.as_mut(), tag, bs);
    }
    assert_eq!(pos(d.as_mut()), 3);
    d.write_filemarks(1, false).expect("filemark");
    assert_eq!(pos(d.as_mut()), 4);
    d.write_filemarks(2, true).expect("two immediate filemarks");
    assert_eq!(pos(d.as_mut()), 6);
    write(d.as_mut(), 3, bs);
    let st = d.status().expect("status");
    assert_eq!(st.position, Some(7), "status reports the logical position");
}

/// Rewinding, locating or closing the drive right after writing data writes a filemark
/// first, as `st` does, so a tape file is never left open.
pub fn filemark_added_after_writing(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    for tag in 0..3 {
        write(d.as_mut(), tag, bs);
    }
    d.rewind().expect("rewind");
    d.space_to_eod().expect("eod");
    assert_eq!(pos(d.as_mut()), 4, "rewind after writing added a filemark");
    write(d.as_mut(), 3, bs);
    d.locate(0).expect("locate");
    d.space_to_eod().expect("eod");
    assert_eq!(pos(d.as_mut()), 6, "locate after writing added a filemark");
    write(d.as_mut(), 4, bs);
    drop(d);
    let mut d = rig.drive();
    d.space_to_eod().expect("eod");
    assert_eq!(pos(d.as_mut()), 8, "closing after writing added a filemark");
}

/// LOCATE lands on the object asked for; a filemark read there is reported as one.
pub fn locate_reads_the_right_object(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.locate(3).expect("locate 3");
    assert_eq!(pos(d.as_mut()), 3);
    expect_block(rig, d.as_mut(), 3, bs);
    d.locate(7).expect("locate 7");
    expect_block(rig, d.as_mut(), 11, bs);
    d.locate(5).expect("locate 5");
    expect_read(d.as_mut(), ReadOutcome::Filemark, bs, "filemark at 5");
    assert_eq!(pos(d.as_mut()), 6);
    d.locate(0).expect("locate 0");
    let st = d.status().expect("status");
    assert!(st.bot, "locate 0 is BOT: {st:?}");
}

/// LOCATE past end of data fails with a typed error and leaves the tape at end of data.
pub fn locate_beyond_eod_stops_there(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.rewind().expect("rewind");
    match d.locate(15) {
        Err(TapeError::BeyondEndOfData { requested, eod, .. }) => {
            assert_eq!((requested, eod), (15, 10));
        }
        other => panic!("locate beyond end of data gave {other:?}"),
    }
    assert_eq!(pos(d.as_mut()), 10, "the tape is left at end of data");
}

/// fsf/bsf as `mt` does them, with BOT and end of data as outcomes.
pub fn space_filemarks_both_ways(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.rewind().expect("rewind");
    assert_eq!(
        d.space_filemarks(-1).expect("bsf at BOT"),
        SpaceOutcome::BeginningOfTape
    );
    assert_eq!(pos(d.as_mut()), 0);
    assert_eq!(d.space_filemarks(1).expect("fsf"), SpaceOutcome::Done);
    assert_eq!(pos(d.as_mut()), 6, "fsf stops just after the filemark");
    assert_eq!(d.space_filemarks(-1).expect("bsf"), SpaceOutcome::Done);
    assert_eq!(pos(d.as_mut()), 5, "bsf stops just before the filemark");
    assert_eq!(d.space_filemarks(2).expect("fsf 2"), SpaceOutcome::Done);
    assert_eq!(pos(d.as_mut()), 10);
    assert_eq!(
        d.space_filemarks(1).expect("fsf past the last filemark"),
        SpaceOutcome::EndOfData
    );
    assert_eq!(pos(d.as_mut()), 10, "stopped at end of data");
    let st = d.status().expect("status");
    assert!(st.eod, "status shows end of data: {st:?}");
}

/// Appending at end of data starts a new tape file after the last one.
pub fn append_at_end_of_data(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.rewind().expect("rewind");
    d.space_to_eod().expect("eod");
    assert_eq!(pos(d.as_mut()), 10);
    write(d.as_mut(), 20, bs);
    d.write_filemarks(1, false).expect("filemark");
    d.rewind().expect("rewind");
    assert_eq!(d.space_filemarks(2).expect("fsf 2"), SpaceOutcome::Done);
    expect_block(rig, d.as_mut(), 20, bs);
    expect_read(
        d.as_mut(),
        ReadOutcome::Filemark,
        bs,
        "after the appended block",
    );
    expect_read(
        d.as_mut(),
        ReadOutcome::EndOfData,
        bs,
        "end of the appended file",
    );
}

/// Writing in the middle of the tape makes that the new end of data.
pub fn write_mid_tape_truncates(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.locate(6).expect("locate 6");
    write(d.as_mut(), 30, bs);
    d.write_filemarks(1, false).expect("filemark");
    d.space_to_eod().expect("eod");
    assert_eq!(pos(d.as_mut()), 8, "everything after the write is gone");
    d.locate(6).expect("locate 6");
    expect_block(rig, d.as_mut(), 30, bs);
    expect_read(d.as_mut(), ReadOutcome::Filemark, bs, "after the new block");
    expect_read(d.as_mut(), ReadOutcome::EndOfData, bs, "old data is gone");
}

/// In fixed-block mode a read buffer shorter than a block is refused before the tape moves.
pub fn short_buffer_fixed_mode_refused(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    write(d.as_mut(), 0, bs);
    write(d.as_mut(), 1, bs);
    d.rewind().expect("rewind");
    let mut small = vec![0u8; bs / 2];
    match d.read_block(&mut small) {
        Err(TapeError::ShortBuffer { skipped: false, .. }) => {}
        other => panic!("short read in fixed mode gave {other:?}"),
    }
    assert_eq!(pos(d.as_mut()), 0, "the tape did not move");
    expect_block(rig, d.as_mut(), 0, bs);
}

/// In variable-block mode a block longer than the buffer is passed over and reported.
pub fn short_buffer_variable_mode_skips(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    write(d.as_mut(), 0, bs);
    write(d.as_mut(), 1, bs);
    d.set_block_size(0).expect("variable-block mode");
    d.rewind().expect("rewind");
    let mut small = vec![0u8; bs / 2];
    match d.read_block(&mut small) {
        Err(TapeError::ShortBuffer { skipped: true, .. }) => {}
        other => panic!("short read in variable mode gave {other:?}"),
    }
    assert_eq!(pos(d.as_mut()), 1, "the block was passed over");
    let mut big = vec![0u8; bs * 2];
    let got = d.read_block(&mut big).expect("read into a larger buffer");
    assert_eq!(got, ReadOutcome::Block(bs), "variable mode reads one block");
    assert_eq!(u32::from_le_bytes([big[0], big[1], big[2], big[3]]), 1);
}

/// Block sizes outside the drive's limits are refused and leave the mode unchanged;
/// in fixed mode a write of another length is refused.
pub fn block_size_limits(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    let limits = d.block_limits().expect("block limits");
    assert!(
        limits.min >= 1 && limits.max >= bs as u32,
        "limits {limits:?}"
    );
    for too_big in [limits.max.saturating_add(1), 16 * 1024 * 1024] {
        if too_big <= limits.max {
            continue;
        }
        match d.set_block_size(too_big) {
            Err(TapeError::BlockSizeUnsupported { .. }) => {}
            other => panic!("set_block_size({too_big}) gave {other:?}"),
        }
    }
    assert_eq!(d.status().expect("status").block_size, bs as u32);
    match d.write_block(&vec![0u8; bs + 512]) {
        Err(TapeError::WrongBlockLength { .. }) => {}
        other => panic!(
            "writing {} bytes in {bs}-byte mode gave {other:?}",
            bs + 512
        ),
    }
    assert_eq!(pos(d.as_mut()), 0, "nothing was written");
}

/// Status flags: online, BOT, filemark, end of data, block size.
pub fn status_flags(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    let st = d.status().expect("status");
    assert!(st.online && st.bot && !st.door_open, "at BOT: {st:?}");
    assert_eq!(st.block_size, bs as u32);
    assert_eq!(st.position, Some(0));
    write(d.as_mut(), 0, bs);
    d.write_filemarks(1, false).expect("filemark");
    let st = d.status().expect("status");
    assert!(st.filemark && !st.bot, "after a filemark: {st:?}");
    assert_eq!(st.file_number, Some(1));
    assert_eq!(st.block_number, Some(0));
    d.rewind().expect("rewind");
    d.space_to_eod().expect("eod");
    let st = d.status().expect("status");
    assert!(st.eod, "at end of data: {st:?}");
}

/// Early warning: the drive refuses a block (`ENOSPC`), then alternates written/refused
/// as `st` does; a filemark goes on, after which blocks are written until the physical end.
pub fn early_warning_then_end_of_medium(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    let limit = rig.capacity_blocks().map_or(10_000_000, |c| c + 100);
    let mut written = 0u64;
    loop {
        match d.write_block(&stamped_block(written as u32, bs)) {
            Ok(WriteOutcome::Written) => written += 1,
            Ok(WriteOutcome::EarlyWarning) => break,
            Err(e) => panic!("write {written} before early warning: {e}"),
        }
        assert!(written < limit, "no early warning after {written} blocks");
    }
    if let Some(capacity) = rig.capacity_blocks() {
        assert!(
            written * 100 >= capacity * 95 && written < capacity,
            "early warning after {written} of {capacity} blocks"
        );
    }
    assert_eq!(
        pos(d.as_mut()),
        written,
        "the refused block was not written"
    );
    let block = stamped_block(u32::MAX, bs);
    for i in 0..6u64 {
        let want = if i % 2 == 0 {
            WriteOutcome::Written
        } else {
            WriteOutcome::EarlyWarning
        };
        let got = d
            .write_block(&block)
            .expect("write in the early-warning zone");
        assert_eq!(got, want, "write {i} after the first ENOSPC");
        if want == WriteOutcome::Written {
            assert!(d.status().expect("status").early_warning, "EOT flag");
        }
    }
    written += 3;
    assert_eq!(pos(d.as_mut()), written);
    d.write_filemarks(1, false)
        .expect("a filemark goes on in the early-warning zone");
    let mut tail = 0u64;
    let end = loop {
        match d.write_block(&block) {
            Ok(WriteOutcome::Written) => tail += 1,
            Ok(WriteOutcome::EarlyWarning) => {
                panic!("after a filemark, tail write {tail} was refused with early warning")
            }
            Err(e) => break e,
        }
        assert!(tail < limit, "no end of medium after {tail} trailer blocks");
    };
    assert!(
        tail >= 4,
        "only {tail} blocks fit after early warning and a filemark"
    );
    assert!(
        matches!(end, TapeError::EndOfMedium { .. }),
        "the physical end is reported as end of medium, got {end:?}"
    );
    let filemark = d.write_filemarks(1, false);
    assert!(
        matches!(filemark, Err(TapeError::EndOfMedium { .. })),
        "a filemark at the physical end gave {filemark:?}"
    );
    d.rewind().expect("rewind after end of medium");
}

/// A write-protected cartridge reads but refuses writes and filemarks.
pub fn write_protect_refuses_writes(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    write(d.as_mut(), 0, bs);
    d.write_filemarks(1, false).expect("filemark");
    drop(d);
    if !rig.set_write_protect(true) {
        eprintln!("skipped: this rig cannot write-protect its cartridge");
        return;
    }
    let (mut d, bs) = fresh(rig);
    let st = d.status().expect("status");
    assert!(st.write_protected, "status shows write protection: {st:?}");
    let refused = d.write_block(&stamped_block(9, bs));
    let filemark = d.write_filemarks(1, false);
    expect_block(rig, d.as_mut(), 0, bs);
    drop(d);
    rig.set_write_protect(false);
    assert!(
        matches!(refused, Err(TapeError::WriteProtected { .. })),
        "write on a protected cartridge gave {refused:?}"
    );
    assert!(
        matches!(filemark, Err(TapeError::WriteProtected { .. })),
        "filemark on a protected cartridge gave {filemark:?}"
    );
}

/// Unloading makes the drive not ready; loading makes it ready at BOT.
pub fn unload_and_load(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    write(d.as_mut(), 0, bs);
    d.unload().expect("unload");
    let st = d.status().expect("status after unload");
    assert!(!st.online, "not online after unload: {st:?}");
    match d.write_block(&stamped_block(1, bs)) {
        Err(TapeError::NotReady { .. }) => {}
        other => panic!("write with the tape unloaded gave {other:?}"),
    }
    d.load().expect("load");
    let st = d.status().expect("status after load");
    assert!(st.online && st.bot, "ready at BOT after load: {st:?}");
    d.set_block_size(bs as u32).expect("block size");
    expect_block(rig, d.as_mut(), 0, bs);
    expect_read(
        d.as_mut(),
        ReadOutcome::Filemark,
        bs,
        "unload added a filemark",
    );
}

/// Erasing from BOT leaves an empty tape.
pub fn erase_from_bot(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    two_files(d.as_mut(), bs);
    d.rewind().expect("rewind");
    d.erase().expect("erase");
    d.rewind().expect("rewind");
    d.space_to_eod().expect("eod");
    assert_eq!(pos(d.as_mut()), 0, "nothing left after erase");
    expect_read(
        d.as_mut(),
        ReadOutcome::EndOfData,
        bs,
        "reading an erased tape",
    );
}

/// A second open of a drive in use fails with "busy" (naming who holds it where it can).
pub fn second_open_is_busy(rig: &mut dyn Rig) {
    let _held = rig.drive();
    match rig.try_drive() {
        Err(e) if e.is_busy() => {}
        Err(e) => panic!("a second open failed, but not as busy: {e:?}"),
        Ok(_) => panic!("a second open of a drive in use succeeded"),
    }
}

/// The drive keeps its position and block size between opens (a non-rewinding device).
pub fn position_survives_reopening(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    for tag in 0..3 {
        write(d.as_mut(), tag, bs);
    }
    d.write_filemarks(1, false).expect("filemark");
    d.locate(2).expect("locate 2");
    drop(d);
    let mut d = rig.drive();
    assert_eq!(pos(d.as_mut()), 2, "position after reopening");
    assert_eq!(
        d.status().expect("status").block_size,
        bs as u32,
        "block size after reopening"
    );
}

/// A read that fails on the medium is a medium error at that block, not end of data, and
/// the tape stays there (so the caller decides whether to retry or pass over it).
pub fn read_error_is_a_medium_error(rig: &mut dyn Rig) {
    let (mut d, bs) = fresh(rig);
    for tag in 0..5 {
        write(d.as_mut(), tag, bs);
    }
    d.write_filemarks(1, false).expect("filemark");
    d.locate(2).expect("locate 2");
    if !rig.inject_read_error(2) {
        eprintln!("skipped: this rig cannot inject a read error");
        return;
    }
    let mut buf = vec![0u8; bs];
    let got = d.read_block(&mut buf);
    rig.clear_read_error();
    match got {
        Err(TapeError::Medium { position: 2, .. }) => {}
        other => panic!("an injected medium error gave {other:?}"),
    }
    assert_eq!(pos(d.as_mut()), 2, "the tape stayed at the bad block");
    expect_block(rig, d.as_mut(), 2, bs);
}

/// Generates one `#[test]` per conformance case for a rig expression. Extra attributes
/// (such as `#[ignore = "..."]`) go on every test.
#[macro_export]
macro_rules! conformance_tests {
    ($rig:expr $(, #[$attr:meta])*) => {
        $crate::conformance_tests!(@cases ($rig) [$(#[$attr])*]
            blocks_and_filemarks_read_back
            positions_count_blocks_and_filemarks
            filemark_added_after_writing
            locate_reads_the_right_object
            locate_beyond_eod_stops_there
            space_filemarks_both_ways
            append_at_end_of_data
            write_mid_tape_truncates
            short_buffer_fixed_mode_refused
            short_buffer_variable_mode_skips
            block_size_limits
            status_flags
            early_warning_then_end_of_medium
            write_protect_refuses_writes
            unload_and_load
            erase_from_bot
            second_open_is_busy
            position_survives_reopening
            read_error_is_a_medium_error
        );
    };
    (@cases ($rig:expr) [$(#[$attr:meta])*]) => {};
    (@cases ($rig:expr) [$(#[$attr:meta])*] $case:ident $($rest:ident)*) => {
        #[test]
        $(#[$attr])*
        fn $case() {
            let mut rig = $rig;
            $crate::conformance::$case(&mut rig);
        }
        $crate::conformance_tests!(@cases ($rig) [$(#[$attr])*] $($rest)*);
    };
}
