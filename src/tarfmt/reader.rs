//! Members read one after the other from any byte stream: the pull-style driver of
//! [`HeaderDecoder`].

use super::header::{padding, HeaderDecoder, MemberHeader, Step, RECORD};
use super::ArchiveError;
use std::io::{self, Read};

/// How the archive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveEnd {
    /// The end-of-archive marker (a zero record).
    Marker,
    /// The stream ended between members (or in the padding after one), without it.
    Stream,
    /// The reader was told to stop ([`MemberReader::limit_data`]).
    Limited,
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
    decoder: HeaderDecoder,
    end: Option<ArchiveEnd>,
}

impl<R: Read> MemberReader<R> {
    pub fn new(inner: R) -> MemberReader<R> {
        MemberReader {
            inner,
            at: 0,
            data_left: 0,
            pad_left: 0,
            decoder: HeaderDecoder::new(),
            end: None,
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

    /// How the archive ended, once [`MemberReader::next_header`] gave `None`.
    pub fn end(&self) -> Option<ArchiveEnd> {
        self.end
    }

    /// What the header records read before an error give the member's name (a long name,
    /// a pax path): for a stream cut inside a member's headers.
    pub fn pending_name(&self) -> Option<&[u8]> {
        self.decoder.pending_name()
    }

    /// Reads into `buf` until it is full or the stream ends; the bytes read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
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
        Ok(got)
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end before the first byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ArchiveError> {
        match self.read_up_to(buf)? {
            0 if !buf.is_empty() => Ok(false),
            n if n < buf.len() => Err(ArchiveError::Truncated { at: self.at }),
            _ => Ok(true),
        }
    }

    /// Discards up to `n` bytes; the number discarded (less at the stream's end).
    fn discard(&mut self, mut n: u64) -> Result<u64, ArchiveError> {
        let mut scratch = [0u8; 8192];
        let mut done = 0;
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            let got = self.read_up_to(&mut scratch[..k])?;
            done += got as u64;
            if got < k {
                break;
            }
            n -= k as u64;
        }
        Ok(done)
    }

    /// Discards exactly `n` bytes.
    fn discard_all(&mut self, n: u64) -> Result<(), ArchiveError> {
        if self.discard(n)? < n {
            return Err(ArchiveError::Truncated { at: self.at });
        }
        Ok(())
    }

    /// Reads an extension record's data (its size already bounded) and its padding.
    fn extension(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        let mut data = Vec::new();
        let read = self.inner.by_ref().take(size).read_to_end(&mut data);
        self.at += data.len() as u64;
        if let Err(source) = read {
            return Err(ArchiveError::Io {
                at: self.at,
                source,
            });
        }
        if (data.len() as u64) < size {
            return Err(ArchiveError::Truncated { at: self.at });
        }
        self.discard_all(padding(size))?;
        Ok(data)
    }

    /// Skips what is left of the current member (data and padding).
    pub fn skip_data(&mut self) -> Result<(), ArchiveError> {
        let (data, pad) = (self.data_left, self.pad_left);
        self.data_left = 0;
        self.pad_left = 0;
        self.discard_all(data)?;
        self.discard_all(pad)
    }

    /// The next member's headers (the rest of the current member is skipped first), or
    /// `None` at the end of the archive: a zero record, or the stream's end between
    /// members or in the padding after the last one ([`MemberReader::end`] says which).
    pub fn next_header(&mut self) -> Result<Option<MemberHeader>, ArchiveError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let pad = self.pad_left;
        self.pad_left = 0;
        self.skip_data()?;
        if self.discard(pad)? < pad {
            self.end = Some(ArchiveEnd::Stream);
            return Ok(None);
        }
        let start = self.at;
        let mut block = [0u8; RECORD];
        loop {
            let at = self.at;
            if !self.fill(&mut block)? {
                if self.decoder.in_member() {
                    return Err(ArchiveError::Truncated { at });
                }
                self.end = Some(ArchiveEnd::Stream);
                return Ok(None);
            }
            match self.decoder.record(&block, at)? {
                Step::End => {
                    self.end = Some(ArchiveEnd::Marker);
                    return Ok(None);
                }
                Step::Extension { size } => {
                    let data = self.extension(size)?;
                    self.decoder.extension(&data);
                }
                Step::SparseRecord => {}
                Step::Member(header) => {
                    let header = MemberHeader {
                        start,
                        header_bytes: self.at - start,
                        ..*header
                    };
                    self.data_left = header.size;
                    self.pad_left = padding(header.size);
                    return Ok(Some(header));
                }
            }
        }
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
            self.end = Some(ArchiveEnd::Limited);
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

#[cfg(test)]
mod tests {
    use super::super::{MemberKind, MAX_EXTENSION};
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
        h.set_uid(1000);
        h.set_username("me").unwrap();
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    /// Every member's headers, and the error that stopped the walk.
    fn list(bytes: &[u8]) -> (Vec<MemberHeader>, Option<ArchiveError>) {
        let mut r = MemberReader::new(bytes);
        let mut out = Vec::new();
        loop {
            match r.next_header() {
                Ok(Some(h)) => out.push(h),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn members_come_with_long_names_pax_xattrs_links_and_first_header_offsets() {
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
            let mut d = tar::Header::new_gnu();
            d.set_entry_type(tar::EntryType::Directory);
            d.set_size(0);
            b.append_data(&mut d, "dir/", io::empty()).unwrap();
        });
        let (m, err) = list(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].name.as_slice(), m[0].size), (&b"a.txt"[..], 5));
        assert_eq!((m[0].start, m[0].header_bytes), (0, 512));
        assert_eq!((m[0].mode, m[0].uid), (0o640, 1000));
        assert_eq!(m[0].user_lossy().as_deref(), Some("me"));
        assert_eq!(m[0].mtime_ns, 1_700_000_000_000_000_000);
        // The pax record set, then the long name, then the header: the member starts at
        // the first of them.
        assert_eq!(m[1].start, 1024);
        assert_eq!(m[1].header_bytes, 512 * 5);
        assert_eq!(m[1].name, long.as_bytes());
        assert_eq!(m[1].xattrs["user.note"], b"v\0x");
        let first = tar::Header::from_byte_slice(&bytes[1024..1536]);
        assert_eq!(first.entry_type(), tar::EntryType::XHeader);
        assert_eq!(m[2].kind, MemberKind::Symlink);
        assert_eq!(m[2].link.as_deref(), Some(b"../somewhere".as_slice()));
        assert_eq!(
            (m[3].kind, m[3].name_lossy().as_str()),
            (MemberKind::Dir, "dir")
        );
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
        assert_eq!((b.name.as_slice(), b.start), (&b"b"[..], 512 + 1024));
        assert_eq!(r.position(), 512 + 1024 + 512);
        assert!(r.next_header().unwrap().is_none());
        assert_eq!(r.end(), Some(ArchiveEnd::Marker));
    }

    #[test]
    fn data_chunks_come_from_the_buffer_and_end_with_the_member() {
        let bytes = archive(|b| {
            file(b, "a", &[1; 3000]);
            file(b, "b", &[2; 10]);
        });
        let mut r = MemberReader::new(io::BufReader::with_capacity(1024, bytes.as_slice()));
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
        let mut cut = MemberReader::new(io::BufReader::new(&bytes[..2000]));
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
    fn where_a_stream_without_end_marker_stops_is_told() {
        let bytes = archive(|b| {
            file(b, "a", &[1; 100]);
            file(b, &"long/".repeat(30), &[2; 10]);
        });
        // In the padding after a whole member: the archive ends there.
        let mut r = MemberReader::new(&bytes[..512 + 300]);
        r.next_header().unwrap().unwrap();
        assert!(r.next_header().unwrap().is_none());
        assert_eq!(r.end(), Some(ArchiveEnd::Stream));
        // Inside the next member's long name: truncated, with nothing to name it yet; after
        // the long name: truncated, named.
        for (cut, named) in [(1024 + 512 + 100, false), (1024 + 1024 + 100, true)] {
            let mut r = MemberReader::new(&bytes[..cut]);
            r.next_header().unwrap().unwrap();
            let e = r.next_header().unwrap_err();
            assert!(matches!(e, ArchiveError::Truncated { .. }), "{e}");
            assert_eq!(r.pending_name().is_some(), named, "cut at {cut}");
        }
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
        let (m, e) = list(&[0x41u8; 2048]);
        assert!(m.is_empty());
        assert!(matches!(e, Some(ArchiveError::NotTar { .. })), "{e:?}");
        let bytes = archive(|b| file(b, "a", &[1; 5000]));
        let mut r = MemberReader::new(&bytes[..3000]);
        r.next_header().unwrap().unwrap();
        let e = r.next_header().unwrap_err();
        assert!(matches!(e, ArchiveError::Truncated { .. }), "{e:?}");
        // A long-name record claiming 8 GB.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(8 << 30);
        h.set_path("././@LongLink").unwrap();
        h.set_cksum();
        let (_, e) = list(h.as_bytes().as_slice());
        assert!(matches!(e, Some(ArchiveError::Damaged { .. })), "{e:?}");
        // One just under the bound, cut short: no buffer of its claimed size.
        h.set_size(MAX_EXTENSION);
        h.set_cksum();
        let (_, e) = list(h.as_bytes().as_slice());
        assert!(matches!(e, Some(ArchiveError::Truncated { .. })), "{e:?}");
        // The largest size a field holds.
        let mut h = tar::Header::new_gnu();
        h.set_path("huge").unwrap();
        h.set_size(u64::MAX);
        h.set_cksum();
        let mut r = MemberReader::new(h.as_bytes().as_slice());
        assert_eq!(r.next_header().unwrap().unwrap().size, u64::MAX);
        assert!(r.next_header().is_err());
        // Every prefix of a valid archive either lists or fails cleanly.
        let bytes = archive(|b| {
            b.append_pax_extensions([("SCHILY.xattr.user.a", b"1".as_slice())])
                .unwrap();
            file(b, &"x".repeat(300), b"data");
        });
        for cut in 0..bytes.len() {
            let _ = list(&bytes[..cut]);
        }
    }

    /// A header record of type `t` made with the tar crate (GNU magic unless `old`).
    fn record(name: &str, t: u8, size: u64, old: bool) -> tar::Header {
        let mut h = if old {
            tar::Header::new_old()
        } else {
            tar::Header::new_gnu()
        };
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(t));
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    fn with_data(h: &tar::Header, data: &[u8]) -> Vec<u8> {
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    #[test]
    fn a_gnu_volume_header_belongs_to_the_member_after_it() {
        let mut bytes = record("MY LABEL", b'V', 0, false).as_bytes().to_vec();
        bytes.extend(with_data(&record("a", b'0', 3, false), b"abc"));
        bytes.extend([0; 1024]);
        let (m, e) = list(&bytes);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].name.as_slice(), m[0].start), (&b"a"[..], 0));
        assert_eq!(m[0].header_bytes, 1024);
    }

    #[test]
    fn continuations_without_magic_and_times_before_1970() {
        // GNU tar writes `M` headers without a magic.
        let mut m = record("big", b'M', 100, true);
        m.as_mut_bytes()[369..381].copy_from_slice(b"00000001000\0");
        m.set_cksum();
        let mut old = record("old", b'0', 0, false);
        old.as_mut_bytes()[136..148].copy_from_slice(&[0xff; 12]);
        old.as_mut_bytes()[144..148].copy_from_slice(&(-86_400i32).to_be_bytes());
        old.set_cksum();
        let mut bytes = with_data(&m, &[1; 100]);
        bytes.extend_from_slice(old.as_bytes());
        let (h, e) = list(&bytes);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(h[0].kind, MemberKind::Continuation { offset: 512 });
        assert_eq!(h[0].size, 100);
        assert_eq!(h[1].mtime_ns, -86_400_000_000_000);
    }

    #[test]
    fn old_gnu_sparse_headers_and_their_extension_records_are_headers() {
        let mut s = record("holes", b'S', 1024, false);
        let gnu = s.as_mut_bytes();
        gnu[482] = 1; // an extension record follows
        gnu[483..495].copy_from_slice(b"00000100000\0");
        s.set_cksum();
        let mut bytes = s.as_bytes().to_vec();
        bytes.extend([0; 512]); // the extension record: no more after it
        bytes.extend([7; 1024]);
        bytes.extend(with_data(&record("after", b'0', 1, false), b"x"));
        let (m, e) = list(&bytes);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(m[0].kind, MemberKind::File);
        assert_eq!((m[0].size, m[0].header_bytes), (1024, 1024));
        assert_eq!(m[0].sparse.as_ref().map(|s| s.real_size), Some(0o100000));
        assert_eq!((m[1].name.as_slice(), m[1].start), (&b"after"[..], 2048));
        assert!(m[1].sparse.is_none());
    }

    #[test]
    fn links_devices_and_directories_carry_no_data_whatever_their_size_says() {
        let mut bytes = Vec::new();
        for (name, t) in [("ln", b'2'), ("hard", b'1'), ("dir", b'5'), ("fifo", b'6')] {
            bytes.extend_from_slice(record(name, t, 4096, false).as_bytes());
        }
        // A GNU dump directory's data lists it.
        bytes.extend(with_data(
            &record("dump", b'D', 10, false),
            b"Nfile\0\0\0\0\0",
        ));
        bytes.extend(with_data(&record("last", b'0', 1, false), b"x"));
        let (m, e) = list(&bytes);
        assert!(e.is_none(), "{e:?}");
        let names: Vec<_> = m.iter().map(|h| (h.name_lossy(), h.size)).collect();
        assert_eq!(
            names,
            [
                ("ln", 0),
                ("hard", 0),
                ("dir", 0),
                ("fifo", 0),
                ("dump", 10),
                ("last", 1)
            ]
            .map(|(n, s)| (n.to_string(), s))
        );
        assert_eq!(m[4].kind, MemberKind::Dir);
    }

    #[test]
    fn pax_globals_apply_to_every_member_after_them() {
        let bytes = archive(|b| {
            let mut g = tar::Header::new_ustar();
            let data = b"16 uname=global\n";
            g.set_path("pax_global_header").unwrap();
            g.set_entry_type(tar::EntryType::XGlobalHeader);
            g.set_size(data.len() as u64);
            g.set_cksum();
            b.append(&g, data.as_slice()).unwrap();
            file(b, "a", b"1");
            b.append_pax_extensions([("uname", b"own".as_slice())])
                .unwrap();
            file(b, "b", b"2");
        });
        let (m, e) = list(&bytes);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(m[0].user_lossy().as_deref(), Some("global"));
        assert_eq!(m[0].start, 0, "the global record is the first member's");
        assert_eq!(m[1].user_lossy().as_deref(), Some("own"));
    }
}
