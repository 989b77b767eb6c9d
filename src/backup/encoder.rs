//! The tar encoder: turns the scanned members, in order, into one GNU tar stream (pax
//! records for extended attributes) cut into tape blocks in the ring buffer. It hashes
//! every file with BLAKE3 as it copies it and reports where each member starts and ends
//! in the stream, so positions come from the bytes actually encoded.

use super::entries::Cursor;
use super::reader::{Content, Prefetcher};
use super::ring::Ring;
use super::scan::{Entry, EntryKind};
use super::spans::Spans;
use crate::interrupt::Interrupt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use tar::{EntryType, Header};

/// Files with more than this left to read when the backup is interrupted are cut off
/// (the tape file then ends inside them); smaller remainders are zero-filled so the tape
/// file stays a whole tar archive.
const PAD_ON_INTERRUPT_LIMIT: u64 = 256 << 20;

/// Writes the tar stream into the ring, one block at a time.
pub struct BlockSink {
    ring: Arc<Ring>,
    current: Option<memmap2::MmapMut>,
    pos: usize,
    written: u64,
    /// Once the stream is ended, further bytes (the tar builder's own end marker when it
    /// is dropped) are discarded.
    sealed: bool,
    /// Bytes written while a member's headers are being written, for its span.
    capture: Option<Vec<u8>>,
}

fn writer_stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the writer stopped")
}

impl BlockSink {
    pub fn new(ring: Arc<Ring>) -> BlockSink {
        BlockSink {
            ring,
            current: None,
            pos: 0,
            written: 0,
            sealed: false,
            capture: None,
        }
    }

    /// Starts keeping a copy of what is written (a member's headers).
    fn start_capture(&mut self) {
        self.capture = Some(Vec::with_capacity(1024));
    }

    /// Stops keeping a copy and returns it.
    fn take_capture(&mut self) -> Vec<u8> {
        self.capture.take().unwrap_or_default()
    }

    /// Ends the stream: nothing written afterwards reaches the ring.
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// Bytes of the stream so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The free part of the current block, taking a new block when needed.
    fn space(&mut self) -> io::Result<&mut [u8]> {
        if self.current.is_none() {
            let block = self.ring.take_empty().map_err(|_| writer_stopped())?;
            self.current = Some(block);
            self.pos = 0;
        }
        let pos = self.pos;
        match self.current.as_mut() {
            Some(block) => Ok(&mut block[pos..]),
            None => Err(writer_stopped()),
        }
    }

    fn advance(&mut self, n: usize) -> io::Result<()> {
        self.pos += n;
        self.written += n as u64;
        if self.pos == self.ring.block_size() {
            if let Some(block) = self.current.take() {
                self.ring.put_full(block).map_err(|_| writer_stopped())?;
            }
        }
        Ok(())
    }

    /// Appends `n` zero bytes.
    pub fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let space = self.space()?;
            let k = space.len().min(n.min(usize::MAX as u64) as usize);
            space[..k].fill(0);
            self.advance(k)?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Copies up to `len` bytes from `file` straight into the blocks, hashing them.
    /// Returns the bytes copied (fewer when the file ended early) and the read error, if
    /// one stopped it.
    pub fn copy_from(
        &mut self,
        file: &mut File,
        len: u64,
        hasher: &mut blake3::Hasher,
        interrupt: &Interrupt,
    ) -> io::Result<(u64, Option<io::Error>)> {
        let mut done = 0u64;
        while done < len {
            if interrupt.requested() && len - done > PAD_ON_INTERRUPT_LIMIT {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            if interrupt.requested() {
                break;
            }
            let want = (len - done).min(usize::MAX as u64) as usize;
            let space = self.space()?;
            let k = space.len().min(want);
            match file.read(&mut space[..k]) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&space[..n]);
                    self.advance(n)?;
                    done += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok((done, Some(e))),
            }
        }
        Ok((done, None))
    }

    /// Pads the last block with zeros and hands it over.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.current.is_some() && self.pos > 0 {
            let rest = self.ring.block_size() - self.pos;
            self.zeros(rest as u64)?;
        }
        Ok(())
    }
}

impl Write for BlockSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.sealed {
            return Ok(buf.len());
        }
        let space = self.space()?;
        let n = space.len().min(buf.len());
        space[..n].copy_from_slice(&buf[..n]);
        if let Some(copy) = &mut self.capture {
            copy.extend_from_slice(&buf[..n]);
        }
        self.advance(n)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a member's data came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// Stored as scanned.
    Intact,
    /// Stored whole, but the file changed while it was read (it grew or its mtime moved):
    /// the copy is a consistent prefix of what the file became.
    Changed(String),
    /// The stored data is not the file's: it shrank or could not be read part-way, and
    /// the rest was filled with zeros to keep the archive whole. Not recorded as saved.
    Damaged(String),
}

/// One member in the stream.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Index into the scan's entries.
    pub index: usize,
    /// Byte offset of its first header in the tape file.
    pub start: u64,
    /// Byte offset just after its data and padding.
    pub end: u64,
    /// Data bytes stored (the header's size).
    pub size: u64,
    pub blake3: Option<[u8; 32]>,
    pub integrity: Integrity,
}

/// What the encoder tells the rest of the pipeline.
#[derive(Debug)]
pub enum EncoderEvent {
    /// A member is in the stream.
    Member(Encoded),
    /// A member could not be read at all and is not in the stream.
    Skipped { index: usize, reason: String },
    /// The member being encoded (for progress).
    Current { index: usize },
}

/// How the encoding ended.
#[derive(Debug)]
pub enum EncoderEnd {
    /// Every member and the end-of-archive marker are in the stream.
    Complete { bytes: u64 },
    /// Interrupted: the stream was ended after the last whole member.
    Interrupted { bytes: u64 },
    /// The writer stopped taking blocks (error or full tape).
    WriterStopped { bytes: u64 },
}

fn header_for(entry: &Entry) -> Header {
    let mut h = Header::new_gnu();
    h.set_mode(entry.mode);
    h.set_uid(entry.uid as u64);
    h.set_gid(entry.gid as u64);
    h.set_mtime(entry.mtime_ns.max(0) as u64 / 1_000_000_000);
    if let Some(u) = &entry.user {
        let _ = h.set_username(u);
    }
    if let Some(g) = &entry.group {
        let _ = h.set_groupname(g);
    }
    h.set_size(0);
    h
}

/// Encodes every member handed out by `members` into `sink`, reporting each through
/// `report`. Stops early on `interrupt` or when the writer stops. A file larger than
/// `room` (what is left on the volume) is skipped with the reason.
pub fn encode(
    entries: &mut Cursor,
    members: &mut Prefetcher,
    sink: BlockSink,
    spans: &Spans,
    room: Option<u64>,
    interrupt: &Interrupt,
    report: &mut dyn FnMut(EncoderEvent),
) -> io::Result<EncoderEnd> {
    let mut builder = tar::Builder::new(sink);
    let result = encode_members(
        entries,
        members,
        &mut builder,
        spans,
        room,
        interrupt,
        report,
    );
    members.stop();
    let bytes = builder.get_ref().written();
    let end = match result {
        Ok(complete) => {
            // End-of-archive marker, then the last block padded.
            let ended = builder.finish().and_then(|()| builder.get_mut().finish());
            let bytes = builder.get_ref().written();
            match ended {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    EncoderEnd::WriterStopped { bytes }
                }
                Err(e) => {
                    builder.get_mut().seal();
                    return Err(e);
                }
                Ok(()) if complete => EncoderEnd::Complete { bytes },
                Ok(()) => EncoderEnd::Interrupted { bytes },
            }
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => EncoderEnd::WriterStopped { bytes },
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            // Cut off inside a large member: hand over what is there, without an
            // end-of-archive marker (the tape file ends inside that member).
            let _ = builder.get_mut().finish();
            EncoderEnd::Interrupted { bytes }
        }
        Err(e) => {
            builder.get_mut().seal();
            return Err(e);
        }
    };
    builder.get_mut().seal();
    Ok(end)
}

/// Ok(true) when all members were encoded, Ok(false) when interrupted between members.
fn encode_members(
    entries: &mut Cursor,
    members: &mut Prefetcher,
    builder: &mut tar::Builder<BlockSink>,
    spans: &Spans,
    room: Option<u64>,
    interrupt: &Interrupt,
    report: &mut dyn FnMut(EncoderEvent),
) -> io::Result<bool> {
    while let Some((index, content)) = members.next() {
        if interrupt.requested() {
            return Ok(false);
        }
        let Some(entry) = entries.get(index) else {
            continue;
        };
        report(EncoderEvent::Current { index });
        if let Some(room) = room.filter(|r| entry.kind == EntryKind::File && entry.size > *r) {
            report(EncoderEvent::Skipped {
                index,
                reason: format!(
                    "{} is more than the {} left on the volume; continuing a file on another \
                     volume is not supported yet",
                    crate::units::format_size(entry.size),
                    crate::units::format_size(room)
                ),
            });
            continue;
        }
        match encode_one(entry, content, builder, spans, interrupt)? {
            Ok(mut enc) => {
                enc.index = index;
                report(EncoderEvent::Member(enc));
            }
            Err(reason) => report(EncoderEvent::Skipped { index, reason }),
        }
    }
    Ok(!interrupt.requested())
}

/// Encodes one member; the inner error is a reason to skip it (nothing was written).
fn encode_one(
    entry: &Entry,
    content: Content,
    builder: &mut tar::Builder<BlockSink>,
    spans: &Spans,
    interrupt: &Interrupt,
) -> io::Result<Result<Encoded, String>> {
    // Open large files before writing anything, so an unreadable one leaves no trace.
    let mut large = None;
    match &content {
        Content::Unreadable(e) => return Ok(Err(format!("cannot open: {e}"))),
        Content::Large => match super::reader::open_regular(&entry.path) {
            Ok(f) => large = Some(f),
            Err(e) => return Ok(Err(format!("cannot open: {e}"))),
        },
        _ => {}
    }
    let start = builder.get_ref().written();
    let source =
        matches!(entry.kind, EntryKind::File).then(|| (entry.path.clone(), entry.mtime_ns));
    spans.begin(start, &entry.name, source);
    builder.get_mut().start_capture();
    if !entry.xattrs.is_empty() {
        let keys: Vec<String> = entry
            .xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{k}"))
            .collect();
        builder.append_pax_extensions(
            keys.iter()
                .map(String::as_str)
                .zip(entry.xattrs.iter().map(|(_, v)| v.as_slice())),
        )?;
    }
    let mut header = header_for(entry);
    let mut hash = None;
    let mut integrity = Integrity::Intact;
    let name = entry.name.as_str();
    match &entry.kind {
        EntryKind::File => {
            header.set_entry_type(EntryType::Regular);
            header.set_size(entry.size);
            builder.append_data(&mut header, name, io::empty())?;
            let headers = builder.get_mut().take_capture();
            spans.headers_done(builder.get_ref().written(), entry.size, headers);
            let mut hasher = blake3::Hasher::new();
            let mut small_hash = None;
            let stored = match content {
                Content::Small {
                    data,
                    error,
                    blake3,
                } => {
                    let n = data.len().min(entry.size as usize);
                    builder.get_mut().write_all(&data[..n])?;
                    // The reader hashed exactly what it read (never more than the size).
                    small_hash = Some(blake3);
                    if let Some(e) = error {
                        integrity = Integrity::Damaged(format!("read error after {n} bytes: {e}"));
                    }
                    n as u64
                }
                Content::Large => {
                    let Some(file) = large.as_mut() else {
                        return Ok(Err("cannot open".into()));
                    };
                    let (n, error) =
                        builder
                            .get_mut()
                            .copy_from(file, entry.size, &mut hasher, interrupt)?;
                    if let Some(e) = error {
                        integrity = Integrity::Damaged(format!("read error after {n} bytes: {e}"));
                    } else if n < entry.size && interrupt.requested() {
                        integrity = Integrity::Damaged("interrupted while reading".into());
                    } else if let Ok(meta) = file.metadata() {
                        let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
                        if meta.len() > entry.size || mtime != entry.mtime_ns {
                            integrity =
                                Integrity::Changed("the file changed while it was read".into());
                        }
                    }
                    n
                }
                Content::None | Content::Unreadable(_) => 0,
            };
            if stored < entry.size {
                if integrity == Integrity::Intact {
                    integrity = Integrity::Damaged(format!(
                        "the file shrank from {} to {stored} bytes while it was read; \
                         zero-filled",
                        entry.size
                    ));
                }
                builder.get_mut().zeros(entry.size - stored)?;
            }
            let pad = (512 - entry.size % 512) % 512;
            builder.get_mut().zeros(pad)?;
            hash = Some(small_hash.unwrap_or_else(|| *hasher.finalize().as_bytes()));
        }
        EntryKind::Dir => {
            header.set_entry_type(EntryType::Directory);
            builder.append_data(&mut header, name, io::empty())?;
        }
        EntryKind::Symlink { target } => {
            header.set_entry_type(EntryType::Symlink);
            builder.append_link(&mut header, name, target)?;
        }
        EntryKind::HardLink { target } => {
            header.set_entry_type(EntryType::Link);
            builder.append_link(&mut header, name, target)?;
        }
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            header.set_entry_type(if matches!(entry.kind, EntryKind::CharDevice { .. }) {
                EntryType::Char
            } else {
                EntryType::Block
            });
            header.set_device_major(*major)?;
            header.set_device_minor(*minor)?;
            builder.append_data(&mut header, name, io::empty())?;
        }
        EntryKind::Fifo => {
            header.set_entry_type(EntryType::Fifo);
            builder.append_data(&mut header, name, io::empty())?;
        }
    }
    if builder.get_ref().capture.is_some() {
        // A member of headers only: its span ends where its headers do.
        let headers = builder.get_mut().take_capture();
        spans.headers_done(builder.get_ref().written(), 0, headers);
    }
    let size = if matches!(entry.kind, EntryKind::File) {
        entry.size
    } else {
        0
    };
    Ok(Ok(Encoded {
        index: 0,
        start,
        end: builder.get_ref().written(),
        size,
        blake3: hash,
        integrity,
    }))
}
