//! Reading tar members one at a time from any byte stream: GNU and POSIX headers, GNU
//! long names (`L`, `K`), pax records (`x`, `g`: path, linkpath, size, mtime, owner,
//! `SCHILY.xattr.*`) and GNU multi-volume continuations (`M` with its offset).
//!
//! Restore and verify read one member at the position the catalogue gives; catalogue
//! rebuild and fuzzing walk a whole tape file with [`MemberReader::next_header`]. Nothing
//! here trusts the bytes: every field is bounded and checked, damage is an
//! [`ArchiveError`], never a panic, and nothing is allocated in proportion to a size field
//! beyond [`MAX_EXTENSION`].

use std::collections::BTreeMap;
use std::io::{self, Read};

/// Tar record size.
pub const RECORD: u64 = 512;

/// Largest GNU long-name or pax extension record accepted (a larger one is damage).
pub const MAX_EXTENSION: u64 = 1 << 20;

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Dir,
    Fifo,
    /// A GNU multi-volume continuation: the rest of a file whose first `offset` bytes are
    /// on the previous volume.
    Continuation {
        offset: u64,
    },
    /// A GNU volume header (`V`): no data of its own.
    VolumeLabel,
    /// A type this reader does not restore (the type byte).
    Other(u8),
}

impl MemberKind {
    pub fn describe(self) -> String {
        match self {
            MemberKind::File => "file".into(),
            MemberKind::HardLink => "hard link".into(),
            MemberKind::Symlink => "symlink".into(),
            MemberKind::CharDevice => "character device".into(),
            MemberKind::BlockDevice => "block device".into(),
            MemberKind::Dir => "directory".into(),
            MemberKind::Fifo => "FIFO".into(),
            MemberKind::Continuation { offset } => format!("continuation from byte {offset}"),
            MemberKind::VolumeLabel => "volume label".into(),
            MemberKind::Other(t) => format!("member of unknown type `{}`", t.escape_ascii()),
        }
    }
}

/// One member's headers, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    /// The member name as stored (bytes; tapedeck writes UTF-8).
    pub name: Vec<u8>,
    pub kind: MemberKind,
    /// Data bytes that follow the headers in this archive.
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Symlink target or hard-link target member name.
    pub link: Option<Vec<u8>>,
    pub device: (u32, u32),
    /// Extended attributes from `SCHILY.xattr.*` pax records, by name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Bytes of header records (long names and pax records included).
    pub header_bytes: u64,
}

impl MemberHeader {
    /// The name as text, with trailing slashes (directories) removed.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name)
            .trim_end_matches('/')
            .to_string()
    }

    /// The link target as text.
    pub fn link_lossy(&self) -> Option<String> {
        self.link
            .as_ref()
            .map(|l| String::from_utf8_lossy(l).into_owned())
    }
}

/// Why an archive cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a tar header at byte {at}: {detail}")]
    NotTar { at: u64, detail: String },
    #[error("the archive ends inside a member at byte {at} (truncated)")]
    Truncated { at: u64 },
    #[error("damaged member header at byte {at}: {detail}")]
    Damaged { at: u64, detail: String },
    #[error("reading the archive at byte {at}: {source}")]
    Io {
        at: u64,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// The underlying read error, when the stream itself failed (a medium error).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ArchiveError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Members read one after the other from `inner`.
pub struct MemberReader<R> {
    inner: R,
    /// Bytes consumed from `inner`.
    at: u64,
    /// Data bytes of the current member not yet read.
    data_left: u64,
    /// Padding after the current member's data.
    pad_left: u64,
    /// pax `g` records: apply to every following member.
    globals: BTreeMap<String, Vec<u8>>,
    ended: bool,
}

impl<R: Read> MemberReader<R> {
    pub fn new(inner: R) -> MemberReader<R> {
        MemberReader {
            inner,
            at: 0,
            data_left: 0,
            pad_left: 0,
            globals: BTreeMap::new(),
            ended: false,
        }
    }

    /// Bytes consumed from the stream so far.
    pub fn position(&self) -> u64 {
        self.at
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Data bytes of the current member not read yet.
    pub fn data_left(&self) -> u64 {
        self.data_left
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end before the first byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ArchiveError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(ArchiveError::Truncated { at: self.at }),
                Ok(n) => {
                    got += n;
                    self.at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ArchiveError::Io {
                        at: self.at,
                        source,
                    })
                }
            }
        }
        Ok(true)
    }

    /// Discards `n` bytes.
    fn discard(&mut self, mut n: u64) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            if !self.fill(&mut scratch[..k])? {
                return Err(ArchiveError::Truncated { at: self.at });
            }
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads an extension record's data (long name or pax), bounded.
    fn extension(&mut self, size: u64, at: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_EXTENSION {
            return Err(ArchiveError::Damaged {
                at,
                detail: format!("an extension record of {size} bytes (at most {MAX_EXTENSION})"),
            });
        }
        let mut data = vec![0u8; size as usize];
        if !self.fill(&mut data)? && size > 0 {
            return Err(ArchiveError::Truncated { at: self.at });
        }
        self.discard(padding(size))?;
        Ok(data)
    }

    /// Skips what is left of the current member (data and padding).
    pub fn skip_data(&mut self) -> Result<(), ArchiveError> {
        let n = self.data_left + self.pad_left;
        self.data_left = 0;
        self.pad_left = 0;
        self.discard(n)
    }

    /// The next member's headers (the rest of the current member is skipped first), or
    /// `None` at the end of the archive (a zero record, or the stream's end between
    /// members).
    pub fn next_header(&mut self) -> Result<Option<MemberHeader>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        self.skip_data()?;
        let start = self.at;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut block = [0u8; RECORD as usize];
        loop {
            let at = self.at;
            if !self.fill(&mut block)? {
                if at == start {
                    self.ended = true;
                    return Ok(None);
                }
                return Err(ArchiveError::Truncated { at });
            }
            if block.iter().all(|&b| b == 0) {
                if at != start {
                    return Err(ArchiveError::Damaged {
                        at,
                        detail: "the archive ends between a member's extension records and its \
                                 header"
                            .into(),
                    });
                }
                self.ended = true;
                return Ok(None);
            }
            check_checksum(&block, at)?;
            let size = numeric(&block[124..136], at, "size")?;
            let typeflag = block[156];
            match typeflag {
                b'L' => long_name = Some(trim_nul(&self.extension(size, at)?).to_vec()),
                b'K' => long_link = Some(trim_nul(&self.extension(size, at)?).to_vec()),
                b'x' => {
                    let data = self.extension(size, at)?;
                    parse_pax(&data, &mut pax, at)?;
                }
                b'g' => {
                    let data = self.extension(size, at)?;
                    let mut globals = std::mem::take(&mut self.globals);
                    parse_pax(&data, &mut globals, at)?;
                    self.globals = globals;
                }
                _ => {
                    let header = self.decode(&block, at, size, long_name, long_link, pax)?;
                    let header = MemberHeader {
                        header_bytes: self.at - start,
                        ..header
                    };
                    self.data_left = header.size;
                    self.pad_left = padding(header.size);
                    return Ok(Some(header));
                }
            }
        }
    }

    fn decode(
        &self,
        block: &[u8; RECORD as usize],
        at: u64,
        size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        mut pax: BTreeMap<String, Vec<u8>>,
    ) -> Result<MemberHeader, ArchiveError> {
        for (k, v) in &self.globals {
            pax.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let ustar = &block[257..263] == b"ustar\0";
        let gnu = &block[257..263] == b"ustar ";
        let mut name = trim_nul(&block[0..100]).to_vec();
        if ustar && block[345] != 0 {
            let mut full = trim_nul(&block[345..500]).to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
        if let Some(n) = long_name {
            name = n;
        }
        if let Some(p) = pax.get("path") {
            name = p.clone();
        }
        if name.is_empty() {
            return Err(ArchiveError::Damaged {
                at,
                detail: "a member without a name".into(),
            });
        }
        let typeflag = block[156];
        let kind = match typeflag {
            b'0' | 0 | b'7' => MemberKind::File,
            b'1' => MemberKind::HardLink,
            b'2' => MemberKind::Symlink,
            b'3' => MemberKind::CharDevice,
            b'4' => MemberKind::BlockDevice,
            b'5' => MemberKind::Dir,
            b'6' => MemberKind::Fifo,
            b'M' if gnu => MemberKind::Continuation {
                offset: numeric(&block[369..381], at, "continuation offset")?,
            },
            b'V' => MemberKind::VolumeLabel,
            other => MemberKind::Other(other),
        };
        let mut link = match trim_nul(&block[157..257]) {
            [] => None,
            l => Some(l.to_vec()),
        };
        if let Some(l) = long_link {
            link = Some(l);
        }
        if let Some(l) = pax.get("linkpath") {
            link = Some(l.clone());
        }
        let size = match pax.get("size") {
            Some(s) => pax_number(s, at, "size")?,
            None => size,
        };
        let uid = match pax.get("uid") {
            Some(s) => pax_number(s, at, "uid")?,
            None => numeric(&block[108..116], at, "uid")?,
        };
        let gid = match pax.get("gid") {
            Some(s) => pax_number(s, at, "gid")?,
            None => numeric(&block[116..124], at, "gid")?,
        };
        let mtime_ns = match pax.get("mtime") {
            Some(s) => pax_time(s, at)?,
            None => {
                let secs = numeric(&block[136..148], at, "mtime")?;
                (secs.min(i64::MAX as u64 / 1_000_000_000) as i64) * 1_000_000_000
            }
        };
        let text = |b: &[u8]| {
            let t = trim_nul(b);
            (!t.is_empty()).then(|| String::from_utf8_lossy(t).into_owned())
        };
        let (user, group) = if ustar || gnu {
            (text(&block[265..297]), text(&block[297..329]))
        } else {
            (None, None)
        };
        let user = pax
            .get("uname")
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .or(user);
        let group = pax
            .get("gname")
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .or(group);
        let device = if matches!(kind, MemberKind::CharDevice | MemberKind::BlockDevice) {
            (
                numeric(&block[329..337], at, "device major")?.min(u32::MAX as u64) as u32,
                numeric(&block[337..345], at, "device minor")?.min(u32::MAX as u64) as u32,
            )
        } else {
            (0, 0)
        };
        let xattrs = pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("SCHILY.xattr.")
                    .map(|name| (name.to_string(), v.clone()))
            })
            .collect();
        // Links, directories and the like carry no data, whatever a size field says
        // (GNU tar writes 0; a hard link's size is its target's, not stored again).
        let size = match kind {
            MemberKind::File | MemberKind::Continuation { .. } | MemberKind::Other(_) => size,
            _ => 0,
        };
        Ok(MemberHeader {
            name,
            kind,
            size,
            mode: (numeric(&block[100..108], at, "mode")? & 0o7777) as u32,
            uid,
            gid,
            mtime_ns,
            user,
            group,
            link,
            device,
            xattrs,
            header_bytes: 0,
        })
    }

    /// Reads data of the current member (at most what is left of it).
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        if self.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.data_left.min(usize::MAX as u64) as usize);
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => return Err(ArchiveError::Truncated { at: self.at }),
                Ok(n) => {
                    self.at += n as u64;
                    self.data_left -= n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ArchiveError::Io {
                        at: self.at,
                        source,
                    })
                }
            }
        }
    }

    /// Limits the current member's data to its first `n` bytes (the part of a split file
    /// this volume holds): the archive ends after them.
    pub fn limit_data(&mut self, n: u64) {
        if n < self.data_left {
            self.data_left = n;
            self.pad_left = 0;
            self.ended = true;
        }
    }
}

impl<R: io::BufRead> MemberReader<R> {
    /// The next piece of the current member's data as it sits in the reader's buffer
    /// (no copy); empty once all of it is read. [`MemberReader::consume_data`] says how
    /// much of it was used.
    pub fn data_chunk(&mut self) -> Result<&[u8], ArchiveError> {
        if self.data_left == 0 {
            return Ok(&[]);
        }
        let at = self.at;
        let left = self.data_left;
        let buf = self
            .inner
            .fill_buf()
            .map_err(|source| ArchiveError::Io { at, source })?;
        if buf.is_empty() {
            return Err(ArchiveError::Truncated { at });
        }
        Ok(&buf[..buf.len().min(left.min(usize::MAX as u64) as usize)])
    }

    /// Marks `n` bytes of the last [`MemberReader::data_chunk`] as read.
    pub fn consume_data(&mut self, n: usize) {
        let n = (n as u64).min(self.data_left);
        self.inner.consume(n as usize);
        self.at += n;
        self.data_left -= n;
    }
}

/// Padding after `size` data bytes up to a whole record.
pub fn padding(size: u64) -> u64 {
    (RECORD - size % RECORD) % RECORD
}

fn trim_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn check_checksum(block: &[u8; RECORD as usize], at: u64) -> Result<(), ArchiveError> {
    let stored = numeric(&block[148..156], at, "checksum").map_err(|_| ArchiveError::NotTar {
        at,
        detail: "no checksum".into(),
    })?;
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as i8 as i64
            }
        })
        .sum();
    if stored == unsigned || stored as i64 == signed {
        return Ok(());
    }
    Err(ArchiveError::NotTar {
        at,
        detail: format!("checksum {stored} does not match the header's {unsigned}"),
    })
}

/// A numeric header field: octal text, or GNU base-256 when the first byte's high bit is set.
fn numeric(field: &[u8], at: u64, what: &str) -> Result<u64, ArchiveError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] == 0xff {
            return Err(ArchiveError::Damaged {
                at,
                detail: format!("negative {what}"),
            });
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| ArchiveError::Damaged {
                    at,
                    detail: format!("{what} out of range"),
                })?;
        }
        return Ok(v);
    }
    let text = trim_nul(field);
    let digits: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| *c != b' ')
        .collect::<Vec<u8>>();
    if digits.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return Err(ArchiveError::Damaged {
                at,
                detail: format!("{what} field is not octal"),
            });
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| ArchiveError::Damaged {
                at,
                detail: format!("{what} out of range"),
            })?;
    }
    Ok(v)
}

fn pax_number(value: &[u8], at: u64, what: &str) -> Result<u64, ArchiveError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ArchiveError::Damaged {
            at,
            detail: format!("pax {what} is not a number"),
        })
}

/// A pax time (`1700000000.123456789`, possibly negative) in nanoseconds.
fn pax_time(value: &[u8], at: u64) -> Result<i64, ArchiveError> {
    let bad = || ArchiveError::Damaged {
        at,
        detail: "pax mtime is not a time".into(),
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c.to_digit(10).ok_or_else(bad)? as i64;
        nanos += d * 10i64.pow(8 - i as u32);
    }
    let total = secs
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(nanos))
        .ok_or_else(bad)?;
    Ok(if negative { -total } else { total })
}

/// Parses pax records (`LEN key=value\n`, values may hold any bytes) into `out`.
fn parse_pax(
    data: &[u8],
    out: &mut BTreeMap<String, Vec<u8>>,
    at: u64,
) -> Result<(), ArchiveError> {
    let bad = |detail: &str| ArchiveError::Damaged {
        at,
        detail: format!("pax record: {detail}"),
    };
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("length is not a number"))?;
        if len <= space + 1 || len > rest.len() {
            return Err(bad("length out of range"));
        }
        let record = &rest[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("no newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no `=`"))?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        let value = record[eq + 1..].to_vec();
        if value.is_empty() {
            out.remove(&key);
        } else {
            out.insert(key, value);
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// Walks every member of an archive: the headers, in order, with the data skipped.
/// Stops at the end of the archive or at the first damage, which is returned with the
/// members read before it. For catalogue rebuild and fuzzing.
pub fn list_members<R: Read>(reader: R) -> (Vec<MemberHeader>, Option<ArchiveError>) {
    let mut members = MemberReader::new(reader);
    let mut out = Vec::new();
    loop {
        match members.next_header() {
            Ok(Some(h)) => out.push(h),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    #[test]
    fn members_read_with_long_names_pax_xattrs_and_links() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let bytes = archive(|b| {
            file(b, "a.txt", b"hello");
            b.append_pax_extensions([("SCHILY.xattr.user.note", b"v\0x".as_slice())])
                .unwrap();
            file(b, &long, &[7; 1000]);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "ln", "../somewhere").unwrap();
        });
        let (members, err) = list_members(bytes.as_slice());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(members.len(), 3);
        assert_eq!(members[0].name, b"a.txt");
        assert_eq!(members[0].size, 5);
        assert_eq!(members[0].mode, 0o640);
        assert_eq!(members[0].mtime_ns, 1_700_000_000_000_000_000);
        assert_eq!(members[1].name, long.as_bytes());
        assert_eq!(members[1].xattrs["user.note"], b"v\0x");
        assert_eq!(members[2].kind, MemberKind::Symlink);
        assert_eq!(members[2].link.as_deref(), Some(b"../somewhere".as_slice()));
    }

    #[test]
    fn data_is_read_exactly_and_the_position_counts_every_byte() {
        let bytes = archive(|b| {
            file(b, "a", &[1; 700]);
            file(b, "b", &[2; 3]);
        });
        let mut r = MemberReader::new(bytes.as_slice());
        let a = r.next_header().unwrap().unwrap();
        assert_eq!(a.header_bytes, 512);
        let mut data = vec![0; 1000];
        let mut got = 0;
        loop {
            let n = r.read_data(&mut data[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, 700);
        assert_eq!(r.position(), 512 + 700);
        let b = r.next_header().unwrap().unwrap();
        assert_eq!(b.name, b"b");
        assert_eq!(r.position(), 512 + 1024 + 512);
        assert!(r.next_header().unwrap().is_none());
    }

    #[test]
    fn data_chunks_come_from_the_buffer_and_end_with_the_member() {
        let bytes = archive(|b| {
            file(b, "a", &[1; 3000]);
            file(b, "b", &[2; 10]);
        });
        let mut r = MemberReader::new(std::io::BufReader::with_capacity(1024, bytes.as_slice()));
        r.next_header().unwrap().unwrap();
        let mut got = Vec::new();
        loop {
            let chunk = r.data_chunk().unwrap();
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min(700);
            got.extend_from_slice(&chunk[..n]);
            r.consume_data(n);
        }
        assert_eq!(got, vec![1; 3000]);
        assert_eq!(r.next_header().unwrap().unwrap().name, b"b");
        let (_, e) = list_members(&bytes[..2000]);
        assert!(e.is_some());
        let mut cut = MemberReader::new(std::io::BufReader::new(&bytes[..2000]));
        cut.next_header().unwrap().unwrap();
        let mut err = None;
        for _ in 0..10 {
            match cut.data_chunk() {
                Ok(c) => {
                    let n = c.len();
                    cut.consume_data(n);
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(err, Some(ArchiveError::Truncated { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_continuation_header_gives_its_offset() {
        let header = crate::backup::spans::multivolume_header("big/file", 1000, 4096);
        let mut bytes = header.clone();
        bytes.extend_from_slice(&[9; 1000]);
        bytes.resize(bytes.len() + 24 + 1024, 0);
        let mut r = MemberReader::new(bytes.as_slice());
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(h.kind, MemberKind::Continuation { offset: 4096 });
        assert_eq!(h.size, 1000);
        assert_eq!(h.name, b"big/file");
    }

    #[test]
    fn garbage_truncation_and_absurd_sizes_are_errors_not_panics() {
        let (m, e) = list_members(&[0x41u8; 2048][..]);
        assert!(m.is_empty());
        assert!(matches!(e, Some(ArchiveError::NotTar { .. })), "{e:?}");
        let bytes = archive(|b| file(b, "a", &[1; 5000]));
        let (_, e) = list_members(&bytes[..3000]);
        assert!(matches!(e, Some(ArchiveError::Truncated { .. })), "{e:?}");
        // A long-name record claiming 8 GB.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(8 << 30);
        h.set_path("././@LongLink").unwrap();
        h.set_cksum();
        let (_, e) = list_members(h.as_bytes().as_slice());
        assert!(matches!(e, Some(ArchiveError::Damaged { .. })), "{e:?}");
        // Every prefix of a valid archive either lists or fails cleanly.
        let bytes = archive(|b| {
            b.append_pax_extensions([("SCHILY.xattr.user.a", b"1".as_slice())])
                .unwrap();
            file(b, &"x".repeat(300), b"data");
        });
        for cut in 0..bytes.len() {
            let _ = list_members(&bytes[..cut]);
        }
    }

    #[test]
    fn pax_times_and_records_parse() {
        assert_eq!(pax_time(b"1.5", 0).unwrap(), 1_500_000_000);
        assert_eq!(pax_time(b"-2.25", 0).unwrap(), -2_250_000_000);
        let mut out = BTreeMap::new();
        parse_pax(b"13 path=abcd\n", &mut out, 0).unwrap();
        assert_eq!(out["path"], b"abcd");
        assert!(parse_pax(b"99 path=abcd\n", &mut out, 0).is_err());
        assert!(parse_pax(b"3 p\n", &mut out, 0).is_err());
    }
}
