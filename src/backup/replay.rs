//! Writing a member again after a write error: the stream bytes from the member's first
//! header up to where the ring's data goes on, made again from the member's headers (kept
//! in its span) and its source file (read again), so the next volume holds the member
//! whole. A file that changed since it was first read, or that cannot be read again, is
//! zero-filled to keep the archive whole and the member is not recorded as saved.

use super::reader::open_regular;
use super::spans::MemberSpan;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, PoisonError};

/// Why the copy written again is not the member's data; shared with the recorder, which
/// reads it once the member is on tape (by then every byte of the replay is written).
#[derive(Debug, Clone, Default)]
pub struct ReplayDamage(Arc<Mutex<Option<String>>>);

impl ReplayDamage {
    fn set(&self, reason: String) {
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        d.get_or_insert(reason);
    }

    /// The reason, if the copy is damaged.
    pub fn reason(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The stream bytes `[span.start, to)` made again, read by the writer block by block.
pub struct Replay {
    headers: Vec<u8>,
    headers_at: usize,
    file: Option<File>,
    /// Data bytes still to read from the file.
    data_left: u64,
    /// Zero bytes still to give after the data (the rest of a short file, and padding).
    zeros_left: u64,
    damage: ReplayDamage,
}

impl Replay {
    /// The replay of `span` up to stream offset `to`. Fails when the member's data cannot
    /// be had again at all (it came from a stream, not a file).
    pub fn new(span: &MemberSpan, to: u64) -> Result<Replay, String> {
        let data_start = span.data_start.unwrap_or(to);
        let header_len = to.min(data_start).saturating_sub(span.start) as usize;
        let headers = span.headers[..header_len.min(span.headers.len())].to_vec();
        let past_headers = to.saturating_sub(data_start);
        let data = past_headers.min(span.size);
        let padding = past_headers - data;
        let damage = ReplayDamage::default();
        let mut file = None;
        if data > 0 {
            let Some((path, mtime_ns)) = &span.source else {
                return Err(format!(
                    "/{} came from a stream and cannot be read again",
                    span.name
                ));
            };
            match open_regular(path) {
                Ok(f) => {
                    match f.metadata() {
                        Ok(m) if m.mtime() * 1_000_000_000 + m.mtime_nsec() != *mtime_ns => damage
                            .set(format!(
                                "{} changed before it could be written again after the write \
                                 error",
                                path.display()
                            )),
                        Ok(_) => {}
                        Err(e) => damage.set(format!("{}: {e}", path.display())),
                    }
                    file = Some(f);
                }
                Err(e) => damage.set(format!(
                    "{} cannot be read again after the write error: {e}",
                    path.display()
                )),
            }
        }
        Ok(Replay {
            headers,
            headers_at: 0,
            file,
            data_left: data,
            zeros_left: padding,
            damage,
        })
    }

    /// Bytes still to give.
    pub fn left(&self) -> u64 {
        (self.headers.len() - self.headers_at) as u64 + self.data_left + self.zeros_left
    }

    /// Where the recorder learns whether the copy is damaged.
    pub fn damage(&self) -> ReplayDamage {
        self.damage.clone()
    }

    /// Appends up to `max` bytes to `out`. Never fails: a read error zero-fills the rest of
    /// the data and marks the copy damaged.
    pub fn read_into(&mut self, out: &mut Vec<u8>, mut max: usize) {
        if self.headers_at < self.headers.len() {
            let n = max.min(self.headers.len() - self.headers_at);
            out.extend_from_slice(&self.headers[self.headers_at..self.headers_at + n]);
            self.headers_at += n;
            max -= n;
        }
        while max > 0 && self.data_left > 0 {
            let n = max.min(self.data_left.min(1 << 20) as usize);
            let at = out.len();
            out.resize(at + n, 0);
            let got = match self.file.as_mut().map(|f| f.read(&mut out[at..])) {
                Some(Ok(0)) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than when it was first read",
                )),
                Some(r) => r,
                None => Err(io::Error::other("not open")),
            };
            match got {
                Ok(k) => {
                    out.truncate(at + k);
                    self.data_left -= k as u64;
                    max -= k;
                }
                Err(e) => {
                    // What is left of the data becomes zeros (already in `out` for this
                    // round); the archive stays whole.
                    if self.file.is_some() {
                        self.damage
                            .set(format!("reading it again after the write error: {e}"));
                    }
                    self.file = None;
                    self.zeros_left += self.data_left;
                    self.data_left = 0;
                    out.truncate(at);
                }
            }
        }
        let z = (max as u64).min(self.zeros_left) as usize;
        out.resize(out.len() + z, 0);
        self.zeros_left -= z as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn span_of(path: &std::path::Path, size: u64) -> MemberSpan {
        let m = std::fs::metadata(path).unwrap();
        MemberSpan {
            start: 1000,
            data_start: Some(2024),
            size,
            headers: vec![9; 1024],
            name: "f".into(),
            source: Some((
                path.to_path_buf(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            )),
        }
    }

    fn all(mut r: Replay, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while r.left() > 0 {
            r.read_into(&mut out, chunk);
        }
        out
    }

    #[test]
    fn the_stream_is_made_again_from_headers_file_and_padding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let span = span_of(&path, 3000);
        // Up to the end of the padding: headers, data, 72 zeros.
        let r = Replay::new(&span, 2024 + 3072).unwrap();
        let damage = r.damage();
        let got = all(r, 700);
        assert_eq!(&got[..1024], &[9; 1024][..]);
        assert_eq!(&got[1024..4024], &data[..]);
        assert_eq!(&got[4024..], &[0; 72][..]);
        assert_eq!(damage.reason(), None);
        // Cut inside the headers, and inside the data.
        assert_eq!(all(Replay::new(&span, 1500).unwrap(), 64), vec![9; 500]);
        let got = all(Replay::new(&span, 2024 + 100).unwrap(), 4096);
        assert_eq!(got.len(), 1124);
        assert_eq!(&got[1024..], &data[..100]);
    }

    #[test]
    fn a_file_changed_or_gone_is_zero_filled_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 3000]).unwrap();
        let mut span = span_of(&path, 3000);
        span.source.as_mut().unwrap().1 -= 1;
        let r = Replay::new(&span, 2024 + 3000).unwrap();
        assert!(r.damage().reason().unwrap().contains("changed"));
        std::fs::write(&path, vec![1u8; 10]).unwrap();
        let span = span_of(&path, 3000);
        let r = Replay::new(&span, 2024 + 3000).unwrap();
        let damage = r.damage();
        let got = all(r, 4096);
        assert_eq!(got.len(), 4024);
        assert_eq!(&got[1024..1034], &[1; 10][..]);
        assert!(got[1034..].iter().all(|b| *b == 0));
        assert!(damage.reason().unwrap().contains("shorter"));
        std::fs::remove_file(&path).unwrap();
        let r = Replay::new(&span, 2024 + 3000).unwrap();
        assert!(r.damage().reason().is_some());
        assert_eq!(all(r, 4096).len(), 4024);
    }

    #[test]
    fn a_member_from_a_stream_cannot_be_replayed() {
        let span = MemberSpan {
            start: 0,
            data_start: Some(512),
            size: 10,
            headers: vec![0; 512],
            name: "s".into(),
            source: None,
        };
        assert!(Replay::new(&span, 600).is_err());
        assert!(Replay::new(&span, 100).is_ok(), "headers alone are kept");
    }
}
