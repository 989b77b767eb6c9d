//! Parallel readers with prefetch: small files are read ahead by N threads within a byte
//! budget and handed out in scan order; large files are left for the caller to stream.
//!
//! How it works: reader threads claim entries strictly in scan order under one mutex, each
//! claim reserving the entry's size from the byte budget (a file is claimed only when its
//! whole size fits) and staying less than a fixed number of entries ahead of the consumer.
//! The reading itself happens outside the lock, so up to `threads` opens and reads are in
//! flight at once, which is what hides per-file latency on a cold page cache. Results land
//! in a reorder queue indexed from the consumer's position; the consumer takes them in order
//! and gives the reservation back. Because reservations are made in index order, every byte
//! held belongs to an entry before the next claim, so the consumer can always make progress
//! and the budget can never deadlock the window.

use super::entries::{Cursor, EntryLog, CHUNK};
use super::scan::{Entry, EntryKind};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// At most this many entries are claimed ahead of the consumer, whatever their size, so the
/// bookkeeping (one queue slot of a few dozen bytes per entry) stays small.
pub const MAX_AHEAD: usize = 4096;

/// A reader claims at most this many files to read at once...
const CLAIM_FILES: usize = 16;
/// ...or this many bytes.
const CLAIM_BYTES: u64 = 1 << 20;

/// A prefetched member's content.
#[derive(Debug)]
pub enum Content {
    /// Not a regular file, or an empty one: nothing to read.
    None,
    /// The whole file as read, with the error if reading failed part-way (the bytes read
    /// before the error are kept), and the BLAKE3 hash of `data`, computed by the reader
    /// so that hashing small files runs in parallel, off the encoder's thread.
    Small {
        data: Vec<u8>,
        error: Option<std::io::Error>,
        blake3: [u8; 32],
    },
    /// Larger than the small-file limit: the caller opens and streams it itself.
    Large,
    /// The file could not be opened.
    Unreadable(std::io::Error),
}

/// How many readers run and how much they may hold.
#[derive(Debug, Clone)]
pub struct PrefetchConfig {
    /// Reader threads; 0 reads each file in `next` on the caller's thread.
    pub threads: usize,
    /// Bytes of file data held ahead of the consumer at most.
    pub budget: u64,
    /// Files up to this size are read ahead whole (capped at `budget`).
    pub small_limit: u64,
}

/// A snapshot of the prefetch window, for telemetry and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    /// Bytes reserved for files read or being read ahead of the consumer.
    pub held_bytes: u64,
    /// The most `held_bytes` has been since the start (never above the budget).
    pub peak_held_bytes: u64,
    /// Entries claimed by readers but not yet handed out.
    pub ahead: usize,
}

/// Hands out `(index, content)` for each entry in order.
pub struct Prefetcher {
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    /// For reading on the caller's thread when no reader thread could start.
    cursor: Cursor,
}

/// What the readers and the consumer share.
struct Shared {
    entries: Arc<EntryLog>,
    /// Files of 1..=small_limit bytes are read ahead.
    small_limit: u64,
    budget: u64,
    /// Entries claimed ahead of the consumer at most.
    window: usize,
    state: Mutex<State>,
    /// Signalled when the consumer's next entry is ready, or on stop.
    ready: Condvar,
    /// Signalled when the consumer frees budget or window room, or on stop.
    room: Condvar,
}

/// The window, under `Shared::state`.
struct State {
    /// Index of the next entry `next` hands out.
    consumer: usize,
    /// Index of the next entry a reader claims; always `consumer + slots.len()`.
    claimed: usize,
    /// Results of entries `consumer..claimed` with the bytes each reserved; `None` while
    /// a reader is still on it.
    slots: VecDeque<Option<(Content, u64)>>,
    held: u64,
    peak: u64,
    stopped: bool,
    /// Readers blocked on `room`.
    readers_waiting: usize,
    /// Whether the consumer is blocked on `ready`.
    consumer_waiting: bool,
    /// The number of entries, once a reader found the scan ended there.
    end: Option<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should it happen anyway, the state is
        // still consistent between statements, so go on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes `entry` needs from the budget to be read ahead, if it is read ahead.
    fn small_size(&self, entry: &Entry) -> Option<u64> {
        (entry.kind == EntryKind::File && entry.size > 0 && entry.size <= self.small_limit)
            .then_some(entry.size)
    }

    /// One reader thread: claim a run of entries in order, read them outside the lock,
    /// file the results. Claiming runs (not single files) keeps the lock and the wake-ups
    /// to one per run, which is what a warm page cache, where reads are cheap, needs.
    fn reader_loop(&self) {
        let mut st = self.lock();
        loop {
            if st.stopped || st.end.is_some_and(|end| st.claimed >= end) {
                return;
            }
            let first = st.claimed;
            // The scan may not have reached entry `first` yet: wait for it without the lock.
            drop(st);
            let chunk = self.entries.chunk(first);
            st = self.lock();
            let Some(chunk) = chunk else {
                st.end = Some(st.end.map_or(first, |end| end.min(first)));
                drop(st);
                self.ready.notify_all();
                self.room.notify_all();
                return;
            };
            if st.stopped {
                return;
            }
            if st.claimed != first {
                // Another reader claimed it meanwhile.
                continue;
            }
            let base = first - first % CHUNK;
            let mut to_read: Vec<(usize, u64)> = Vec::new();
            let mut run_bytes = 0;
            while st.claimed < base + chunk.len() && to_read.len() < CLAIM_FILES {
                let i = st.claimed;
                let entry = &chunk[i - base];
                let need = self.small_size(entry);
                let fits = i - st.consumer < self.window
                    && need.is_none_or(|n| st.held.saturating_add(n) <= self.budget);
                if !fits {
                    break;
                }
                st.claimed += 1;
                match need {
                    None => {
                        // Nothing to read: resolved on the spot, under the lock.
                        let content = if entry.kind == EntryKind::File && entry.size > 0 {
                            Content::Large
                        } else {
                            Content::None
                        };
                        st.slots.push_back(Some((content, 0)));
                        if i == st.consumer && st.consumer_waiting {
                            self.ready.notify_one();
                        }
                    }
                    Some(n) => {
                        st.slots.push_back(None);
                        st.held += n;
                        st.peak = st.peak.max(st.held);
                        to_read.push((i, n));
                        run_bytes += n;
                        if run_bytes >= CLAIM_BYTES {
                            break;
                        }
                    }
                }
            }
            if st.claimed == first {
                // Not even one entry fits: wait for the consumer to make room.
                st.readers_waiting += 1;
                st = self.room.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.readers_waiting -= 1;
                continue;
            }
            // Another waiting reader may be able to claim the run after this one.
            if st.readers_waiting > 0 {
                self.room.notify_one();
            }
            if to_read.is_empty() {
                continue;
            }
            drop(st);

            let results: Vec<(usize, Content, u64)> = to_read
                .into_iter()
                .map(|(i, n)| (i, read_small(&chunk[i - base].path, n), n))
                .collect();

            st = self.lock();
            if st.stopped {
                return;
            }
            let mut front_ready = false;
            for (i, content, n) in results {
                let slot = i - st.consumer;
                st.slots[slot] = Some((content, n));
                front_ready |= slot == 0;
            }
            if front_ready && st.consumer_waiting {
                self.ready.notify_one();
            }
        }
    }
}

impl Prefetcher {
    /// Starts `cfg.threads` readers over `entries`. If no thread can be started, `next`
    /// reads each file itself.
    pub fn start(entries: Arc<EntryLog>, cfg: PrefetchConfig) -> Prefetcher {
        Self::start_with_window(entries, cfg, MAX_AHEAD)
    }

    /// [`Prefetcher::start`] with a chosen count window (at least 1).
    fn start_with_window(entries: Arc<EntryLog>, cfg: PrefetchConfig, window: usize) -> Prefetcher {
        let shared = Arc::new(Shared {
            entries,
            small_limit: cfg.small_limit.min(cfg.budget),
            budget: cfg.budget,
            window: window.max(1),
            state: Mutex::new(State {
                consumer: 0,
                claimed: 0,
                slots: VecDeque::new(),
                held: 0,
                peak: 0,
                stopped: false,
                readers_waiting: 0,
                consumer_waiting: false,
                end: None,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
        });
        let threads = cfg.threads;
        let mut readers = Vec::with_capacity(threads);
        for n in 0..threads {
            let mine = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("tapedeck-reader-{n}"))
                .spawn(move || mine.reader_loop());
            match spawned {
                Ok(handle) => readers.push(handle),
                Err(e) => {
                    tracing::warn!("cannot start reader thread {n}: {e}; going on with {n}");
                    break;
                }
            }
        }
        let cursor = Cursor::new(Arc::clone(&shared.entries));
        Prefetcher {
            shared,
            readers,
            cursor,
        }
    }

    /// The next entry's content, in scan order; `None` after the last.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<(usize, Content)> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        loop {
            let i = st.consumer;
            if st.stopped || st.end.is_some_and(|end| i >= end) {
                return None;
            }
            if self.readers.is_empty() {
                // No reader threads: read here, in order.
                drop(st);
                let entry = self.cursor.get(i)?;
                st = shared.lock();
                st.consumer += 1;
                st.claimed = st.consumer;
                drop(st);
                let content = match shared.small_size(entry) {
                    Some(n) => read_small(&entry.path, n),
                    None if entry.kind == EntryKind::File && entry.size > 0 => Content::Large,
                    None => Content::None,
                };
                return Some((i, content));
            }
            if let Some(Some(_)) = st.slots.front() {
                if let Some(Some((content, reserved))) = st.slots.pop_front() {
                    st.consumer += 1;
                    st.held -= reserved;
                    // Wake waiting readers once half the window is free again, not for
                    // every entry: with a warm cache they are always ahead, and waking
                    // one per entry costs two context switches per file.
                    let ahead = st.claimed - st.consumer;
                    if st.readers_waiting > 0
                        && ahead <= shared.window / 2
                        && st.held <= shared.budget / 2
                    {
                        shared.room.notify_all();
                    }
                    return Some((i, content));
                }
            }
            st.consumer_waiting = true;
            st = shared
                .ready
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
            st.consumer_waiting = false;
        }
    }

    /// Stops the readers (on interrupt); `next` returns `None` afterwards. Does not wait
    /// for them: a reader finishes the file it is on (at most `small_limit` bytes) and
    /// quits; dropping the `Prefetcher` joins them.
    pub fn stop(&mut self) {
        // A reader waiting for the scan is woken, and the scan stops.
        self.shared.entries.close();
        let mut st = self.shared.lock();
        st.stopped = true;
        st.slots.clear();
        st.held = 0;
        drop(st);
        self.shared.room.notify_all();
        self.shared.ready.notify_all();
    }

    /// The current window (for progress displays and tests).
    pub fn stats(&self) -> PrefetchStats {
        let st = self.shared.lock();
        PrefetchStats {
            held_bytes: st.held,
            peak_held_bytes: st.peak,
            ahead: st.slots.len(),
        }
    }
}

impl Drop for Prefetcher {
    /// Stops the readers and waits for them.
    fn drop(&mut self) {
        self.stop();
        for handle in self.readers.drain(..) {
            // A reader that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

/// Opens `path` for reading only if it is still a regular file: no symlink is followed
/// (`O_NOFOLLOW`) and a FIFO or device put in its place since the scan does not block or
/// get read (`O_NONBLOCK` at open, which has no effect on reads of regular files).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::other("replaced by a symlink since the scan")
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(file)
}

/// Reads the file at `path` whole, at most `size` bytes (its size at scan time).
fn read_small(path: &Path, size: u64) -> Content {
    match open_regular(path) {
        Ok(file) => {
            let (data, error) = read_at_most(file, size);
            let blake3 = *blake3::hash(&data).as_bytes();
            Content::Small {
                data,
                error,
                blake3,
            }
        }
        Err(e) => Content::Unreadable(e),
    }
}

/// Reads up to `size` bytes from `r`: fewer if it ends first; on an error, what was read
/// before it and the error.
fn read_at_most(r: impl Read, size: u64) -> (Vec<u8>, Option<io::Error>) {
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let error = r.take(size).read_to_end(&mut data).err();
    (data, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(entries: &[Entry]) -> Arc<EntryLog> {
        crate::backup::entries::from_entries(entries.to_vec())
    }
    use crate::backup::scan::scan;
    use std::fs;

    fn cfg(threads: usize, budget: u64, small_limit: u64) -> PrefetchConfig {
        PrefetchConfig {
            threads,
            budget,
            small_limit,
        }
    }

    fn scanned(root: &Path) -> Arc<Vec<Entry>> {
        let s = scan(&[root.to_path_buf()]).unwrap();
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        Arc::new(s.entries)
    }

    /// Distinct content for file `n`.
    fn body(n: usize) -> Vec<u8> {
        (0..(n * 37) % 5000)
            .map(|k| (k as u8) ^ (n as u8))
            .collect()
    }

    /// A tree of `dirs` x `per_dir` files with `body` contents.
    fn tree(root: &Path, dirs: usize, per_dir: usize) {
        for d in 0..dirs {
            let dir = root.join(format!("d{d:02}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..per_dir {
                fs::write(dir.join(format!("f{f:04}")), body(d * per_dir + f)).unwrap();
            }
        }
    }

    /// Drains `p`, checking order and that every small file's data matches the disk.
    fn drain_and_check(p: &mut Prefetcher, entries: &[Entry], budget: u64) -> usize {
        let mut expect = 0;
        while let Some((i, content)) = p.next() {
            assert_eq!(i, expect);
            assert!(p.stats().held_bytes <= budget);
            let e = &entries[i];
            match content {
                Content::Small { data, error, .. } => {
                    assert!(error.is_none());
                    assert_eq!(data, fs::read(&e.path).unwrap(), "{}", e.name);
                }
                Content::None => assert!(e.kind != EntryKind::File || e.size == 0),
                other => panic!("{}: {other:?}", e.name),
            }
            expect += 1;
        }
        expect
    }

    #[test]
    fn hands_out_every_entry_in_scan_order() {
        let tmp = tempfile::tempdir().unwrap();
        tree(tmp.path(), 8, 250);
        let entries = scanned(tmp.path());
        for threads in [1, 4, 8] {
            let mut p = Prefetcher::start(log_of(&entries), cfg(threads, 1 << 20, 8192));
            assert_eq!(drain_and_check(&mut p, &entries, 1 << 20), entries.len());
            assert!(p.next().is_none());
            assert!(p.stats().peak_held_bytes > 0);
        }
    }

    #[test]
    fn reads_inline_without_threads_and_with_a_tiny_window() {
        let tmp = tempfile::tempdir().unwrap();
        tree(tmp.path(), 3, 40);
        let entries = scanned(tmp.path());
        let mut p = Prefetcher::start(log_of(&entries), cfg(0, 1 << 20, 8192));
        assert_eq!(drain_and_check(&mut p, &entries, 1 << 20), entries.len());

        let mut p = Prefetcher::start_with_window(log_of(&entries), cfg(4, 1 << 20, 8192), 2);
        let mut n = 0;
        while let Some((i, _)) = p.next() {
            assert_eq!(i, n);
            assert!(p.stats().ahead <= 2);
            n += 1;
        }
        assert_eq!(n, entries.len());
    }

    #[test]
    fn large_empty_and_non_files_are_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("big"), vec![7u8; 10_000]).unwrap();
        fs::write(tmp.path().join("empty"), b"").unwrap();
        fs::write(tmp.path().join("small"), b"hello").unwrap();
        fs::hard_link(tmp.path().join("small"), tmp.path().join("small2")).unwrap();
        std::os::unix::fs::symlink("small", tmp.path().join("sym")).unwrap();
        let entries = scanned(tmp.path());
        let mut p = Prefetcher::start(log_of(&entries), cfg(3, 1 << 20, 4096));
        let mut got = Vec::new();
        while let Some((i, content)) = p.next() {
            let what = match content {
                Content::None => "none".to_string(),
                Content::Large => "large".to_string(),
                Content::Small {
                    data, error: None, ..
                } => String::from_utf8(data).unwrap(),
                other => panic!("{other:?}"),
            };
            let base = entries[i]
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            got.push((base.unwrap_or_default(), what));
        }
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let root = tmp.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(
            got,
            vec![
                (root, "none"),
                ("big", "large"),
                ("empty", "none"),
                ("small", "hello"),
                ("small2", "none"), // hard link: no data of its own
                ("sym", "none"),
            ]
        );
    }

    #[test]
    fn small_limit_is_capped_at_the_budget() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), vec![1u8; 500]).unwrap();
        let entries = scanned(tmp.path());
        let mut p = Prefetcher::start(log_of(&entries), cfg(2, 100, 1000));
        assert!(matches!(p.next(), Some((0, Content::None))));
        assert!(matches!(p.next(), Some((1, Content::Large))));
        assert!(p.next().is_none());
    }

    #[test]
    fn changes_since_the_scan_are_reported_not_hidden() {
        let tmp = tempfile::tempdir().unwrap();
        let path = |n: &str| tmp.path().join(n);
        for n in ["deleted", "fifo", "grew", "shrank", "symlinked"] {
            fs::write(path(n), b"0123456789").unwrap();
        }
        let entries = scanned(tmp.path());
        fs::remove_file(path("deleted")).unwrap();
        fs::write(path("shrank"), b"0123").unwrap();
        fs::write(path("grew"), b"0123456789abcdef").unwrap();
        fs::remove_file(path("fifo")).unwrap();
        nix::unistd::mkfifo(
            &path("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        fs::remove_file(path("symlinked")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", path("symlinked")).unwrap();

        let mut p = Prefetcher::start(log_of(&entries), cfg(2, 1 << 20, 4096));
        let mut by_name = std::collections::HashMap::new();
        while let Some((i, content)) = p.next() {
            by_name.insert(entries[i].path.clone(), content);
        }
        let mut take = |n: &str| by_name.remove(&path(n)).unwrap();
        match take("deleted") {
            Content::Unreadable(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        match take("fifo") {
            Content::Unreadable(e) => assert!(e.to_string().contains("regular file"), "{e}"),
            other => panic!("{other:?}"),
        }
        match take("symlinked") {
            Content::Unreadable(e) => assert!(e.to_string().contains("symlink"), "{e}"),
            other => panic!("{other:?}"),
        }
        match take("shrank") {
            Content::Small { data, error, .. } => {
                assert_eq!(data, b"0123");
                assert!(error.is_none());
            }
            other => panic!("{other:?}"),
        }
        match take("grew") {
            Content::Small { data, .. } => assert_eq!(data, b"0123456789"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreadable_without_permission_when_not_root() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::Uid::effective().is_root() {
            return; // root opens a mode-000 file anyway
        }
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("secret"), b"x").unwrap();
        fs::set_permissions(tmp.path().join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
        let entries = scanned(tmp.path());
        let mut p = Prefetcher::start(log_of(&entries), cfg(2, 1 << 20, 4096));
        p.next();
        match p.next() {
            Some((1, Content::Unreadable(e))) => {
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied)
            }
            other => panic!("{other:?}"),
        }
    }

    /// Fails after handing out some bytes.
    struct FailsAfter(usize);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("medium error"));
            }
            let n = buf.len().min(self.0).min(3);
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn an_error_part_way_keeps_the_bytes_read() {
        let (data, error) = read_at_most(FailsAfter(7), 100);
        assert_eq!(data, b"xxxxxxx");
        assert_eq!(error.unwrap().to_string(), "medium error");
        let (data, error) = read_at_most(FailsAfter(7), 5);
        assert_eq!(data, b"xxxxx");
        assert!(error.is_none());
    }

    #[test]
    fn the_budget_bounds_the_bytes_held() {
        let tmp = tempfile::tempdir().unwrap();
        for n in 0..200 {
            fs::write(
                tmp.path().join(format!("f{n:03}")),
                vec![n as u8; 1000 + n * 10],
            )
            .unwrap();
        }
        let entries = scanned(tmp.path());
        let budget = 5000;
        let mut p = Prefetcher::start(log_of(&entries), cfg(8, budget, 4096));
        let mut n = 0;
        while let Some((i, content)) = p.next() {
            let stats = p.stats();
            assert!(stats.held_bytes <= budget, "{stats:?}");
            if let Content::Small { data, .. } = content {
                assert_eq!(data.len() as u64, entries[i].size);
            }
            if n % 20 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            n += 1;
        }
        assert_eq!(n, entries.len());
        let peak = p.stats().peak_held_bytes;
        assert!(peak <= budget && peak >= 2000, "peak {peak}");
    }

    #[test]
    fn stop_ends_the_stream_and_the_readers() {
        let tmp = tempfile::tempdir().unwrap();
        tree(tmp.path(), 4, 100);
        let entries = scanned(tmp.path());
        let mut p = Prefetcher::start(log_of(&entries), cfg(4, 20_000, 8192));
        for want in 0..10 {
            assert_eq!(p.next().map(|(i, _)| i), Some(want));
        }
        p.stop();
        assert!(p.next().is_none());
        assert_eq!(p.stats().held_bytes, 0);
        drop(p);
        // Every reader has exited: none holds the entries any more.
        assert_eq!(Arc::strong_count(&entries), 1);
    }

    #[test]
    fn dropping_early_does_not_deadlock() {
        let tmp = tempfile::tempdir().unwrap();
        tree(tmp.path(), 2, 100);
        let entries = scanned(tmp.path());
        for budget in [1, 3000, 1 << 20] {
            let mut p = Prefetcher::start(log_of(&entries), cfg(8, budget, 8192));
            p.next();
            std::thread::sleep(std::time::Duration::from_millis(5));
            drop(p);
            assert_eq!(Arc::strong_count(&entries), 1);
        }
        let p = Prefetcher::start(log_of(&entries), cfg(8, 3000, 8192));
        drop(p);
        assert_eq!(Arc::strong_count(&entries), 1);
    }

    /// Evicts the data pages of every file under `entries` from the page cache.
    fn evict(entries: &[Entry]) {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        nix::unistd::sync();
        for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
            let f = File::open(&e.path).unwrap();
            posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        }
    }

    /// Reads 20 000 files of 4 KiB with their data evicted from the page cache (inodes stay
    /// cached), by GNU tar and by the prefetcher:
    /// `cargo test --lib backup::reader -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn cold_read_against_gnu_tar() {
        let tmp = tempfile::tempdir().unwrap();
        for d in 0..100 {
            let dir = tmp.path().join(format!("d{d:03}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..200 {
                fs::write(dir.join(format!("f{f:03}")), [(d ^ f) as u8; 4096]).unwrap();
            }
        }
        let entries = scanned(tmp.path());
        evict(&entries);
        let start = std::time::Instant::now();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -cf - {} | cat >/dev/null",
                tmp.path().display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        let tar = start.elapsed();
        eprintln!("GNU tar: {tar:?}");
        for threads in [1, 4, 8, 16] {
            evict(&entries);
            let start = std::time::Instant::now();
            let mut p = Prefetcher::start(log_of(&entries), cfg(threads, 64 << 20, 1 << 20));
            let mut bytes = 0;
            while let Some((_, c)) = p.next() {
                if let Content::Small { data, .. } = c {
                    bytes += data.len();
                }
            }
            let took = start.elapsed();
            assert_eq!(bytes, 20_000 * 4096);
            eprintln!(
                "{threads} readers: {took:?} ({:.2}x tar)",
                tar.as_secs_f64() / took.as_secs_f64()
            );
        }
    }
}
