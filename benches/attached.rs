//! What watching a backup costs it: `tapedeck backup --device FILE` of the same large
//! files on tmpfs, alone and with 4 clients attached to its job's socket for the whole run
//! (each reading every line, as `tapedeck attach` would), taking turns (A B A B ...) so
//! both see the same machine. Prints the median throughput of each and the ratio
//! attached/plain with the spread of the per-pair ratios; nothing is asserted.
//!
//! `cargo bench --bench attached`. Environment: ATTACHED_DIR (tmpfs work directory,
//! default /dev/shm/tapedeck-attached, else in the temp directory), ATTACHED_BYTES
//! (source total, default 2GiB), ATTACHED_ROUNDS (pairs, default 9).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tapedeck::job::{Client, ClientError, Message};

const BIN: &str = env!("CARGO_BIN_EXE_tapedeck");
/// Clients attached in the attached runs.
const CLIENTS: usize = 4;
/// How long a client tries to reach the job's socket once the backup is started.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| tapedeck::units::parse_size(&v).ok())
        .unwrap_or(default)
}

/// Deterministic incompressible-looking bytes (xorshift).
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// 8 files making `total` bytes in `dir` (kept between runs of the bench).
fn make_source(dir: &Path, total: u64) {
    fs::create_dir_all(dir).expect("source directory");
    let each = total / 8;
    let mut chunk = vec![0u8; 8 << 20];
    for i in 0..8u64 {
        let path = dir.join(format!("large{i}.bin"));
        if fs::metadata(&path).map(|m| m.len()).ok() == Some(each) {
            continue;
        }
        let mut f = fs::File::create(&path).expect("create");
        let mut left = each;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            fill(&mut chunk[..k], i * 1_000_003 + left);
            f.write_all(&chunk[..k]).expect("write");
            left -= k as u64;
        }
    }
}

/// What one attached client read.
#[derive(Debug, Default, Clone, Copy)]
struct Read {
    states: u64,
    events: u64,
}

/// A client of job `id`: connects as soon as the socket is there, then reads every
/// message until the job closes the connection.
fn attach(run: PathBuf, id: String) -> JoinHandle<Read> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + CONNECT_WITHIN;
        let mut client = loop {
            match Client::connect(&run, &id) {
                Ok(c) => break c,
                Err(ClientError::Gone) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("cannot attach to job {id}: {e}"),
            }
        };
        let mut read = Read::default();
        loop {
            match client.next(Duration::from_secs(30)) {
                Ok(Some(Message::State { .. })) => read.states += 1,
                Ok(Some(Message::Event(_))) => read.events += 1,
                Ok(Some(_)) => {}
                Ok(None) => panic!("job {id} sent nothing for 30 s"),
                Err(ClientError::Gone) => return read,
                Err(e) => panic!("job {id}: {e}"),
            }
        }
    })
}

/// The median of `v` (the mean of the middle two for an even count).
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
    let work = std::env::var_os("ATTACHED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            base.join("tapedeck-attached")
        });
    let total = env_u64("ATTACHED_BYTES", 2 << 30);
    let rounds = env_u64("ATTACHED_ROUNDS", 9).max(1) as usize;
    let src = work.join("src");
    let out = work.join("out.tar");
    let home = work.join("home");
    make_source(&src, total);
    let _ = fs::remove_dir_all(&home);
    fs::create_dir_all(&home).expect("home");
    fs::write(home.join("config.toml"), "").expect("config");
    let run = tapedeck::job::registry::run_dir(&home);
    println!(
        "backup --device of {} in 8 files on {}, {rounds} rounds, plain and with {CLIENTS} clients attached",
        tapedeck::units::format_size(total),
        work.display()
    );

    let mut plain = Vec::new();
    let mut attached = Vec::new();
    let mut reads = Vec::new();
    for round in 0..rounds {
        for with_clients in [false, true] {
            let _ = fs::remove_file(&out);
            let id = format!("backup-b{round:04x}{}", u8::from(with_clients));
            let mut cmd = Command::new(BIN);
            cmd.env("TAPEDECK_HOME", &home)
                .env("TAPEDECK_CONFIG", home.join("config.toml"))
                .env("TAPEDECK_JOB_ID", &id)
                .env_remove("TAPEDECK_DRIVE")
                .args(["backup", "--memory-buffer", "1GiB", "--device"])
                .arg(&out)
                .arg(&src)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let start = Instant::now();
            let child = cmd.spawn().expect("start tapedeck backup");
            let clients: Vec<JoinHandle<Read>> = if with_clients {
                (0..CLIENTS)
                    .map(|_| attach(run.clone(), id.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let o = child.wait_with_output().expect("run tapedeck backup");
            let secs = start.elapsed().as_secs_f64();
            assert!(
                o.status.success(),
                "backup failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            for c in clients {
                reads.push(c.join().expect("client"));
            }
            let rate = total as f64 / secs / 1e6;
            if with_clients {
                attached.push(rate);
            } else {
                plain.push(rate);
            }
        }
    }
    let _ = fs::remove_file(&out);
    let _ = fs::remove_dir_all(&home);

    let ratios: Vec<f64> = plain.iter().zip(&attached).map(|(p, a)| a / p).collect();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let states: Vec<f64> = reads.iter().map(|r| r.states as f64).collect();
    let events: Vec<f64> = reads.iter().map(|r| r.events as f64).collect();
    println!(
        "plain backup --device:    {:6.0} MB/s median (runs {:.0}-{:.0})",
        median(&plain),
        plain.iter().copied().fold(f64::INFINITY, f64::min),
        plain.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );
    println!(
        "with {CLIENTS} clients attached: {:6.0} MB/s median (runs {:.0}-{:.0}); each client read a median {:.0} states and {:.0} events a run",
        median(&attached),
        attached.iter().copied().fold(f64::INFINITY, f64::min),
        attached.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        median(&states),
        median(&events)
    );
    println!(
        "attached/plain throughput: {:.2}x (median of pairs; pairs {lo:.2}-{hi:.2}, {rounds} rounds; ratio of medians {:.2}x)",
        median(&ratios),
        median(&attached) / median(&plain)
    );
}
