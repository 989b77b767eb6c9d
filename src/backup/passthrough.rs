//! The dd strategy's encoder: tar archives made elsewhere (files, FIFOs, standard input)
//! pass through unchanged into the ring as one tar stream, and are parsed on the way so
//! every member is recorded as if tapedeck had encoded it: its place in the stream, its
//! metadata, the BLAKE3 of its data, and the header bytes the writer needs to continue it
//! on the next volume.
//!
//! Several inputs become one archive: each input's end-of-archive zero records (and what
//! follows them) are left out, and one end-of-archive marker closes the stream. GNU long
//! names and links (`L`, `K`), pax headers (`x`, `g`: path, linkpath, size, times, owner,
//! `SCHILY.xattr.*`) and GNU sparse members are understood (the headers are decoded by
//! [`crate::tarfmt::HeaderDecoder`] as the bytes pass); member types that cannot be
//! catalogued pass through and are reported. The bytes are never changed.
//!
//! An input must start with a tar header (or an empty archive's zero record): that is
//! checked when it is opened, before anything is written.

use super::encoder::{BlockSink, Encoded, EncoderEnd, EncoderEvent, Integrity};
use super::entries::{EntryLog, CHUNK};
use super::scan::{Entry, EntryKind};
use super::spans::Spans;
use super::telemetry::Telemetry;
use crate::interrupt::Interrupt;
use crate::job::{Event, Events};
use crate::tarfmt::{self, ArchiveError, HeaderDecoder, MemberHeader, MemberKind, Step, RECORD};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A member in flight with more than this left to copy when the backup is interrupted is
/// cut off (the tape file ends inside it); a smaller rest is zero-filled, as the tar
/// encoder does.
const PAD_ON_INTERRUPT_LIMIT: u64 = 256 << 20;

/// Input is read in pieces of this size.
const READ_BUFFER: usize = 1 << 20;

/// How often the member being copied is shown in the progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// One tar archive to pass through, opened and checked.
pub struct TarInput {
    /// The path as given, or `stdin`.
    pub name: String,
    reader: Box<dyn Read + Send>,
}

impl std::fmt::Debug for TarInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarInput")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why an input cannot be passed through (the operator's input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{name}: {source}")]
    Open { name: String, source: io::Error },
    #[error("{name} is not a tar archive: {reason}")]
    NotTar { name: String, reason: String },
}

/// Opens `path` (`-` is standard input; a FIFO waits for its writer) and checks that it
/// starts like a tar archive. Nothing of it is lost: the bytes read to check it are
/// passed on first.
pub fn open(path: &Path) -> Result<TarInput, InputError> {
    if path.as_os_str() == "-" {
        return check("stdin".into(), Box::new(io::stdin()));
    }
    let name = path.display().to_string();
    let open_err = |source| InputError::Open {
        name: name.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if meta.is_dir() {
        return Err(InputError::NotTar {
            name,
            reason: "it is a directory (give directories as PATH with --strategy direct or \
                     tar)"
                .into(),
        });
    }
    let file = File::open(path).map_err(open_err)?;
    check(name, Box::new(file))
}

/// Checks that `reader` starts with a tar header or a zero record and keeps the bytes
/// read for the copy.
pub fn check(name: String, mut reader: Box<dyn Read + Send>) -> Result<TarInput, InputError> {
    let mut first = [0u8; RECORD];
    let n = read_full(&mut reader, &mut first).map_err(|source| InputError::Open {
        name: name.clone(),
        source,
    })?;
    let not_tar = |reason: String| InputError::NotTar {
        name: name.clone(),
        reason,
    };
    if n == 0 {
        return Err(not_tar("it is empty".into()));
    }
    if n < RECORD {
        return Err(not_tar(format!(
            "it holds {n} bytes, less than one tar header"
        )));
    }
    if !tarfmt::is_zero(&first) && !tarfmt::checksum_ok(&first) {
        return Err(not_tar(
            "its first 512 bytes are not a tar header (the checksum does not match)".into(),
        ));
    }
    let reader = Box::new(io::Cursor::new(first.to_vec()).chain(reader));
    Ok(TarInput { name, reader })
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A member name as the catalogue keeps it: without leading `/` and `./`.
fn catalogue_name(raw: &str) -> &str {
    let mut name = raw;
    loop {
        if let Some(rest) = name.strip_prefix("./") {
            name = rest;
        } else if let Some(rest) = name.strip_prefix('/') {
            name = rest;
        } else if name == "." {
            return "";
        } else {
            return name;
        }
    }
}

/// How a member went.
enum MemberEnd {
    /// Whole; the input bytes its data took (padding included).
    Copied(u64),
    /// Interrupted in its data with little left: zero-filled, the stream ends after it.
    Interrupted,
}

/// How a member's data came through.
enum DataEnd {
    Whole,
    /// Zero-filled from `copied` bytes on: interrupted, or the input ended or failed.
    ZeroFilled {
        copied: u64,
        reason: String,
        input_failed: bool,
    },
}

/// Copies archives into the stream.
struct Copier<'a> {
    sink: BlockSink,
    spans: &'a Spans,
    log: &'a EntryLog,
    interrupt: &'a Interrupt,
    telemetry: &'a Telemetry,
    events: &'a Events,
    report: &'a mut dyn FnMut(EncoderEvent),
    /// Entries of the chunk being filled (published when full or at the end).
    entries: Vec<Entry>,
    /// Events about those entries, reported once they are published.
    held: Vec<EncoderEvent>,
    next_index: usize,
    files_done: u64,
    bytes_read: u64,
    shown: Instant,
}

impl Copier<'_> {
    /// Adds an entry and the event about it; the event is reported once the entry can be
    /// read from the log (the recorder looks it up by index).
    fn push(&mut self, entry: Entry, event: impl FnOnce(usize) -> EncoderEvent) {
        let index = self.next_index;
        self.next_index += 1;
        self.entries.push(entry);
        self.held.push(event(index));
        if self.entries.len() == CHUNK {
            self.publish();
        }
    }

    fn publish(&mut self) {
        if !self.entries.is_empty() {
            // A closed log means the backup is ending; the events still go out.
            let _ = self.log.publish(std::mem::take(&mut self.entries));
        }
        for ev in self.held.drain(..) {
            (self.report)(ev);
        }
    }

    fn show(&mut self, name: &str, large: bool) {
        if large || self.shown.elapsed() >= PROGRESS_EVERY {
            self.shown = Instant::now();
            let (files, bytes) = (self.files_done, self.bytes_read);
            self.telemetry.update(|s| {
                s.files_done = files;
                s.bytes_read = bytes;
                s.current_file.clear();
                s.current_file.push('/');
                s.current_file.push_str(name);
            });
        }
    }

    /// Copies one archive up to its end-of-archive marker; true when interrupted between
    /// members.
    fn copy_input(&mut self, input: TarInput) -> io::Result<bool> {
        let name = input.name;
        let mut r = BufReader::with_capacity(READ_BUFFER, input.reader);
        let mut decoder = HeaderDecoder::new();
        // The header records of the member being read, as they came.
        let mut headers: Vec<u8> = Vec::new();
        let mut in_sparse_header = false;
        let mut record = [0u8; RECORD];
        let mut offset = 0u64;
        loop {
            if headers.is_empty() && self.interrupt.requested() {
                return Ok(true);
            }
            let n = read_full(&mut r, &mut record)
                .map_err(|e| io::Error::new(e.kind(), format!("reading {name}: {e}")))?;
            if n < RECORD && in_sparse_header {
                return Err(invalid(format!(
                    "{name} ends inside a sparse header: the archive is cut short"
                )));
            }
            if n == 0 && headers.is_empty() {
                tracing::debug!("{name} ended without an end-of-archive marker");
                return Ok(false);
            }
            if n < RECORD {
                self.write_orphan_headers(&mut headers)?;
                return Err(invalid(format!(
                    "{name} ends inside a tar header at byte {offset}: the archive is cut short"
                )));
            }
            let step = match decoder.record(&record, offset) {
                Ok(step) => step,
                Err(e) => {
                    self.write_orphan_headers(&mut headers)?;
                    return Err(invalid(match e {
                        ArchiveError::NotTar { .. } => format!(
                            "{name}: the record at byte {offset} is not a tar header (its \
                             checksum does not match): the archive is damaged"
                        ),
                        e => format!("{name}: {e}: the archive is damaged"),
                    }));
                }
            };
            offset += RECORD as u64;
            in_sparse_header = matches!(step, Step::SparseRecord);
            match step {
                Step::End => {
                    self.write_orphan_headers(&mut headers)?;
                    self.skip_trailer(&mut r, &name, offset)?;
                    return Ok(false);
                }
                Step::Extension { size } => {
                    let mut data = vec![0u8; (size + tarfmt::padding(size)) as usize];
                    if read_full(&mut r, &mut data)? < data.len() {
                        self.write_orphan_headers(&mut headers)?;
                        return Err(invalid(format!(
                            "{name} ends inside an extended header: the archive is cut short"
                        )));
                    }
                    offset += data.len() as u64;
                    decoder.extension(&data[..size as usize]);
                    headers.extend_from_slice(&record);
                    headers.extend_from_slice(&data);
                }
                Step::SparseRecord => headers.extend_from_slice(&record),
                Step::Member(header) => {
                    headers.extend_from_slice(&record);
                    let headers = std::mem::take(&mut headers);
                    match self.copy_member(&mut r, &name, headers, *header)? {
                        MemberEnd::Copied(n) => offset += n,
                        MemberEnd::Interrupted => return Ok(true),
                    }
                }
            }
        }
    }

    /// Extended headers the input ended after, with no member: written as they are.
    fn write_orphan_headers(&mut self, headers: &mut Vec<u8>) -> io::Result<()> {
        if headers.is_empty() {
            return Ok(());
        }
        let start = self.sink.written();
        self.spans.begin(start, "", None);
        self.spans
            .headers_done(start + headers.len() as u64, 0, headers.clone());
        self.sink.write_all(headers)?;
        headers.clear();
        Ok(())
    }

    /// After the end-of-archive marker: reads the input to its end (so a writer on a pipe
    /// is not cut off) and warns when more than zeros follows.
    fn skip_trailer(&mut self, r: &mut dyn BufRead, name: &str, at: u64) -> io::Result<()> {
        let mut extra = 0u64;
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            if extra == 0 {
                if let Some(i) = buf.iter().position(|b| *b != 0) {
                    extra = 1 + (buf.len() - i - 1) as u64;
                }
            } else {
                extra += buf.len() as u64;
            }
            let n = buf.len();
            r.consume(n);
        }
        if extra > 0 {
            let message = format!(
                "{name}: {extra} bytes after its end-of-archive marker (at byte {at}) are left \
                 out, as GNU tar leaves them out"
            );
            tracing::warn!("{message}");
            self.events.send(Event::Warning { message });
        }
        Ok(())
    }

    /// Copies one member: its header records `headers` (as read, decoded into `header`)
    /// and its data.
    fn copy_member(
        &mut self,
        r: &mut BufReader<Box<dyn Read + Send>>,
        input: &str,
        headers: Vec<u8>,
        header: MemberHeader,
    ) -> io::Result<MemberEnd> {
        let data_size = header.size;
        let raw_name = &header.name;
        let raw_text = String::from_utf8_lossy(raw_name).into_owned();
        let start = self.sink.written();
        let data_start = start + headers.len() as u64;
        // No source to read the data again from after a write error: it came from a stream.
        self.spans.begin(start, &raw_text, None);
        self.spans
            .headers_done(data_start, data_size, headers.clone());
        self.sink.write_all(&headers)?;

        // What the member is, for the catalogue.
        let shown_name = String::from_utf8_lossy(header.file_name()).into_owned();
        let link = header.link.as_deref().unwrap_or_default();
        let (major, minor) = header.device;
        let kind = match header.kind {
            MemberKind::File => Ok(EntryKind::File),
            MemberKind::Dir => Ok(EntryKind::Dir),
            MemberKind::Symlink => Ok(EntryKind::Symlink {
                target: PathBuf::from(OsStr::from_bytes(link)),
            }),
            MemberKind::HardLink => Ok(EntryKind::HardLink {
                target: catalogue_name(&String::from_utf8_lossy(link)).to_string(),
            }),
            MemberKind::CharDevice => Ok(EntryKind::CharDevice { major, minor }),
            MemberKind::BlockDevice => Ok(EntryKind::BlockDevice { major, minor }),
            MemberKind::Fifo => Ok(EntryKind::Fifo),
            MemberKind::Continuation { .. } => {
                Err("it continues a member from an earlier volume".to_string())
            }
            MemberKind::Other(other) => Err(format!(
                "tar member type `{}` cannot be catalogued",
                (other as char).escape_default()
            )),
        };
        let is_file = matches!(kind, Ok(EntryKind::File));
        let file_size = match &header.sparse {
            Some(sparse) => sparse.real_size,
            None if is_file => data_size,
            None => 0,
        };
        let name = catalogue_name(&shown_name).to_string();
        self.show(&name, data_size >= 64 << 20);

        // The data, hashed as it passes (a sparse member's stored data is not the file).
        let mut hasher = (is_file && header.sparse.is_none()).then(blake3::Hasher::new);
        let end = self.copy_data(r, data_size, hasher.as_mut())?;
        let integrity = match &end {
            DataEnd::Whole => Integrity::Intact,
            DataEnd::ZeroFilled { copied, reason, .. } => {
                Integrity::Damaged(format!("{reason} after {copied} of {data_size} bytes"))
            }
        };
        let end_offset = self.sink.written();
        if let DataEnd::ZeroFilled { copied, .. } = &end {
            self.bytes_read += copied;
        } else {
            self.bytes_read += data_size;
        }
        self.files_done += 1;

        if name.is_empty() {
            // The archive's top directory (`./`): nothing to find it by.
            tracing::debug!("{input}: member `{raw_text}` is not catalogued");
        } else {
            let text = |v: &Option<Vec<u8>>| -> Option<Arc<str>> {
                v.as_deref()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(Arc::from)
            };
            let mtime_ns = header.mtime_ns;
            let entry = Entry {
                path: PathBuf::from(format!("/{name}")),
                name: name.clone(),
                kind: kind.clone().unwrap_or(EntryKind::File),
                size: file_size,
                mode: header.mode,
                uid: header.uid.min(u32::MAX as u64) as u32,
                gid: header.gid.min(u32::MAX as u64) as u32,
                user: text(&header.user),
                group: text(&header.group),
                mtime_ns,
                // Not in a tar header: no inode; the change time only from pax.
                ino: 0,
                ctime_ns: header.ctime_ns.unwrap_or(mtime_ns),
                xattrs: header.xattrs.into_iter().collect(),
            };
            let not_utf8 = std::str::from_utf8(raw_name).is_err();
            let skip_reason = match (&kind, not_utf8) {
                (_, true) => Some(
                    "its name is not valid UTF-8 (the catalogue needs UTF-8 names)".to_string(),
                ),
                (Err(reason), _) => Some(reason.clone()),
                _ => None,
            };
            match skip_reason {
                Some(reason) => self.push(entry, |index| EncoderEvent::Skipped {
                    index,
                    reason: format!("{reason}; it is in the tape file but not catalogued"),
                }),
                None => {
                    let blake3 = hasher
                        .filter(|_| matches!(end, DataEnd::Whole))
                        .map(|h| *h.finalize().as_bytes());
                    self.push(entry, |index| {
                        EncoderEvent::Member(Encoded {
                            index,
                            start,
                            end: end_offset,
                            size: file_size,
                            blake3,
                            integrity,
                        })
                    });
                }
            }
        }
        match end {
            DataEnd::ZeroFilled {
                input_failed: true,
                reason,
                ..
            } => Err(invalid(format!(
                "{input}: {reason} inside member `{raw_text}`: the archive is cut short"
            ))),
            DataEnd::ZeroFilled { .. } => Ok(MemberEnd::Interrupted),
            DataEnd::Whole => Ok(MemberEnd::Copied(data_size + tarfmt::padding(data_size))),
        }
    }

    /// Copies `size` bytes of data and the padding after them from `r`, hashing the
    /// data. An interrupt with little left, or an input that ends or fails, zero-fills
    /// the rest so the stream stays a whole archive; an interrupt with much left cuts the
    /// member off (`Interrupted` error).
    fn copy_data(
        &mut self,
        r: &mut dyn BufRead,
        size: u64,
        mut hasher: Option<&mut blake3::Hasher>,
    ) -> io::Result<DataEnd> {
        let total = size.saturating_add(tarfmt::padding(size));
        let mut done = 0u64;
        while done < total {
            if self.interrupt.requested() {
                if size.saturating_sub(done) > PAD_ON_INTERRUPT_LIMIT {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
                }
                self.sink.zeros(total - done)?;
                return Ok(DataEnd::ZeroFilled {
                    copied: done.min(size),
                    reason: "interrupted".into(),
                    input_failed: false,
                });
            }
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.sink.zeros(total - done)?;
                    return Ok(DataEnd::ZeroFilled {
                        copied: done.min(size),
                        reason: format!("read error ({e})"),
                        input_failed: true,
                    });
                }
            };
            if buf.is_empty() {
                self.sink.zeros(total - done)?;
                return Ok(DataEnd::ZeroFilled {
                    copied: done.min(size),
                    reason: "the input ended".into(),
                    input_failed: true,
                });
            }
            let k = buf
                .len()
                .min((total - done).min(usize::MAX as u64) as usize);
            if let Some(h) = hasher.as_deref_mut() {
                // Only the data is hashed, not the padding after it.
                let data = (size.saturating_sub(done)).min(k as u64) as usize;
                h.update(&buf[..data]);
            }
            self.sink.write_all(&buf[..k])?;
            r.consume(k);
            done += k as u64;
        }
        Ok(DataEnd::Whole)
    }
}

/// Passes `inputs`, in order, into `sink` as one tar archive, publishing an entry per
/// member into `log` and reporting each through `report` as the tar encoder does. Stops
/// early on `interrupt` or when the writer stops. A damaged or cut-short input ends the
/// archive cleanly after what came through and is returned as an error.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    inputs: Vec<TarInput>,
    log: &EntryLog,
    sink: BlockSink,
    spans: &Spans,
    interrupt: &Interrupt,
    telemetry: &Telemetry,
    events: &Events,
    report: &mut dyn FnMut(EncoderEvent),
) -> io::Result<EncoderEnd> {
    let mut c = Copier {
        sink,
        spans,
        log,
        interrupt,
        telemetry,
        events,
        report,
        entries: Vec::with_capacity(CHUNK),
        held: Vec::new(),
        next_index: 0,
        files_done: 0,
        bytes_read: 0,
        shown: Instant::now(),
    };
    let mut result = Ok(false);
    for input in inputs {
        result = c.copy_input(input);
        if !matches!(result, Ok(false)) {
            break;
        }
    }
    c.publish();
    log.finish();
    let (files, bytes) = (c.files_done, c.bytes_read);
    telemetry.update(|s| {
        s.files_done = files;
        s.bytes_read = bytes;
    });
    let mut sink = c.sink;
    let end = match result {
        Ok(interrupted) => match end_archive(&mut sink) {
            Ok(()) if interrupted => Ok(EncoderEnd::Interrupted {
                bytes: sink.written(),
            }),
            Ok(()) => Ok(EncoderEnd::Complete {
                bytes: sink.written(),
            }),
            Err(e) => Err(e),
        },
        // Interrupted inside a large member: cut off (the tape file ends inside it).
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            sink.finish().map(|()| EncoderEnd::Interrupted {
                bytes: sink.written(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(e),
        // A damaged input: the stream is at a member boundary, so it ends as a whole
        // archive; the backup fails with the reason.
        Err(e) => match end_archive(&mut sink) {
            Ok(()) => Err(e),
            Err(pipe) => Err(pipe),
        },
    };
    sink.seal();
    match end {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(EncoderEnd::WriterStopped {
            bytes: sink.written(),
        }),
        other => other,
    }
}

/// End-of-archive marker, then the last block padded.
fn end_archive(sink: &mut BlockSink) -> io::Result<()> {
    sink.write_all(&[0u8; 2 * RECORD])?;
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::entries::Cursor;
    use crate::backup::ring::Ring;
    use tar::Header;

    /// A tar archive of `members` (name, data) made with the tar crate, GNU headers.
    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o640);
            h.set_mtime(1_700_000_000);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    struct Out {
        stream: Vec<u8>,
        events: Vec<EncoderEvent>,
        log: Arc<EntryLog>,
        end: io::Result<EncoderEnd>,
    }

    fn run(inputs: Vec<Vec<u8>>, interrupt: &Interrupt) -> Out {
        let ring = Arc::new(Ring::new(64 << 10, 1024).unwrap());
        let log = EntryLog::new();
        let collector = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let done = ring.input_done();
                    match ring.pop_full() {
                        Some(b) => {
                            out.extend_from_slice(&b.data);
                            ring.recycle(b);
                        }
                        None if done => return out,
                        None => ring.wait(Duration::from_millis(5)),
                    }
                }
            })
        };
        let inputs = inputs
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| check(format!("in{i}"), Box::new(io::Cursor::new(bytes))).unwrap())
            .collect();
        let mut events = Vec::new();
        let end = copy(
            inputs,
            &log,
            BlockSink::new(ring.clone()),
            &Spans::default(),
            interrupt,
            &Telemetry::default(),
            &Events::new(),
            &mut |ev| events.push(ev),
        );
        ring.finish_input();
        Out {
            stream: collector.join().unwrap(),
            events,
            log,
            end,
        }
    }

    fn members(out: &Out) -> Vec<&Encoded> {
        out.events
            .iter()
            .filter_map(|e| match e {
                EncoderEvent::Member(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn names(stream: &[u8]) -> Vec<String> {
        tar::Archive::new(stream)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn two_archives_become_one_with_their_members_placed_and_hashed() {
        let a = archive(&[("dir/a.txt", b"alpha"), ("dir/b.bin", &[7u8; 3000])]);
        let long = format!("{}/c.txt", "x".repeat(150));
        let b = archive(&[(&long, b"gamma")]);
        let out = run(vec![a.clone(), b], &Interrupt::new());
        assert!(matches!(out.end, Ok(EncoderEnd::Complete { .. })));
        assert_eq!(out.stream.len() % 1024, 0);
        assert_eq!(names(&out.stream), vec!["dir/a.txt", "dir/b.bin", &long]);
        // The first archive's bytes come through unchanged, up to its end marker.
        let first_len = 512 + 512 + 512 + 3072;
        assert_eq!(&out.stream[..first_len], &a[..first_len]);
        let m = members(&out);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].start, m[0].end, m[0].size), (0, 1024, 5));
        assert_eq!(m[1].start, 1024);
        assert_eq!(m[1].blake3, Some(*blake3::hash(&[7u8; 3000]).as_bytes()));
        // The long name's record is part of the member: it starts at its `L` header.
        assert_eq!(m[2].start, first_len as u64);
        let h = Header::from_byte_slice(&out.stream[first_len..first_len + 512]);
        assert_eq!(h.entry_type(), tar::EntryType::GNULongName);
        let mut cursor = Cursor::new(out.log.clone());
        assert_eq!(cursor.get(2).unwrap().name, long);
        assert_eq!(cursor.get(0).unwrap().mode, 0o640);
        assert_eq!(cursor.get(0).unwrap().mtime_ns, 1_700_000_000_000_000_000);
        assert!(out.log.totals().done);
    }

    #[test]
    fn pax_records_set_name_size_time_and_xattrs() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("path", b"./from/pax.txt".as_slice()),
            ("mtime", b"1700000000.5".as_slice()),
            ("SCHILY.xattr.user.k", b"v".as_slice()),
        ])
        .unwrap();
        let mut h = Header::new_ustar();
        h.set_size(4);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "short", b"data".as_slice()).unwrap();
        let out = run(vec![b.into_inner().unwrap()], &Interrupt::new());
        let m = members(&out);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].start, 0);
        let mut cursor = Cursor::new(out.log.clone());
        let e = cursor.get(0).unwrap();
        assert_eq!(e.name, "from/pax.txt");
        assert_eq!(e.mtime_ns, 1_700_000_000_500_000_000);
        assert_eq!(e.xattrs, vec![("user.k".to_string(), b"v".to_vec())]);
    }

    #[test]
    fn something_else_than_tar_is_refused_when_opened() {
        let err = check("x".into(), Box::new(io::Cursor::new(vec![b'#'; 4096]))).unwrap_err();
        assert!(err.to_string().contains("not a tar archive"), "{err}");
        let err = check("x".into(), Box::new(io::Cursor::new(Vec::new()))).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        // An empty archive is a tar archive.
        let out = run(vec![vec![0u8; 10240]], &Interrupt::new());
        assert!(matches!(out.end, Ok(EncoderEnd::Complete { bytes: 1024 })));
    }

    #[test]
    fn a_cut_short_archive_ends_the_stream_whole_and_fails() {
        let a = archive(&[("a", b"first"), ("b", &[1u8; 5000])]);
        let out = run(
            vec![a[..512 + 512 + 512 + 1000].to_vec()],
            &Interrupt::new(),
        );
        let err = out.end.as_ref().unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        assert_eq!(names(&out.stream), vec!["a", "b"], "GNU tar still reads it");
        let m = members(&out);
        assert!(m[0].integrity == Integrity::Intact);
        assert!(matches!(m[1].integrity, Integrity::Damaged(_)));
    }

    #[test]
    fn an_interrupt_stops_between_members() {
        let interrupt = Interrupt::new();
        interrupt.request();
        let out = run(vec![archive(&[("a", b"x")])], &interrupt);
        assert!(matches!(out.end, Ok(EncoderEnd::Interrupted { .. })));
        assert!(members(&out).is_empty());
    }

    #[test]
    fn names_are_read_as_the_catalogue_keeps_them() {
        assert_eq!(catalogue_name("./a/b"), "a/b");
        assert_eq!(catalogue_name("/abs/x"), "abs/x");
        assert_eq!(catalogue_name("./"), "");
        assert_eq!(catalogue_name("."), "");
    }
}
