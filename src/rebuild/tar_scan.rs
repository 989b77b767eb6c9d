//! Walking a data tape file's tar headers without an index: every member with the byte
//! offset of its first header record (GNU long-name and pax records included, as the
//! backup records it), its metadata, and the BLAKE3 of its data when asked. GNU `M`
//! continuation headers (a member continued from the previous volume) and a stream that
//! ends inside a member (continued on the next volume, or cut off) are reported as such.
//! The headers are read by [`crate::tarfmt::MemberReader`].
//!
//! Any bytes give either members or a [`ScanError`] saying where the archive stopped
//! making sense; nothing here panics.

use crate::catalog::FileKind;
use crate::tarfmt::{ArchiveEnd, ArchiveError, MemberKind, MemberReader};
use std::io::{self, Read};

/// One member as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedMember {
    /// Offset of its first header record in the tape file.
    pub start: u64,
    /// The member name as stored (a GNU sparse member's real name).
    pub name: String,
    /// What it is: a member of a type the catalogue does not know is taken as a file.
    pub kind: FileKind,
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

impl From<ArchiveError> for ScanError {
    /// Damage in the first header means the tape file is not tar at all.
    fn from(e: ArchiveError) -> ScanError {
        match e {
            ArchiveError::Io { at, source } => ScanError::Io { at, source },
            ArchiveError::NotTar { at: 0, detail } | ArchiveError::Damaged { at: 0, detail } => {
                ScanError::NotTar { detail }
            }
            ArchiveError::NotTar { at, detail } | ArchiveError::Damaged { at, detail } => {
                ScanError::Damaged { at, detail }
            }
            ArchiveError::Truncated { at } => ScanError::Damaged {
                at,
                detail: "truncated".into(),
            },
        }
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
    let mut reader = MemberReader::new(input);
    let mut members = 0u64;
    let mut notes = Vec::new();
    let mut data = vec![0u8; 64 * 1024];
    let end = loop {
        let header = match reader.next_header() {
            Ok(Some(h)) => h,
            Ok(None) if reader.end() == Some(ArchiveEnd::Marker) => break ScanEnd::EndOfArchive,
            Ok(None) => break ScanEnd::Truncated(Cut::BetweenMembers),
            Err(ArchiveError::Truncated { .. }) => {
                let name = reader
                    .pending_name()
                    .map(|n| String::from_utf8_lossy(n).into_owned());
                break ScanEnd::Truncated(Cut::InHeaders { name });
            }
            Err(e) => return Err(ScanError::from(e).into()),
        };
        let start = header.start;
        let name = String::from_utf8_lossy(header.file_name()).into_owned();
        let kind = match header.kind {
            MemberKind::File | MemberKind::Continuation { .. } => FileKind::File,
            MemberKind::HardLink => FileKind::HardLink,
            MemberKind::Symlink => FileKind::Symlink,
            MemberKind::CharDevice => FileKind::CharDevice,
            MemberKind::BlockDevice => FileKind::BlockDevice,
            MemberKind::Dir => FileKind::Dir,
            MemberKind::Fifo => FileKind::Fifo,
            MemberKind::Other(t) => {
                notes.push(format!(
                    "byte {start}: member `{name}` of unknown type `{}` taken as a file",
                    t.escape_ascii()
                ));
                FileKind::File
            }
        };
        if header.sparse.is_some() {
            notes.push(format!(
                "byte {start}: `{name}` is a GNU sparse member: recorded with its real size, not \
                 hashed (its stored data is not the file's bytes)"
            ));
        }
        let file_offset = match header.kind {
            MemberKind::Continuation { offset } => offset,
            _ => 0,
        };
        let whole_file = matches!(header.kind, MemberKind::File | MemberKind::Other(_))
            && header.sparse.is_none();
        let mut hasher = (hash && whole_file).then(blake3::Hasher::new);
        let mut length = 0u64;
        let mut cut = false;
        loop {
            match reader.read_data(&mut data) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(&data[..n]);
                    }
                    length += n as u64;
                }
                Err(ArchiveError::Truncated { .. }) => {
                    cut = true;
                    break;
                }
                Err(e) => return Err(ScanError::from(e).into()),
            }
        }
        let size = match (&header.sparse, kind) {
            (Some(sparse), FileKind::File) => sparse.real_size,
            (None, FileKind::File) => file_offset.saturating_add(header.size),
            _ => 0,
        };
        let member = ScannedMember {
            start,
            name,
            kind,
            size,
            file_offset,
            length: if kind == FileKind::File { length } else { 0 },
            cut,
            mode: header.mode,
            uid: header.uid,
            gid: header.gid,
            mtime_ns: header.mtime_ns,
            user: header.user_lossy(),
            group: header.group_lossy(),
            link: header.link_lossy().filter(|l| {
                matches!(kind, FileKind::Symlink | FileKind::HardLink) && !l.is_empty()
            }),
            blake3: if cut {
                None
            } else {
                hasher.map(|h| *h.finalize().as_bytes())
            },
        };
        members += 1;
        on_member(member)?;
        if cut {
            break ScanEnd::Truncated(Cut::InData);
        }
    };
    Ok(ScanSummary {
        members,
        bytes: reader.position(),
        end,
        notes,
    })
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
        assert_eq!(m[0].kind, FileKind::Dir);
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
        assert_eq!(m[3].kind, FileKind::Symlink);
        assert_eq!(m[3].link.as_deref(), Some("notes.txt"));
        assert_eq!(m[4].kind, FileKind::HardLink);
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
}
