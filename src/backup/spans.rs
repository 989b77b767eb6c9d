//! Where each member's headers and data lie in the tar stream, for the writer: when a tape
//! fills up in the middle of a member, the next volume must start with that member's
//! continuation (a GNU `M` header with the offset reached) or, when the cut fell inside its
//! headers, with those headers again, so that `tar -M` reads the volumes as one archive.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One member's place in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpan {
    /// Offset of its first header record.
    pub start: u64,
    /// Offset of its data (just after its headers); set once the headers are written.
    pub data_start: Option<u64>,
    /// Data bytes (0 for anything but a regular file).
    pub size: u64,
    /// Its header records, as written (GNU long-name and pax records included).
    pub headers: Vec<u8>,
    /// Its member name.
    pub name: String,
    /// The file its data is read from (regular files), and the file's mtime at the scan,
    /// so a member lost to a write error can be written again from its source.
    pub source: Option<(PathBuf, i64)>,
}

impl MemberSpan {
    /// Offset just after its data and the padding to a whole record.
    pub fn end(&self) -> Option<u64> {
        self.data_start.map(|d| d + self.size.div_ceil(512) * 512)
    }
}

/// The spans of the members not yet wholly written, shared by encoder and writer.
#[derive(Debug, Default)]
pub struct Spans {
    spans: Mutex<VecDeque<MemberSpan>>,
}

/// How the next volume's stream continues from a cut at stream offset `x`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Continuation {
    /// Bytes to write first: an `M` header, or the part of the member's headers the
    /// previous volume already has.
    pub prefix: Vec<u8>,
    /// Stream bytes to leave out after the cut (padding of a member whose data is complete).
    pub skip: u64,
    /// The member cut in its data: its stream offset, and how many of its data bytes the
    /// earlier volumes hold.
    pub split: Option<(u64, u64)>,
}

impl Spans {
    fn lock(&self) -> MutexGuard<'_, VecDeque<MemberSpan>> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A member begins at `start` (its headers are not written yet); a regular file's
    /// data comes from `source` (path, mtime in ns at the scan).
    pub fn begin(&self, start: u64, name: &str, source: Option<(PathBuf, i64)>) {
        self.lock().push_back(MemberSpan {
            start,
            data_start: None,
            size: 0,
            headers: Vec::new(),
            name: name.to_string(),
            source,
        });
    }

    /// The member begun last has its headers written: `headers`, then data from
    /// `data_start`, `size` bytes of it.
    pub fn headers_done(&self, data_start: u64, size: u64, headers: Vec<u8>) {
        if let Some(last) = self.lock().back_mut() {
            last.data_start = Some(data_start);
            last.size = size;
            last.headers = headers;
        }
    }

    /// Forgets members that end at or before `offset` (all written).
    pub fn written_to(&self, offset: u64) {
        let mut spans = self.lock();
        while spans
            .front()
            .and_then(MemberSpan::end)
            .is_some_and(|end| end <= offset)
        {
            spans.pop_front();
        }
    }

    /// The member that stream offset `x` falls in, once its headers are written. Waits
    /// (briefly) for the encoder to finish the headers of a member cut inside them; the
    /// encoder is then far from blocked, since the buffer holds less than its headers.
    fn member_at(&self, x: u64) -> Option<MemberSpan> {
        loop {
            let spans = self.lock();
            let span = spans
                .iter()
                .find(|s| s.start <= x && s.end().is_none_or(|e| x < e))?;
            if span.data_start.is_some() || span.start == x {
                return Some(span.clone());
            }
            drop(spans);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The member in flight at a cut at `x` (begun before `x`, not ended), to be written
    /// again from its start on another volume.
    pub fn restart(&self, x: u64) -> Option<MemberSpan> {
        self.member_at(x).filter(|s| s.start < x)
    }

    /// How a stream cut at `x` continues on the next volume.
    pub fn continuation(&self, x: u64) -> Continuation {
        let Some(span) = self.member_at(x) else {
            return Continuation::default();
        };
        let Some(data_start) = span.data_start.filter(|_| span.start < x) else {
            // Nothing of it is on the previous volume.
            return Continuation::default();
        };
        if x <= data_start {
            // Cut inside the headers: the next volume gets them whole.
            let have = (x - span.start) as usize;
            return Continuation {
                prefix: span.headers[..have.min(span.headers.len())].to_vec(),
                skip: 0,
                split: None,
            };
        }
        let done = x - data_start;
        if done >= span.size {
            // Only padding is left: the next volume starts with the next member.
            return Continuation {
                prefix: Vec::new(),
                skip: span.end().unwrap_or(x) - x,
                split: None,
            };
        }
        Continuation {
            prefix: multivolume_header(&span.name, span.size - done, done),
            skip: 0,
            split: Some((span.start, done)),
        }
    }
}

/// A GNU multi-volume continuation header (`M`): `remaining` more bytes of `name`, whose
/// first `offset` bytes are on the previous volumes (with long-name records if needed).
pub fn multivolume_header(name: &str, remaining: u64, offset: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::new(b'M'));
    header.set_size(remaining);
    header.set_mode(0);
    header.set_mtime(0);
    if let Some(gnu) = header.as_gnu_mut() {
        let text = format!("{offset:011o}");
        gnu.offset[..11].copy_from_slice(text.as_bytes());
        gnu.offset[11] = 0;
    }
    let mut out = tar::Builder::new(Vec::new());
    // A name that does not fit gets a GNU long-name record, as for any member.
    if out
        .append_data(&mut header, name, std::io::empty())
        .is_err()
    {
        return Vec::new();
    }
    let mut bytes = out.into_inner().unwrap_or_default();
    // `into_inner` added the end-of-archive records: keep only the headers.
    bytes.truncate(bytes.len().saturating_sub(1024));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_in_the_data_continues_with_an_m_header() {
        let spans = Spans::default();
        spans.begin(0, "a/file", None);
        spans.headers_done(512, 3000, vec![1; 512]);
        let c = spans.continuation(2048);
        assert_eq!(c.split, Some((0, 1536)));
        let h = tar::Header::from_byte_slice(&c.prefix[..512]);
        assert_eq!(h.entry_type(), tar::EntryType::new(b'M'));
        assert_eq!(h.size().unwrap(), 3000 - 1536);
        assert_eq!(&h.as_gnu().unwrap().offset[..11], b"00000003000");
        assert_eq!(c.prefix.len(), 512);
    }

    #[test]
    fn a_cut_in_the_headers_repeats_them_and_one_in_the_padding_skips_it() {
        let spans = Spans::default();
        spans.begin(0, "x", None);
        spans.headers_done(1024, 100, (0..1024).map(|i| i as u8).collect());
        let c = spans.continuation(512);
        assert_eq!(c.prefix, (0..512).map(|i| i as u8).collect::<Vec<u8>>());
        assert_eq!(c.skip, 0);
        // Data ends at 1124, padding at 1536.
        spans.begin(1536, "y", None);
        let c = spans.continuation(1536);
        assert_eq!(
            c,
            Continuation::default(),
            "a cut where a member begins needs nothing"
        );
    }

    #[test]
    fn written_members_are_forgotten() {
        let spans = Spans::default();
        spans.begin(0, "a", None);
        spans.headers_done(512, 0, vec![0; 512]);
        spans.begin(512, "b", None);
        spans.headers_done(1024, 10, vec![0; 512]);
        spans.written_to(512);
        assert_eq!(spans.lock().len(), 1);
    }
}
