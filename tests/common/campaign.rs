//! The crash-and-fault campaign: operations run against the real binary and the virtual
//! library with one fault each, then the invariants an operator relies on are checked.
//!
//! Faults: the injection hook of test builds (`TAPEDECK_FAULT=ACTION:POINT:N`: kill, EIO or
//! ENOSPC at the N-th catalogue commit, virtual block write or library metadata write),
//! SIGKILL at a random moment, and early warning at a random size. Before the campaign, a
//! census runs each operation once with `TAPEDECK_FAULT_TALLY` to learn how often it
//! reaches each point, so N covers every write the operation makes.
//!
//! After each fault:
//! 1. every backup reported complete before the fault restores byte-identical;
//! 2. nothing is recorded as saved that is not on tape: every backup that records files
//!    verifies;
//! 3. `catalog check` is clean;
//! 4. every volume is empty, appendable or full, or `error` with a reason; no backup is
//!    left `running`;
//! 5. the next backup runs and restores byte-identical.
//!
//! The time from the fault to the end of that next backup is the recovery time.

use super::{noise, under, Home};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the operation under fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    BackupDirect,
    BackupTar,
    BackupDd,
    /// A backup larger than one cartridge.
    BackupSpanning,
    Restore,
    Verify,
    /// `catalog rebuild` of a lost catalogue from the tapes.
    Rebuild,
}

pub const OPERATIONS: [Operation; 7] = [
    Operation::BackupDirect,
    Operation::BackupTar,
    Operation::BackupDd,
    Operation::BackupSpanning,
    Operation::Restore,
    Operation::Verify,
    Operation::Rebuild,
];

impl Operation {
    fn is_backup(self) -> bool {
        matches!(
            self,
            Operation::BackupDirect
                | Operation::BackupTar
                | Operation::BackupDd
                | Operation::BackupSpanning
        )
    }
}

pub const HOOK_POINTS: [&str; 3] = ["catalog-write", "vtape-write", "vtape-meta"];
pub const HOOK_ACTIONS: [&str; 3] = ["kill", "eio", "enospc"];

/// One fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The injection hook: ACTION at the N-th time POINT is reached.
    Hook {
        action: &'static str,
        point: &'static str,
        nth: u64,
    },
    /// SIGKILL after this long.
    Kill(Duration),
    /// Early warning once the cartridge in use holds this many bytes.
    EarlyWarning(u64),
}

impl Fault {
    /// The fault's kind, for the figures: `eio:vtape-write`, `kill:random`, ...
    pub fn kind(&self) -> String {
        match self {
            Fault::Hook { action, point, .. } => format!("{action}:{point}"),
            Fault::Kill(_) => "kill:random".into(),
            Fault::EarlyWarning(_) => "early-warning".into(),
        }
    }
}

/// What one iteration found.
#[derive(Debug)]
pub struct Outcome {
    pub operation: Operation,
    pub fault: Fault,
    pub violations: Vec<String>,
    pub recovery: Duration,
}

/// A small deterministic generator (xorshift), so a failing seed reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// How often each operation reaches each hook point, and how long it takes.
#[derive(Debug, Default)]
pub struct Census {
    pub hits: BTreeMap<(Operation, &'static str), u64>,
    pub took: BTreeMap<Operation, Duration>,
}

/// The scene of one iteration: a library of small LTO-9 cartridges in pool `p`, a first
/// complete backup of `before/`, and sources for the operation.
struct Scene {
    home: Home,
    before: PathBuf,
    next: PathBuf,
    /// Backups reported complete before the fault, with their sources.
    complete: Vec<(String, PathBuf)>,
}

fn tree(root: &Path, files: usize, size: usize, seed: u64) -> PathBuf {
    fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..files {
        let dir = if i % 3 == 0 {
            root.join("sub")
        } else {
            root.to_path_buf()
        };
        fs::write(
            dir.join(format!("f{i:03}")),
            noise(size + i * 97, seed + i as u64),
        )
        .unwrap();
    }
    root.to_path_buf()
}

impl Scene {
    fn new() -> Scene {
        let home = Home::new();
        home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "24MiB"])
            .success();
        home.run(&["pool", "create", "--name", "p", "--retention", "7"])
            .success();
        home.run(&["tape", "load", "--drive", "lto9"]).success();
        let before = tree(&home.path().join("before"), 12, 40_000, 1);
        let next = tree(&home.path().join("next"), 8, 30_000, 500);
        let mut scene = Scene {
            home,
            before: before.clone(),
            next,
            complete: Vec::new(),
        };
        let uuid = scene
            .backup(&[before.to_str().unwrap()], &[])
            .expect("the first backup completes");
        scene.complete.push((uuid, before));
        scene
    }

    fn backup_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["backup", "--drive", "lto9", "--pool", "p", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs a backup to completion; its uuid if it completed.
    fn backup(&self, paths: &[&str], extra: &[&str]) -> Result<String, String> {
        let mut args = self.backup_args(extra);
        args.extend(paths.iter().map(|s| s.to_string()));
        let out = self.home.cmd().args(&args).output().unwrap();
        let summary: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if out.status.success() && summary["status"] == "complete" {
            Ok(summary["uuid"].as_str().unwrap_or_default().to_string())
        } else {
            Err(format!(
                "backup exited {:?}: {} {}",
                out.status.code(),
                summary,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The command line of the operation under test.
    fn operation(&self, op: Operation) -> Vec<String> {
        let h = self.home.path();
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let mut args = match op {
            Operation::BackupDirect => self.backup_args(&[]),
            Operation::BackupTar => {
                fs::create_dir_all(h.join("spool")).unwrap();
                self.backup_args(&["--strategy", "tar", "--spool-size", "4MiB"])
                    .into_iter()
                    .chain(["--spool-dir".to_string(), s(&h.join("spool"))])
                    .collect()
            }
            Operation::BackupDd => {
                let archive = h.join("made-elsewhere.tar");
                if !archive.exists() {
                    let during = tree(&h.join("dd-src"), 6, 50_000, 900);
                    let ok = Command::new("tar")
                        .arg("-cf")
                        .arg(&archive)
                        .arg("-C")
                        .arg(during.parent().unwrap())
                        .arg("dd-src")
                        .status()
                        .unwrap()
                        .success();
                    assert!(ok, "GNU tar made the archive");
                }
                self.backup_args(&["--strategy", "dd", "--from"])
                    .into_iter()
                    .chain([s(&archive)])
                    .collect()
            }
            Operation::BackupSpanning => self.backup_args(&[]),
            Operation::Restore => vec![
                "restore".into(),
                "--backup".into(),
                self.complete[0].0.clone(),
                "--to".into(),
                s(&h.join("restored-under-fault")),
                "--overwrite".into(),
                "always".into(),
                "--json".into(),
            ],
            Operation::Verify => vec![
                "verify".into(),
                "--backup".into(),
                self.complete[0].0.clone(),
                "--json".into(),
            ],
            Operation::Rebuild => rebuild_args(),
        };
        match op {
            Operation::BackupDirect | Operation::BackupTar => {
                let during = tree(&h.join("during"), 20, 60_000, 300);
                args.push(s(&during));
            }
            Operation::BackupSpanning => {
                // More than a 24 MiB cartridge holds after the first backup.
                let during = tree(&h.join("during-big"), 14, 2_000_000, 700);
                args.push(s(&during));
            }
            _ => {}
        }
        args
    }

    /// Gets the scene ready for `op`: the rebuild starts from a lost catalogue, with the
    /// pool created again (a rebuild does not guess a retention).
    fn prepare(&self, op: Operation) {
        if op == Operation::Rebuild {
            for suffix in ["", "-wal", "-shm"] {
                let _ = fs::remove_file(format!("{}{suffix}", self.home.db().display()));
            }
            self.home
                .run(&["pool", "create", "--name", "p", "--retention", "7"])
                .success();
        }
    }
}

fn rebuild_args() -> Vec<String> {
    [
        "catalog", "rebuild", "--drive", "lto9", "--tape", "TD0001L9", "--scan", "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs `args` in `home` with the fault; returns when the process has ended.
fn run_with_fault(home: &Home, args: &[String], fault: &Fault, tally: Option<&Path>) {
    let mut cmd = home.process();
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(dir) = tally {
        cmd.env("TAPEDECK_FAULT_TALLY", dir);
    }
    match fault {
        Fault::Hook { action, point, nth } => {
            cmd.env("TAPEDECK_FAULT", format!("{action}:{point}:{nth}"));
            let _ = cmd.status().unwrap();
        }
        Fault::Kill(after) => {
            let mut child = cmd.spawn().unwrap();
            let deadline = Instant::now() + *after;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        Fault::EarlyWarning(bytes) => {
            let loaded = home.library()["drives"][0]["cartridge"]
                .as_str()
                .unwrap_or("TD0001L9")
                .to_string();
            home.run(&[
                "vlib",
                "set",
                &loaded,
                "--early-warning-at",
                &bytes.to_string(),
            ])
            .success();
            let _ = cmd.status().unwrap();
        }
    }
}

/// How often the operation's main process reached each point: each process appends
/// `POINT N` to a file of its own each time it reaches POINT for the N-th time; the file
/// with the most hits is the operation's (others are helpers such as `tar`'s none).
fn read_tally(dir: &Path) -> BTreeMap<String, u64> {
    let mut most = BTreeMap::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let mut hits: BTreeMap<String, u64> = BTreeMap::new();
        for line in fs::read_to_string(entry.path()).unwrap_or_default().lines() {
            let mut words = line.split_whitespace();
            if let (Some(point), Some(Ok(n))) = (words.next(), words.next().map(str::parse)) {
                let seen = hits.entry(point.to_string()).or_insert(0);
                *seen = (*seen).max(n);
            }
        }
        if hits.values().sum::<u64>() > most.values().sum::<u64>() {
            most = hits;
        }
    }
    most
}

/// Runs each operation once without a fault, counting its hook points and timing it.
pub fn census() -> Census {
    let mut census = Census::default();
    for op in OPERATIONS {
        let scene = Scene::new();
        scene.prepare(op);
        let tally = scene.home.path().join("tally");
        fs::create_dir_all(&tally).unwrap();
        let args = scene.operation(op);
        let started = Instant::now();
        run_with_fault(
            &scene.home,
            &args,
            &Fault::Kill(Duration::from_secs(600)),
            Some(&tally),
        );
        census.took.insert(op, started.elapsed());
        let hits = read_tally(&tally);
        for point in HOOK_POINTS {
            census
                .hits
                .insert((op, point), hits.get(point).copied().unwrap_or(0));
        }
    }
    census
}

/// A random fault for `op` that the census says can happen.
pub fn pick_fault(rng: &mut Rng, census: &Census, op: Operation) -> Fault {
    let reachable: Vec<&'static str> = HOOK_POINTS
        .iter()
        .copied()
        .filter(|p| census.hits.get(&(op, p)).copied().unwrap_or(0) > 0)
        .collect();
    let took = census
        .took
        .get(&op)
        .copied()
        .unwrap_or(Duration::from_secs(1));
    match rng.range(0, 9) {
        0..=5 if !reachable.is_empty() => {
            let point = rng.pick(&reachable);
            let hits = census.hits[&(op, point)];
            Fault::Hook {
                action: rng.pick(&HOOK_ACTIONS),
                point,
                nth: rng.range(1, hits),
            }
        }
        6 if op.is_backup() => Fault::EarlyWarning(rng.range(1 << 20, 24 << 20)),
        _ => Fault::Kill(Duration::from_millis(
            rng.range(1, took.as_millis().max(2) as u64),
        )),
    }
}

/// Restores backup `uuid` and compares it with `source`: a violation or none.
fn restores_identical(home: &Home, uuid: &str, source: &Path, into: &str) -> Option<String> {
    let to = home.path().join(into);
    let _ = fs::remove_dir_all(&to);
    let out = home
        .cmd()
        .args([
            "restore",
            "--backup",
            uuid,
            "--to",
            to.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Some(format!(
            "backup {uuid} does not restore (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if fs::read(under(&to, &path)).ok() != fs::read(&path).ok() {
                return Some(format!(
                    "backup {uuid}: {} is not restored byte-identical",
                    path.display()
                ));
            }
        }
    }
    None
}

/// Checks invariants 1 to 4 after the fault.
fn check(scene: &Scene) -> Vec<String> {
    let home = &scene.home;
    let mut violations = Vec::new();
    // `status` reaps backups whose process died.
    let status = home.cmd().arg("status").output().unwrap();
    if !status.status.success() {
        violations.push(format!(
            "status fails: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        ));
    }
    for (uuid, source) in &scene.complete {
        violations.extend(restores_identical(home, uuid, source, "check-restore"));
    }
    let db = home.sql();
    let backups: Vec<(String, String, i64)> = db
        .prepare("SELECT uuid, status, files FROM backups")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (uuid, status, files) in &backups {
        if status == "running" {
            violations.push(format!("backup {uuid} is left running"));
        }
        if *files > 0 {
            let out = home
                .cmd()
                .args(["verify", "--backup", uuid, "--json"])
                .output()
                .unwrap();
            if !out.status.success() {
                violations.push(format!(
                    "backup {uuid} ({status}, {files} files) does not verify (exit {:?}): {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    let check = home.cmd().args(["catalog", "check"]).output().unwrap();
    if !check.status.success() {
        violations.push(format!(
            "catalog check: {}{}",
            String::from_utf8_lossy(&check.stdout).trim(),
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    let volumes: Vec<(String, String, Option<String>)> = db
        .prepare("SELECT label, status, error FROM volumes")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (label, status, error) in volumes {
        let fine = match status.as_str() {
            "empty" | "appendable" | "full" => true,
            "error" => error.is_some_and(|e| !e.trim().is_empty()),
            _ => false,
        };
        if !fine {
            violations.push(format!("volume {label} is {status} without a reason"));
        }
    }
    violations
}

/// One iteration: a fresh scene, the operation under the fault, recovery, the invariants.
pub fn iteration(op: Operation, fault: Fault) -> Outcome {
    let scene = Scene::new();
    scene.prepare(op);
    let args = scene.operation(op);
    run_with_fault(&scene.home, &args, &fault, None);
    let fault_ended = Instant::now();
    if let Fault::EarlyWarning(_) = fault {
        for cartridge in ["TD0001L9", "TD0002L9", "TD0003L9"] {
            let _ = scene
                .home
                .cmd()
                .args(["vlib", "set", cartridge, "--early-warning-at", "none"])
                .output();
        }
    }
    let mut violations = Vec::new();
    if op == Operation::Rebuild {
        // What an operator does after a failed rebuild: run it again.
        let out = scene.home.cmd().args(rebuild_args()).output().unwrap();
        if !out.status.success() {
            violations.push(format!(
                "the rebuild run again fails: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    // Invariant 5, and the recovery time: the next backup runs.
    let next = scene.next.to_str().unwrap().to_string();
    let recovered = scene.backup(&[&next], &[]);
    let recovery = fault_ended.elapsed();
    violations.extend(check(&scene));
    match recovered {
        Ok(uuid) => violations.extend(restores_identical(
            &scene.home,
            &uuid,
            &scene.next,
            "restored-next",
        )),
        Err(why) => violations.push(format!("the next backup does not run: {why}")),
    }
    Outcome {
        operation: op,
        fault,
        violations,
        recovery,
    }
}

/// The campaign's figures: iterations and violations by fault kind, the longest recovery.
#[derive(Debug, Default)]
pub struct Figures {
    /// Fault points per kind of hook point, summed over the operations (the census).
    pub points: BTreeMap<&'static str, u64>,
    /// Distinct (operation, point, N) the hook faults hit.
    pub points_hit: std::collections::BTreeSet<(Operation, &'static str, u64)>,
    pub iterations: usize,
    pub by_kind: BTreeMap<String, (usize, usize)>,
    pub violations: Vec<String>,
    pub longest_recovery: Duration,
}

impl Figures {
    pub fn add(&mut self, outcome: &Outcome) {
        self.iterations += 1;
        if let Fault::Hook { point, nth, .. } = outcome.fault {
            self.points_hit.insert((outcome.operation, point, nth));
        }
        let entry = self.by_kind.entry(outcome.fault.kind()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += outcome.violations.len();
        for v in &outcome.violations {
            self.violations.push(format!(
                "{:?} under {:?}: {v}",
                outcome.operation, outcome.fault
            ));
        }
        self.longest_recovery = self.longest_recovery.max(outcome.recovery);
    }

    pub fn report(&self) -> String {
        let mut text = format!(
            "{} iterations, {} invariant violations, longest recovery {:.2} s\n",
            self.iterations,
            self.violations.len(),
            self.longest_recovery.as_secs_f64()
        );
        let points: Vec<String> = self
            .points
            .iter()
            .map(|(point, n)| format!("{point} {n}"))
            .collect();
        text.push_str(&format!(
            "  fault points (census, all operations): {}; {} distinct ones hit\n",
            points.join(", "),
            self.points_hit.len()
        ));
        for (kind, (n, v)) in &self.by_kind {
            text.push_str(&format!(
                "  {kind:<22} {n:>4} iterations {v:>3} violations\n"
            ));
        }
        for v in &self.violations {
            text.push_str(&format!("  VIOLATION {v}\n"));
        }
        text
    }
}

/// How the faults are chosen.
#[derive(Clone, Copy, Debug)]
pub enum Plan {
    /// This many iterations, the operations in turn, each fault drawn at random.
    Random(usize),
    /// Every hook point of every operation with every action, then `kills` SIGKILLs at
    /// random moments and two early warnings per operation.
    Every { kills: usize },
}

/// Runs the campaign from `seed`.
pub fn run(plan: Plan, seed: u64, mut each: impl FnMut(&Outcome)) -> Figures {
    let census = census();
    let mut rng = Rng::new(seed);
    let mut figures = Figures::default();
    for ((_, point), n) in &census.hits {
        *figures.points.entry(point).or_insert(0) += n;
    }
    let faults: Vec<(Operation, Fault)> = match plan {
        Plan::Random(iterations) => (0..iterations)
            .map(|i| {
                let op = OPERATIONS[i % OPERATIONS.len()];
                (op, pick_fault(&mut rng, &census, op))
            })
            .collect(),
        Plan::Every { kills } => {
            let mut all = Vec::new();
            for (&(op, point), &hits) in &census.hits {
                for nth in 1..=hits {
                    for action in HOOK_ACTIONS {
                        all.push((op, Fault::Hook { action, point, nth }));
                    }
                }
            }
            for op in OPERATIONS {
                let took = census
                    .took
                    .get(&op)
                    .copied()
                    .unwrap_or(Duration::from_secs(1));
                for _ in 0..kills {
                    let after = rng.range(1, took.as_millis().max(2) as u64);
                    all.push((op, Fault::Kill(Duration::from_millis(after))));
                }
                if op.is_backup() {
                    for _ in 0..2 {
                        all.push((op, Fault::EarlyWarning(rng.range(1 << 20, 24 << 20))));
                    }
                }
            }
            all
        }
    };
    for (op, fault) in faults {
        let outcome = iteration(op, fault);
        each(&outcome);
        figures.add(&outcome);
    }
    figures
}
