//! Packed member records: a backup's files are stored as runs of consecutive members of one
//! directory (at most [`RECORD_MEMBERS`] or [`RECORD_BYTES`]), one SQLite row per run, each member a compact
//! binary entry. One row per file would cost a b-tree insert per file; packing makes the
//! catalogue write a few rows per directory and keeps tens of millions of files small.
//!
//! Entry layout (integers are LEB128 varints, `z` = zig-zag signed):
//!
//! ```text
//! flags: u8      bit 0 mtime, 1 mode, 2 uid, 3 gid, 4 link, 5 blake3, 6 location, 7 split
//! name_id        varint
//! kind           u8 (FileKind code; bit 7 set: an extension follows the entry)
//! size           varint
//! [mtime_ns]     z-varint
//! [mode] [uid] [gid]   varints
//! [link]         varint length + UTF-8 bytes
//! [blake3]       32 bytes
//! [location]     part varint, block+1 varint (0 = unknown), offset+1 varint (0 = unknown)
//! [parts]        varint (only when split over several volumes; then segments has the parts)
//! [extension]    only when kind has bit 7 set:
//!   ext flags    u8: bit 0 inode, 1 ctime
//!   [inode]      varint
//!   [ctime]      z-varint of ctime_ns - mtime_ns (wrapping; ctime_ns itself without mtime)
//! ```
//! The extension came with schema version 2: inode and ctime let an incremental backup
//! tell a file that was changed (chmod, chown, a restored old mtime, a replaced file)
//! from one that was not; ctime is stored as its distance from mtime, a few bytes.
//! The format is part of the catalogue schema: changing it needs a migration.
//!
//! Every record written since schema version 3 carries a checksum (`members.sum`,
//! [`record_sum`]): CRC-32 over its key and data, so a flipped byte anywhere in the row
//! makes the record fail to read instead of decoding into other members. Records written
//! before carry none (NULL) and are read as they are. [`read_record`] is the one way a
//! record is read: the checksum, then the entries, then their number.

use super::backups::FileKind;

/// Members per record at most.
pub const RECORD_MEMBERS: usize = 64;

/// A record is closed once its data reaches this many bytes: SQLite keeps a row of a
/// WITHOUT ROWID table inside its page only up to about a quarter of the page (4086 bytes
/// of the catalogue's 16 KiB pages), and a larger one spills into overflow pages that
/// waste most of their space.
pub const RECORD_BYTES: usize = 3600;

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    pub name_id: i64,
    pub kind: i64,
    pub size: i64,
    pub mtime_ns: Option<i64>,
    pub mode: Option<i64>,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub link: Option<String>,
    pub blake3: Option<[u8; 32]>,
    /// backup_volumes.seq of the volume part holding the member's header.
    pub part: Option<i64>,
    pub block: Option<i64>,
    pub offset: Option<i64>,
    /// Parts, when the file is split across volumes (then `segments` has each).
    pub parts: i64,
    /// Inode number when the member was scanned (for the incremental comparison).
    pub ino: Option<u64>,
    /// Status change time (`st_ctime`) in nanoseconds since the epoch.
    pub ctime_ns: Option<i64>,
}

impl Member {
    pub fn kind(&self) -> FileKind {
        FileKind::from_code(self.kind)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bit of the kind byte that says an extension follows the entry.
const KIND_EXTENDED: u8 = 0x80;

/// Appends one member's entry to a record.
pub fn encode(out: &mut Vec<u8>, m: &Member) {
    let mut flags = 0u8;
    let bits = [
        m.mtime_ns.is_some(),
        m.mode.is_some(),
        m.uid.is_some(),
        m.gid.is_some(),
        m.link.is_some(),
        m.blake3.is_some(),
        m.part.is_some(),
        m.parts > 1,
    ];
    for (i, on) in bits.into_iter().enumerate() {
        if on {
            flags |= 1 << i;
        }
    }
    out.push(flags);
    put_varint(out, m.name_id as u64);
    let extended = m.ino.is_some() || m.ctime_ns.is_some();
    out.push((m.kind as u8 & !KIND_EXTENDED) | if extended { KIND_EXTENDED } else { 0 });
    put_varint(out, m.size.max(0) as u64);
    if let Some(t) = m.mtime_ns {
        put_varint(out, zigzag(t));
    }
    for v in [m.mode, m.uid, m.gid].into_iter().flatten() {
        put_varint(out, v.max(0) as u64);
    }
    if let Some(link) = &m.link {
        put_varint(out, link.len() as u64);
        out.extend_from_slice(link.as_bytes());
    }
    if let Some(h) = &m.blake3 {
        out.extend_from_slice(h);
    }
    if let Some(part) = m.part {
        put_varint(out, part.max(0) as u64);
        put_varint(out, m.block.map_or(0, |b| b.max(0) as u64 + 1));
        put_varint(out, m.offset.map_or(0, |o| o.max(0) as u64 + 1));
    }
    if m.parts > 1 {
        put_varint(out, m.parts as u64);
    }
    if extended {
        out.push(u8::from(m.ino.is_some()) | u8::from(m.ctime_ns.is_some()) << 1);
        if let Some(ino) = m.ino {
            put_varint(out, ino);
        }
        if let Some(ctime) = m.ctime_ns {
            put_varint(out, zigzag(ctime.wrapping_sub(m.mtime_ns.unwrap_or(0))));
        }
    }
}

/// A damaged record: the catalogue's blob does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("its entries do not decode (at byte {at})")]
pub struct Damaged {
    pub at: usize,
}

/// A record as stored: its key, its data and its checksum (`None`: written before
/// checksums).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub backup_id: i64,
    pub first_seq: i64,
    pub dir_id: i64,
    pub count: i64,
    pub data: &'a [u8],
    pub sum: Option<i64>,
}

/// Why a record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDamage {
    #[error("its checksum does not match its contents")]
    Checksum,
    #[error(transparent)]
    Decode(#[from] Damaged),
    #[error("it holds {found} members but says {count}")]
    Count { found: usize, count: i64 },
}

/// Whether new records are written with a checksum and records read are checked against
/// theirs: always, but for the benchmark that measures what the checksum costs.
static CHECKSUMS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Writes new records without checksums (as before schema version 3) and reads records
/// without checking them, to measure the checksum's cost; never for real catalogues.
#[doc(hidden)]
pub fn bench_checksums(on: bool) {
    CHECKSUMS.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn checksums() -> bool {
    CHECKSUMS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The checksum to store with a new record (`None` only in the benchmark without sums).
pub fn new_record_sum(
    backup_id: i64,
    first_seq: i64,
    dir_id: i64,
    count: i64,
    data: &[u8],
) -> Option<i64> {
    checksums().then(|| record_sum(backup_id, first_seq, dir_id, count, data))
}

/// CRC-32 over a record's key (backup, first member number, directory, count) and data.
pub fn record_sum(backup_id: i64, first_seq: i64, dir_id: i64, count: i64, data: &[u8]) -> i64 {
    let mut h = crc32fast::Hasher::new();
    for v in [backup_id, first_seq, dir_id, count] {
        h.update(&v.to_le_bytes());
    }
    h.update(data);
    i64::from(h.finalize())
}

/// Reads a record: its checksum (when it has one) must match, its entries must decode,
/// and there must be as many as it says.
pub fn read_record(r: &Record<'_>) -> Result<Vec<Member>, RecordDamage> {
    if let Some(sum) = r.sum.filter(|_| checksums()) {
        if sum != record_sum(r.backup_id, r.first_seq, r.dir_id, r.count, r.data) {
            return Err(RecordDamage::Checksum);
        }
    }
    let members = decode(r.data)?;
    if members.len() as i64 != r.count {
        return Err(RecordDamage::Count {
            found: members.len(),
            count: r.count,
        });
    }
    Ok(members)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Damaged> {
        let b = *self.data.get(self.at).ok_or(Damaged { at: self.at })?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, Damaged> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Damaged { at: self.at })
    }

    fn int(&mut self) -> Result<i64, Damaged> {
        i64::try_from(self.varint()?).map_err(|_| Damaged { at: self.at })
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], Damaged> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(Damaged { at: self.at })?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }
}

/// Decodes every member of a record.
pub fn decode(data: &[u8]) -> Result<Vec<Member>, Damaged> {
    let mut r = Reader { data, at: 0 };
    let mut out = Vec::new();
    while r.at < data.len() {
        let flags = r.byte()?;
        let on = |bit: u8| flags & (1 << bit) != 0;
        let name_id = r.int()?;
        let kind = r.byte()?;
        let mut m = Member {
            name_id,
            kind: i64::from(kind & !KIND_EXTENDED),
            size: r.int()?,
            parts: 1,
            ..Member::default()
        };
        if on(0) {
            m.mtime_ns = Some(unzigzag(r.varint()?));
        }
        if on(1) {
            m.mode = Some(r.int()?);
        }
        if on(2) {
            m.uid = Some(r.int()?);
        }
        if on(3) {
            m.gid = Some(r.int()?);
        }
        if on(4) {
            let n = r.varint()? as usize;
            let bytes = r.bytes(n)?;
            m.link = Some(String::from_utf8_lossy(bytes).into_owned());
        }
        if on(5) {
            let mut h = [0u8; 32];
            h.copy_from_slice(r.bytes(32)?);
            m.blake3 = Some(h);
        }
        if on(6) {
            m.part = Some(r.int()?);
            m.block = r.int()?.checked_sub(1).filter(|v| *v >= 0);
            m.offset = r.int()?.checked_sub(1).filter(|v| *v >= 0);
        }
        if on(7) {
            m.parts = r.int()?;
        }
        if kind & KIND_EXTENDED != 0 {
            let ext = r.byte()?;
            if ext & 1 != 0 {
                m.ino = Some(r.varint()?);
            }
            if ext & 2 != 0 {
                let delta = unzigzag(r.varint()?);
                m.ctime_ns = Some(m.mtime_ns.unwrap_or(0).wrapping_add(delta));
            }
        }
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Member {
        Member {
            name_id: 123_456,
            kind: FileKind::Symlink.code(),
            size: 4_000_000_000,
            mtime_ns: Some(1_700_000_000_123_456_789),
            mode: Some(0o755),
            uid: Some(1000),
            gid: Some(100),
            link: Some("../target/ü".into()),
            blake3: Some([9; 32]),
            part: Some(1),
            block: Some(123_456_789),
            offset: Some(0),
            parts: 3,
            ino: Some(u64::MAX - 1),
            ctime_ns: Some(1_700_000_100_000_000_001),
        }
    }

    #[test]
    fn members_round_trip_with_and_without_optional_fields() {
        let bare = Member {
            name_id: 7,
            kind: 0,
            size: 0,
            parts: 1,
            ..Member::default()
        };
        let before_epoch = Member {
            mtime_ns: Some(-5),
            part: Some(0),
            block: None,
            offset: None,
            ..bare.clone()
        };
        let ctime_only = Member {
            ctime_ns: Some(i64::MIN),
            ..bare.clone()
        };
        let far_apart = Member {
            mtime_ns: Some(i64::MAX),
            ctime_ns: Some(i64::MIN),
            ino: Some(0),
            ..bare.clone()
        };
        let mut buf = Vec::new();
        for m in [&full(), &bare, &before_epoch, &ctime_only, &far_apart] {
            encode(&mut buf, m);
        }
        assert_eq!(
            decode(&buf).unwrap(),
            vec![full(), bare, before_epoch, ctime_only, far_apart]
        );
    }

    #[test]
    fn entries_without_the_extension_decode_as_before() {
        // An entry as schema version 1 wrote it: flags 0, name 7, kind 1 (dir), size 0.
        let old = [0u8, 7, 1, 0];
        let m = &decode(&old).unwrap()[0];
        assert_eq!(
            (m.name_id, m.kind(), m.ino, m.ctime_ns),
            (7, FileKind::Dir, None, None)
        );
        let mut buf = Vec::new();
        encode(&mut buf, m);
        assert_eq!(buf, old, "no extension without inode or ctime");
    }

    #[test]
    fn the_extension_costs_a_few_bytes() {
        let mut m = full();
        m.link = None;
        m.kind = 0;
        m.parts = 1;
        m.ino = Some(12_345_678);
        m.ctime_ns = m.mtime_ns.map(|t| t + 1_000);
        let mut with = Vec::new();
        encode(&mut with, &m);
        m.ino = None;
        m.ctime_ns = None;
        let mut without = Vec::new();
        encode(&mut without, &m);
        assert!(
            with.len() - without.len() <= 8,
            "{} bytes",
            with.len() - without.len()
        );
    }

    #[test]
    fn a_typical_file_takes_about_sixty_bytes() {
        let mut m = full();
        m.link = None;
        m.kind = 0;
        m.parts = 1;
        m.size = 1_234_567;
        m.ino = None;
        m.ctime_ns = None;
        let mut buf = Vec::new();
        encode(&mut buf, &m);
        assert!(buf.len() <= 64, "{} bytes", buf.len());
        // Written once and not touched since: ctime is mtime, 2 bytes for it and 5 for
        // the inode.
        m.ino = Some(1 << 30);
        m.ctime_ns = m.mtime_ns;
        buf.clear();
        encode(&mut buf, &m);
        assert!(buf.len() <= 72, "{} bytes", buf.len());
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_record_fails_its_checksum() {
        let mut data = Vec::new();
        encode(&mut data, &full());
        encode(&mut data, &full());
        let sum = record_sum(3, 64, 9, 2, &data);
        let good = Record {
            backup_id: 3,
            first_seq: 64,
            dir_id: 9,
            count: 2,
            data: &data,
            sum: Some(sum),
        };
        assert_eq!(read_record(&good).unwrap().len(), 2);
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[i] ^= 1 << bit;
                let r = Record { data: &bad, ..good };
                assert_eq!(
                    read_record(&r),
                    Err(RecordDamage::Checksum),
                    "byte {i} bit {bit}"
                );
            }
        }
        for r in [
            Record {
                backup_id: 4,
                ..good
            },
            Record {
                first_seq: 0,
                ..good
            },
            Record { dir_id: 8, ..good },
            Record { count: 1, ..good },
        ] {
            assert_eq!(read_record(&r), Err(RecordDamage::Checksum));
        }
        // Without a checksum (written before version 3) the count still has to agree.
        let old = Record {
            sum: None,
            count: 3,
            ..good
        };
        assert_eq!(
            read_record(&old),
            Err(RecordDamage::Count { found: 2, count: 3 })
        );
        assert_eq!(read_record(&Record { sum: None, ..good }).unwrap().len(), 2);
    }

    #[test]
    fn truncated_records_are_damage_not_panics() {
        let mut buf = Vec::new();
        encode(&mut buf, &full());
        for cut in 0..buf.len() {
            let _ = decode(&buf[..cut]);
        }
        assert!(decode(&buf[..buf.len() - 1]).is_err());
        assert!(decode(&[0xff; 20]).is_err());
    }
}
