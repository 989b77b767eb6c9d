//! The CPU a job spends serving clients on its socket: a [`Job`] with its [`Server`] and
//! a workload like a backup's (the telemetry changed and an event published 50 times a
//! second, the job's sampler reading the telemetry 4 times a second), measured over a
//! fixed interval with no client and with 4 clients reading every line, taking turns in
//! the same run. The clients are child processes (this binary again, `--client`), so the
//! CPU of this process is the job's alone: its threads' run time, from
//! `/proc/self/task/*/schedstat` (nanoseconds). The extra is given as a percentage of
//! one core, with the part of the socket's per-client threads (named `job client...`).
//! Nothing is asserted.
//!
//! `cargo bench --bench serving`. Environment: SERVING_SECS (each interval, default 5),
//! SERVING_ROUNDS (pairs, default 3), SERVING_EVENTS (a second, default 50).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapedeck::backup::telemetry::Telemetry;
use tapedeck::interrupt::Interrupt;
use tapedeck::job::sample::{self, Sampler};
use tapedeck::job::socket::Server;
use tapedeck::job::{Client, ClientError, Event, Job, JobKind};

const ID: &str = "backup-5e2f00";
const CLIENTS: usize = 4;
/// The start of the names of the socket's threads for one client (its writer, "job
/// client", and its command reader, "job client commands", cut to 15 bytes by Linux).
const CLIENT_THREADS: &str = "job client";
/// Time for clients to connect and for the last round's server threads to end.
const SETTLE: Duration = Duration::from_millis(500);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `--client RUN_DIR ID`: reads every line of the job's socket until it closes; says
/// `ready` once connected.
fn client(run: &Path, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        match Client::connect(run, id) {
            Ok(c) => break c,
            Err(ClientError::Gone) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("cannot attach to job {id}: {e}"),
        }
    };
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")
        .and_then(|()| stdout.flush())
        .expect("stdout");
    loop {
        match client.next(Duration::from_secs(60)) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("job {id} sent nothing for 60 s"),
            Err(ClientError::Gone) => return,
            Err(e) => panic!("job {id}: {e}"),
        }
    }
}

/// Run time of each live thread of this process, nanoseconds, with its name.
fn threads() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let read = |f: &str| std::fs::read_to_string(task.path().join(f)).ok();
        let (Some(comm), Some(stat)) = (read("comm"), read("schedstat")) else {
            // Ended meanwhile.
            continue;
        };
        let ns = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.insert(tid, (comm.trim_end().to_string(), ns));
    }
    out
}

/// Over `interval`: the CPU of the whole process and of the client-serving threads, each
/// as a fraction of one core; and whether threads came or went meanwhile (which the
/// figures would then miss).
fn measure(interval: Duration) -> (f64, f64, bool) {
    let before = threads();
    let start = Instant::now();
    std::thread::sleep(interval);
    let after = threads();
    let wall = start.elapsed().as_nanos() as f64;
    let mut all = 0u64;
    let mut serving = 0u64;
    for (tid, (name, ns)) in &after {
        let delta = ns.saturating_sub(before.get(tid).map_or(0, |b| b.1));
        all += delta;
        if name.starts_with(CLIENT_THREADS) {
            serving += delta;
        }
    }
    let changed = before.len() != after.len() || before.keys().any(|t| !after.contains_key(t));
    (all as f64 / wall, serving as f64 / wall, changed)
}

/// A backup's workload on `job`: `per_sec` events a second, the telemetry moving on with
/// each, until `stop`.
fn workload(telemetry: Arc<Telemetry>, job: Arc<Job>, per_sec: u64, stop: Arc<AtomicBool>) {
    let every = Duration::from_secs(1) / per_sec.max(1) as u32;
    let mut next = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let path = format!("/srv/data/d{:04}/file{n:08}.bin", n / 1000);
        telemetry.update(|s| {
            s.files_done = n;
            s.bytes_read += 2 << 20;
            s.bytes_written += 2 << 20;
            s.buffer_fill = (n * 7919) % s.buffer_capacity.max(1);
            s.current_file.clone_from(&path);
            s.elapsed_secs += every.as_secs_f64();
        });
        job.publish(Event::FileChanged {
            path,
            reason: "size changed while it was read".into(),
            saved: true,
        });
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn spawn_clients(run: &Path) -> Vec<Child> {
    let exe = std::env::current_exe().expect("this binary");
    let mut children: Vec<Child> = (0..CLIENTS)
        .map(|_| {
            Command::new(&exe)
                .arg("--client")
                .arg(run)
                .arg(ID)
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a client")
        })
        .collect();
    for child in &mut children {
        let mut line = String::new();
        let stdout = child.stdout.as_mut().expect("client stdout");
        BufReader::new(stdout).read_line(&mut line).expect("client");
        assert_eq!(line.trim(), "ready", "a client did not connect");
    }
    children
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 0 {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--client") {
        let run = PathBuf::from(args.get(i + 1).expect("--client RUN_DIR ID"));
        let id = args.get(i + 2).expect("--client RUN_DIR ID");
        client(&run, id);
        return;
    }
    let secs = env_u64("SERVING_SECS", 5).max(1);
    let rounds = env_u64("SERVING_ROUNDS", 3).max(1) as usize;
    let per_sec = env_u64("SERVING_EVENTS", 50);
    let interval = Duration::from_secs(secs);

    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tapedeck::job::registry::run_dir(tmp.path());
    let job = Job::new(ID, JobKind::Backup, "serving bench", Interrupt::new());
    let server = Server::start(job.clone(), &run).expect("job socket");
    let telemetry = Arc::new(Telemetry::default());
    telemetry.update(|s| {
        s.drive = "lto9".into();
        s.volume = Some("L00001".into());
        s.buffer_capacity = 4 << 30;
        s.files_total = 1_000_000;
        s.bytes_total = 10 << 40;
    });
    let sampler = Sampler::start(job.clone(), {
        let telemetry = telemetry.clone();
        move || sample::from_backup(&telemetry.snapshot())
    });
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (telemetry, job, stop) = (telemetry.clone(), job.clone(), stop.clone());
        std::thread::spawn(move || workload(telemetry, job, per_sec, stop))
    };
    println!(
        "job with {per_sec} events/s and its state sampled every {} ms; {rounds} rounds of {secs} s with 0 and {CLIENTS} clients (child processes)",
        sample::EVERY.as_millis()
    );

    let mut plain = Vec::new();
    let mut attached = Vec::new();
    let mut serving = Vec::new();
    let mut unsteady = false;
    for _ in 0..rounds {
        std::thread::sleep(SETTLE);
        let (cpu, _, changed) = measure(interval);
        plain.push(cpu);
        unsteady |= changed;

        let mut children = spawn_clients(&run);
        std::thread::sleep(SETTLE);
        let (cpu, threads_cpu, changed) = measure(interval);
        attached.push(cpu);
        serving.push(threads_cpu);
        unsteady |= changed;
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    drop(sampler);
    job.finish(tapedeck::job::Outcome::new(
        tapedeck::job::JobStatus::Complete,
        None,
    ));
    server.finish().expect("server finish");

    let pct = |f: f64| f * 100.0;
    let extra: Vec<f64> = plain.iter().zip(&attached).map(|(p, a)| a - p).collect();
    let lo = extra.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = extra.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "job process CPU: {:.2}% of one core with 0 clients, {:.2}% with {CLIENTS} (medians)",
        pct(median(&plain)),
        pct(median(&attached))
    );
    println!(
        "extra CPU serving {CLIENTS} clients: {:+.2}% of one core (pairs {:+.2} to {:+.2}%, {rounds} rounds of {secs} s)",
        pct(median(&extra)),
        pct(lo),
        pct(hi)
    );
    println!(
        "of which the socket's client threads: {:.2}% of one core (rounds {:.2}-{:.2}%)",
        pct(median(&serving)),
        pct(serving.iter().copied().fold(f64::INFINITY, f64::min)),
        pct(serving.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    );
    if unsteady {
        println!("(threads came or went during an interval: their time then is missed)");
    }
}
