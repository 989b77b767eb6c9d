//! The tar strategy's disk stage: the tar stream is staged on disk in a bounded spool
//! between two rings, so the drive is fed from disk at disk speed while the sources are
//! read at theirs, and the disk space needed is the spool's size, not the backup's.
//!
//! ```text
//! encoder ──> stage ring ──> spooler thread ──> chunk files ──> feeder thread ──> ring ──> writer
//!             (small)        writes chunk k+1    in --spool-dir  reads chunk k back,
//!                                                                deletes it
//! ```
//!
//! The spool is `chunks` chunk files of `size / chunks` bytes (whole tape blocks). The
//! spooler fills one chunk at a time and starts the next only while fewer than `chunks`
//! files exist; the feeder reads a chunk back only once it is complete, then deletes it.
//! So at most `chunks` files of at most a chunk each are ever on disk. The bytes go through
//! unchanged, so stream offsets (and with them positions, spans and spanning) are those the
//! encoder counted. The chunk files live in a directory of their own inside the spool
//! directory, removed when the stage is dropped, whatever happened.

use super::ring::{Block, Ring};
use crate::units::format_size;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Chunks a spool is split into unless told otherwise: one fills while the other is
/// written to tape.
pub const DEFAULT_CHUNKS: u32 = 2;

/// The default spool size, at most: two chunks of 50 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 100 << 30;

/// The stage ring (encoder to spooler) takes this share of the memory buffer...
const STAGE_SHARE: u64 = 8;
/// ...and at most this much: it only has to absorb the disk's hiccups, the spool is the
/// big buffer.
const STAGE_MAX: u64 = 64 << 20;

/// How long the stage threads wait before looking again whether they must stop.
const POLL: Duration = Duration::from_millis(50);

/// Where and how big the spool is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The directory the chunk files go in (a directory of their own is made inside).
    pub dir: PathBuf,
    /// Bytes the spool may take on disk, all chunks together.
    pub size: u64,
    /// Chunks the spool is split into (at least 1).
    pub chunks: u32,
}

impl SpoolSettings {
    /// Bytes of one chunk: the share of the size in whole blocks.
    pub fn chunk_bytes(&self, block: u64) -> u64 {
        let per = self.size / u64::from(self.chunks.max(1));
        per / block * block
    }
}

/// Why a spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {}: {reason}", dir.display())]
    Dir { dir: PathBuf, reason: String },
    #[error(
        "spool directory {} has {} free, the spool needs {} (--spool-size): free some \
         space, or give a smaller --spool-size or another --spool-dir",
        dir.display(), format_size(*free), format_size(*size)
    )]
    NoSpace { dir: PathBuf, free: u64, size: u64 },
    #[error(
        "a spool of {} cannot be split into {chunks} chunks of at least one {}-block; \
         give a larger --spool-size or fewer --spool-chunks",
        format_size(*size), format_size(*block)
    )]
    TooSmall { size: u64, chunks: u32, block: u64 },
    #[error("spool {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl SpoolError {
    /// Errors the operator caused (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SpoolError::Io { .. })
    }
}

/// Bytes an unprivileged user may still write in the file system holding `dir`.
pub fn free_space(dir: &Path) -> Result<u64, SpoolError> {
    let meta = std::fs::metadata(dir).map_err(|e| SpoolError::Dir {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(SpoolError::Dir {
            dir: dir.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    super::space::available(dir).map_err(|e| SpoolError::Dir {
        dir: dir.to_path_buf(),
        reason: e.desc().to_string(),
    })
}

/// The spool size used when none is given: half the free space, at most
/// [`DEFAULT_MAX_SIZE`].
pub fn default_size(free: u64) -> u64 {
    (free / 2).min(DEFAULT_MAX_SIZE)
}

/// Checks before anything starts that `settings` can work with `block`-byte blocks: the
/// directory exists, each chunk holds at least one block, and the file system has room
/// for the whole spool.
pub fn check(settings: &SpoolSettings, block: u64) -> Result<(), SpoolError> {
    let free = free_space(&settings.dir)?;
    if settings.chunks == 0 || settings.chunk_bytes(block) == 0 {
        return Err(SpoolError::TooSmall {
            size: settings.size,
            chunks: settings.chunks,
            block,
        });
    }
    if settings.size > free {
        return Err(SpoolError::NoSpace {
            dir: settings.dir.clone(),
            free,
            size: settings.size,
        });
    }
    // The chunks' directory can be made there (made again when the backup starts).
    tempfile::Builder::new()
        .prefix("tapedeck-spool-")
        .tempdir_in(&settings.dir)
        .map_err(|e| SpoolError::Dir {
            dir: settings.dir.clone(),
            reason: e.to_string(),
        })?;
    Ok(())
}

/// How a memory buffer of `buffer` bytes is shared when a spool is used: (the writer's
/// ring, the stage ring), both whole blocks. The writer's ring keeps most of it: it is the
/// one flow control drains into the drive.
pub fn split_buffer(buffer: u64, block: u64) -> (u64, u64) {
    let stage = (buffer / STAGE_SHARE).min(STAGE_MAX) / block * block;
    let stage = stage.max(2 * block);
    (buffer.saturating_sub(stage).max(2 * block), stage)
}

/// What the spool did, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolReport {
    /// The most bytes the chunk files held at once.
    pub peak_bytes: u64,
    /// Chunk files written.
    pub chunks_written: u64,
}

/// A chunk the feeder may read back.
struct Chunk {
    path: PathBuf,
    len: u64,
}

#[derive(Default)]
struct State {
    /// Complete chunks, oldest first.
    ready: VecDeque<Chunk>,
    /// Chunk files on disk (being written, ready, or being read back).
    files: usize,
    /// Bytes in them.
    bytes: u64,
    peak: u64,
    written: u64,
    /// The spooler has put its last chunk in `ready`.
    input_done: bool,
    /// Stop: the writer stopped taking blocks, or a stage thread failed.
    closed: bool,
}

/// The disk stage of one backup.
pub struct Stage {
    input: Arc<Ring>,
    /// The chunk files' directory, removed with the stage.
    dir: tempfile::TempDir,
    chunk_bytes: u64,
    chunks: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// The stage's two threads.
pub struct StageThreads {
    spooler: JoinHandle<Result<(), SpoolError>>,
    feeder: JoinHandle<Result<(), SpoolError>>,
}

impl StageThreads {
    /// Waits for both threads; the first error, if one failed.
    pub fn join(self) -> Result<(), String> {
        let spooled = self
            .spooler
            .join()
            .map_err(|_| "the spool thread panicked".to_string())?;
        let fed = self
            .feeder
            .join()
            .map_err(|_| "the spool reader thread panicked".to_string())?;
        spooled.and(fed).map_err(|e| e.to_string())
    }
}

impl Stage {
    /// A stage in a new directory inside `settings.dir`, with a stage ring of
    /// `ring_bytes` in `block`-byte blocks (the writer's ring must have the same blocks).
    pub fn new(
        settings: &SpoolSettings,
        ring_bytes: u64,
        block: usize,
    ) -> Result<Stage, SpoolError> {
        let chunk_bytes = settings.chunk_bytes(block as u64);
        if chunk_bytes == 0 {
            return Err(SpoolError::TooSmall {
                size: settings.size,
                chunks: settings.chunks,
                block: block as u64,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("tapedeck-spool-")
            .tempdir_in(&settings.dir)
            .map_err(|e| SpoolError::Dir {
                dir: settings.dir.clone(),
                reason: e.to_string(),
            })?;
        let input = Ring::new(ring_bytes, block).map_err(|source| SpoolError::Io {
            path: dir.path().to_path_buf(),
            source,
        })?;
        Ok(Stage {
            input: Arc::new(input),
            dir,
            chunk_bytes,
            chunks: settings.chunks.max(1) as usize,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ring the encoder writes into.
    pub fn input(&self) -> Arc<Ring> {
        self.input.clone()
    }

    /// The directory of the chunk files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// Bytes the chunk files hold now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    pub fn report(&self) -> SpoolReport {
        let st = self.lock();
        SpoolReport {
            peak_bytes: st.peak,
            chunks_written: st.written,
        }
    }

    /// Stops both threads: the encoder's next block fails, the writer's ring gets no more.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
        self.input.close_output();
    }

    fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Starts the spooler and the feeder; the feeder fills `output`, the writer's ring.
    pub fn start(self: &Arc<Self>, output: Arc<Ring>) -> io::Result<StageThreads> {
        let spooler = {
            let stage = self.clone();
            std::thread::Builder::new()
                .name("spool".into())
                .spawn(move || stage.spool())?
        };
        let feeder = {
            let stage = self.clone();
            let spawned = std::thread::Builder::new()
                .name("spool-reader".into())
                .spawn(move || stage.feed(&output));
            match spawned {
                Ok(f) => f,
                Err(e) => {
                    self.close();
                    let _ = spooler.join();
                    return Err(e);
                }
            }
        };
        Ok(StageThreads { spooler, feeder })
    }

    /// The next block the encoder filled; `None` once the encoder is done and everything
    /// is taken, or the stage is closed.
    fn next_block(&self) -> Option<Block> {
        self.next_block_or_stall(false)
    }

    /// The next block; with `end_on_stall`, also `None` when the input is stalled (nothing
    /// more comes until what was spooled is written), so a chunk ends early.
    fn next_block_or_stall(&self, end_on_stall: bool) -> Option<Block> {
        loop {
            if self.closed() {
                return None;
            }
            let done = self.input.input_done();
            match self.input.pop_full() {
                Some(b) => return Some(b),
                None if done => return None,
                None if end_on_stall && self.input.input_stalled() => return None,
                None => self.input.wait(POLL),
            }
        }
    }

    /// Waits until one more chunk file may be made; false when closed.
    fn wait_for_room(&self) -> bool {
        let mut st = self.lock();
        while !st.closed && st.files >= self.chunks {
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !st.closed
    }

    /// The spooler thread: encoder blocks into chunk files.
    fn spool(&self) -> Result<(), SpoolError> {
        let result = self.spool_chunks();
        let failed = result.is_err();
        {
            let mut st = self.lock();
            st.input_done = true;
            st.closed |= failed;
        }
        self.changed.notify_all();
        if failed || self.closed() {
            // Release an encoder waiting for room; it ends as if the writer stopped.
            self.input.close_output();
        }
        result
    }

    fn spool_chunks(&self) -> Result<(), SpoolError> {
        let mut k = 0u64;
        loop {
            if !self.wait_for_room() {
                return Ok(());
            }
            // No chunk file until there is something to put in it.
            let Some(first) = self.next_block() else {
                return Ok(());
            };
            k += 1;
            let path = self.dir.path().join(format!("chunk-{k:06}"));
            let io_err = |source| SpoolError::Io {
                path: path.clone(),
                source,
            };
            let mut file = match File::create(&path) {
                Ok(f) => f,
                Err(e) => {
                    self.input.recycle(first);
                    return Err(io_err(e));
                }
            };
            self.lock().files += 1;
            let mut len = 0u64;
            let mut block = Some(first);
            while let Some(b) = block.take() {
                let written = file.write_all(&b.data);
                let n = b.data.len() as u64;
                self.input.recycle(b);
                written.map_err(io_err)?;
                len += n;
                {
                    let mut st = self.lock();
                    st.bytes += n;
                    st.peak = st.peak.max(st.bytes);
                }
                if len < self.chunk_bytes {
                    block = self.next_block_or_stall(true);
                }
            }
            drop(file);
            let mut st = self.lock();
            st.written += 1;
            st.ready.push_back(Chunk { path, len });
            drop(st);
            self.changed.notify_all();
        }
    }

    /// The next complete chunk, waiting for one; `None` when the spool is done or must
    /// stop (including when the writer stopped taking blocks).
    fn next_chunk(&self, output: &Ring) -> Option<Chunk> {
        let mut st = self.lock();
        loop {
            if st.closed || output.output_closed() {
                return None;
            }
            if let Some(c) = st.ready.pop_front() {
                return Some(c);
            }
            if st.input_done {
                return None;
            }
            st = self
                .changed
                .wait_timeout(st, POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The feeder thread: complete chunks back into the writer's ring, each deleted once
    /// read.
    fn feed(&self, output: &Ring) -> Result<(), SpoolError> {
        let result = self.feed_chunks(output);
        if result.is_err() || output.output_closed() {
            self.close();
        }
        // Whatever happened, the writer gets no more: it drains what it has and ends.
        output.finish_input();
        result
    }

    fn feed_chunks(&self, output: &Ring) -> Result<(), SpoolError> {
        while let Some(chunk) = self.next_chunk(output) {
            let io_err = |source| SpoolError::Io {
                path: chunk.path.clone(),
                source,
            };
            let mut file = File::open(&chunk.path).map_err(io_err)?;
            let mut left = chunk.len;
            while left > 0 {
                let Ok(mut data) = output.take_empty() else {
                    // The writer stopped.
                    return Ok(());
                };
                let n = (data.len() as u64).min(left) as usize;
                if let Err(e) = file.read_exact(&mut data[..n]) {
                    output.recycle(Block { data });
                    return Err(io_err(e));
                }
                if output.put_full(data).is_err() {
                    return Ok(());
                }
                left -= n as u64;
            }
            drop(file);
            std::fs::remove_file(&chunk.path).map_err(io_err)?;
            let mut st = self.lock();
            st.files -= 1;
            st.bytes -= chunk.len;
            drop(st);
            self.changed.notify_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, size: u64, chunks: u32) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_path_buf(),
            size,
            chunks,
        }
    }

    /// Runs `blocks` numbered blocks through a stage into a writer's ring read by a slow
    /// consumer; returns what came out and the stage's report.
    fn pass(blocks: u32, block: usize, spool: u64, chunks: u32) -> (Vec<u32>, SpoolReport) {
        let tmp = tempfile::tempdir().unwrap();
        let stage = Arc::new(
            Stage::new(
                &settings(tmp.path(), spool, chunks),
                4 * block as u64,
                block,
            )
            .unwrap(),
        );
        let out = Arc::new(Ring::new(2 * block as u64, block).unwrap());
        let threads = stage.start(out.clone()).unwrap();
        let producer = {
            let input = stage.input();
            std::thread::spawn(move || {
                for i in 0..blocks {
                    let mut b = input.take_empty().unwrap();
                    b[..4].copy_from_slice(&i.to_le_bytes());
                    input.put_full(b).unwrap();
                }
                input.finish_input();
            })
        };
        let mut seen = Vec::new();
        loop {
            let done = out.input_done();
            match out.pop_full() {
                Some(b) => {
                    seen.push(u32::from_le_bytes(b.data[..4].try_into().unwrap()));
                    assert!(
                        stage.bytes() <= spool,
                        "{} on disk, spool {spool}",
                        stage.bytes()
                    );
                    out.recycle(b);
                }
                None if done => break,
                None => out.wait(Duration::from_millis(10)),
            }
        }
        producer.join().unwrap();
        threads.join().unwrap();
        let report = stage.report();
        let dir = stage.dir().to_path_buf();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "chunks deleted"
        );
        drop(stage);
        assert!(!dir.exists(), "the spool's directory is removed");
        (seen, report)
    }

    #[test]
    fn blocks_come_out_in_order_and_the_disk_holds_at_most_the_spool() {
        let (seen, report) = pass(100, 1024, 8 * 1024, 2);
        assert_eq!(seen, (0..100).collect::<Vec<u32>>());
        assert!(report.peak_bytes <= 8 * 1024, "{report:?}");
        assert!(
            report.peak_bytes >= 4 * 1024,
            "a chunk was filled: {report:?}"
        );
        assert_eq!(report.chunks_written, 25);
    }

    #[test]
    fn one_chunk_and_a_last_partial_chunk_work_too() {
        let (seen, report) = pass(7, 512, 3 * 512, 1);
        assert_eq!(seen, (0..7).collect::<Vec<u32>>());
        assert_eq!(report.chunks_written, 3);
        assert!(report.peak_bytes <= 3 * 512);
    }

    #[test]
    fn a_writer_that_stops_stops_the_stage_and_the_encoder() {
        let tmp = tempfile::tempdir().unwrap();
        let block = 512;
        let stage =
            Arc::new(Stage::new(&settings(tmp.path(), 4 * 512, 2), 2 * 512, block).unwrap());
        let out = Arc::new(Ring::new(2 * 512, block).unwrap());
        let threads = stage.start(out.clone()).unwrap();
        let producer = {
            let input = stage.input();
            std::thread::spawn(move || loop {
                match input.take_empty() {
                    Ok(b) => {
                        if input.put_full(b).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            })
        };
        // Nobody drains `out`: everything backs up; then the writer gives up.
        std::thread::sleep(Duration::from_millis(100));
        out.close_output();
        producer.join().unwrap();
        threads.join().unwrap();
        assert!(out.input_done());
    }

    #[test]
    fn a_spool_that_cannot_be_written_fails_and_stops_the_encoder() {
        let tmp = tempfile::tempdir().unwrap();
        let block = 512;
        let stage =
            Arc::new(Stage::new(&settings(tmp.path(), 4 * 512, 2), 2 * 512, block).unwrap());
        // The chunks' directory disappears: the first chunk cannot be made.
        std::fs::remove_dir_all(stage.dir()).unwrap();
        let out = Arc::new(Ring::new(2 * 512, block).unwrap());
        let threads = stage.start(out.clone()).unwrap();
        let input = stage.input();
        let stopped = (0..100).any(|_| match input.take_empty() {
            Ok(b) => input.put_full(b).is_err(),
            Err(_) => true,
        });
        assert!(stopped, "the encoder is told to stop");
        let err = threads.join().unwrap_err();
        assert!(err.contains("chunk-000001"), "{err}");
        assert!(out.input_done(), "the writer's ring is ended");
        assert_eq!(out.fill(), 0);
    }

    #[test]
    fn the_space_check_names_both_figures() {
        let tmp = tempfile::tempdir().unwrap();
        let err = check(&settings(tmp.path(), 1 << 60, 2), 512).unwrap_err();
        assert!(err.is_bad_input());
        let text = err.to_string();
        assert!(
            text.contains("1 EiB") || text.contains("1024 PiB"),
            "{text}"
        );
        assert!(text.contains("free"), "{text}");
        let err = check(&settings(&tmp.path().join("missing"), 1024, 2), 512).unwrap_err();
        assert!(matches!(err, SpoolError::Dir { .. }), "{err}");
        let err = check(&settings(tmp.path(), 1000, 2), 512).unwrap_err();
        assert!(matches!(err, SpoolError::TooSmall { .. }), "{err}");
        check(&settings(tmp.path(), 4096, 2), 512).unwrap();
    }

    #[test]
    fn the_memory_buffer_is_shared_mostly_for_the_writer() {
        let block = 512 << 10;
        let (ring, stage) = split_buffer(1 << 30, block);
        assert_eq!(stage, 64 << 20);
        assert_eq!(ring + stage, 1 << 30);
        let (ring, stage) = split_buffer(4 << 20, 64 << 10);
        assert_eq!((ring, stage), ((4 << 20) - (512 << 10), 512 << 10));
        let (ring, stage) = split_buffer(0, 1024);
        assert_eq!((ring, stage), (2048, 2048));
    }
}
