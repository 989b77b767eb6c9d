//! Walking a data tape file's tar headers without an index: every member with the byte
//! offset of its first header record (GNU long-name and pax records included, as the
//! backup records it), its metadata, and the BLAKE3 of its data when asked. GNU `M`
//! continuation headers (a member continued from the previous volume) and a stream that
//! ends inside a member (continued on the next volume, or cut off) are reported as such.
//!
//! Any bytes give either members or a [`ScanError`] saying where the archive stopped
//! making sense; nothing here panics or allocates more than [`MAX_EXTENSION`] per header.

use std::io::{self, Read};

/// Tar record size.
pub const RECORD: usize = 512;

/// A long name or pax record set larger than this is damage, not metadata.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// What a member is, from its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Dir,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// One member as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedMember {
    /// Offset of its first header record in the tape file.
    pub start: u64,
    /// The member name as stored (no leading `/`).
    pub name: String,
    pub kind: MemberKind,
    /// The whole file's size (for a continuation: the bytes before it plus its own).
    pub size: u64,
    /// Where this tape file's part of the data starts in the file (non-zero only for a
    /// GNU `M` continuation).
    pub file_offset: u64,
    /// Data bytes of the member in this tape file (less than its header said when the
    /// tape file ends inside it).
    pub length: u64,
    /// The tape file ends inside this member's data: the rest is on the next volume.
    pub cut: bool,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Nanoseconds since the epoch (whole seconds unless a pax `mtime` says more).
    pub mtime_ns: i64,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Symlink target, or a hard link's target member name.
    pub link: Option<String>,
    /// BLAKE3 of the data, for a regular file held whole in this tape file (when hashing).
    pub blake3: Option<[u8; 32]>,
}

/// How the walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The end-of-archive marker (a zero record).
    EndOfArchive,
    /// The stream ended without it.
    Truncated(Cut),
}

/// Where a stream without an end-of-archive marker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// After a whole member.
    BetweenMembers,
    /// Inside a member's data: that member was reported with `cut`.
    InData,
    /// Inside a member's header records: nothing was reported for it (its name, when the
    /// records read so far give it).
    InHeaders { name: Option<String> },
}

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSummary {
    pub members: u64,
    /// Bytes read.
    pub bytes: u64,
    pub end: ScanEnd,
    /// Things worth telling (skipped sparse data, unknown types), one line each.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("not a tar archive: {detail}")]
    NotTar { detail: String },
    #[error("the tar archive is damaged at byte {at}: {detail}")]
    Damaged { at: u64, detail: String },
    #[error("reading the tape file at byte {at}: {source}")]
    Io {
        at: u64,
        #[source]
        source: io::Error,
    },
}

/// A parsed header record.
#[derive(Debug, Clone)]
struct Header {
    name: Vec<u8>,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: Vec<u8>,
    user: Option<String>,
    group: Option<String>,
    /// GNU multi-volume offset (type `M`).
    offset: u64,
    /// GNU sparse (type `S`): the file's real size, and whether sparse extension
    /// records follow the header.
    real_size: u64,
    sparse_extended: bool,
}

/// A numeric field: octal digits (leading spaces or NULs, ended by a space or NUL), or
/// GNU base-256 (high bit of the first byte set). `None` when it is neither.
pub fn numeric(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first == 0xff {
            return None; // negative
        }
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let digits: &[u8] = {
        let start = field.iter().position(|b| *b != b' ' && *b != 0);
        match start {
            None => return Some(0),
            Some(s) => {
                let rest = &field[s..];
                let end = rest
                    .iter()
                    .position(|b| *b == b' ' || *b == 0)
                    .unwrap_or(rest.len());
                &rest[..end]
            }
        }
    };
    let mut v: u64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// A NUL-terminated text field.
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn owned_text(field: &[u8]) -> Option<String> {
    let t = text(field);
    (!t.is_empty()).then(|| String::from_utf8_lossy(t).into_owned())
}

/// The header checksum matches (unsigned, or the signed sum some old tars wrote).
fn checksum_ok(record: &[u8; RECORD]) -> bool {
    let Some(stored) = numeric(&record[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in record.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

fn parse_header(record: &[u8; RECORD], at: u64) -> Result<Header, String> {
    if !checksum_ok(record) {
        return Err(format!("header record at byte {at} has a wrong checksum"));
    }
    let field = |range: std::ops::Range<usize>, what: &str| {
        numeric(&record[range]).ok_or_else(|| format!("header at byte {at}: bad {what} field"))
    };
    let ustar = &record[257..263] == b"ustar\0";
    let gnu = &record[257..263] == b"ustar ";
    let mut name = text(&record[0..100]).to_vec();
    if ustar {
        let prefix = text(&record[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    let (user, group) = if ustar || gnu {
        (owned_text(&record[265..297]), owned_text(&record[297..329]))
    } else {
        (None, None)
    };
    Ok(Header {
        name,
        mode: field(100..108, "mode")?,
        uid: field(108..116, "uid")?,
        gid: field(116..124, "gid")?,
        size: field(124..136, "size")?,
        mtime: field(136..148, "mtime")?,
        typeflag: record[156],
        linkname: text(&record[157..257]).to_vec(),
        user,
        group,
        offset: if gnu {
            numeric(&record[369..381]).unwrap_or(0)
        } else {
            0
        },
        real_size: if gnu {
            numeric(&record[483..495]).unwrap_or(0)
        } else {
            0
        },
        sparse_extended: gnu && record[482] != 0,
    })
}

/// pax records `LEN key=value\n`, as (key, value) pairs; damage ends the list.
pub fn pax_records(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            out.push((&record[..eq], &record[eq + 1..]));
        }
        rest = &rest[len..];
    }
    out
}

/// A pax time `SECONDS[.FRACTION]` in nanoseconds.
fn pax_time(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c.to_digit(10)? as i64;
        nanos += d * 10i64.pow(8 - i as u32);
    }
    let nanos = if secs < 0 { -nanos } else { nanos };
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Metadata the extension records (GNU `L`/`K`, pax `x`) give the next header.
#[derive(Default)]
struct Pending {
    /// Offset of the first record of the member (its first extension header).
    start: Option<u64>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    pax_mtime: Option<i64>,
    pax_uid: Option<u64>,
    pax_gid: Option<u64>,
    pax_user: Option<String>,
    pax_group: Option<String>,
    /// pax GNU sparse keys: the member is sparse; its real name and size.
    pax_sparse: bool,
    sparse_name: Option<Vec<u8>>,
    sparse_size: Option<u64>,
}

/// A reader that counts bytes and tells a clean end from an end inside a record.
struct Counted<R> {
    inner: R,
    at: u64,
}

impl<R: Read> Counted<R> {
    /// Fills `buf` whole; `Ok(false)` when the stream ends first (`got` says how much came).
    fn fill(&mut self, buf: &mut [u8]) -> Result<(bool, usize), ScanError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => return Ok((false, got)),
                Ok(n) => {
                    got += n;
                    self.at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ScanError::Io {
                        at: self.at,
                        source,
                    })
                }
            }
        }
        Ok((true, got))
    }
}

/// Walks the tar archive in `input` (a data tape file from its first byte), handing each
/// member to `on_member`. With `hash`, regular files' data is hashed as it is read (it is
/// read anyway).
pub fn walk<R, E, F>(input: R, hash: bool, mut on_member: F) -> Result<ScanSummary, E>
where
    R: Read,
    E: From<ScanError>,
    F: FnMut(ScannedMember) -> Result<(), E>,
{
    let mut r = Counted {
        inner: input,
        at: 0,
    };
    let mut record = [0u8; RECORD];
    let mut pending = Pending::default();
    let mut members = 0u64;
    let mut notes = Vec::new();
    let mut data = vec![0u8; 64 * 1024];
    let in_headers = |pending: &Pending| {
        ScanEnd::Truncated(Cut::InHeaders {
            name: pending
                .long_name
                .as_ref()
                .or(pending.pax_path.as_ref())
                .map(|n| String::from_utf8_lossy(n).into_owned()),
        })
    };
    let end = loop {
        let at = r.at;
        let (whole, got) = r.fill(&mut record)?;
        if !whole {
            if got == 0 && pending.start.is_none() {
                break ScanEnd::Truncated(Cut::BetweenMembers);
            }
            break in_headers(&pending);
        }
        if record.iter().all(|b| *b == 0) {
            break ScanEnd::EndOfArchive;
        }
        let header = match parse_header(&record, at) {
            Ok(h) => h,
            Err(detail) if at == 0 => return Err(ScanError::NotTar { detail }.into()),
            Err(detail) => return Err(ScanError::Damaged { at, detail }.into()),
        };
        pending.start.get_or_insert(at);
        // Extension records: their data belongs to the next header.
        if matches!(header.typeflag, b'L' | b'K' | b'x' | b'g' | b'N' | b'V') {
            if header.size > MAX_EXTENSION {
                return Err(ScanError::Damaged {
                    at,
                    detail: format!(
                        "a `{}` record of {} bytes",
                        header.typeflag as char, header.size
                    ),
                }
                .into());
            }
            let padded = header.size.div_ceil(RECORD as u64) * RECORD as u64;
            let mut ext = vec![0u8; padded as usize];
            let (whole, _) = r.fill(&mut ext)?;
            if !whole {
                break in_headers(&pending);
            }
            ext.truncate(header.size as usize);
            match header.typeflag {
                b'L' => pending.long_name = Some(text(&ext).to_vec()),
                b'K' => pending.long_link = Some(text(&ext).to_vec()),
                b'x' => apply_pax(&mut pending, &ext),
                b'V' => pending.start = None, // a volume label, no member
                _ => {}
            }
            continue;
        }
        let name = pending
            .sparse_name
            .take()
            .or(pending.long_name.take())
            .or(pending.pax_path.take())
            .unwrap_or(header.name.clone());
        let link = pending
            .long_link
            .take()
            .or(pending.pax_link.take())
            .unwrap_or(header.linkname.clone());
        let start = pending.start.take().unwrap_or(at);
        // Old GNU sparse headers may be followed by records of more sparse map entries.
        let mut extended = header.typeflag == b'S' && header.sparse_extended;
        let mut cut_in_headers = false;
        while extended {
            let (whole, _) = r.fill(&mut record)?;
            if !whole {
                cut_in_headers = true;
                break;
            }
            extended = record[504] != 0;
        }
        if cut_in_headers {
            pending.long_name = Some(name);
            break in_headers(&pending);
        }
        let sparse = header.typeflag == b'S' || pending.pax_sparse;
        let kind = match header.typeflag {
            b'0' | 0 | b'7' | b'M' | b'S' => MemberKind::File,
            b'1' => MemberKind::HardLink,
            b'2' => MemberKind::Symlink,
            b'3' => MemberKind::CharDevice,
            b'4' => MemberKind::BlockDevice,
            b'5' | b'D' => MemberKind::Dir,
            b'6' => MemberKind::Fifo,
            other => {
                notes.push(format!(
                    "byte {start}: member `{}` of unknown type `{}` taken as a file",
                    String::from_utf8_lossy(&name),
                    other.escape_ascii()
                ));
                MemberKind::File
            }
        };
        // Bytes of data that follow this header in the archive (links, devices and FIFOs
        // have none, whatever their size field says, as GNU tar reads them).
        let stored = pending.pax_size.take().unwrap_or(header.size);
        let stored = if matches!(header.typeflag, b'1' | b'2' | b'3' | b'4' | b'6') {
            0
        } else {
            stored
        };
        if sparse {
            notes.push(format!(
                "byte {start}: `{}` is a GNU sparse member: recorded with its real size, not \
                 hashed (its stored data is not the file's bytes)",
                String::from_utf8_lossy(&name)
            ));
        }
        let continuation = header.typeflag == b'M';
        let mut hasher = (hash && kind == MemberKind::File && !continuation && !sparse)
            .then(blake3::Hasher::new);
        let mut left = stored;
        let mut length = 0u64;
        let mut cut = false;
        while left > 0 {
            let n = left.min(data.len() as u64) as usize;
            let (whole, got) = r.fill(&mut data[..n])?;
            if let Some(h) = hasher.as_mut() {
                h.update(&data[..got]);
            }
            length += got as u64;
            left -= got as u64;
            if !whole {
                cut = true;
                break;
            }
        }
        if !cut {
            // Padding to a whole record (a stream that ends in it lost nothing).
            let pad = (RECORD as u64 - stored % RECORD as u64) % RECORD as u64;
            r.fill(&mut data[..pad as usize])?;
        }
        let real_size = (header.typeflag == b'S' && header.real_size > 0)
            .then_some(header.real_size)
            .or(pending.sparse_size.take());
        let size = match kind {
            MemberKind::File if continuation => header.offset.saturating_add(stored),
            MemberKind::File if sparse => real_size.unwrap_or(stored),
            MemberKind::File => stored,
            _ => 0,
        };
        let member = ScannedMember {
            start,
            name: String::from_utf8_lossy(&name).into_owned(),
            kind,
            size,
            file_offset: if continuation { header.offset } else { 0 },
            length: if kind == MemberKind::File { length } else { 0 },
            cut,
            mode: (header.mode & 0o7777) as u32,
            uid: pending.pax_uid.take().unwrap_or(header.uid),
            gid: pending.pax_gid.take().unwrap_or(header.gid),
            mtime_ns: pending.pax_mtime.take().unwrap_or_else(|| {
                i64::try_from(header.mtime)
                    .ok()
                    .and_then(|s| s.checked_mul(1_000_000_000))
                    .unwrap_or(i64::MAX)
            }),
            user: pending.pax_user.take().or(header.user),
            group: pending.pax_group.take().or(header.group),
            link: (matches!(kind, MemberKind::Symlink | MemberKind::HardLink) && !link.is_empty())
                .then(|| String::from_utf8_lossy(&link).into_owned()),
            blake3: if cut {
                None
            } else {
                hasher.map(|h| *h.finalize().as_bytes())
            },
        };
        pending = Pending::default();
        members += 1;
        on_member(member)?;
        if cut {
            break ScanEnd::Truncated(Cut::InData);
        }
    };
    Ok(ScanSummary {
        members,
        bytes: r.at,
        end,
        notes,
    })
}

fn apply_pax(p: &mut Pending, data: &[u8]) {
    for (key, value) in pax_records(data) {
        p.pax_sparse |= key.starts_with(b"GNU.sparse.");
        let as_u64 = || std::str::from_utf8(value).ok()?.parse::<u64>().ok();
        match key {
            b"path" => p.pax_path = Some(value.to_vec()),
            b"linkpath" => p.pax_link = Some(value.to_vec()),
            b"size" => p.pax_size = as_u64(),
            b"mtime" => p.pax_mtime = pax_time(value),
            b"uid" => p.pax_uid = as_u64(),
            b"gid" => p.pax_gid = as_u64(),
            b"uname" => p.pax_user = Some(String::from_utf8_lossy(value).into_owned()),
            b"gname" => p.pax_group = Some(String::from_utf8_lossy(value).into_owned()),
            b"GNU.sparse.name" => p.sparse_name = Some(value.to_vec()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => p.sparse_size = as_u64(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::{Builder, EntryType, Header as TarHeader};

    fn collect(bytes: &[u8]) -> Result<(ScanSummary, Vec<ScannedMember>), ScanError> {
        let mut got = Vec::new();
        let summary = walk(bytes, true, |m| {
            got.push(m);
            Ok::<(), ScanError>(())
        })?;
        Ok((summary, got))
    }

    /// An archive as the backup writes one: GNU headers, a long name, a pax xattr, a
    /// symlink, a hard link, a directory.
    fn archive() -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        let mut dir = TarHeader::new_gnu();
        dir.set_entry_type(EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_mtime(1_700_000_000);
        dir.set_size(0);
        b.append_data(&mut dir, "home/me/", io::empty()).unwrap();
        let mut f = TarHeader::new_gnu();
        f.set_entry_type(EntryType::Regular);
        f.set_mode(0o640);
        f.set_uid(1000);
        f.set_gid(100);
        f.set_username("me").unwrap();
        f.set_mtime(1_700_000_001);
        f.set_size(1000);
        b.append_pax_extensions([("SCHILY.xattr.user.tag", &b"x"[..])])
            .unwrap();
        b.append_data(&mut f, "home/me/notes.txt", &[7u8; 1000][..])
            .unwrap();
        let long = format!("home/me/{}/file.bin", "long-directory-name-".repeat(8));
        f.set_size(3);
        b.append_data(&mut f, &long, &b"abc"[..]).unwrap();
        let mut l = TarHeader::new_gnu();
        l.set_entry_type(EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "home/me/link", "notes.txt").unwrap();
        let mut h = TarHeader::new_gnu();
        h.set_entry_type(EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, "home/me/hard", "home/me/notes.txt")
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn members_come_with_their_first_header_offset_metadata_and_hash() {
        let bytes = archive();
        let (summary, m) = collect(&bytes).unwrap();
        assert_eq!(summary.end, ScanEnd::EndOfArchive);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].name, "home/me/");
        assert_eq!(m[0].kind, MemberKind::Dir);
        assert_eq!(m[0].start, 0);
        // The pax record set comes first: the member starts there.
        assert_eq!(m[1].start, 512);
        assert_eq!(m[1].name, "home/me/notes.txt");
        assert_eq!(
            (m[1].size, m[1].length, m[1].mode, m[1].uid),
            (1000, 1000, 0o640, 1000)
        );
        assert_eq!(m[1].user.as_deref(), Some("me"));
        assert_eq!(m[1].mtime_ns, 1_700_000_001_000_000_000);
        assert_eq!(m[1].blake3, Some(*blake3::hash(&[7u8; 1000]).as_bytes()));
        assert!(m[2].name.ends_with("/file.bin") && m[2].name.len() > 100);
        // The long name's own record is where that member starts.
        let h = TarHeader::from_byte_slice(&bytes[m[2].start as usize..][..512]);
        assert_eq!(h.entry_type(), EntryType::GNULongName);
        assert_eq!(m[3].kind, MemberKind::Symlink);
        assert_eq!(m[3].link.as_deref(), Some("notes.txt"));
        assert_eq!(m[4].kind, MemberKind::HardLink);
        assert_eq!(m[4].link.as_deref(), Some("home/me/notes.txt"));
        assert_eq!(m[4].size, 0);
    }

    #[test]
    fn a_tape_file_cut_inside_a_member_reports_what_it_holds() {
        let bytes = archive();
        // Cut inside notes.txt's data (its header at 1536, after the pax header and data).
        let (summary, m) = collect(&bytes[..2048 + 600]).unwrap();
        assert_eq!(summary.end, ScanEnd::Truncated(Cut::InData));
        let last = m.last().unwrap();
        assert!(last.cut);
        assert_eq!((last.size, last.length), (1000, 600));
        assert_eq!(last.blake3, None, "a part is not hashed");
        // Cut inside the long name's records: nothing reported for that member.
        let long_start = m.len(); // notes.txt was the second member
        let (_, whole) = collect(&bytes).unwrap();
        let at = whole[2].start as usize + 1024; // the long name read, not its header
        let (summary, m) = collect(&bytes[..at]).unwrap();
        assert_eq!(m.len(), long_start);
        assert!(matches!(
            summary.end,
            ScanEnd::Truncated(Cut::InHeaders { name: Some(_) })
        ));
        // Cut at a member boundary.
        let (summary, m) = collect(&bytes[..whole[3].start as usize]).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(summary.end, ScanEnd::Truncated(Cut::BetweenMembers));
    }

    #[test]
    fn a_continuation_header_gives_the_file_offset() {
        let mut out = crate::backup::spans::multivolume_header("home/me/big.iso", 700, 300);
        out.extend_from_slice(&[1u8; 700]);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        let (summary, m) = collect(&out).unwrap();
        assert_eq!(summary.end, ScanEnd::EndOfArchive);
        assert_eq!(m[0].name, "home/me/big.iso");
        assert_eq!((m[0].size, m[0].file_offset, m[0].length), (1000, 300, 700));
        assert_eq!(m[0].blake3, None, "only part of the file is here");
    }

    #[test]
    fn foreign_and_damaged_data_is_named_not_a_panic() {
        assert!(matches!(
            collect(&[0x41; 2048]).unwrap_err(),
            ScanError::NotTar { .. }
        ));
        let mut bytes = archive();
        bytes[1536 + 10] ^= 0x55; // notes.txt's header
        let err = collect(&bytes).unwrap_err();
        assert!(matches!(err, ScanError::Damaged { at: 1536, .. }), "{err}");
        let (summary, m) = collect(&[]).unwrap();
        assert!(m.is_empty());
        assert_eq!(summary.members, 0);
    }

    #[test]
    fn numbers_in_octal_and_base_256() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(b"  755 \0\0"), Some(0o755));
        assert_eq!(numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(numeric(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(numeric(&[0xff, 0xff]), None);
        assert_eq!(numeric(b"0009"), None);
        assert_eq!(numeric(&[0x81; 12]), None, "overflow");
    }

    #[test]
    fn pax_records_and_times() {
        let data = b"30 mtime=1700000000.123456789\n12 path=a/b\n9 bad\n";
        let recs = pax_records(data);
        assert_eq!(recs[0], (&b"mtime"[..], &b"1700000000.123456789"[..]));
        assert_eq!(recs[1], (&b"path"[..], &b"a/b"[..]));
        assert_eq!(
            pax_time(b"1700000000.123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(pax_time(b"-1.5"), Some(-1_500_000_000));
        assert_eq!(pax_time(b"x"), None);
        assert!(pax_records(b"99999 x=y\n").is_empty());
    }
}
