//! One backup session from scan to summary: starts the encoder and writer threads around
//! the ring buffer, records in the catalogue each member once the writer has put its last
//! block on tape, writes the index tape file, and ends the backup with a status.

use super::encoder::{self, BlockSink, Encoded, EncoderEnd, EncoderEvent, Integrity};
use super::entries::{Cursor, EntryLog};
use super::flow::{FlowConfig, FlowController, FlowPolicy, SpeedRange};
use super::incremental::{self, BackupKind, Basis};
use super::index::{IndexError, IndexHeader, IndexRecord, IndexSegment, IndexTrailer, IndexWriter};
use super::passthrough::{self, TarInput};
use super::reader::{PrefetchConfig, Prefetcher};
use super::replay::{Replay, ReplayDamage};
use super::ring::Ring;
use super::scan::EntryKind;
use super::spans::Spans;
use super::spool::{self, SpoolSettings, Stage};
use super::telemetry::Telemetry;
use super::volume::TapeTarget;
use super::writer::{
    self, ChangeReason, NextTape, Progress, Sink, Spanning, VolumeChange, WriterEnd, WriterOutcome,
};
use super::BackupError;
use crate::catalog::{
    self, BackupStatus, Catalog, ChangeStamp, FileBatch, FileKind, FileRecord, NewBackup,
    SegmentRecord, TapeErrorRecord, VolumeStatus,
};
use crate::interrupt::Interrupt;
use crate::job::{Event, Events};
use crate::tape::{TapeDrive, TapeError};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Encoder events per message to the recorder.
const EVENT_BATCH: usize = 256;
/// How often the encoder refreshes progress in the telemetry.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);
/// Files from this size on are named in the progress as soon as they start.
const LARGE_FILE: u64 = 64 << 20;

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub job: Option<String>,
    pub label: Option<String>,
    pub pool: Option<String>,
    /// Ring buffer size in bytes (already checked against available memory).
    pub buffer: u64,
    pub policy: FlowPolicy,
    pub high_watermark: f64,
    pub low_watermark: f64,
    /// The drive's streaming range, for pacing; `None` paces nothing.
    pub range: Option<SpeedRange>,
    /// The drive's cache in bytes, so the flow controller knows how long it streams on
    /// without input.
    pub drive_cache: Option<u64>,
    /// Parallel readers for small files.
    pub readers: usize,
    /// An incremental or differential backup: its parent and the scan's deletions
    /// (`None`: a full backup).
    pub basis: Option<Basis>,
    /// How the stream reaches the writer.
    pub strategy: Strategy,
}

/// How the tar stream reaches the writer (the backups table's `strategy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The encoder's stream through the memory buffer.
    #[default]
    Direct,
    /// The encoder's stream staged through a bounded disk spool (`backup::spool`).
    Tar(SpoolSettings),
    /// Tar archives made elsewhere, passed through (`backup::passthrough`).
    Dd,
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Direct => "direct",
            Strategy::Tar(_) => "tar",
            Strategy::Dd => "dd",
        }
    }
}

/// What goes into the stream.
pub enum Source {
    /// Scanned members, encoded as tar (strategies `direct` and `tar`).
    Scan(Arc<EntryLog>),
    /// Tar archives passed through as one (strategy `dd`).
    Tar(Vec<TarInput>),
}

/// Where the stream goes.
pub enum Target {
    /// A tapedeck volume, positioned at end of data.
    Tape(Box<TapeTarget>),
    /// A file, FIFO or stdout: the bare tar stream, no label, no index, no catalogue.
    Device {
        name: String,
        out: Box<dyn Write + Send>,
        block_size: u32,
    },
}

/// How a backup went, for the operator and for scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub uuid: String,
    pub status: BackupStatus,
    pub kind: BackupKind,
    /// The backup an incremental or differential builds on.
    pub parent: Option<String>,
    /// Files an incremental or differential left out as unchanged.
    pub unchanged: Option<u64>,
    /// Paths an incremental or differential recorded as deleted.
    pub deleted: u64,
    pub drive: String,
    pub volume: Option<String>,
    /// Every volume the backup went to, in order (the index is on the last).
    pub volumes: Vec<String>,
    /// Volumes given up after a write error, now in error: pull them. What the catalogue
    /// records on them was written before the error.
    pub failed_volumes: Vec<String>,
    pub tape_file: Option<u64>,
    pub first_block: Option<u64>,
    /// Files saved: on tape and committed to the catalogue (for a device, on the
    /// stream), and their file data.
    pub files: u64,
    pub bytes: u64,
    /// Files whose data went onto tape in full. More than `files` when the catalogue
    /// could not record them all: those are not saved.
    pub streamed: u64,
    /// Bytes of the tape file (headers, data, padding).
    pub tape_bytes: u64,
    pub skipped: u64,
    /// Saved, but the file changed while it was read.
    pub changed: u64,
    /// Not saved: the file shrank or failed part-way while it was read.
    pub damaged: u64,
    pub elapsed_secs: f64,
    /// Average rate from the first block written until all was on tape, bytes/s.
    pub average_rate: f64,
    /// Lowest one-second write rate while streaming, bytes/s.
    pub min_streaming_rate: Option<f64>,
    pub writer_stops: u64,
    /// Stop-and-reposition cycles the drive reported, when it can tell.
    pub repositions: Option<u64>,
    pub buffer: u64,
    pub policy: FlowPolicy,
    /// `direct`, `tar` or `dd`.
    pub strategy: &'static str,
    /// The tar strategy's spool size, and the most its chunk files held at once.
    pub spool_size: Option<u64>,
    pub peak_spool_bytes: Option<u64>,
    /// The process's peak resident memory (VmHWM), buffer included.
    pub peak_memory: Option<u64>,
    pub error: Option<String>,
}

/// The process's peak resident set size, from `/proc/self/status`.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Members the encoder has put in the stream, waiting for the writer to get their last
/// byte onto tape before they are recorded.
struct Recorder<'c> {
    entries: Cursor,
    batch: Option<FileBatch<'c>>,
    index: Option<IndexWriter>,
    /// The volumes the stream went to, in order (empty for a device).
    parts: Vec<Part>,
    block_size: u64,
    pending: VecDeque<Encoded>,
    /// Members written again after a write error (their stream start), and whether that
    /// copy turned out damaged.
    replays: Vec<(u64, ReplayDamage)>,
    /// Volumes given up after a write error.
    failed_volumes: Vec<String>,
    /// Why the catalogue could not be written, once it failed: nothing more is recorded.
    catalog_failure: Option<String>,
    /// Files streamed onto tape in full, and their data.
    files: u64,
    bytes: u64,
    changed: u64,
    damaged: u64,
}

/// Notes in `slot` that the catalogue could not be written (the first failure is the one
/// kept) and returns the reason as the operator reads it.
fn catalog_failed(slot: &mut Option<String>, e: impl std::fmt::Display) -> String {
    let reason = format!("the catalogue could not be written: {e}");
    slot.get_or_insert_with(|| reason.clone());
    reason
}

/// The part of the stream one volume holds.
#[derive(Debug, Clone)]
struct Part {
    volume_id: i64,
    label: String,
    tape_file: u64,
    first_block: u64,
    /// Stream offset of the first stream byte on this volume.
    stream_from: u64,
    /// Bytes before it on this volume (a continuation header, or repeated headers).
    prefix_len: u64,
    /// The member cut at the start of this volume: its stream start, and the bytes of its
    /// data the earlier volumes hold.
    split: Option<(u64, u64)>,
    /// What the backup wrote on this volume is counted in its usage: done once, when the
    /// backup leaves the volume (for the next, or at its end), never twice.
    usage_counted: bool,
}

impl Part {
    /// Stream offset that the volume's first byte stands for.
    fn virtual_start(&self) -> i128 {
        self.stream_from as i128 - self.prefix_len as i128
    }

    /// Block and offset of stream offset `y` on this volume.
    fn place(&self, y: u64, block_size: u64) -> (u64, u64) {
        let o = (y as i128 - self.virtual_start()).max(0) as u64;
        (self.first_block + o / block_size, o % block_size)
    }
}

/// Where a member is: one segment per volume it is on.
fn segments_of(
    parts: &[Part],
    start: u64,
    size: u64,
    block_size: u64,
) -> Vec<(&Part, u64, u64, u64, u64)> {
    let Some(first) = parts
        .iter()
        .rposition(|p| p.virtual_start() <= start as i128)
    else {
        return Vec::new();
    };
    let (block, offset) = parts[first].place(start, block_size);
    let mut out = vec![(&parts[first], block, offset, 0u64, size)];
    for p in &parts[first + 1..] {
        if let Some((s, done)) = p.split {
            if s == start {
                if let Some(last) = out.last_mut() {
                    last.4 = done - last.3;
                }
                out.push((p, p.first_block, 0, done, size - done));
            }
        }
    }
    out
}

fn file_kind(kind: &EntryKind) -> FileKind {
    match kind {
        EntryKind::File => FileKind::File,
        EntryKind::Dir => FileKind::Dir,
        EntryKind::Symlink { .. } => FileKind::Symlink,
        EntryKind::HardLink { .. } => FileKind::HardLink,
        EntryKind::CharDevice { .. } => FileKind::CharDevice,
        EntryKind::BlockDevice { .. } => FileKind::BlockDevice,
        EntryKind::Fifo => FileKind::Fifo,
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Recorder<'_> {
    /// Records every pending member that ends at or before `on_tape` bytes.
    fn record_up_to(&mut self, on_tape: u64, events: &Events) -> Result<(), BackupError> {
        if self.catalog_failure.is_some() {
            return Ok(());
        }
        while self.pending.front().is_some_and(|e| e.end <= on_tape) {
            if let Some(enc) = self.pending.pop_front() {
                self.record(enc, events)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, enc: Encoded, events: &Events) -> Result<(), BackupError> {
        let Some(entry) = self.entries.get(enc.index) else {
            return Ok(());
        };
        let path = || format!("/{}", entry.name.trim_end_matches('/'));
        let replay_damage = self
            .replays
            .iter()
            .find(|(start, _)| *start == enc.start)
            .and_then(|(_, d)| d.reason());
        let integrity = match replay_damage {
            Some(reason) => Integrity::Damaged(reason),
            None => enc.integrity.clone(),
        };
        match &integrity {
            Integrity::Intact => {}
            Integrity::Changed(reason) => {
                self.changed += 1;
                events.send(Event::FileChanged {
                    path: path(),
                    reason: reason.clone(),
                    saved: true,
                });
            }
            Integrity::Damaged(reason) => {
                self.damaged += 1;
                events.send(Event::FileChanged {
                    path: path(),
                    reason: reason.clone(),
                    saved: false,
                });
                return Ok(());
            }
        }
        self.files += 1;
        self.bytes += enc.size;
        if self.index.is_none() && self.batch.is_none() {
            // A stream to a device: counted, nothing to record.
            return Ok(());
        }
        let segments = segments_of(&self.parts, enc.start, enc.size, self.block_size);
        let link = match &entry.kind {
            EntryKind::Symlink { target } => Some(target.to_string_lossy().into_owned()),
            EntryKind::HardLink { target } => Some(format!("/{target}")),
            _ => None,
        };
        let kind = file_kind(&entry.kind);
        let path = path();
        if let Some(index) = &mut self.index {
            index.add(&IndexRecord {
                path: &path,
                kind: kind.as_str(),
                size: enc.size,
                mtime: entry.mtime_ns,
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                user: entry.user.as_deref(),
                group: entry.group.as_deref(),
                link: link.as_deref(),
                blake3: enc.blake3.as_ref().map(hex),
                segments: segments
                    .iter()
                    .map(|(p, block, offset, file_offset, length)| IndexSegment {
                        volume: &p.label,
                        tape_file: p.tape_file,
                        block: *block,
                        offset: *offset,
                        file_offset: *file_offset,
                        length: *length,
                    })
                    .collect(),
                ino: Some(entry.ino),
                ctime: Some(entry.ctime_ns),
            })?;
        }
        if let Some(batch) = &mut self.batch {
            let stamp = ChangeStamp {
                ino: entry.ino,
                ctime_ns: entry.ctime_ns,
            };
            let record = FileRecord {
                path,
                kind,
                size: enc.size as i64,
                mtime_ns: Some(entry.mtime_ns),
                mode: Some(entry.mode as i64),
                uid: Some(entry.uid as i64),
                gid: Some(entry.gid as i64),
                link,
                blake3: enc.blake3,
                segments: segments
                    .iter()
                    .map(|(p, block, offset, file_offset, length)| SegmentRecord {
                        volume_id: p.volume_id,
                        tape_file: Some(p.tape_file as i64),
                        block: Some(*block as i64),
                        offset: Some(*offset as i64),
                        file_offset: *file_offset as i64,
                        length: *length as i64,
                    })
                    .collect(),
            };
            if let Err(e) = batch.push_stamped(record, Some(stamp)) {
                catalog_failed(&mut self.catalog_failure, &e);
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Gives the next volume when one is full: called with the catalogue, the full volume's
/// drive (to be closed or reused) and why; returns the next volume positioned for
/// appending, with the same block size.
pub type NextVolume<'a> =
    dyn FnMut(&mut Catalog, Box<dyn TapeDrive>, String) -> Result<TapeTarget, BackupError> + 'a;

/// Runs one backup of the scanned members to `target`. Catalogue and index are kept
/// only for a tape target. Interrupts end it cleanly with status `aborted`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    req: &BackupRequest,
    source: Source,
    target: Target,
    mut cat: Option<&mut Catalog>,
    mut next_volume: Option<&mut NextVolume<'_>>,
    telemetry: Arc<Telemetry>,
    events: Events,
    interrupt: Interrupt,
) -> Result<Summary, BackupError> {
    let started = Instant::now();
    let (entries, tar_inputs) = match (source, &req.strategy) {
        (Source::Tar(inputs), Strategy::Dd) => (EntryLog::new(), Some(inputs)),
        (Source::Scan(entries), Strategy::Direct | Strategy::Tar(_)) => (entries, None),
        _ => {
            return Err(BackupError::Internal(
                "the dd strategy takes tar archives, the others scanned sources".into(),
            ))
        }
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let started_at = catalog::now();
    let kind = req.basis.as_ref().map_or(BackupKind::Full, |b| b.kind);
    let parent = req.basis.as_ref().map(|b| b.parent.as_str());
    let (sink, drive_name, block_size, tape) = match target {
        Target::Tape(t) => {
            let t = *t;
            for w in &t.warnings {
                events.send(Event::Warning { message: w.clone() });
            }
            let TapeTarget {
                drive,
                drive_name,
                volume,
                tape_file,
                first_block,
                block_size,
                ..
            } = t;
            (
                Sink::Tape(drive),
                drive_name,
                block_size,
                Some((volume, tape_file, first_block)),
            )
        }
        Target::Device {
            name,
            out,
            block_size,
        } => (Sink::Stream(out), name, block_size, None),
    };
    // The buffer, the disk stage and the index spool are made before the backup is
    // recorded: if that fails, nothing started.
    let stage = match &req.strategy {
        Strategy::Tar(settings) => {
            let (_, stage_bytes) = spool::split_buffer(req.buffer, block_size as u64);
            Some(Arc::new(Stage::new(
                settings,
                stage_bytes,
                block_size as usize,
            )?))
        }
        _ => None,
    };
    let ring_bytes = match &stage {
        Some(_) => spool::split_buffer(req.buffer, block_size as u64).0,
        None => req.buffer,
    };
    let ring = Arc::new(Ring::new(ring_bytes, block_size as usize)?);
    let index = match tape {
        Some(_) => Some(IndexWriter::new(&IndexHeader {
            format: 1,
            uuid: &uuid,
            job: req.job.as_deref(),
            label: req.label.as_deref(),
            kind: kind.as_str(),
            parent,
            started: super::index::index_time(started_at),
            tapedeck: env!("CARGO_PKG_VERSION"),
            block_size,
        })?),
        None => None,
    };
    let cat_for_tape = if tape.is_some() { cat.take() } else { None };
    let mut cat = cat_for_tape;
    let backup_id = match (&mut cat, &tape) {
        (Some(c), Some((volume, tape_file, first_block))) => {
            let id = c.begin_backup(&NewBackup {
                uuid: &uuid,
                job: req.job.as_deref(),
                label: req.label.as_deref(),
                kind: kind.as_str(),
                parent_uuid: parent,
                pool: volume.pool.as_deref().or(req.pool.as_deref()),
                started_at,
                drive: Some(&drive_name),
                strategy: Some(req.strategy.name()),
                block_size: Some(block_size as i64),
                origin: "tapedeck",
            })?;
            if let Err(e) = c.add_backup_volume(
                id,
                0,
                volume.id,
                Some(*tape_file as i64),
                Some(*first_block as i64),
            ) {
                // Nothing was written: the backup ends failed, never left `running`.
                let reason = catalog_failed(&mut None, &e);
                if let Err(e) =
                    c.finish_backup(id, BackupStatus::Failed, catalog::now(), Some(&reason))
                {
                    tracing::warn!("backup {uuid}: its end cannot be recorded either: {e}");
                }
                return Err(e.into());
            }
            Some(id)
        }
        _ => None,
    };
    events.send(Event::BackupStarted {
        uuid: uuid.clone(),
        drive: drive_name.clone(),
        volume: tape.as_ref().map(|t| t.0.label.clone()),
        files: entries.totals().entries as u64,
        bytes: entries.totals().bytes,
        buffer: req.buffer,
        policy: req.policy,
    });
    if let Some((volume, tape_file, first_block)) = &tape {
        events.send(Event::TapeFileStarted {
            volume: volume.label.clone(),
            tape_file: *tape_file,
            block: *first_block,
        });
    }
    telemetry.update(|s| {
        s.drive = drive_name.clone();
        s.volume = tape.as_ref().map(|t| t.0.label.clone());
        s.policy = Some(req.policy);
        s.buffer_capacity = ring.capacity();
        s.high_watermark = req.high_watermark;
        s.low_watermark = req.low_watermark;
    });
    let mut flow = FlowController::new(FlowConfig {
        policy: req.policy,
        capacity: ring.capacity(),
        block: block_size as u64,
        high: req.high_watermark,
        low: req.low_watermark,
        range: req.range,
    });
    if let Some(cache) = req.drive_cache {
        flow = flow.with_drive_cache(cache);
    }
    let progress = Arc::new(Progress::default());
    // Room left on the volume, when its capacity is known.
    // Without a next volume, a file larger than the room left cannot be saved.
    let spanning = next_volume.is_some() && tape.is_some();
    let room = tape.as_ref().filter(|_| !spanning).and_then(|t| {
        t.0.capacity
            .map(|c| c.saturating_sub(t.0.used).max(0) as u64)
    });
    let spans = Arc::new(Spans::default());
    let (change_tx, change_rx) = mpsc::channel::<VolumeChange>();
    let (reply_tx, reply_rx) = mpsc::channel();
    let writer_spanning = spanning.then(|| Spanning {
        spans: spans.clone(),
        requests: change_tx,
        replies: reply_rx,
    });

    // The disk stage between the encoder and the writer's ring, for the tar strategy.
    let stage_threads = match &stage {
        Some(s) => Some(s.start(ring.clone())?),
        None => None,
    };
    let writer = {
        let (ring, progress, telemetry, events, interrupt) = (
            ring.clone(),
            progress.clone(),
            telemetry.clone(),
            events.clone(),
            interrupt.clone(),
        );
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                writer::run(
                    sink,
                    ring,
                    flow,
                    progress,
                    telemetry,
                    events,
                    interrupt,
                    writer_spanning,
                )
            })?
    };
    let (tx, rx) = mpsc::channel::<Vec<EncoderEvent>>();
    let encoder = {
        let spans = spans.clone();
        // The encoder fills the stage's ring when there is a disk stage.
        let ring = stage.as_ref().map_or_else(|| ring.clone(), |s| s.input());
        let (entries, telemetry, events, interrupt) = (
            entries.clone(),
            telemetry.clone(),
            events.clone(),
            interrupt.clone(),
        );
        let readers = PrefetchConfig {
            threads: req.readers.max(1),
            budget: 32 << 20,
            small_limit: 1 << 20,
        };
        std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || {
                let mut names = Cursor::new(entries.clone());
                // Members go to the recorder in batches: one wake-up per member would
                // cost more than encoding a small file.
                let mut batch = Vec::with_capacity(EVENT_BATCH);
                // Progress goes to the telemetry at most every 50 ms (and for every
                // large file, whose name shows while it is copied), not once per member.
                let (mut files_done, mut bytes_read) = (0u64, 0u64);
                let mut shown = std::time::Instant::now();
                let mut report = |ev: EncoderEvent| {
                    match &ev {
                        EncoderEvent::Current { index } => {
                            let Some(e) = names.get(*index) else { return };
                            if e.size >= LARGE_FILE || shown.elapsed() >= PROGRESS_EVERY {
                                shown = std::time::Instant::now();
                                telemetry.update(|s| {
                                    s.files_done = files_done;
                                    s.bytes_read = bytes_read;
                                    s.current_file.clear();
                                    s.current_file.push('/');
                                    s.current_file.push_str(&e.name);
                                });
                            }
                            return;
                        }
                        EncoderEvent::Member(m) => {
                            files_done += 1;
                            bytes_read += m.size;
                        }
                        EncoderEvent::Skipped { .. } => {}
                    }
                    batch.push(ev);
                    if batch.len() >= EVENT_BATCH {
                        let _ = tx.send(std::mem::replace(
                            &mut batch,
                            Vec::with_capacity(EVENT_BATCH),
                        ));
                    }
                };
                let end = match tar_inputs {
                    None => encoder::encode(
                        &mut Cursor::new(entries.clone()),
                        &mut Prefetcher::start(entries.clone(), readers),
                        BlockSink::new(ring.clone()),
                        &spans,
                        room,
                        &interrupt,
                        &mut report,
                    ),
                    Some(inputs) => passthrough::copy(
                        inputs,
                        &entries,
                        BlockSink::new(ring.clone()),
                        &spans,
                        &interrupt,
                        &telemetry,
                        &events,
                        &mut report,
                    ),
                };
                let _ = tx.send(batch);
                telemetry.update(|s| {
                    s.files_done = files_done;
                    s.bytes_read = bytes_read;
                });
                ring.finish_input();
                end
            })?
    };

    let mut recorder = Recorder {
        entries: Cursor::new(entries.clone()),
        batch: None,
        index,
        parts: tape
            .iter()
            .map(|(v, tape_file, first_block)| Part {
                volume_id: v.id,
                label: v.label.clone(),
                tape_file: *tape_file,
                first_block: *first_block,
                stream_from: 0,
                prefix_len: 0,
                split: None,
                usage_counted: false,
            })
            .collect(),
        block_size: block_size as u64,
        pending: VecDeque::new(),
        replays: Vec::new(),
        failed_volumes: Vec::new(),
        catalog_failure: None,
        files: 0,
        bytes: 0,
        changed: 0,
        damaged: 0,
    };
    let mut skipped = 0u64;
    let mut scan_skips_seen = 0usize;
    let mut scan_done = false;
    let mut next_index = 0usize;
    let mut interrupt_seen = false;
    if let (Some(c), Some(id)) = (cat.as_deref_mut(), backup_id) {
        recorder.batch = Some(c.file_batch(id));
    }
    let mut volume_seq = 0i64;
    let mut encoder_done = false;
    let mut input_rate = InputRate::new();
    let recorded: Result<(), BackupError> = (|| {
        loop {
            // Tape changes asked for by the writer are served here, where the catalogue is.
            while let Ok(change) = change_rx.try_recv() {
                let reply = change_volume(
                    change,
                    &mut recorder,
                    next_volume.as_deref_mut(),
                    backup_id,
                    &mut volume_seq,
                    block_size,
                    &drive_name,
                    &events,
                );
                if reply.is_ok() {
                    if let Some(part) = recorder.parts.last() {
                        telemetry.update(|s| s.volume = Some(part.label.clone()));
                    }
                }
                let _ = reply_tx.send(reply);
            }
            if encoder_done {
                if writer.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                recorder.record_up_to(progress.bytes(), &events)?;
                continue;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => {
                    for ev in batch {
                        match ev {
                            EncoderEvent::Member(m) => {
                                next_index = m.index + 1;
                                recorder.pending.push_back(m);
                            }
                            EncoderEvent::Skipped { index, reason } => {
                                skipped += 1;
                                next_index = index + 1;
                                let path = recorder
                                    .entries
                                    .get(index)
                                    .map(|e| format!("/{}", e.name))
                                    .unwrap_or_default();
                                events.send(Event::FileSkipped { path, reason });
                            }
                            EncoderEvent::Current { .. } => {}
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => encoder_done = true,
            }
            // The first interrupt is told here; the writer tells the second.
            if interrupt.requested() && !interrupt_seen {
                interrupt_seen = true;
                events.send(Event::Interrupted { hard: false });
                events.phase(crate::job::Phase::Draining);
            }
            recorder.record_up_to(progress.bytes(), &events)?;
            spans.written_to(progress.bytes());
            // Entries before the oldest one still to be recorded are done with.
            entries.release_before(recorder.pending.front().map_or(next_index, |e| e.index));
            // A scan waiting for entries to be recorded stalls the input: the writer then
            // writes what is buffered instead of waiting for a watermark it cannot reach.
            let stalled = entries.scan_waiting();
            ring.set_input_stalled(stalled);
            if let Some(s) = &stage {
                s.input().set_input_stalled(stalled);
            }
            let totals = entries.totals();
            report_scan_skips(&entries, &mut scan_skips_seen, &events);
            if totals.done && !scan_done {
                scan_done = true;
                tracing::info!(
                    "scan finished: {} entries, {} in {:.2} s",
                    totals.entries,
                    crate::units::format_size(totals.bytes),
                    started.elapsed().as_secs_f64()
                );
            }
            telemetry.update(|s| {
                s.files_total = totals.entries as u64;
                s.bytes_total = totals.bytes;
            });
            update_eta(&telemetry, started, &mut input_rate);
        }
        Ok(())
    })();
    // The encoder is done (its channel closed) or recording failed: either way wait for
    // both threads, so the drive is back in our hands before anything else happens.
    if recorded.is_err() {
        ring.close_output();
        if let Some(s) = &stage {
            s.close();
        }
    }
    // No tape change is served any more: a writer asking for one is told no, and one
    // that asks later finds no one to ask (instead of waiting for ever).
    while let Ok(change) = change_rx.try_recv() {
        drop(change);
        let _ = reply_tx.send(Err("the backup is stopping".into()));
    }
    drop(change_rx);
    drop(reply_tx);
    let encoder_end = encoder
        .join()
        .map_err(|_| BackupError::Internal("the encoder thread panicked".into()))?;
    let outcome: WriterOutcome = writer
        .join()
        .map_err(|_| BackupError::Internal("the writer thread panicked".into()))?;
    // The writer's end stopped the stage too (its ring is closed).
    let spooled = stage_threads.map_or(Ok(()), |t| t.join());
    // A failure of the encoder (an archive it could not write), of the index or of the
    // catalogue fails the backup; it is still ended and recorded below. Once the catalogue
    // could not be written, nothing more goes to it but the backup's end, and nothing more
    // to tape: the data's tape file is closed, and no index is written after it.
    let mut failure = None;
    if let Err(e) = recorded {
        if recorder.catalog_failure.is_none() {
            failure = Some(format!("recording files: {e}"));
        }
    }
    if let Err(e) = spooled {
        failure.get_or_insert(format!("spooling the archive: {e}"));
    }
    let encoder_end = encoder_end.unwrap_or_else(|e| {
        failure.get_or_insert(format!("encoding the archive: {e}"));
        EncoderEnd::WriterStopped { bytes: 0 }
    });
    report_scan_skips(&entries, &mut scan_skips_seen, &events);
    skipped += entries.totals().skipped as u64;
    if failure.is_none() {
        if let Err(e) = recorder.record_up_to(
            match outcome.end {
                WriterEnd::Drained => u64::MAX,
                _ => outcome.stream_bytes,
            },
            &events,
        ) {
            if recorder.catalog_failure.is_none() {
                failure = Some(format!("recording files: {e}"));
            }
        }
    }
    // An incremental's deletions, once the whole stream is recorded and the scan saw
    // everything (an interrupted backup records none).
    let mut deleted = 0u64;
    let stream_complete = matches!(outcome.end, WriterEnd::Drained)
        && !matches!(encoder_end, EncoderEnd::Interrupted { .. })
        && !interrupt.requested();
    if let (Some(basis), None, None, true) = (
        &req.basis,
        &failure,
        &recorder.catalog_failure,
        stream_complete,
    ) {
        match incremental::record_deletions(basis, recorder.batch.as_mut(), recorder.index.as_mut())
        {
            Ok(n) => deleted = n,
            Err(BackupError::Catalog(e)) => {
                catalog_failed(&mut recorder.catalog_failure, &e);
            }
            Err(e) => failure = Some(format!("recording deletions: {e}")),
        }
    }
    let WriterOutcome {
        sink,
        end: writer_end,
        bytes: tape_bytes,
        bytes_on_volume,
        stream_bytes: _,
        stops,
        streaming_secs,
        first_write,
        min_streaming_rate,
        tape_error,
    } = outcome;
    // What is still queued is committed; what the catalogue holds is what is saved.
    let mut batch = recorder.batch.take();
    if let (Some(b), None) = (batch.as_mut(), &recorder.catalog_failure) {
        if let Err(e) = b.flush() {
            catalog_failed(&mut recorder.catalog_failure, &e);
        }
    }
    let committed = batch.as_ref().map(FileBatch::committed);
    drop(batch);
    let Recorder {
        files: streamed,
        bytes: streamed_bytes,
        changed,
        damaged,
        index,
        parts,
        failed_volumes,
        mut catalog_failure,
        ..
    } = recorder;
    // Without a catalogue (a stream to a device), what is on the stream is saved.
    let (files, bytes) = committed.unwrap_or((streamed, streamed_bytes));
    let last_part = parts.last().cloned();
    let tape_file = last_part.as_ref().map_or(0, |p| p.tape_file);

    // How it ended.
    let interrupted = matches!(encoder_end, EncoderEnd::Interrupted { .. }) || interrupt.hard();
    let (mut status, mut error) = match &writer_end {
        WriterEnd::Drained if interrupted => (BackupStatus::Aborted, Some("interrupted".into())),
        WriterEnd::Drained => (BackupStatus::Complete, None),
        WriterEnd::Aborted => (BackupStatus::Aborted, Some("interrupted".into())),
        WriterEnd::EndOfTape => (
            BackupStatus::Failed,
            Some(format!(
                "the tape is full after {} and no next volume can be had: give --pool POOL \
                 (the library then loads one), or --change-timeout SECS (or run on a \
                 terminal) to wait for one to be loaded",
                crate::units::format_size(tape_bytes)
            )),
        ),
        // Interrupted while waiting for the next tape: the operator stopped it, the drive
        // did not fail.
        WriterEnd::Failed(m) if interrupt.requested() && tape_error.is_none() => {
            (BackupStatus::Aborted, Some(format!("interrupted: {m}")))
        }
        WriterEnd::Failed(m) => (BackupStatus::Failed, Some(m.clone())),
    };
    if let Some(f) = catalog_failure.clone().or(failure) {
        status = BackupStatus::Failed;
        error = Some(f);
    }
    let mut repositions = None;
    let mut index_bytes = 0u64;
    let mut tape_files_now = tape_file + 1;
    let mut index_filled_tape = false;
    // The drive is kept until the catalogue is updated: closing it can wait for the
    // drive to write out its cache.
    let mut drive_kept = None;
    if let Sink::Tape(mut drive) = sink {
        // The index goes after the data when the data's tape file closed cleanly, and the
        // catalogue took what the index describes.
        if matches!(writer_end, WriterEnd::Drained) && catalog_failure.is_none() {
            let before = drive.position().ok();
            let written = match index {
                Some(index) => {
                    events.phase(crate::job::Phase::WritingIndex);
                    let trailer = IndexTrailer {
                        finished: super::index::index_time(catalog::now()),
                        status: status.as_str(),
                        files: streamed,
                        bytes: streamed_bytes,
                    };
                    index
                        .write_to_tape(&trailer, &uuid, drive.as_mut(), block_size as usize)
                        .and_then(|_| Ok(drive.write_filemarks(1, false)?))
                }
                None => Ok(()),
            };
            match written {
                Ok(()) => {
                    tape_files_now += 1;
                    if let (Some(b), Ok(a)) = (before, drive.position()) {
                        index_bytes = a.saturating_sub(b + 1) * block_size as u64;
                    }
                }
                Err(e) => {
                    // A tape that ends under the index is full: the next backup must not
                    // start on it (a real drive says early warning only on writes, so a
                    // backup that began inside the zone may learn it only here).
                    index_filled_tape = matches!(
                        e,
                        IndexError::EndOfTape | IndexError::Tape(TapeError::EndOfMedium { .. })
                    );
                    status = BackupStatus::Failed;
                    error = Some(e.to_string());
                    events.send(Event::Error {
                        message: e.to_string(),
                    });
                }
            }
        }
        repositions = drive.repositions();
        drive_kept = Some(drive);
    }
    if let (Some(c), Some(id), Some(last)) = (cat, backup_id, &last_part) {
        // What the backup did is recorded first; whatever of that fails, the backup is
        // still marked finished (failed, with the reason), never left `running`.
        let recorded = (|| -> Result<(), catalog::CatalogError> {
            if let Some(e) = &tape_error {
                c.record_tape_error(&TapeErrorRecord {
                    volume_id: Some(last.volume_id),
                    backup_id: Some(id),
                    drive: &drive_name,
                    kind: "write",
                    position: None,
                    detail: &e.to_string(),
                })?;
            }
            c.record_drive_stats(
                &drive_name,
                Some(last.volume_id),
                Some(id),
                "after",
                &serde_json::json!({
                    "bytes_written": tape_bytes + index_bytes,
                    "writer_stops": stops,
                    "repositions": repositions,
                    "streaming_secs": streaming_secs,
                    "min_streaming_rate": min_streaming_rate,
                    "volumes": parts.len(),
                }),
            )?;
            if !last.usage_counted {
                c.record_volume_written(
                    last.volume_id,
                    (bytes_on_volume + index_bytes) as i64,
                    tape_files_now as i64,
                )?;
            }
            Ok(())
        })();
        if let Err(e) = &recorded {
            status = BackupStatus::Failed;
            let reason = catalog_failed(&mut catalog_failure, e);
            error.get_or_insert(reason);
        }
        // An end that cannot be recorded is tried once more, as failed: it is a small
        // transaction that a nearly full disk may still take.
        if let Err(e) = c.finish_backup(id, status, catalog::now(), error.as_deref()) {
            status = BackupStatus::Failed;
            let reason = catalog_failed(&mut catalog_failure, &e);
            let reason = error.get_or_insert(reason);
            c.finish_backup(id, status, catalog::now(), Some(reason))?;
        }
        if matches!(writer_end, WriterEnd::EndOfTape) || index_filled_tape {
            c.set_volume_status(&last.label, VolumeStatus::Full, None)?;
        }
        // Only a failure of the drive or the medium puts the volume in error (not a tape
        // change that could not be made, nor a full disk under a virtual cartridge).
        if matches!(writer_end, WriterEnd::Failed(_))
            && tape_error.as_ref().is_some_and(|e| e.is_medium_failure())
        {
            c.set_volume_status(&last.label, VolumeStatus::Error, error.as_deref())?;
        }
    }
    if let (BackupStatus::Failed, Some(e)) = (status, &error) {
        events.send(Event::Error {
            message: format!("backup {uuid} failed: {e}"),
        });
    }
    events.send(Event::BackupFinished {
        uuid: uuid.clone(),
        status: status.as_str().to_string(),
    });
    drop(drive_kept);
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Summary {
        uuid,
        status,
        kind,
        parent: parent.map(str::to_string),
        unchanged: req.basis.as_ref().and_then(Basis::unchanged),
        deleted,
        drive: drive_name,
        volume: tape.as_ref().map(|t| t.0.label.clone()),
        volumes: parts.iter().map(|p| p.label.clone()).collect(),
        failed_volumes,
        tape_file: tape.as_ref().map(|t| t.1),
        first_block: tape.as_ref().map(|t| t.2),
        files,
        bytes,
        streamed,
        tape_bytes,
        skipped,
        changed,
        damaged,
        elapsed_secs: elapsed,
        average_rate: average_rate(tape_bytes, first_write, elapsed),
        min_streaming_rate,
        writer_stops: stops,
        repositions,
        buffer: ring.capacity() + stage.as_ref().map_or(0, |s| s.input().capacity()),
        policy: req.policy,
        strategy: req.strategy.name(),
        spool_size: match &req.strategy {
            Strategy::Tar(settings) => Some(settings.size),
            _ => None,
        },
        peak_spool_bytes: stage.as_ref().map(|s| s.report().peak_bytes),
        peak_memory: peak_memory(),
        error,
    })
}

/// Tells of the paths the scan skipped since the last call.
fn report_scan_skips(entries: &EntryLog, seen: &mut usize, events: &Events) {
    for s in entries.skipped_since(*seen) {
        *seen += 1;
        events.send(Event::FileSkipped {
            path: s.path.display().to_string(),
            reason: s.reason,
        });
    }
}

/// Serves a writer's request for the next volume: records what is on the volume left,
/// marks it full (or in error, after a write error), gets the next from `next_volume`, and
/// returns its drive for the writer, with the member in flight made again after an error.
#[allow(clippy::too_many_arguments)]
fn change_volume(
    change: VolumeChange,
    recorder: &mut Recorder<'_>,
    next_volume: Option<&mut NextVolume<'_>>,
    backup_id: Option<i64>,
    seq: &mut i64,
    block_size: u32,
    drive_name: &str,
    events: &Events,
) -> Result<NextTape, String> {
    let (Some(next_volume), Some(id)) = (next_volume, backup_id) else {
        return Err(match change.reason {
            ChangeReason::WriteError(e) => e.to_string(),
            ChangeReason::Full => "no other volume can be had".into(),
        });
    };
    recorder
        .record_up_to(change.cut, events)
        .map_err(|e| e.to_string())?;
    let Some(left) = recorder.parts.last().cloned() else {
        return Err("no volume in use".into());
    };
    let in_flight = change.in_flight.clone();
    let Some(batch) = recorder.batch.as_mut() else {
        return Err("no catalogue".into());
    };
    // A catalogue that cannot be written stops the backup here (the reason is kept).
    let failed = &mut recorder.catalog_failure;
    let cat = batch.catalog().map_err(|e| catalog_failed(failed, e))?;
    cat.record_volume_written(
        left.volume_id,
        change.bytes_on_volume as i64,
        left.tape_file as i64 + 1,
    )
    .map_err(|e| catalog_failed(failed, e))?;
    if let Some(part) = recorder.parts.last_mut() {
        part.usage_counted = true;
    }
    let why = match &change.reason {
        ChangeReason::Full => {
            cat.set_volume_status(&left.label, VolumeStatus::Full, None)
                .map_err(|e| catalog_failed(failed, e))?;
            events.send(Event::Warning {
                message: format!(
                    "volume {} is full; the backup continues on the next",
                    left.label
                ),
            });
            format!("volume {} is full", left.label)
        }
        ChangeReason::WriteError(e) => {
            let detail = e.to_string();
            let position = match e {
                crate::tape::TapeError::WriteFailed { position, .. }
                | crate::tape::TapeError::Medium { position, .. } => Some(*position as i64),
                _ => None,
            };
            cat.record_tape_error(&TapeErrorRecord {
                volume_id: Some(left.volume_id),
                backup_id: Some(id),
                drive: drive_name,
                kind: "write",
                position,
                detail: &detail,
            })
            .and_then(|()| cat.set_volume_status(&left.label, VolumeStatus::Error, Some(&detail)))
            .map_err(|e| catalog_failed(failed, e))?;
            recorder.failed_volumes.push(left.label.clone());
            events.send(Event::VolumeFailed {
                volume: left.label.clone(),
                drive: drive_name.to_string(),
                error: detail.clone(),
                file: in_flight.clone(),
            });
            format!("volume {} failed: {detail}", left.label)
        }
    };
    let next = next_volume(cat, change.drive, why.clone()).map_err(|e| {
        format!(
            "no next volume after {}: {e}{}",
            left.label,
            in_flight
                .as_ref()
                .map(|f| format!("; {f} was being written and is not saved"))
                .unwrap_or_default()
        )
    })?;
    if next.block_size != block_size {
        return Err(format!(
            "volume {} has {}-byte blocks, the backup {block_size}",
            next.volume.label, next.block_size
        ));
    }
    // After a write error the member in flight is made again from its source.
    let replay = match &change.restart {
        Some((span, to)) => {
            let replay = Replay::new(span, *to).map_err(|e| format!("{why}, and {e}"))?;
            recorder.replays.push((span.start, replay.damage()));
            Some(replay)
        }
        None => None,
    };
    *seq += 1;
    cat.add_backup_volume(
        id,
        *seq,
        next.volume.id,
        Some(next.tape_file as i64),
        Some(next.first_block as i64),
    )
    .map_err(|e| catalog_failed(failed, e))?;
    events.send(Event::TapeFileStarted {
        volume: next.volume.label.clone(),
        tape_file: next.tape_file,
        block: next.first_block,
    });
    let c = &change.continuation;
    recorder.parts.push(match &change.restart {
        Some((span, _)) => Part {
            volume_id: next.volume.id,
            label: next.volume.label.clone(),
            tape_file: next.tape_file,
            first_block: next.first_block,
            stream_from: span.start,
            prefix_len: 0,
            split: None,
            usage_counted: false,
        },
        None => Part {
            volume_id: next.volume.id,
            label: next.volume.label.clone(),
            tape_file: next.tape_file,
            first_block: next.first_block,
            stream_from: change.cut + c.skip,
            prefix_len: c.prefix.len() as u64,
            split: c.split,
            usage_counted: false,
        },
    });
    Ok(NextTape {
        drive: next.drive,
        replay,
    })
}

/// Bytes per second from the first block written until everything was on tape (the final
/// filemark waits for the drive's cache), so a drive cache that swallows a small backup
/// at once does not show as an impossible rate.
fn average_rate(bytes: u64, first_write: Option<Instant>, elapsed: f64) -> f64 {
    let secs = first_write.map_or(elapsed, |t| t.elapsed().as_secs_f64());
    if secs > 0.0 {
        bytes as f64 / secs
    } else {
        0.0
    }
}

/// The input rate over the last second or so, from the bytes read so far.
#[derive(Debug)]
struct InputRate {
    at: f64,
    bytes: u64,
    rate: f64,
}

impl InputRate {
    fn new() -> Self {
        InputRate {
            at: 0.0,
            bytes: 0,
            rate: 0.0,
        }
    }

    /// The rate at `now` (seconds since the start) with `bytes` read: over the last whole
    /// second once one has passed, the average until then.
    fn at(&mut self, now: f64, bytes: u64) -> f64 {
        if now - self.at >= 1.0 {
            self.rate = bytes.saturating_sub(self.bytes) as f64 / (now - self.at);
            self.at = now;
            self.bytes = bytes;
        } else if self.at == 0.0 && now > 0.0 {
            self.rate = bytes as f64 / now;
        }
        self.rate
    }
}

fn update_eta(telemetry: &Telemetry, started: Instant, input: &mut InputRate) {
    let elapsed = started.elapsed().as_secs_f64();
    telemetry.update(|s| {
        s.elapsed_secs = elapsed;
        s.input_rate = input.at(elapsed, s.bytes_read);
        // What is left to write at the drive's rate over the last second (its cache
        // takes the first gigabyte at once, so the session's average would flatter it).
        let rate = if s.write_rate > 0.0 {
            s.write_rate
        } else if elapsed > 0.0 {
            s.bytes_written as f64 / elapsed
        } else {
            0.0
        };
        s.eta_secs =
            (rate > 0.0).then(|| s.bytes_total.saturating_sub(s.bytes_written) as f64 / rate);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_rate_is_that_of_the_last_second_not_the_session() {
        let mut rate = InputRate::new();
        // 100 MB/s for the first 10 s...
        for t in 1..=10 {
            rate.at(t as f64, t * 100_000_000);
        }
        assert_eq!(rate.at(10.5, 1_000_000_000), 100e6);
        // ...then the source slows to 10 MB/s: the next second says so, not the average.
        let slow = rate.at(11.0, 1_010_000_000);
        assert!((slow - 10e6).abs() < 1.0, "{slow}");
    }

    #[test]
    fn before_a_second_has_passed_the_input_rate_is_the_average() {
        let mut rate = InputRate::new();
        assert_eq!(rate.at(0.5, 50_000_000), 100e6);
    }
}
