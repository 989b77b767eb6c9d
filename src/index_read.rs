//! Reading the on-tape index back (the reader side of [`crate::backup::index`]): the index
//! tape file is a tar archive whose one member `TAPEDECK-INDEX-<uuid>.jsonl.zst` holds
//! zstd-compressed JSON lines: the backup's header, one record per member, a trailer.
//!
//! The index is streamed: records are handed to a callback one at a time, so an index of
//! ten million files never sits in memory. Whatever the bytes, the reader answers with a
//! record or an [`IndexReadError`] that says what is wrong and where; it never panics.

use serde::Deserialize;
use std::io::{self, BufRead, BufReader, Read};

/// The index format this reader understands (the header's `format`).
pub const INDEX_FORMAT: u32 = 1;

/// A line longer than this is damage, not a record (a record is a path, a few numbers and
/// its segments: a few KiB at most).
pub const MAX_LINE: usize = 1 << 20;

/// The member name's parts: `TAPEDECK-INDEX-<uuid>.jsonl.zst`.
const MEMBER_PREFIX: &str = "TAPEDECK-INDEX-";
const MEMBER_SUFFIX: &str = ".jsonl.zst";

/// The index's first line: the backup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    pub format: u32,
    pub uuid: String,
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// When the backup started, as the writer wrote it (see [`parse_time`]).
    pub started: String,
    pub tapedeck: String,
    pub block_size: u32,
}

/// Where one part of a member is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Segment {
    /// The volume's label.
    pub volume: String,
    pub tape_file: u64,
    /// Logical object number of the block holding the part's first header byte.
    pub block: u64,
    /// Byte offset of the header in that block.
    pub offset: u64,
    /// Where the part's bytes start in the file.
    pub file_offset: u64,
    pub length: u64,
}

/// One member's line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Record {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub blake3: Option<String>,
    pub segments: Vec<Segment>,
    /// Inode number when scanned (what an incremental backup compares), if written.
    #[serde(default)]
    pub ino: Option<u64>,
    /// Status change time in nanoseconds since the epoch, if written.
    #[serde(default)]
    pub ctime: Option<i64>,
}

/// The last line: how the backup ended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Trailer {
    pub finished: String,
    pub status: String,
    pub files: u64,
    pub bytes: u64,
}

/// A line handed to the reader's callback: the header first, then each record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexLine {
    Header(Header),
    Record(Record),
}

/// What a whole index said, besides its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSummary {
    pub header: Header,
    pub trailer: Trailer,
    /// Records read (and handed to the callback).
    pub records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexReadError {
    #[error("the index tape file holds no tar member")]
    Empty,
    #[error("the tape file is not a tapedeck index: its first member is `{0}`")]
    NotIndex(String),
    #[error("the index tape file is not a readable tar archive: {0}")]
    Tar(String),
    #[error("the index of backup {expected} was expected, but the tape file holds {found}'s")]
    OtherBackup { expected: String, found: String },
    #[error("the index is damaged at line {line}: {detail}")]
    Damaged { line: u64, detail: String },
    #[error("the index ends after {records} records without its trailer (cut off or damaged)")]
    NoTrailer { records: u64 },
    #[error("the index is empty: no header line")]
    NoHeader,
    #[error("the index has format {found}; this tapedeck reads format {INDEX_FORMAT}: use a newer tapedeck")]
    NewerFormat { found: u32 },
    #[error("reading the index: {0}")]
    Io(#[from] io::Error),
}

/// The backup uuid a member name `TAPEDECK-INDEX-<uuid>.jsonl.zst` names.
pub fn member_uuid(name: &str) -> Option<&str> {
    let uuid = name
        .strip_prefix(MEMBER_PREFIX)?
        .strip_suffix(MEMBER_SUFFIX)?;
    uuid::Uuid::parse_str(uuid).ok().map(|_| uuid)
}

/// The backup uuid, when `record` (the first tar record of a tape file) is the header of
/// an index member. The header's checksum is not checked: the index reader does that.
pub fn index_member_in(record: &[u8]) -> Option<String> {
    let name = record.get(..100)?;
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    let name = std::str::from_utf8(&name[..end]).ok()?;
    member_uuid(name).map(str::to_string)
}

/// Reads JSON lines (already decompressed): the header and then each record are handed
/// to `on_line`; the trailer must be the last line. An error from `on_line` stops the
/// reading and is returned as it is.
pub fn read_lines<R, E, F>(input: R, mut on_line: F) -> Result<IndexSummary, E>
where
    R: BufRead,
    E: From<IndexReadError>,
    F: FnMut(IndexLine) -> Result<(), E>,
{
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        number: 0,
    };
    let header: Header = match lines.next()? {
        None => return Err(IndexReadError::NoHeader.into()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| IndexReadError::Damaged {
            line: 1,
            detail: format!("not the backup's header line: {e}"),
        })?,
    };
    if header.format > INDEX_FORMAT {
        return Err(IndexReadError::NewerFormat {
            found: header.format,
        }
        .into());
    }
    on_line(IndexLine::Header(header.clone()))?;
    let mut records = 0u64;
    loop {
        let line = lines.number + 1;
        let Some(bytes) = lines.next()? else {
            return Err(IndexReadError::NoTrailer { records }.into());
        };
        match serde_json::from_slice::<Record>(bytes) {
            Ok(record) => {
                records += 1;
                on_line(IndexLine::Record(record))?;
            }
            Err(record_error) => {
                let trailer: Trailer =
                    serde_json::from_slice(bytes).map_err(|_| IndexReadError::Damaged {
                        line,
                        detail: format!("neither a member record nor the trailer: {record_error}"),
                    })?;
                if lines.next()?.is_some() {
                    return Err(IndexReadError::Damaged {
                        line: line + 1,
                        detail: "lines after the trailer".into(),
                    }
                    .into());
                }
                return Ok(IndexSummary {
                    header,
                    trailer,
                    records,
                });
            }
        }
    }
}

/// Non-empty lines of at most [`MAX_LINE`] bytes.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    /// Lines read so far (1-based number of the last one).
    number: u64,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Result<Option<&[u8]>, IndexReadError> {
        loop {
            self.buf.clear();
            let n = (&mut self.input)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            if self.buf.len() > MAX_LINE {
                return Err(IndexReadError::Damaged {
                    line: self.number,
                    detail: format!("a line longer than {MAX_LINE} bytes"),
                });
            }
            let start = self.buf.iter().position(|b| !b.is_ascii_whitespace());
            let end = self.buf.iter().rposition(|b| !b.is_ascii_whitespace());
            if let (Some(start), Some(end)) = (start, end) {
                return Ok(Some(&self.buf[start..=end]));
            }
        }
    }
}

/// Reads an index tape file (a tar archive) from `input`: checks that its first member is
/// an index (of backup `expected_uuid`, when given), decompresses it and reads its lines
/// as [`read_lines`] does. The header line must name the backup the member is named for.
pub fn read_index_tape_file<R, E, F>(
    input: R,
    expected_uuid: Option<&str>,
    mut on_line: F,
) -> Result<IndexSummary, E>
where
    R: Read,
    E: From<IndexReadError>,
    F: FnMut(IndexLine) -> Result<(), E>,
{
    let mut archive = tar::Archive::new(input);
    let mut entries = archive
        .entries()
        .map_err(|e| IndexReadError::Tar(e.to_string()))?;
    let entry = match entries.next() {
        None => return Err(IndexReadError::Empty.into()),
        Some(e) => e.map_err(|e| IndexReadError::Tar(e.to_string()))?,
    };
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let Some(uuid) = member_uuid(&name) else {
        return Err(IndexReadError::NotIndex(name).into());
    };
    if let Some(expected) = expected_uuid.filter(|e| *e != uuid) {
        return Err(IndexReadError::OtherBackup {
            expected: expected.to_string(),
            found: uuid.to_string(),
        }
        .into());
    }
    let uuid = uuid.to_string();
    let decoder = zstd::Decoder::new(entry).map_err(IndexReadError::Io)?;
    read_lines(BufReader::new(decoder), |line| {
        if let IndexLine::Header(h) = &line {
            if h.uuid != uuid {
                return Err(IndexReadError::Damaged {
                    line: 1,
                    detail: format!(
                        "the header names backup {} but the member is named for {uuid}",
                        h.uuid
                    ),
                }
                .into());
            }
        }
        on_line(line)
    })
}

/// A time as the index writes it: RFC 3339 ([`crate::backup::index::index_time`]), or the
/// local `YYYY-MM-DD HH:MM` that earlier versions wrote, or Unix seconds. `None` when it is none of these.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_second());
    }
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", text).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::system())
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// A BLAKE3 hash from its 64 hex digits.
pub fn parse_blake3(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::index::{IndexHeader, IndexRecord, IndexSegment, IndexTrailer};

    const UUID: &str = "0b9c1a52-3f4e-4c1d-9a7b-2f6d5e4c3b2a";

    fn header() -> IndexHeader<'static> {
        IndexHeader {
            format: 1,
            uuid: UUID,
            job: Some("home"),
            label: None,
            kind: "full",
            parent: None,
            started: "2026-11-26 12:00".into(),
            tapedeck: "0.1.0",
            block_size: 65536,
        }
    }

    fn record(path: &str) -> IndexRecord<'_> {
        IndexRecord {
            path,
            kind: "file",
            size: 10,
            mtime: 1_700_000_000_000_000_001,
            mode: 0o644,
            uid: 1000,
            gid: 100,
            user: Some("me"),
            group: None,
            link: None,
            blake3: Some("ab".repeat(32)),
            segments: vec![IndexSegment {
                volume: "TD0001L9",
                tape_file: 1,
                block: 2,
                offset: 512,
                file_offset: 0,
                length: 10,
            }],
            ino: Some(42),
            ctime: Some(7),
        }
    }

    fn trailer() -> IndexTrailer<'static> {
        IndexTrailer {
            finished: "2026-11-26 12:05".into(),
            status: "complete",
            files: 2,
            bytes: 20,
        }
    }

    /// The JSON lines as the writer makes them.
    fn lines() -> Vec<u8> {
        let mut out = Vec::new();
        for value in [
            serde_json::to_value(header()).unwrap(),
            serde_json::to_value(record("/a/one")).unwrap(),
            serde_json::to_value(record("/a/two")).unwrap(),
            serde_json::to_value(trailer()).unwrap(),
        ] {
            out.extend(serde_json::to_vec(&value).unwrap());
            out.push(b'\n');
        }
        out
    }

    /// An index tape file (tar + zstd) around `lines`.
    fn tape_file(name: &str, lines: &[u8]) -> Vec<u8> {
        let zst = zstd::encode_all(lines, 3).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(zst.len() as u64);
        h.set_mode(0o444);
        builder.append_data(&mut h, name, zst.as_slice()).unwrap();
        builder.into_inner().unwrap()
    }

    fn collect(bytes: &[u8]) -> Result<(IndexSummary, Vec<Record>), IndexReadError> {
        let mut got = Vec::new();
        let summary = read_index_tape_file(bytes, None, |line| {
            if let IndexLine::Record(r) = line {
                got.push(r);
            }
            Ok::<(), IndexReadError>(())
        })?;
        Ok((summary, got))
    }

    #[test]
    fn what_the_writer_writes_reads_back() {
        let file = tape_file(&format!("TAPEDECK-INDEX-{UUID}.jsonl.zst"), &lines());
        let (summary, records) = collect(&file).unwrap();
        assert_eq!(summary.header.uuid, UUID);
        assert_eq!(summary.header.job.as_deref(), Some("home"));
        assert_eq!(summary.records, 2);
        assert_eq!(summary.trailer.status, "complete");
        assert_eq!(records[1].path, "/a/two");
        assert_eq!(records[0].segments[0].offset, 512);
        assert_eq!(records[0].user.as_deref(), Some("me"));
        assert_eq!((records[0].ino, records[0].ctime), (Some(42), Some(7)));
        assert_eq!(
            parse_blake3(records[0].blake3.as_deref().unwrap()),
            Some([0xab; 32])
        );
    }

    #[test]
    fn a_cut_index_says_how_far_it_got() {
        let all = lines();
        let cut = &all[..all.len() - 40];
        let file = tape_file(&format!("TAPEDECK-INDEX-{UUID}.jsonl.zst"), cut);
        let err = collect(&file).unwrap_err();
        assert!(
            matches!(err, IndexReadError::Damaged { line: 4, .. }),
            "{err}"
        );
        let without_trailer: Vec<u8> = all
            .split_inclusive(|b| *b == b'\n')
            .take(3)
            .flatten()
            .copied()
            .collect();
        let file = tape_file(
            &format!("TAPEDECK-INDEX-{UUID}.jsonl.zst"),
            &without_trailer,
        );
        let err = collect(&file).unwrap_err();
        assert!(
            matches!(err, IndexReadError::NoTrailer { records: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("without its trailer"));
        // The compressed stream cut off.
        let file = tape_file(&format!("TAPEDECK-INDEX-{UUID}.jsonl.zst"), &all);
        let zlen = zstd::encode_all(all.as_slice(), 3).unwrap().len();
        for cut in [0, 100, 512, 513, 512 + zlen / 2, 512 + zlen - 1] {
            assert!(collect(&file[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn other_tar_members_and_other_backups_are_named() {
        let file = tape_file("home/me/notes.txt", b"hello");
        let err = collect(&file).unwrap_err();
        assert!(err.to_string().contains("`home/me/notes.txt`"), "{err}");
        let file = tape_file(&format!("TAPEDECK-INDEX-{UUID}.jsonl.zst"), &lines());
        let other = "11111111-2222-4333-8444-555555555555";
        let err = read_index_tape_file(file.as_slice(), Some(other), |_| {
            Ok::<(), IndexReadError>(())
        })
        .unwrap_err();
        assert!(matches!(err, IndexReadError::OtherBackup { .. }), "{err}");
        assert!(matches!(
            collect(&[0u8; 1024]).unwrap_err(),
            IndexReadError::Empty
        ));
        assert!(collect(b"not a tar archive at all").is_err());
    }

    #[test]
    fn a_newer_format_and_trailing_lines_are_refused() {
        let mut text = lines();
        text.extend_from_slice(b"{\"path\":\"/x\"}\n");
        assert!(matches!(
            read_lines(text.as_slice(), |_| Ok::<(), IndexReadError>(())).unwrap_err(),
            IndexReadError::Damaged { line: 5, .. }
        ));
        let newer = String::from_utf8(lines())
            .unwrap()
            .replacen("\"format\":1", "\"format\":9", 1);
        assert!(matches!(
            read_lines(newer.as_bytes(), |_| Ok::<(), IndexReadError>(())).unwrap_err(),
            IndexReadError::NewerFormat { found: 9 }
        ));
        assert!(matches!(
            read_lines(&b"\n\n"[..], |_| Ok::<(), IndexReadError>(())).unwrap_err(),
            IndexReadError::NoHeader
        ));
    }

    #[test]
    fn a_callback_error_stops_the_reading() {
        #[derive(Debug)]
        enum Mine {
            Stop,
            Index,
        }
        impl From<IndexReadError> for Mine {
            fn from(_: IndexReadError) -> Mine {
                Mine::Index
            }
        }
        let mut seen = 0;
        let err = read_lines(lines().as_slice(), |line| {
            seen += 1;
            match line {
                IndexLine::Header(_) => Ok(()),
                IndexLine::Record(_) => Err(Mine::Stop),
            }
        })
        .unwrap_err();
        assert!(matches!(err, Mine::Stop));
        assert_eq!(seen, 2);
        assert!(matches!(
            read_lines(&b""[..], |_| Ok::<(), Mine>(())).unwrap_err(),
            Mine::Index
        ));
    }

    #[test]
    fn times_and_hashes_parse_in_every_written_form() {
        assert_eq!(parse_time("2026-11-26T12:00:00Z"), Some(1_795_694_400));
        let written = crate::backup::index::index_time(1_795_694_401);
        assert_eq!(parse_time(&written), Some(1_795_694_401), "{written}");
        assert_eq!(parse_time("1795694400"), Some(1_795_694_400));
        let local = parse_time("2026-11-26 12:00").unwrap();
        assert!((local - 1_795_694_400).abs() <= 14 * 3600, "{local}");
        assert_eq!(
            crate::catalog::format_time(local),
            "2026-11-26 12:00",
            "the local form round-trips"
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_blake3(&"0f".repeat(32)), Some([0x0f; 32]));
        assert_eq!(parse_blake3("0f"), None);
        assert_eq!(parse_blake3(&"zz".repeat(32)), None);
        assert_eq!(
            member_uuid(&format!("TAPEDECK-INDEX-{UUID}.jsonl.zst")),
            Some(UUID)
        );
        assert_eq!(member_uuid("TAPEDECK-INDEX-nope.jsonl.zst"), None);
    }
}
