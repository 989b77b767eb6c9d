//! Carrying out a plan: each volume is mounted once (per visit), each run starts with a
//! LOCATE to its first block and reads on through the tape file, skipping to each
//! member's header by its recorded offset. A member's headers are checked against the
//! catalogue (name, type, size, continuation offset), its data hashed with BLAKE3 while it
//! is written (restore) or only read (verify). A file split across volumes is carried
//! from one visit to the next, open, with its hash state.
//!
//! Damage stays with its member: a medium error or a header that is not where the
//! catalogue says marks that member, and the next one is found by a fresh LOCATE.

use super::extract::{ExtractError, Extractor, Metadata, OpenFile, SafePath};
use super::plan::{Member, PartRead, Plan};
use super::{MountError, Progress, Report, Status, VolumeSource};
use crate::catalog::FileKind;
use crate::interrupt::Interrupt;
use crate::tape::file_reader::TapeFileReader;
use crate::tape::{TapeDrive, TapeError};
use crate::tarfmt::{ArchiveError, MemberHeader, MemberKind, MemberReader};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// What to do with what is read.
pub enum Mode<'a> {
    /// Write it under the target.
    Restore(&'a mut Extractor),
    /// Only check it; `quick`: headers and positions only.
    Verify { quick: bool },
}

/// A member's progress through its parts.
enum State {
    NotStarted,
    /// Parts read so far: the file being written (restore), the hash so far, data bytes.
    InProgress {
        file: Option<OpenFile>,
        hasher: Box<blake3::Hasher>,
        done: u64,
    },
    /// Reported (well or not): further parts are passed over.
    Done,
}

/// Whether the stream can go on to the next read of the run.
#[derive(PartialEq, Eq)]
enum Stream {
    Intact,
    /// The drive failed (medium error) or the position is unknown: LOCATE again.
    Broken,
}

struct Executor<'p, 'm> {
    plan: &'p Plan,
    mode: Mode<'m>,
    states: Vec<State>,
    report: Report,
    progress: &'p Progress,
    interrupt: &'p Interrupt,
    /// Hard links made at the end, by path.
    links: HashSet<String>,
    helper: Option<Helper>,
    chooser: Chooser,
}

/// Carries out `plan`: restores or verifies every member, mounting volumes through
/// `volumes`. Never fails as a whole: every problem is a member's outcome in the report.
pub fn execute(
    plan: &Plan,
    volumes: &mut dyn VolumeSource,
    mode: Mode<'_>,
    progress: &Progress,
    interrupt: &Interrupt,
) -> Report {
    let started = Instant::now();
    progress
        .total
        .store(plan.data_bytes, std::sync::atomic::Ordering::Relaxed);
    let mut ex = Executor {
        plan,
        mode,
        states: plan.members.iter().map(|_| State::NotStarted).collect(),
        report: Report {
            members: plan.members.len() as u64,
            ..Report::default()
        },
        progress,
        interrupt,
        links: HashSet::new(),
        helper: Helper::start(plan),
        chooser: Chooser::default(),
    };
    for u in &plan.unreadable {
        ex.report.note(&u.path, Status::Missing, u.reason.clone());
    }
    for visit in &plan.visits {
        if interrupt.requested() {
            ex.report.interrupted = true;
            break;
        }
        if !ex.report.volumes.contains(&visit.volume) {
            ex.report.volumes.push(visit.volume.clone());
        }
        progress.set_current(&format!("loading {}", visit.volume));
        let mounted = volumes.mount(&visit.volume).and_then(|mut d| {
            d.set_block_size(visit.block_size as u32)?;
            Ok(d)
        });
        let mut drive = match mounted {
            Ok(d) => d,
            Err(MountError::Interrupted(_)) => {
                ex.report.interrupted = true;
                break;
            }
            Err(e) => {
                let why = format!("volume {} could not be read: {e}", visit.volume);
                for run in &visit.runs {
                    for r in &run.reads {
                        ex.fail(r.member, Status::Failed, &why);
                    }
                }
                continue;
            }
        };
        for run in &visit.runs {
            ex.run(drive.as_mut(), visit.block_size, &run.reads);
            if ex.report.interrupted {
                break;
            }
        }
        drop(drive);
        if ex.report.interrupted {
            break;
        }
    }
    if let Some(w) = &mut ex.helper {
        w.stop();
        tracing::debug!(
            "restore: helper thread in {} of {} large spans",
            ex.chooser.helped,
            ex.chooser.spans
        );
    }
    // Ctrl-C after the last member still counts: the operator asked to stop.
    if interrupt.requested() {
        ex.report.interrupted = true;
    }
    // Split files whose later parts never came.
    for i in 0..ex.states.len() {
        if matches!(ex.states[i], State::InProgress { .. }) {
            let why = if ex.report.interrupted {
                "interrupted"
            } else {
                "a later part could not be read"
            };
            ex.fail(i, Status::Failed, why);
        }
    }
    if let Mode::Restore(x) = &mut ex.mode {
        let (failed, warnings) = x.finish();
        let mut failed_links = HashSet::new();
        for (path, e) in failed {
            let catalogue_path = format!("/{path}");
            if ex.links.contains(&catalogue_path) {
                failed_links.insert(catalogue_path.clone());
                ex.report
                    .note(&catalogue_path, status_of(&e), e.to_string());
            } else {
                ex.report.warnings.push(format!("{path}: {e}"));
            }
        }
        for link in std::mem::take(&mut ex.links) {
            if !failed_links.contains(&link) {
                ex.report.note(&link, Status::Restored, "");
            }
        }
        ex.report.warnings.extend(warnings);
    }
    let elapsed = started.elapsed().as_secs_f64();
    ex.report.elapsed_secs = elapsed;
    ex.report.rate = if elapsed > 0.0 {
        ex.report.data_bytes as f64 / elapsed
    } else {
        0.0
    };
    ex.report
}

fn status_of(e: &ExtractError) -> Status {
    match e {
        ExtractError::Refused(_) => Status::Refused,
        ExtractError::Kept(_) => Status::Kept,
        ExtractError::Io { .. } => Status::Failed,
    }
}

fn expected_kind(kind: FileKind) -> Option<MemberKind> {
    Some(match kind {
        FileKind::File => MemberKind::File,
        FileKind::Dir => MemberKind::Dir,
        FileKind::Symlink => MemberKind::Symlink,
        FileKind::HardLink => MemberKind::HardLink,
        FileKind::CharDevice => MemberKind::CharDevice,
        FileKind::BlockDevice => MemberKind::BlockDevice,
        FileKind::Fifo => MemberKind::Fifo,
        FileKind::Socket | FileKind::Deleted => return None,
    })
}

/// Why copying a member's data stopped.
enum CopyError {
    Read(ArchiveError),
    Write(ExtractError),
    /// The helper thread is gone.
    Helper,
    Interrupted,
}

/// Parts at least this large are shared with the helper thread: while this thread reads
/// the tape (and hashes, when restoring), the helper writes the file (restore) or hashes
/// (verify), straight from the tape's block buffers.
const HELPER_FROM: u64 = 1 << 20;

/// Blocks in flight to the helper thread.
const HELPER_QUEUE: usize = 2;

/// What the helper thread does with the data of one member part.
struct Task {
    /// Write the data here (restore).
    file: Option<OpenFile>,
    /// Hash the data into this (verify).
    hasher: Option<Box<blake3::Hasher>>,
    /// The first write error; later data is not written.
    error: Option<ExtractError>,
}

enum Job {
    Start(Task),
    /// Bytes `start..end` of a block.
    Data(Arc<Vec<u8>>, usize, usize),
    /// Give the task back.
    Finish,
}

/// A thread that writes or hashes blocks as the tape reader shares them (no copy).
struct Helper {
    jobs: std::sync::mpsc::SyncSender<Job>,
    back: std::sync::mpsc::Receiver<Task>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Plans with less data than this do without a helper thread.
const HELPER_PLAN_FROM: u64 = 256 << 20;

impl Helper {
    /// A helper thread, for a plan with enough data on a machine with more than one CPU.
    fn start(plan: &Plan) -> Option<Helper> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if plan.data_bytes < HELPER_PLAN_FROM || cpus < 2 {
            return None;
        }
        Self::spawn()
    }

    fn spawn() -> Option<Helper> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(HELPER_QUEUE);
        let (give, back) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("restore-helper".into())
            .spawn(move || {
                let mut current: Option<Task> = None;
                for job in queue {
                    match job {
                        Job::Start(t) => current = Some(t),
                        Job::Data(block, start, end) => {
                            let (Some(t), Some(bytes)) = (current.as_mut(), block.get(start..end))
                            else {
                                continue;
                            };
                            if let Some(h) = t.hasher.as_mut() {
                                h.update(bytes);
                            }
                            if let (Some(f), None) = (t.file.as_mut(), &t.error) {
                                if let Err(e) = f.write_all(bytes) {
                                    t.error = Some(e);
                                }
                            }
                        }
                        Job::Finish => {
                            if let Some(t) = current.take() {
                                if give.send(t).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            })
            .ok()?;
        Some(Helper {
            jobs,
            back,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        let (closed, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Large parts are copied in spans of this size, each with the helper thread or without
/// as [`Chooser`] decides.
const SPAN: u64 = 64 << 20;

/// Every this many spans the mode that is behind is tried again (the machine's load
/// changes).
const EXPLORE_EVERY: u32 = 8;

/// Picks, span by span, whether the helper thread is used: whichever moved data faster
/// (wall clock) lately. With a core free the helper wins; on a machine whose other cores
/// are busy the hand-over costs more than it saves, and one thread does it all.
#[derive(Debug, Default)]
struct Chooser {
    /// Bytes per second lately: [without, with] the helper.
    rate: [Option<f64>; 2],
    spans: u32,
    helped: u32,
}

impl Chooser {
    fn pick(&mut self) -> bool {
        self.spans += 1;
        let helped = self.choose();
        self.helped += u32::from(helped);
        helped
    }

    fn choose(&self) -> bool {
        match self.rate {
            [_, None] => true,
            [None, _] => false,
            [Some(alone), Some(helped)] => {
                let better = helped >= alone;
                if self.spans % EXPLORE_EVERY == 0 {
                    !better
                } else {
                    better
                }
            }
        }
    }

    fn record(&mut self, helped: bool, bytes: u64, secs: f64) {
        if bytes < SPAN / 4 || secs <= 0.0 {
            return;
        }
        let rate = bytes as f64 / secs;
        let slot = &mut self.rate[usize::from(helped)];
        *slot = Some(slot.map_or(rate, |old| (old + rate) / 2.0));
    }
}

/// Copies `length` data bytes of the current member: hashed, and written to `file` when
/// restoring; large parts span by span with the helper thread's help where it pays.
/// Returns the bytes copied and how it ended.
#[allow(clippy::too_many_arguments)]
fn copy_data(
    mr: &mut MemberReader<&mut TapeFileReader<'_>>,
    file: &mut Option<OpenFile>,
    hasher: &mut Box<blake3::Hasher>,
    length: u64,
    helper: Option<&Helper>,
    chooser: &mut Chooser,
    progress: &Progress,
    interrupt: &Interrupt,
) -> (u64, Result<(), CopyError>) {
    let Some(helper) = helper.filter(|_| length >= HELPER_FROM) else {
        return copy_span(mr, file, hasher, length, None, progress, interrupt);
    };
    let mut copied = 0u64;
    while copied < length {
        let span = (length - copied).min(SPAN);
        let helped = span >= HELPER_FROM && chooser.pick();
        let started = std::time::Instant::now();
        let (n, result) = copy_span(
            mr,
            file,
            hasher,
            span,
            helped.then_some(helper),
            progress,
            interrupt,
        );
        chooser.record(helped, n, started.elapsed().as_secs_f64());
        copied += n;
        if result.is_err() {
            return (copied, result);
        }
    }
    (copied, Ok(()))
}

/// Copies `length` data bytes: hashed, and written to `file` when restoring; with a
/// helper, the helper writes (or, verifying, hashes) from the shared blocks.
fn copy_span(
    mr: &mut MemberReader<&mut TapeFileReader<'_>>,
    file: &mut Option<OpenFile>,
    hasher: &mut Box<blake3::Hasher>,
    length: u64,
    helper: Option<&Helper>,
    progress: &Progress,
    interrupt: &Interrupt,
) -> (u64, Result<(), CopyError>) {
    // With a helper: it writes (restore), or it hashes (verify); this thread does the rest.
    let mut shared = None;
    let writing = file.is_some();
    if let Some(w) = helper.filter(|_| length >= HELPER_FROM) {
        let task = match file.take() {
            Some(f) => Task {
                file: Some(f),
                hasher: None,
                error: None,
            },
            None => Task {
                file: None,
                hasher: Some(std::mem::replace(hasher, Box::new(blake3::Hasher::new()))),
                error: None,
            },
        };
        match w.jobs.send(Job::Start(task)) {
            Ok(()) => shared = Some(w),
            Err(std::sync::mpsc::SendError(Job::Start(task))) => {
                *file = task.file;
                if let Some(h) = task.hasher {
                    *hasher = h;
                }
            }
            Err(_) => {}
        }
    }
    let helper_hashes = shared.is_some() && !writing;
    let mut copied = 0u64;
    let mut result = Ok(());
    while copied < length {
        if interrupt.hard() {
            result = Err(CopyError::Interrupted);
            break;
        }
        let chunk = match mr.data_chunk() {
            Ok(c) => c,
            Err(e) => {
                result = Err(CopyError::Read(e));
                break;
            }
        };
        let n = chunk.len();
        if !helper_hashes {
            hasher.update(chunk);
        }
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(chunk) {
                result = Err(CopyError::Write(e));
                break;
            }
        }
        if let Some(w) = shared {
            let (block, at) = mr.get_mut().shared_block();
            if w.jobs.send(Job::Data(block, at, at + n)).is_err() {
                result = Err(CopyError::Helper);
                break;
            }
        }
        mr.consume_data(n);
        copied += n as u64;
        progress.add(n as u64);
    }
    if let Some(w) = shared {
        let back = w
            .jobs
            .send(Job::Finish)
            .ok()
            .and_then(|()| w.back.recv().ok());
        match back {
            Some(task) => {
                if task.file.is_some() {
                    *file = task.file;
                }
                if let Some(h) = task.hasher {
                    *hasher = h;
                }
                if let (Some(e), Ok(())) = (task.error, &result) {
                    result = Err(CopyError::Write(e));
                }
            }
            None => result = Err(CopyError::Helper),
        }
    }
    (copied, result)
}

fn hex(hash: &blake3::Hash) -> String {
    hash.to_hex().to_string()
}

/// The metadata to restore: the catalogue's where it has it (nanosecond mtime), the
/// header's otherwise, names and extended attributes from the header.
fn metadata(m: &Member, h: &MemberHeader) -> Metadata {
    let v = &m.version;
    Metadata {
        mode: v.mode.map_or(h.mode, |x| x as u32),
        uid: v.uid.map_or(h.uid, |x| x.max(0) as u64),
        gid: v.gid.map_or(h.gid, |x| x.max(0) as u64),
        user: h.user_lossy(),
        group: h.group_lossy(),
        mtime_ns: v.mtime_ns.unwrap_or(h.mtime_ns),
        xattrs: h.xattrs.clone(),
    }
}

/// What a failed tape read says about the member.
fn read_failure(e: &ArchiveError, what: &str) -> (Status, String, Stream) {
    match e {
        ArchiveError::Io { source, .. } => {
            (Status::Damaged, format!("{what}: {source}"), Stream::Broken)
        }
        ArchiveError::Truncated { .. } => (
            Status::Damaged,
            format!("{what}: the tape file ends inside it (truncated)"),
            Stream::Intact,
        ),
        other => (Status::Damaged, format!("{what}: {other}"), Stream::Intact),
    }
}

impl Executor<'_, '_> {
    /// Reports member `i` (once) and gives up what it had open.
    fn fail(&mut self, i: usize, status: Status, detail: &str) {
        if matches!(self.states[i], State::Done) {
            return;
        }
        if let State::InProgress { file: Some(f), .. } =
            std::mem::replace(&mut self.states[i], State::Done)
        {
            if let Mode::Restore(x) = &mut self.mode {
                x.discard_file(f);
            }
        }
        self.states[i] = State::Done;
        let path = self.plan.members[i].path.clone();
        self.report.note(&path, status, detail);
    }

    fn succeed(&mut self, i: usize, warnings: Vec<String>) {
        self.states[i] = State::Done;
        let status = match self.mode {
            Mode::Restore(_) => Status::Restored,
            Mode::Verify { .. } => Status::Verified,
        };
        let path = self.plan.members[i].path.clone();
        self.report.note(&path, status, "");
        self.report.warnings.extend(warnings);
    }

    /// One run: LOCATE, then each read in tape order; a broken stream is picked up again
    /// with a LOCATE to the next read.
    fn run(&mut self, drive: &mut dyn TapeDrive, block_size: u64, reads: &[PartRead]) {
        let mut next = 0;
        while next < reads.len() {
            if self.interrupt.requested() {
                self.report.interrupted = true;
                return;
            }
            let first = &reads[next];
            next += 1;
            if matches!(self.states[first.member], State::Done) {
                continue;
            }
            if let Err(e) = drive.locate(first.block) {
                let status = match &e {
                    TapeError::BeyondEndOfData { .. } => Status::Missing,
                    TapeError::Medium { .. } => Status::Damaged,
                    _ => Status::Failed,
                };
                self.fail(
                    first.member,
                    status,
                    &format!("LOCATE to block {}: {e}", first.block),
                );
                continue;
            }
            let mut tape = TapeFileReader::new(&mut *drive, block_size as usize);
            let mut pos = first.block * block_size;
            let mut current = first;
            loop {
                let target = current.block * block_size + current.offset;
                let stream = if target < pos {
                    // Behind us (two members at one place): read it again after a LOCATE.
                    next -= 1;
                    Stream::Broken
                } else {
                    match tape.skip(target - pos) {
                        Ok(()) => {
                            pos = target;
                            let (consumed, stream) = self.read_part(&mut tape, current);
                            pos += consumed;
                            stream
                        }
                        Err(e) => {
                            let status = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                Status::Missing
                            } else {
                                Status::Damaged
                            };
                            self.fail(
                                current.member,
                                status,
                                &format!(
                                    "reaching block {} offset {}: {e}",
                                    current.block, current.offset
                                ),
                            );
                            Stream::Broken
                        }
                    }
                };
                if stream == Stream::Broken || next >= reads.len() || self.interrupt.requested() {
                    break;
                }
                current = &reads[next];
                next += 1;
            }
            self.report.tape_bytes += tape.blocks_read() * block_size;
        }
    }

    /// Reads one part at the stream's position. Returns the bytes consumed.
    fn read_part(&mut self, tape: &mut TapeFileReader<'_>, r: &PartRead) -> (u64, Stream) {
        let i = r.member;
        if matches!(self.states[i], State::Done) {
            return (0, Stream::Intact);
        }
        let m = &self.plan.members[i];
        let place = format!("block {} offset {}", r.block, r.offset);
        let mut mr = MemberReader::new(&mut *tape);
        let header = match mr.next_header() {
            Ok(Some(h)) => h,
            Ok(None) => {
                self.fail(
                    i,
                    Status::Missing,
                    &format!("the tape file ends before it ({place})"),
                );
                return (mr.position(), Stream::Intact);
            }
            Err(e) => {
                let (status, detail, stream) = read_failure(&e, &format!("header at {place}"));
                self.fail(i, status, &detail);
                return (mr.position(), stream);
            }
        };
        let restoring = matches!(self.mode, Mode::Restore(_));
        let name = header.name_lossy();
        let header_name = String::from_utf8_lossy(&header.name).into_owned();
        if restoring {
            if let Err(e) = SafePath::new(&header_name) {
                self.fail(i, Status::Refused, &format!("tape member: {e}"));
                return (mr.position(), Stream::Intact);
            }
        }
        let expected = m.version.path.trim_start_matches('/');
        if name != expected {
            self.fail(
                i,
                Status::Missing,
                &format!("at {place} the tape holds `{name}`, not this member"),
            );
            return (mr.position(), Stream::Intact);
        }
        if let Some(problem) = self.header_problem(m, r, &header) {
            self.fail(i, Status::Damaged, &format!("{problem} ({place})"));
            return (mr.position(), Stream::Intact);
        }
        let stream = if header.kind == MemberKind::File || r.part > 0 {
            self.file_part(&mut mr, r, &header)
        } else {
            self.other_member(i, &header);
            Stream::Intact
        };
        (mr.position(), stream)
    }

    /// What is wrong with a header that sits where the catalogue places the member.
    fn header_problem(&self, m: &Member, r: &PartRead, h: &MemberHeader) -> Option<String> {
        let v = &m.version;
        if r.part > 0 {
            return match h.kind {
                MemberKind::Continuation { offset } if offset == r.file_offset => {
                    let rest = (v.size.max(0) as u64).saturating_sub(r.file_offset);
                    (h.size != rest)
                        .then(|| format!("its continuation holds {} bytes, not {rest}", h.size))
                }
                other => Some(format!(
                    "the tape holds a {} where part {} of it should continue at byte {}",
                    other.describe(),
                    r.part + 1,
                    r.file_offset
                )),
            };
        }
        let want = expected_kind(v.kind)?;
        if h.sparse.is_some() {
            return Some("the tape holds a GNU sparse member, which is not restored".into());
        }
        if h.kind != want {
            return Some(format!(
                "the tape holds a {} where the catalogue has a {}",
                h.kind.describe(),
                want.describe()
            ));
        }
        if want == MemberKind::File && h.size != v.size.max(0) as u64 {
            return Some(format!(
                "the tape holds {} bytes where the catalogue has {}",
                h.size, v.size
            ));
        }
        if want == MemberKind::Symlink && h.link_lossy() != v.link {
            return Some(format!(
                "the symlink points to `{}` where the catalogue has `{}`",
                h.link_lossy().unwrap_or_default(),
                v.link.as_deref().unwrap_or_default()
            ));
        }
        None
    }

    /// A member without data: directory, symlink, hard link, device, FIFO.
    fn other_member(&mut self, i: usize, h: &MemberHeader) {
        let m = &self.plan.members[i];
        let Mode::Restore(x) = &mut self.mode else {
            self.succeed(i, Vec::new());
            return;
        };
        let dest = match SafePath::from_catalogue(&m.path) {
            Ok(p) => p,
            Err(e) => return self.fail(i, status_of(&e), &e.to_string()),
        };
        let meta = metadata(m, h);
        let done = match h.kind {
            MemberKind::Dir => x.directory(&dest, &meta).map(|()| Vec::new()),
            MemberKind::Symlink => {
                let target = h.link_lossy().unwrap_or_default();
                x.symlink(&dest, &target, &meta)
            }
            MemberKind::HardLink => {
                let target = m
                    .link_to
                    .clone()
                    .or_else(|| m.version.link.clone())
                    .unwrap_or_default();
                match SafePath::from_catalogue(&target) {
                    Ok(t) => {
                        x.hard_link(&dest, &t);
                        self.states[i] = State::Done;
                        self.links.insert(m.path.clone());
                        return;
                    }
                    Err(e) => Err(ExtractError::Refused(format!("hard link target: {e}"))),
                }
            }
            MemberKind::Fifo => x.special(&dest, nix::sys::stat::SFlag::S_IFIFO, h.device, &meta),
            MemberKind::CharDevice => {
                x.special(&dest, nix::sys::stat::SFlag::S_IFCHR, h.device, &meta)
            }
            MemberKind::BlockDevice => {
                x.special(&dest, nix::sys::stat::SFlag::S_IFBLK, h.device, &meta)
            }
            other => Err(ExtractError::Refused(format!(
                "a {} is not restored",
                other.describe()
            ))),
        };
        match done {
            Ok(warnings) => self.succeed(i, warnings),
            Err(e) => self.fail(i, status_of(&e), &e.to_string()),
        }
    }

    /// A file's part: data hashed (and written), the hash checked after the last part.
    fn file_part(
        &mut self,
        mr: &mut MemberReader<&mut TapeFileReader<'_>>,
        r: &PartRead,
        h: &MemberHeader,
    ) -> Stream {
        let i = r.member;
        let m = &self.plan.members[i];
        let quick = matches!(self.mode, Mode::Verify { quick: true });
        // The state to continue from.
        let (mut file, mut hasher, done) = match std::mem::replace(&mut self.states[i], State::Done)
        {
            State::InProgress { file, hasher, done } if r.part > 0 => (file, hasher, done),
            State::NotStarted if r.part == 0 => {
                let file = match &mut self.mode {
                    Mode::Restore(x) => {
                        let created = SafePath::from_catalogue(&m.path)
                            .and_then(|dest| x.create_file(&dest, &metadata(m, h)));
                        match created {
                            Ok(f) => Some(f),
                            Err(e) => {
                                self.states[i] = State::NotStarted;
                                self.fail(i, status_of(&e), &e.to_string());
                                return Stream::Intact;
                            }
                        }
                    }
                    Mode::Verify { .. } => None,
                };
                (file, Box::new(blake3::Hasher::new()), 0)
            }
            _ => {
                self.states[i] = State::NotStarted;
                self.fail(
                    i,
                    Status::Damaged,
                    &format!("part {} came out of order", r.part + 1),
                );
                return Stream::Intact;
            }
        };
        if done != r.file_offset {
            self.states[i] = State::InProgress { file, hasher, done };
            self.fail(
                i,
                Status::Damaged,
                &format!(
                    "part {} starts at byte {} but {done} bytes came before",
                    r.part + 1,
                    r.file_offset
                ),
            );
            return Stream::Intact;
        }
        let last = r.part + 1 == r.parts;
        if quick {
            // Headers only: the next part starts where the catalogue says.
            if last {
                self.succeed(i, Vec::new());
            } else {
                let next = m
                    .version
                    .segments
                    .get(r.part + 1)
                    .map_or(done, |s| s.file_offset.max(0) as u64);
                self.states[i] = State::InProgress {
                    file,
                    hasher,
                    done: next,
                };
            }
            return Stream::Intact;
        }
        let length = if last { h.size } else { r.length };
        if !last {
            mr.limit_data(length);
        }
        self.progress.set_current(&m.path);
        let (copied, result) = copy_data(
            mr,
            &mut file,
            &mut hasher,
            length,
            self.helper.as_ref(),
            &mut self.chooser,
            self.progress,
            self.interrupt,
        );
        self.report.data_bytes += copied;
        if let Err(e) = result {
            self.states[i] = State::InProgress {
                file,
                hasher,
                done: done + copied,
            };
            return match e {
                CopyError::Read(e) => {
                    let (status, detail, stream) =
                        read_failure(&e, &format!("data at byte {}", done + copied));
                    self.fail(i, status, &detail);
                    stream
                }
                CopyError::Write(e) => {
                    self.fail(i, Status::Failed, &e.to_string());
                    Stream::Intact
                }
                CopyError::Helper => {
                    self.fail(i, Status::Failed, "the helper thread stopped");
                    Stream::Intact
                }
                CopyError::Interrupted => {
                    self.report.interrupted = true;
                    Stream::Broken
                }
            };
        }
        let done = done + copied;
        if !last {
            self.states[i] = State::InProgress { file, hasher, done };
            return Stream::Intact;
        }
        let got = hex(&hasher.finalize());
        let mut warnings = Vec::new();
        match m.version.blake3.as_deref() {
            Some(want) if want != got => {
                self.states[i] = State::InProgress { file, hasher, done };
                self.fail(
                    i,
                    Status::Damaged,
                    &format!("BLAKE3 {got} does not match the catalogue's {want}"),
                );
                return Stream::Intact;
            }
            Some(_) => {}
            None => warnings.push(format!(
                "{}: the catalogue has no BLAKE3 for it; not checked",
                m.path
            )),
        }
        if let (Some(f), Mode::Restore(x)) = (file, &mut self.mode) {
            match x.finish_file(f) {
                Ok(w) => warnings.extend(w),
                Err(e) => {
                    self.fail(i, status_of(&e), &e.to_string());
                    return Stream::Intact;
                }
            }
        }
        self.succeed(i, warnings);
        Stream::Intact
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::{Changer, Element};
    use crate::vlib::{InitOptions, Library};

    /// A virtual drive holding `archive` as tape file 0, rewound.
    fn drive_with(dir: &std::path::Path, archive: &[u8], block: usize) -> Box<dyn TapeDrive> {
        let opts = InitOptions {
            time_scale: 0.0,
            ..InitOptions::default()
        };
        let lib = Library::init(dir, &opts).unwrap();
        lib.changer()
            .move_medium(Element::Slot(1), Element::Drive(0))
            .unwrap();
        let mut drive: Box<dyn TapeDrive> = Box::new(lib.open_drive("lto9").unwrap());
        drive.set_block_size(block as u32).unwrap();
        for chunk in archive.chunks(block) {
            let mut b = chunk.to_vec();
            b.resize(block, 0);
            drive.write_block(&b).unwrap();
        }
        drive.rewind().unwrap();
        drive
    }

    #[test]
    fn the_chooser_follows_the_faster_mode_and_tries_the_other_now_and_then() {
        let mut c = Chooser::default();
        assert!(c.pick(), "the helper first");
        c.record(true, SPAN, 1.0);
        assert!(!c.pick(), "then without");
        c.record(false, SPAN, 0.5);
        let picks: Vec<bool> = (0..16).map(|_| c.pick()).collect();
        assert_eq!(picks.iter().filter(|&&h| h).count(), 2, "{picks:?}");
        // Small spans say nothing about the rates.
        c.record(true, 1, 0.000_001);
        assert_eq!(c.rate[1], Some(SPAN as f64));
    }

    #[test]
    fn large_members_come_out_the_same_with_the_helper_thread_and_without() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "big", data.as_slice()).unwrap();
        let archive = b.into_inner().unwrap();
        let want = blake3::hash(&data);
        for (threaded, writing) in [(true, true), (true, false), (false, true), (false, false)] {
            let dir = tempfile::tempdir().unwrap();
            let mut drive = drive_with(dir.path(), &archive, 64 * 1024);
            let mut tape = TapeFileReader::new(drive.as_mut(), 64 * 1024);
            let mut mr = MemberReader::new(&mut tape);
            let header = mr.next_header().unwrap().unwrap();
            let helper = if threaded { Helper::spawn() } else { None };
            assert_eq!(helper.is_some(), threaded);
            let to = dir.path().join("to");
            let mut x = crate::restore::extract::Extractor::new(
                &to,
                crate::restore::extract::Overwrite::Never,
            )
            .unwrap();
            let mut file = writing.then(|| {
                x.create_file(&SafePath::new("big").unwrap(), &Metadata::default())
                    .unwrap()
            });
            let mut hasher = Box::new(blake3::Hasher::new());
            let (copied, result) = copy_data(
                &mut mr,
                &mut file,
                &mut hasher,
                header.size,
                helper.as_ref(),
                &mut Chooser::default(),
                &Progress::default(),
                &Interrupt::new(),
            );
            assert!(result.is_ok());
            assert_eq!(copied, data.len() as u64);
            assert_eq!(
                hasher.finalize(),
                want,
                "threaded {threaded}, writing {writing}"
            );
            if let Some(f) = file {
                x.finish_file(f).unwrap();
                assert_eq!(std::fs::read(to.join("big")).unwrap(), data);
            }
        }
    }
}
