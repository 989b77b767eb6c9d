//! Header records decoded: numeric and text fields, checksums, pax records and times, and
//! [`HeaderDecoder`], which turns the header records of one member (extension records
//! first, then its own header) into a [`MemberHeader`].

use super::ArchiveError;
use std::collections::BTreeMap;

/// Tar record size.
pub const RECORD: usize = 512;

/// Largest GNU long-name, pax or volume-header record accepted (a larger one is damage).
pub const MAX_EXTENSION: u64 = 16 << 20;

/// Padding after `size` data bytes up to a whole record.
pub fn padding(size: u64) -> u64 {
    let record = RECORD as u64;
    (record - size % record) % record
}

/// A zero record: the end-of-archive marker.
pub fn is_zero(record: &[u8]) -> bool {
    record.iter().all(|b| *b == 0)
}

/// A NUL-terminated text field.
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn owned_text(field: &[u8]) -> Option<Vec<u8>> {
    let t = text(field);
    (!t.is_empty()).then(|| t.to_vec())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A numeric field: octal digits (leading spaces or NULs, ended by a space or NUL), or
/// GNU base-256 (high bit of the first byte set). `None` when it is neither, negative, or
/// larger than 64 bits.
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
    let Some(start) = field.iter().position(|b| *b != b' ' && *b != 0) else {
        return Some(0);
    };
    let rest = &field[start..];
    let end = rest
        .iter()
        .position(|b| *b == b' ' || *b == 0)
        .unwrap_or(rest.len());
    let mut v: u64 = 0;
    for &b in &rest[..end] {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// A numeric field that may be negative (a time before 1970): octal, or GNU base-256,
/// whose bits after the marker bit are a two's complement number.
fn signed_numeric(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 == 0 {
        return numeric(field).and_then(|v| i64::try_from(v).ok());
    }
    let mut v = i128::from(first & 0x7f);
    if first & 0x40 != 0 {
        v -= 0x80;
    }
    for &b in &field[1..] {
        v = v.checked_mul(256)?.checked_add(i128::from(b))?;
    }
    i64::try_from(v).ok()
}

/// The header checksum matches (unsigned, or the signed sum some old tars wrote).
pub fn checksum_ok(record: &[u8; RECORD]) -> bool {
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

/// pax records `LEN key=value\n` (values may hold any bytes), as (key, value) pairs in
/// order; a damaged record ends the list.
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

/// pax records into `out`; an empty value removes the key (pax: the header's own field
/// counts again).
fn merge_pax(out: &mut BTreeMap<String, Vec<u8>>, data: &[u8]) {
    for (key, value) in pax_records(data) {
        let key = lossy(key);
        if value.is_empty() {
            out.remove(&key);
        } else {
            out.insert(key, value.to_vec());
        }
    }
}

/// A pax time (`1700000000.123456789`, possibly negative) in nanoseconds.
pub fn pax_time(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += i64::from(c.to_digit(10)?) * 10i64.pow(8 - i as u32);
    }
    let total = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some(if negative { -total } else { total })
}

fn pax_number(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// What a member is, from its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file (`0`, NUL, `7`), or a GNU sparse one (`S`, see
    /// [`MemberHeader::sparse`]).
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    /// A directory (`5`), or a GNU incremental dump directory (`D`, whose data lists it).
    Dir,
    Fifo,
    /// A GNU multi-volume continuation: the rest of a file whose first `offset` bytes are
    /// on the previous volume.
    Continuation {
        offset: u64,
    },
    /// A type this reader does not know (the type byte).
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
            MemberKind::Other(t) => format!("member of unknown type `{}`", t.escape_ascii()),
        }
    }
}

/// A GNU sparse member: its data in the archive is a map and the file's data runs, not
/// the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// The file's real name (pax `GNU.sparse.name`), when the member is named otherwise.
    pub name: Option<Vec<u8>>,
    /// The file's real size.
    pub real_size: u64,
}

/// One member's headers, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    /// Offset of its first header record (long-name and pax records included) in what
    /// was read.
    pub start: u64,
    /// Bytes of header records (long names, pax records, sparse extensions included).
    pub header_bytes: u64,
    /// The member name as stored (bytes; tapedeck writes UTF-8).
    pub name: Vec<u8>,
    pub kind: MemberKind,
    /// Data bytes that follow the headers in the archive (none for links, devices,
    /// FIFOs and directories, whatever their size field says, as GNU tar reads them).
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, when a pax record gives it.
    pub ctime_ns: Option<i64>,
    pub user: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    /// Symlink target or hard-link target member name.
    pub link: Option<Vec<u8>>,
    pub device: (u32, u32),
    /// Extended attributes from `SCHILY.xattr.*` pax records, by name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Set for a GNU sparse member (old `S` header or pax `GNU.sparse.*` keys).
    pub sparse: Option<Sparse>,
}

impl MemberHeader {
    /// The name as text, with trailing slashes (directories) removed.
    pub fn name_lossy(&self) -> String {
        lossy(&self.name).trim_end_matches('/').to_string()
    }

    /// The link target as text.
    pub fn link_lossy(&self) -> Option<String> {
        self.link.as_deref().map(lossy)
    }

    pub fn user_lossy(&self) -> Option<String> {
        self.user.as_deref().map(lossy)
    }

    pub fn group_lossy(&self) -> Option<String> {
        self.group.as_deref().map(lossy)
    }

    /// The name of the file the member holds: a sparse member's real name, else its name.
    pub fn file_name(&self) -> &[u8] {
        self.sparse
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .unwrap_or(&self.name)
    }
}

/// What a [`HeaderDecoder`] needs after a record.
#[derive(Debug)]
pub enum Step {
    /// An extension record (long name, pax, volume header): its `size` bytes of data
    /// follow (then [`padding`] to a whole record); hand them to
    /// [`HeaderDecoder::extension`].
    Extension { size: u64 },
    /// An old GNU sparse header continues in the next record: hand it to
    /// [`HeaderDecoder::record`].
    SparseRecord,
    /// The member's headers are complete (its `start` and `header_bytes` are the
    /// caller's to fill in); its data follows.
    Member(Box<MemberHeader>),
    /// A zero record: the end-of-archive marker.
    End,
}

/// What the records before a member's own header gave.
#[derive(Default)]
struct Pending {
    /// A record of the member came.
    started: bool,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: BTreeMap<String, Vec<u8>>,
    /// The type of the extension record whose data is awaited.
    awaiting: Option<u8>,
    /// An old GNU sparse header waiting for its extension records.
    sparse_header: Option<Box<MemberHeader>>,
}

/// Decodes header records one at a time, member after member; pax `g` records apply to
/// every member after them.
#[derive(Default)]
pub struct HeaderDecoder {
    globals: BTreeMap<String, Vec<u8>>,
    pending: Pending,
}

fn damaged(at: u64, detail: impl Into<String>) -> ArchiveError {
    ArchiveError::Damaged {
        at,
        detail: detail.into(),
    }
}

impl HeaderDecoder {
    pub fn new() -> HeaderDecoder {
        HeaderDecoder::default()
    }

    /// Some of a member's header records came, not yet all of them.
    pub fn in_member(&self) -> bool {
        self.pending.started || self.pending.sparse_header.is_some()
    }

    /// The name the records so far give the member (a long name, a pax path, or a sparse
    /// header's), for saying what a stream cut inside its headers held.
    pub fn pending_name(&self) -> Option<&[u8]> {
        if let Some(h) = &self.pending.sparse_header {
            return Some(h.file_name());
        }
        self.pending
            .pax
            .get("path")
            .or(self.pending.long_name.as_ref())
            .map(Vec::as_slice)
    }

    /// The next header record, read at byte `at` (for errors).
    pub fn record(&mut self, record: &[u8; RECORD], at: u64) -> Result<Step, ArchiveError> {
        if let Some(header) = self.pending.sparse_header.take() {
            // Sparse map entries; the last byte but seven says whether more records follow.
            if record[504] != 0 {
                self.pending.sparse_header = Some(header);
                return Ok(Step::SparseRecord);
            }
            return Ok(Step::Member(header));
        }
        if is_zero(record) {
            self.pending = Pending::default();
            return Ok(Step::End);
        }
        if !checksum_ok(record) {
            return Err(ArchiveError::NotTar {
                at,
                detail: "its checksum does not match".into(),
            });
        }
        self.pending.started = true;
        let size =
            numeric(&record[124..136]).ok_or_else(|| damaged(at, "the size field is bad"))?;
        let typeflag = record[156];
        if matches!(typeflag, b'L' | b'K' | b'x' | b'g' | b'V') {
            if size > MAX_EXTENSION {
                return Err(damaged(
                    at,
                    format!(
                        "a `{}` record of {size} bytes (at most {MAX_EXTENSION})",
                        typeflag.escape_ascii()
                    ),
                ));
            }
            self.pending.awaiting = Some(typeflag);
            return Ok(Step::Extension { size });
        }
        let header = Box::new(self.decode(record, at, size)?);
        if typeflag == b'S' && &record[257..263] == b"ustar " && record[482] != 0 {
            self.pending.sparse_header = Some(header);
            return Ok(Step::SparseRecord);
        }
        Ok(Step::Member(header))
    }

    /// The data (without padding) of the extension record [`Step::Extension`] asked for.
    pub fn extension(&mut self, data: &[u8]) {
        match self.pending.awaiting.take() {
            Some(b'L') => self.pending.long_name = Some(text(data).to_vec()),
            Some(b'K') => self.pending.long_link = Some(text(data).to_vec()),
            Some(b'x') => merge_pax(&mut self.pending.pax, data),
            Some(b'g') => merge_pax(&mut self.globals, data),
            _ => {} // a volume header: no member of its own
        }
    }

    /// A member's own header record, with what the records before it gave.
    fn decode(
        &mut self,
        record: &[u8; RECORD],
        at: u64,
        size: u64,
    ) -> Result<MemberHeader, ArchiveError> {
        let pending = std::mem::take(&mut self.pending);
        let mut pax = pending.pax;
        for (k, v) in &self.globals {
            pax.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // Metadata fields that do not parse count as 0 (GNU tar warns and reads on); the
        // fields the archive's layout hangs on (size, continuation offset) must parse.
        let field = |range: std::ops::Range<usize>| numeric(&record[range]).unwrap_or(0);
        let magic = &record[257..263];
        let (ustar, gnu) = (magic == b"ustar\0", magic == b"ustar ");
        let typeflag = record[156];
        let mut name = text(&record[0..100]).to_vec();
        let prefix = text(&record[345..500]);
        if ustar && !prefix.is_empty() {
            name = [prefix, b"/", &name].concat();
        }
        let name = pax.remove("path").or(pending.long_name).unwrap_or(name);
        let kind = match typeflag {
            b'0' | 0 | b'7' | b'S' => MemberKind::File,
            b'1' => MemberKind::HardLink,
            b'2' => MemberKind::Symlink,
            b'3' => MemberKind::CharDevice,
            b'4' => MemberKind::BlockDevice,
            b'5' | b'D' => MemberKind::Dir,
            b'6' => MemberKind::Fifo,
            // GNU tar writes these without a magic: the offset field is GNU's all the same.
            b'M' => MemberKind::Continuation {
                offset: numeric(&record[369..381])
                    .ok_or_else(|| damaged(at, "the continuation offset field is bad"))?,
            },
            other => MemberKind::Other(other),
        };
        let link = pax
            .remove("linkpath")
            .or(pending.long_link)
            .or_else(|| owned_text(&record[157..257]));
        let size = pax.get("size").and_then(|v| pax_number(v)).unwrap_or(size);
        let size = if (b'1'..=b'6').contains(&typeflag) {
            0
        } else {
            size
        };
        let uid = pax.get("uid").and_then(|v| pax_number(v));
        let gid = pax.get("gid").and_then(|v| pax_number(v));
        let mtime_ns = pax
            .get("mtime")
            .and_then(|v| pax_time(v))
            .unwrap_or_else(|| {
                signed_numeric(&record[136..148])
                    .unwrap_or(0)
                    .saturating_mul(1_000_000_000)
            });
        let owner = |key: &str, range: std::ops::Range<usize>| {
            pax.get(key)
                .cloned()
                .or_else(|| (ustar || gnu).then(|| owned_text(&record[range])).flatten())
        };
        let (user, group) = (owner("uname", 265..297), owner("gname", 297..329));
        let device = if matches!(kind, MemberKind::CharDevice | MemberKind::BlockDevice) {
            let number = |range| field(range).min(u64::from(u32::MAX)) as u32;
            (number(329..337), number(337..345))
        } else {
            (0, 0)
        };
        let sparse =
            (typeflag == b'S' || pax.keys().any(|k| k.starts_with("GNU.sparse."))).then(|| {
                let old_gnu = (typeflag == b'S' && gnu)
                    .then(|| numeric(&record[483..495]))
                    .flatten()
                    .filter(|s| *s > 0);
                Sparse {
                    name: pax.get("GNU.sparse.name").cloned(),
                    real_size: pax
                        .get("GNU.sparse.realsize")
                        .or(pax.get("GNU.sparse.size"))
                        .and_then(|v| pax_number(v))
                        .or(old_gnu)
                        .unwrap_or(size),
                }
            });
        Ok(MemberHeader {
            start: 0,
            header_bytes: 0,
            name,
            kind,
            size,
            mode: (field(100..108) & 0o7777) as u32,
            uid: uid.unwrap_or_else(|| field(108..116)),
            gid: gid.unwrap_or_else(|| field(116..124)),
            mtime_ns,
            ctime_ns: pax.get("ctime").and_then(|v| pax_time(v)),
            user,
            group,
            link,
            device,
            xattrs: pax
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("SCHILY.xattr.")
                        .map(|name| (name.to_string(), v.clone()))
                })
                .collect(),
            sparse,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_octal_and_base_256() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(b"  755 \0\0"), Some(0o755));
        assert_eq!(numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(numeric(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(numeric(&[0xff, 0xff]), None);
        assert_eq!(numeric(b"0009"), None);
        assert_eq!(numeric(&[0x81; 12]), None, "overflow");
        assert_eq!(signed_numeric(b"00000000017\0"), Some(15));
        assert_eq!(signed_numeric(&[0xff; 12]), Some(-1));
        let mut minus_a_day = [0xffu8; 12];
        minus_a_day[8..].copy_from_slice(&(-86_400i32).to_be_bytes());
        assert_eq!(signed_numeric(&minus_a_day), Some(-86_400));
        assert_eq!(
            signed_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
    }

    #[test]
    fn pax_records_and_times() {
        let data = b"30 mtime=1700000000.123456789\n12 path=a/b\n9 bad\n";
        let recs = pax_records(data);
        assert_eq!(recs[0], (&b"mtime"[..], &b"1700000000.123456789"[..]));
        assert_eq!(recs[1], (&b"path"[..], &b"a/b"[..]));
        assert_eq!(recs.len(), 2, "a damaged record ends the list");
        assert!(pax_records(b"99999 x=y\n").is_empty());
        assert!(pax_records(b"3 p\n").is_empty());
        assert_eq!(
            pax_time(b"1700000000.123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(pax_time(b"12"), Some(12_000_000_000));
        assert_eq!(pax_time(b"1.5"), Some(1_500_000_000));
        assert_eq!(pax_time(b"-2.25"), Some(-2_250_000_000));
        assert_eq!(pax_time(b"-0.5"), Some(-500_000_000));
        assert_eq!(pax_time(b"x"), None);
        let mut map = BTreeMap::new();
        merge_pax(&mut map, b"13 path=abcd\n");
        assert_eq!(map["path"], b"abcd");
        merge_pax(&mut map, b"8 path=\n");
        assert!(map.is_empty(), "an empty value removes the key");
    }

    #[test]
    fn checksums_signed_and_unsigned() {
        let mut h = tar::Header::new_gnu();
        h.set_path("x").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut record = [0u8; RECORD];
        record.copy_from_slice(h.as_bytes());
        assert!(checksum_ok(&record));
        record[0] = 0xe9; // 233 unsigned, -23 signed
        assert!(!checksum_ok(&record));
        let signed: i64 = record
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        record[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        assert!(checksum_ok(&record));
    }
}
