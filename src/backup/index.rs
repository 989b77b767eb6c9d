//! The on-tape index: after a backup's data, a tape file holding one tar member
//! `TAPEDECK-INDEX-<uuid>.jsonl.zst`: a line describing the backup, then one JSON line per
//! member with its place on tape. It is spooled to a temporary file while the backup
//! runs, so its size never weighs on memory, and lets a catalogue be rebuilt from tapes.

use crate::tape::{TapeDrive, TapeError, WriteOutcome};
use serde::Serialize;
use std::fs::File;
use std::io::{self, Read, Seek, Write};

/// The index's first line.
#[derive(Debug, Clone, Serialize)]
pub struct IndexHeader<'a> {
    pub format: u32,
    pub uuid: &'a str,
    pub job: Option<&'a str>,
    pub label: Option<&'a str>,
    pub kind: &'a str,
    pub parent: Option<&'a str>,
    pub started: String,
    pub tapedeck: &'a str,
    pub block_size: u32,
}

/// Where one part of a member is.
#[derive(Debug, Clone, Serialize)]
pub struct IndexSegment<'a> {
    pub volume: &'a str,
    pub tape_file: u64,
    pub block: u64,
    pub offset: u64,
    pub file_offset: u64,
    pub length: u64,
}

/// One member's line.
#[derive(Debug, Clone, Serialize)]
pub struct IndexRecord<'a> {
    pub path: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
    pub link: Option<&'a str>,
    pub blake3: Option<String>,
    pub segments: Vec<IndexSegment<'a>>,
    /// Inode number when scanned (what an incremental backup compares), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// Status change time in nanoseconds since the epoch, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctime: Option<i64>,
}

/// The closing line: how the backup ended.
#[derive(Debug, Clone, Serialize)]
pub struct IndexTrailer<'a> {
    pub finished: String,
    pub status: &'a str,
    pub files: u64,
    pub bytes: u64,
}

pub struct IndexWriter {
    encoder: zstd::Encoder<'static, File>,
    records: u64,
}

impl IndexWriter {
    pub fn new(header: &IndexHeader<'_>) -> io::Result<IndexWriter> {
        let spool = tempfile::tempfile()?;
        let mut encoder = zstd::Encoder::new(spool, 3)?;
        // A damaged index then fails to decompress instead of reading as other records.
        encoder.include_checksum(true)?;
        let mut w = IndexWriter {
            encoder,
            records: 0,
        };
        w.line(header)?;
        Ok(w)
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.encoder, value)?;
        self.encoder.write_all(b"\n")
    }

    pub fn add(&mut self, record: &IndexRecord<'_>) -> io::Result<()> {
        self.records += 1;
        self.line(record)
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the trailer and the index as the next tape file (without its filemark).
    pub fn write_to_tape(
        mut self,
        trailer: &IndexTrailer<'_>,
        uuid: &str,
        drive: &mut dyn TapeDrive,
        block_size: usize,
    ) -> Result<(), IndexError> {
        self.line(trailer)?;
        let mut spool = self.encoder.finish()?;
        let len = spool.stream_position()?;
        spool.rewind()?;
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o444);
        header.set_mtime(jiff::Timestamp::now().as_second().max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        let mut out = TapeBlocks {
            drive,
            block: Vec::with_capacity(block_size),
            size: block_size,
        };
        {
            let mut builder = tar::Builder::new(&mut out);
            builder.append_data(&mut header, index_member(uuid), (&mut spool).take(len))?;
            builder.finish()?;
        }
        out.finish()?;
        Ok(())
    }
}

/// A time as the index writes it: RFC 3339 in UTC, to the second (as the catalogue keeps
/// it), so a rebuilt catalogue gets the very same times back.
pub fn index_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// The index member's name.
pub fn index_member(uuid: &str) -> String {
    format!("TAPEDECK-INDEX-{uuid}.jsonl.zst")
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("writing the index: {0}")]
    Io(#[from] io::Error),
    #[error("writing the index: {0}")]
    Tape(#[from] TapeError),
    #[error("writing the index: the tape reached early warning")]
    EndOfTape,
}

/// A `Write` that cuts what it gets into tape blocks.
struct TapeBlocks<'a> {
    drive: &'a mut dyn TapeDrive,
    block: Vec<u8>,
    size: usize,
}

impl TapeBlocks<'_> {
    fn put(&mut self) -> Result<(), IndexError> {
        self.block.resize(self.size, 0);
        match self.drive.write_block(&self.block)? {
            WriteOutcome::Written => {}
            WriteOutcome::EarlyWarning => return Err(IndexError::EndOfTape),
        }
        self.block.clear();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), IndexError> {
        if !self.block.is_empty() {
            self.put()?;
        }
        Ok(())
    }
}

impl Write for TapeBlocks<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.size - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == self.size {
            self.put().map_err(io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
