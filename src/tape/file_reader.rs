//! Reading one tape file as a byte stream: blocks are read from the drive as the reader
//! asks for bytes, and the filemark (or end of data) that ends the tape file is the end of
//! the stream. Restore, verify and catalogue rebuild read tar archives through this.

use super::{ReadOutcome, TapeDrive, TapeError};
use std::io;
use std::sync::Arc;

/// Block buffers kept for reuse while others still hold earlier blocks.
const SPARE_BLOCKS: usize = 16;

/// An [`io::Read`] over the tape file at the drive's current position.
pub struct TapeFileReader<'d> {
    drive: &'d mut dyn TapeDrive,
    /// The last block read; shared with whoever still needs it (a hashing thread) while
    /// the next one goes into another buffer.
    buf: Arc<Vec<u8>>,
    /// Earlier block buffers, reused once nobody else holds them.
    spare: Vec<Arc<Vec<u8>>>,
    /// Bytes of `buf` holding the last block read.
    len: usize,
    /// Next byte of `buf` to hand out.
    at: usize,
    /// The tape file ended: a filemark was read (the tape is after it) or end of data.
    ended: Option<ReadOutcome>,
    /// Blocks read so far.
    blocks: u64,
}

impl<'d> TapeFileReader<'d> {
    /// Reads from the current position with blocks of up to `block_size` bytes.
    pub fn new(drive: &'d mut dyn TapeDrive, block_size: usize) -> TapeFileReader<'d> {
        TapeFileReader {
            drive,
            buf: Arc::new(vec![0; block_size.max(512)]),
            spare: Vec::new(),
            len: 0,
            at: 0,
            ended: None,
            blocks: 0,
        }
    }

    /// Leaves out the first `n` bytes (an offset inside the first block).
    pub fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            if self.at == self.len && !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tape file ended before the offset",
                ));
            }
            let k = n.min((self.len - self.at) as u64) as usize;
            self.at += k;
            n -= k as u64;
        }
        Ok(())
    }

    /// How the tape file ended, once it has: `Filemark` (the tape is after it) or
    /// `EndOfData`.
    pub fn ended(&self) -> Option<ReadOutcome> {
        self.ended
    }

    /// The block the next bytes come from, shared (no copy), and the offset of the next
    /// byte in it: what [`io::BufRead::fill_buf`] returns is `block[at..]`.
    pub fn shared_block(&self) -> (Arc<Vec<u8>>, usize) {
        (self.buf.clone(), self.at)
    }

    /// Blocks read from the drive so far.
    pub fn blocks_read(&self) -> u64 {
        self.blocks
    }

    /// Reads the next block; false at the end of the tape file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.ended.is_some() {
            return Ok(false);
        }
        let size = self.buf.len();
        if Arc::get_mut(&mut self.buf).is_none() {
            // Still held: read into a free spare (or a new buffer) instead.
            let free = self.spare.iter().position(|b| Arc::strong_count(b) == 1);
            let next = match free {
                Some(i) => self.spare.swap_remove(i),
                None => Arc::new(vec![0; size]),
            };
            let held = std::mem::replace(&mut self.buf, next);
            if self.spare.len() < SPARE_BLOCKS {
                self.spare.push(held);
            }
        }
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            return Err(io::Error::other("a block buffer is still shared"));
        };
        match self.drive.read_block(buf) {
            Ok(ReadOutcome::Block(n)) => {
                self.blocks += 1;
                self.len = n;
                self.at = 0;
                Ok(true)
            }
            Ok(end) => {
                self.ended = Some(end);
                self.len = 0;
                self.at = 0;
                Ok(false)
            }
            Err(e) => Err(tape_io_error(e)),
        }
    }
}

/// A drive error as an I/O error, keeping the [`TapeError`] as its source so callers can
/// tell a medium error from the end of the stream.
pub fn tape_io_error(e: TapeError) -> io::Error {
    io::Error::other(e)
}

impl io::Read for TapeFileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.at == self.len && !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.len - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The block read last, handed out without a copy (restore hashes and writes from it).
impl io::BufRead for TapeFileReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at == self.len && !self.fill()? {
            return Ok(&[]);
        }
        Ok(&self.buf[self.at..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::{Changer, Element};
    use crate::vlib::{InitOptions, Library};
    use std::io::Read;

    #[test]
    fn a_tape_file_reads_as_its_bytes_and_ends_at_the_filemark() {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions {
            time_scale: 0.0,
            ..InitOptions::default()
        };
        let lib = Library::init(dir.path(), &opts).unwrap();
        lib.changer()
            .move_medium(Element::Slot(1), Element::Drive(0))
            .unwrap();
        let mut drive: Box<dyn TapeDrive> = Box::new(lib.open_drive("lto9").unwrap());
        drive.set_block_size(1024).unwrap();
        let data: Vec<u8> = (0..3072u32).map(|i| (i % 251) as u8).collect();
        for block in data.chunks(1024) {
            drive.write_block(block).unwrap();
        }
        drive.write_filemarks(1, false).unwrap();
        drive.write_block(&[7; 1024]).unwrap();
        drive.rewind().unwrap();

        let mut r = TapeFileReader::new(drive.as_mut(), 1024);
        r.skip(100).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, data[100..]);
        assert_eq!(r.ended(), Some(ReadOutcome::Filemark));
        assert_eq!(r.blocks_read(), 3);
        // The tape is after the filemark: the next tape file follows.
        let mut next = TapeFileReader::new(drive.as_mut(), 1024);
        let mut rest = Vec::new();
        next.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, vec![7; 1024]);
        // Rewinding after a write closed that tape file with a filemark too.
        assert_eq!(next.ended(), Some(ReadOutcome::Filemark));
        let mut after = TapeFileReader::new(drive.as_mut(), 1024);
        assert_eq!(after.read(&mut [0; 10]).unwrap(), 0);
        assert_eq!(after.ended(), Some(ReadOutcome::EndOfData));
    }
}
