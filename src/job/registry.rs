//! The run directory, `$TAPEDECK_HOME/run/`: one record per job (`<id>.json`), the lock a
//! job holds for its whole life (`<id>.lock`) and its socket (`<id>.sock`), and
//! `memory.lock`, which jobs starting at the same time take in turn to size their buffers.
//!
//! A job is live while its lock is held: the kernel lets the flock go when the process
//! ends, however it ends, so a crashed job is seen as dead at once (no `/proc` guessing,
//! no reused pids). Listing tidies up after dead jobs: a record without an outcome is
//! marked failed, a stale socket and lock are removed, old records are pruned.

use super::hub::now_ms;
use super::model::{JobKind, JobState, JobStatus, Outcome};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Finished records older than this are deleted.
pub const KEEP_SECS: i64 = 7 * 24 * 3600;
/// At most this many finished records are kept.
pub const KEEP_FINISHED: usize = 50;
/// The outcome message of a job whose process ended before it could record one.
pub const DIED: &str = "the job's process ended without finishing";

/// A failure of the run directory.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a job record: {source}", .path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no job {id} (see `tapedeck jobs`)")]
    Unknown { id: String },
    #[error("`{prefix}` names several jobs: {}", .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
}

impl RegistryError {
    fn io(path: &Path, source: std::io::Error) -> RegistryError {
        RegistryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the operator named a job wrongly (exit 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RegistryError::Unknown { .. } | RegistryError::Ambiguous { .. }
        )
    }
}

/// What the run directory keeps of a job, running or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    pub pid: u32,
    /// Unix time, seconds.
    pub started_at: i64,
    pub what: String,
    /// The ring buffer the job holds, bytes.
    pub buffer: u64,
    /// The state when the record was last written (at the start, a buffer change, the end).
    #[serde(default)]
    pub state: Option<JobState>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Unix time, seconds.
    #[serde(default)]
    pub finished_at: Option<i64>,
}

impl JobRecord {
    /// The record of a job in `state`.
    pub fn of(state: &JobState) -> JobRecord {
        JobRecord {
            id: state.id.clone(),
            kind: state.kind,
            pid: state.pid,
            started_at: state.started_at,
            what: state.what.clone(),
            buffer: state.buffer,
            state: Some(state.clone()),
            outcome: state.outcome.clone(),
            finished_at: None,
        }
    }
}

/// A job as listed: its record, and whether it runs now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub record: JobRecord,
    pub live: bool,
}

/// `home/run`.
pub fn run_dir(home: &Path) -> PathBuf {
    home.join("run")
}

/// Creates the run directory, readable by its owner only (mode 0700, tightened if looser).
pub fn ensure_run_dir(run_dir: &Path) -> Result<(), RegistryError> {
    fs::create_dir_all(run_dir).map_err(|e| RegistryError::io(run_dir, e))?;
    let meta = fs::metadata(run_dir).map_err(|e| RegistryError::io(run_dir, e))?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(run_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| RegistryError::io(run_dir, e))?;
    }
    Ok(())
}

pub fn record_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join(format!("{id}.json"))
}

pub fn lock_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join(format!("{id}.lock"))
}

pub fn socket_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join(format!("{id}.sock"))
}

/// A new job id, `"{kind}-{6 lowercase hex}"`, that no file in `run_dir` uses.
pub fn new_id(run_dir: &Path, kind: JobKind) -> String {
    loop {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("{kind}-{}", &hex[..6]);
        let used = [
            record_path(run_dir, &id),
            lock_path(run_dir, &id),
            socket_path(run_dir, &id),
        ]
        .iter()
        .any(|p| p.symlink_metadata().is_ok());
        if !used {
            return id;
        }
    }
}

/// Writes `record` to `run_dir/<id>.json` at once: a reader sees the old record or the new.
pub fn write_record(run_dir: &Path, record: &JobRecord) -> Result<(), RegistryError> {
    let path = record_path(run_dir, &record.id);
    let tmp = run_dir.join(format!(".{}.json.tmp", record.id));
    let text = serde_json::to_vec_pretty(record).map_err(|e| RegistryError::Corrupt {
        path: path.clone(),
        source: e,
    })?;
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| RegistryError::io(&path, e))
}

/// Reads the record of job `id`.
pub fn read_record(run_dir: &Path, id: &str) -> Result<JobRecord, RegistryError> {
    let path = record_path(run_dir, id);
    let text = fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
    serde_json::from_slice(&text).map_err(|source| RegistryError::Corrupt { path, source })
}

/// An exclusive flock on a file of the run directory, held until dropped.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// Takes the lock at `path`, creating the file; `wait` blocks until it is free, else a
/// held lock gives `Ok(None)`.
pub(crate) fn take_lock(path: &Path, wait: bool) -> Result<Option<Lock>, RegistryError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| RegistryError::io(path, e))?;
    lock_file(path, f, wait)
}

fn lock_file(path: &Path, f: File, wait: bool) -> Result<Option<Lock>, RegistryError> {
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    match Flock::lock(f, arg) {
        Ok(lock) => Ok(Some(Lock(lock))),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(RegistryError::io(path, errno.into())),
    }
}

/// Whether job `id` runs: its lock is held. Without a lock file it does not; the lock is
/// only tried, never created. A dead job's lock is returned held, for the caller to clean
/// up under.
fn probe(run_dir: &Path, id: &str) -> Result<(bool, Option<Lock>), RegistryError> {
    let path = lock_path(run_dir, id);
    let f = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((false, None)),
        Err(e) => return Err(RegistryError::io(&path, e)),
    };
    match lock_file(&path, f, false)? {
        Some(lock) => Ok((false, Some(lock))),
        None => Ok((true, None)),
    }
}

/// Removes `path` if it is there.
fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
    }
}

/// The jobs of `run_dir`: the running ones first, then the finished ones, newest first.
/// A dead job without an outcome is recorded as failed ([`DIED`]); the socket and lock a
/// dead job left are removed; finished records older than [`KEEP_SECS`] and beyond the
/// newest [`KEEP_FINISHED`] are deleted. A missing run directory lists nothing.
pub fn list(run_dir: &Path) -> Result<Vec<Listed>, RegistryError> {
    let entries = match fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::io(run_dir, e)),
    };
    let now = now_ms() / 1000;
    let mut live = Vec::new();
    let mut finished = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RegistryError::io(run_dir, e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        let (running, dead_lock) = probe(run_dir, id)?;
        let mut record = match read_record(run_dir, id) {
            Ok(r) => r,
            // Gone since the directory was read: pruned by another lister.
            Err(RegistryError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!("{e}");
                continue;
            }
        };
        if running {
            live.push(Listed { record, live: true });
            continue;
        }
        if record.outcome.is_none() {
            tracing::warn!("job {id} ended without finishing: recorded as failed");
            record.outcome = Some(Outcome::new(JobStatus::Failed, Some(DIED.to_string())));
            record.finished_at = Some(now);
            write_record(run_dir, &record)?;
        }
        // Under the dead job's lock (when it left one): nobody else is in its files.
        remove(&socket_path(run_dir, id));
        if dead_lock.is_some() {
            remove(&lock_path(run_dir, id));
        }
        drop(dead_lock);
        finished.push(Listed {
            record,
            live: false,
        });
    }
    live.sort_by_key(|l| std::cmp::Reverse(l.record.started_at));
    let ended = |l: &Listed| l.record.finished_at.unwrap_or(l.record.started_at);
    finished.sort_by(|a, b| {
        ended(b)
            .cmp(&ended(a))
            .then(b.record.started_at.cmp(&a.record.started_at))
    });
    let mut kept = Vec::new();
    for l in finished {
        if kept.len() >= KEEP_FINISHED || now - ended(&l) > KEEP_SECS {
            remove(&record_path(run_dir, &l.record.id));
        } else {
            kept.push(l);
        }
    }
    live.extend(kept);
    Ok(live)
}

/// The job named by `id_or_prefix`: its exact id, or the start of one id only.
pub fn resolve(run_dir: &Path, id_or_prefix: &str) -> Result<Listed, RegistryError> {
    let all = list(run_dir)?;
    if let Some(exact) = all.iter().find(|l| l.record.id == id_or_prefix) {
        return Ok(exact.clone());
    }
    let mut matches: Vec<Listed> = all
        .into_iter()
        .filter(|l| !id_or_prefix.is_empty() && l.record.id.starts_with(id_or_prefix))
        .collect();
    match matches.len() {
        0 => Err(RegistryError::Unknown {
            id: id_or_prefix.to_string(),
        }),
        1 => Ok(matches.remove(0)),
        _ => Err(RegistryError::Ambiguous {
            prefix: id_or_prefix.to_string(),
            matches: matches.into_iter().map(|l| l.record.id).collect(),
        }),
    }
}

/// The ids and buffer sizes of the running jobs other than `except`. A run directory that
/// cannot be read counts as no jobs (said in the log).
pub fn running_buffers(run_dir: &Path, except: &str) -> Vec<(String, u64, u32)> {
    match list(run_dir) {
        Ok(all) => all
            .into_iter()
            .filter(|l| l.live && l.record.id != except)
            .map(|l| (l.record.id, l.record.buffer, l.record.pid))
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list the running jobs: {e}");
            Vec::new()
        }
    }
}

/// Takes `run_dir/memory.lock`, waiting for it: jobs starting at once size their buffers
/// one after the other (see [`running_buffers`]).
pub fn memory_lock(run_dir: &Path) -> Result<Lock, RegistryError> {
    ensure_run_dir(run_dir)?;
    let path = run_dir.join("memory.lock");
    match take_lock(&path, true)? {
        Some(lock) => Ok(lock),
        // A blocking lock does not come back busy.
        None => Err(RegistryError::io(&path, Errno::EWOULDBLOCK.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{Phase, Progress};

    fn state(id: &str, started_at: i64) -> JobState {
        JobState {
            id: id.into(),
            kind: JobKind::Backup,
            pid: 1,
            started_at,
            what: "/srv".into(),
            phase: Phase::Streaming,
            progress: Progress::default(),
            drives: Vec::new(),
            buffer: 1 << 20,
            pending: None,
            outcome: None,
        }
    }

    fn dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let run = run_dir(t.path());
        ensure_run_dir(&run).unwrap();
        (t, run)
    }

    fn finished(run: &Path, id: &str, at: i64) {
        let mut r = JobRecord::of(&state(id, at - 10));
        r.outcome = Some(Outcome::new(JobStatus::Complete, None));
        r.finished_at = Some(at);
        write_record(run, &r).unwrap();
    }

    #[test]
    fn the_run_dir_is_private_and_ids_are_new() {
        let (_t, run) = dir();
        fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_run_dir(&run).unwrap();
        assert_eq!(
            fs::metadata(&run).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let id = new_id(&run, JobKind::Restore);
        let hex = id.strip_prefix("restore-").unwrap();
        assert_eq!(hex.len(), 6);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn a_held_lock_is_a_live_job_and_a_released_one_a_dead_job() {
        let (_t, run) = dir();
        let now = now_ms() / 1000;
        let lock = take_lock(&lock_path(&run, "backup-aaaaaa"), false)
            .unwrap()
            .unwrap();
        write_record(&run, &JobRecord::of(&state("backup-aaaaaa", now))).unwrap();
        fs::write(socket_path(&run, "backup-aaaaaa"), "").unwrap();
        let all = list(&run).unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].live);
        assert_eq!(all[0].record.outcome, None);
        assert_eq!(
            running_buffers(&run, "other"),
            [("backup-aaaaaa".into(), 1 << 20, 1)]
        );
        assert!(running_buffers(&run, "backup-aaaaaa").is_empty());

        drop(lock);
        let all = list(&run).unwrap();
        assert!(!all[0].live);
        let outcome = all[0].record.outcome.clone().unwrap();
        assert_eq!(outcome.status, JobStatus::Failed);
        assert_eq!(outcome.message.as_deref(), Some(DIED));
        // Written to the record, and the dead job's files are gone.
        assert_eq!(
            read_record(&run, "backup-aaaaaa").unwrap().outcome,
            Some(outcome)
        );
        assert!(!socket_path(&run, "backup-aaaaaa").exists());
        assert!(!lock_path(&run, "backup-aaaaaa").exists());
        assert!(running_buffers(&run, "other").is_empty());
    }

    #[test]
    fn running_jobs_come_first_then_the_newest_finished() {
        let (_t, run) = dir();
        let now = now_ms() / 1000;
        finished(&run, "backup-000001", now - 100);
        finished(&run, "backup-000002", now - 50);
        let _lock = take_lock(&lock_path(&run, "verify-000003"), false)
            .unwrap()
            .unwrap();
        write_record(&run, &JobRecord::of(&state("verify-000003", now - 1000))).unwrap();
        let ids: Vec<String> = list(&run)
            .unwrap()
            .into_iter()
            .map(|l| l.record.id)
            .collect();
        assert_eq!(ids, ["verify-000003", "backup-000002", "backup-000001"]);
    }

    #[test]
    fn old_and_surplus_finished_records_are_pruned() {
        let (_t, run) = dir();
        let now = now_ms() / 1000;
        finished(&run, "backup-old000", now - KEEP_SECS - 60);
        for i in 0..KEEP_FINISHED + 3 {
            finished(&run, &format!("backup-{i:06}"), now - i as i64);
        }
        let all = list(&run).unwrap();
        assert_eq!(all.len(), KEEP_FINISHED);
        assert!(!record_path(&run, "backup-old000").exists());
        // The oldest beyond the limit went.
        assert!(record_path(&run, "backup-000000").exists());
        assert!(!record_path(&run, &format!("backup-{:06}", KEEP_FINISHED)).exists());
    }

    #[test]
    fn jobs_are_named_by_id_or_unique_prefix() {
        let (_t, run) = dir();
        let now = now_ms() / 1000;
        finished(&run, "backup-ab1234", now);
        finished(&run, "backup-ab5678", now);
        finished(&run, "restore-ff0000", now);
        assert_eq!(
            resolve(&run, "restore").unwrap().record.id,
            "restore-ff0000"
        );
        assert_eq!(
            resolve(&run, "backup-ab1234").unwrap().record.id,
            "backup-ab1234"
        );
        match resolve(&run, "backup-ab") {
            Err(RegistryError::Ambiguous { matches, .. }) => assert_eq!(matches.len(), 2),
            other => panic!("{other:?}"),
        }
        let unknown = resolve(&run, "verify").unwrap_err();
        assert!(matches!(unknown, RegistryError::Unknown { .. }));
        assert!(unknown.is_bad_input());
        assert!(matches!(
            resolve(&run, ""),
            Err(RegistryError::Unknown { .. })
        ));
    }

    #[test]
    fn a_missing_run_dir_lists_nothing_and_the_memory_lock_is_taken() {
        let t = tempfile::tempdir().unwrap();
        let run = run_dir(t.path());
        assert!(list(&run).unwrap().is_empty());
        let lock = memory_lock(&run).unwrap();
        assert_eq!(
            take_lock(&run.join("memory.lock"), false)
                .unwrap()
                .map(|_| ()),
            None
        );
        drop(lock);
        assert!(list(&run).unwrap().is_empty());
    }
}
