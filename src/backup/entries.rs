//! The scanned members as a stream: the scan publishes them in chunks while it walks, the
//! readers, the encoder and the recorder read them by index as soon as they exist, and
//! chunks the recorder is done with are dropped. So reading starts at once instead of
//! after the whole scan, and memory does not grow with the number of files.

use super::scan::{Entry, Skipped};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Entries per chunk; every chunk but the last is full, so entry `i` is in chunk
/// `i / CHUNK`.
pub const CHUNK: usize = 1024;

/// Chunks the scan may publish beyond the oldest one still in use, bounding memory
/// (about 64 K entries).
pub const MAX_CHUNKS_AHEAD: usize = 64;

#[derive(Default)]
struct State {
    /// Published chunks; `None` once released.
    chunks: Vec<Option<Arc<[Entry]>>>,
    /// Chunks below this index are released.
    released: usize,
    count: usize,
    total_bytes: u64,
    skipped: Vec<Skipped>,
    done: bool,
    closed: bool,
    /// The scan is waiting for room: nothing more comes until entries are released.
    scan_waiting: bool,
}

/// The stream of entries of one scan.
#[derive(Default)]
pub struct EntryLog {
    state: Mutex<State>,
    changed: Condvar,
}

/// What the scan found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub entries: usize,
    pub bytes: u64,
    pub skipped: usize,
    /// The scan has finished: the totals are final.
    pub done: bool,
}

impl EntryLog {
    pub fn new() -> Arc<EntryLog> {
        Arc::new(EntryLog::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes a chunk (exactly [`CHUNK`] entries unless it is the last). Waits while
    /// the scan is too far ahead of the consumers; returns false once the log is closed.
    pub fn publish(&self, entries: Vec<Entry>) -> bool {
        let bytes: u64 = entries
            .iter()
            .filter(|e| e.kind == super::scan::EntryKind::File)
            .map(|e| e.size)
            .sum();
        let mut st = self.lock();
        while !st.closed && st.chunks.len() - st.released >= MAX_CHUNKS_AHEAD {
            st.scan_waiting = true;
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.scan_waiting = false;
        if st.closed {
            return false;
        }
        st.count += entries.len();
        st.total_bytes += bytes;
        st.chunks.push(Some(entries.into()));
        drop(st);
        self.changed.notify_all();
        true
    }

    pub fn skip(&self, skipped: Skipped) {
        self.lock().skipped.push(skipped);
    }

    /// The scan is complete.
    pub fn finish(&self) {
        self.lock().done = true;
        self.changed.notify_all();
    }

    /// Stops the scan (its next publish fails) and wakes everyone waiting.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.done = true;
        drop(st);
        self.changed.notify_all();
    }

    pub fn totals(&self) -> Totals {
        let st = self.lock();
        Totals {
            entries: st.count,
            bytes: st.total_bytes,
            skipped: st.skipped.len(),
            done: st.done,
        }
    }

    /// Whether the scan waits for entries to be released (recorded): until then no more
    /// entries come, so a buffer waiting to fill further would wait for ever.
    pub fn scan_waiting(&self) -> bool {
        self.lock().scan_waiting
    }

    /// Skip records from `from` on.
    pub fn skipped_since(&self, from: usize) -> Vec<Skipped> {
        self.lock().skipped.get(from..).unwrap_or_default().to_vec()
    }

    /// The chunk holding entry `i`, waiting until the scan gets there; `None` when the
    /// scan ended before `i` (or the chunk was released).
    pub fn chunk(&self, i: usize) -> Option<Arc<[Entry]>> {
        let c = i / CHUNK;
        let mut st = self.lock();
        loop {
            if let Some(slot) = st.chunks.get(c) {
                return slot.clone().filter(|chunk| i % CHUNK < chunk.len());
            }
            if st.done {
                return None;
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Entries before `i` are no longer needed: their chunks are dropped.
    pub fn release_before(&self, i: usize) {
        let keep_from = i / CHUNK;
        let mut st = self.lock();
        if keep_from <= st.released {
            return;
        }
        let end = keep_from.min(st.chunks.len());
        let start = st.released.min(end);
        for slot in &mut st.chunks[start..end] {
            *slot = None;
        }
        st.released = st.released.max(end);
        drop(st);
        self.changed.notify_all();
    }
}

/// Reads entries by index through a log, holding on to the current chunk so most reads
/// take no lock.
pub struct Cursor {
    log: Arc<EntryLog>,
    chunk_index: usize,
    chunk: Option<Arc<[Entry]>>,
}

impl Cursor {
    pub fn new(log: Arc<EntryLog>) -> Cursor {
        Cursor {
            log,
            chunk_index: 0,
            chunk: None,
        }
    }

    /// Entry `i`, waiting for the scan to reach it; `None` past the end.
    pub fn get(&mut self, i: usize) -> Option<&Entry> {
        let c = i / CHUNK;
        if self.chunk.is_none() || self.chunk_index != c {
            self.chunk = self.log.chunk(i);
            self.chunk_index = c;
        }
        self.chunk.as_deref()?.get(i % CHUNK)
    }
}

/// A log already holding `entries`, complete (for tests and callers with a list).
pub fn from_entries(entries: Vec<Entry>) -> Arc<EntryLog> {
    let log = EntryLog::new();
    let mut rest = entries.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Entry> = rest.by_ref().take(CHUNK).collect();
        // Nothing releases chunks here, so publishing is bounded by the caller's list.
        let mut st = log.lock();
        st.count += chunk.len();
        st.total_bytes += chunk
            .iter()
            .filter(|e| e.kind == super::scan::EntryKind::File)
            .map(|e| e.size)
            .sum::<u64>();
        st.chunks.push(Some(chunk.into()));
    }
    log.finish();
    log
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::scan::EntryKind;
    use std::path::PathBuf;

    fn entry(i: usize) -> Entry {
        Entry {
            path: PathBuf::from(format!("/e{i}")),
            name: format!("e{i}"),
            kind: EntryKind::File,
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime_ns: 0,
            ino: i as u64,
            ctime_ns: 0,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn entries_are_read_by_index_while_the_scan_publishes_them() {
        let log = EntryLog::new();
        let producer = {
            let log = log.clone();
            std::thread::spawn(move || {
                let all: Vec<Entry> = (0..CHUNK * 3 + 5).map(entry).collect();
                for chunk in all.chunks(CHUNK) {
                    assert!(log.publish(chunk.to_vec()));
                }
                log.finish();
            })
        };
        let mut cursor = Cursor::new(log.clone());
        let mut n = 0;
        while let Some(e) = cursor.get(n) {
            assert_eq!(e.name, format!("e{n}"));
            n += 1;
            log.release_before(n);
        }
        producer.join().unwrap();
        assert_eq!(n, CHUNK * 3 + 5);
        let t = log.totals();
        assert!(t.done);
        assert_eq!(
            (t.entries, t.bytes),
            (CHUNK * 3 + 5, (CHUNK * 3 + 5) as u64)
        );
    }

    #[test]
    fn the_scan_waits_when_too_far_ahead_and_stops_when_closed() {
        let log = EntryLog::new();
        for _ in 0..MAX_CHUNKS_AHEAD {
            assert!(log.publish((0..CHUNK).map(entry).collect()));
        }
        let blocked = {
            let log = log.clone();
            std::thread::spawn(move || log.publish((0..CHUNK).map(entry).collect()))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(log.totals().entries, MAX_CHUNKS_AHEAD * CHUNK);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(log.scan_waiting(), "the scan waits for room");
        log.release_before(CHUNK);
        assert!(blocked.join().unwrap());
        log.close();
        assert!(!log.publish(vec![entry(0)]));
        assert!(log.chunk(0).is_none(), "released");
    }

    #[test]
    fn a_complete_list_reads_back() {
        let log = from_entries((0..2500).map(entry).collect());
        let mut c = Cursor::new(log);
        assert_eq!(c.get(2499).unwrap().name, "e2499");
        assert_eq!(c.get(0).unwrap().name, "e0");
        assert!(c.get(2500).is_none());
    }
}
