//! Restore speed against GNU tar, measured in one run so the ratio holds on a shared
//! machine, and what a single-file restore reads from the cartridge.
//!
//! - A virtual tape on tmpfs (time scale 0) holding large files and many small ones; a
//!   whole-tape `tapedeck restore --tape` (BLAKE3 checked) against `tar -xf` of the same
//!   tape file, both into tmpfs, the target emptied before each run; median of the runs.
//!   Target: tapedeck at least 0.8 times tar's speed. With a core free the helper thread
//!   writes while the main one reads and hashes; on a busy machine one thread does all
//!   (the bench says how much the helper took).
//! - The member records' checksums: the same whole-tape restore from the catalogue as
//!   written (each record checked against its checksum) and from a copy whose records
//!   carry none (as written before schema 3: not checked), alternating in the same run.
//! - One small and one large file restored alone: bytes read from the cartridge (its
//!   counters) against the file's size plus two blocks.
//!
//! `cargo bench --bench restore`. Environment: RESTORE_BENCH_DIR (tmpfs work directory,
//! default /dev/shm/tapedeck-restore-bench), RESTORE_BENCH_BYTES (large-file total,
//! default 1GiB), RESTORE_BENCH_SMALL_FILES (8 KiB files, default 5000),
//! RESTORE_BENCH_RUNS (default 3).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_tapedeck");
const BLOCK: u64 = 512 * 1024;

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

fn make_source(dir: &Path, large_total: u64, small: u64) {
    let marker = dir.join(format!(".complete-{large_total}-{small}"));
    if marker.exists() {
        return;
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("large")).expect("source directory");
    let mut chunk = vec![0u8; 8 << 20];
    let each = large_total / 8;
    for i in 0..8u64 {
        let mut f = fs::File::create(dir.join(format!("large/large{i}.bin"))).expect("create");
        let mut left = each;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            fill(&mut chunk[..k], i * 1_000_003 + left);
            f.write_all(&chunk[..k]).expect("write");
            left -= k as u64;
        }
    }
    let mut data = vec![0u8; 8192];
    for i in 0..small {
        let sub = dir.join(format!("small/d{:03}", i / 500));
        if i % 500 == 0 {
            fs::create_dir_all(&sub).expect("small dir");
        }
        fill(&mut data, i + 7);
        fs::write(sub.join(format!("f{i:06}")), &data).expect("small file");
    }
    fs::write(marker, b"").expect("marker");
}

fn tapedeck(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("TAPEDECK_HOME", home)
        .env("TAPEDECK_CONFIG", home.join("config.toml"))
        .env_remove("TAPEDECK_DRIVE");
    c
}

fn run_ok(mut cmd: Command) -> Vec<u8> {
    let out = cmd.stderr(Stdio::piped()).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn bytes_read(home: &Path) -> u64 {
    let text = fs::read_to_string(home.join("vlib/cartridges/TD0001L9/cartridge.json"))
        .expect("cartridge.json");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("cartridge.json is JSON");
    meta["counters"]["bytes_read"].as_u64().unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let work = PathBuf::from(
        std::env::var("RESTORE_BENCH_DIR")
            .unwrap_or_else(|_| "/dev/shm/tapedeck-restore-bench".into()),
    );
    let large = env_u64("RESTORE_BENCH_BYTES", 1 << 30);
    let small = env_u64("RESTORE_BENCH_SMALL_FILES", 5000);
    let runs = env_u64("RESTORE_BENCH_RUNS", 3).max(1);
    let src = work.join("src");
    make_source(&src, large, small);

    // A fresh tape with one backup of the source.
    let home = work.join("home");
    let _ = fs::remove_dir_all(&home);
    fs::create_dir_all(&home).expect("home");
    fs::write(home.join("config.toml"), "").expect("config");
    let mut init = tapedeck(&home);
    init.args(["vlib", "init", "--time-scale", "0"]);
    run_ok(init);
    let mut load = tapedeck(&home);
    load.args(["tape", "load", "--drive", "lto9"]);
    run_ok(load);
    let mut backup = tapedeck(&home);
    backup
        .args([
            "backup",
            "--drive",
            "lto9",
            "--memory-buffer",
            "256MiB",
            "--json",
        ])
        .arg(&src);
    run_ok(backup);
    let tape_file = home.join("vlib/cartridges/TD0001L9/00001.tar");
    let tape_bytes = fs::metadata(&tape_file).expect("tape file").len();
    println!(
        "restore bench: tape file of {:.0} MiB (8 large files, {small} files of 8 KiB) on tmpfs",
        tape_bytes as f64 / (1 << 20) as f64
    );

    // The catalogue as written, and a copy whose member records carry no checksum.
    let catalog = home.join("catalog.db");
    let with_sums = work.join("catalog-sums.db");
    let without_sums = work.join("catalog-no-sums.db");
    fs::copy(&catalog, &with_sums).expect("copy the catalogue");
    fs::copy(&catalog, &without_sums).expect("copy the catalogue");
    rusqlite::Connection::open(&without_sums)
        .and_then(|c| c.execute("UPDATE members SET sum = NULL", []))
        .expect("the copy without checksums");
    let use_catalog = |which: &Path| {
        for suffix in ["-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", catalog.display()));
        }
        fs::copy(which, &catalog).expect("the catalogue for the run");
    };

    let out = work.join("out");
    let mut ours = Vec::new();
    let mut unchecked = Vec::new();
    let mut tars = Vec::new();
    let (mut helped, mut spans) = (0u64, 0u64);
    for _ in 0..runs {
        for which in ["tapedeck", "tapedeck-no-sums", "tar"] {
            let _ = fs::remove_dir_all(&out);
            fs::create_dir_all(&out).expect("target");
            if which != "tar" {
                use_catalog(if which == "tapedeck" {
                    &with_sums
                } else {
                    &without_sums
                });
            }
            let mut cmd = if which != "tar" {
                let mut c = tapedeck(&home);
                // -vv: a debug line says how much the helper thread took.
                c.args(["-vv", "restore", "--tape", "TD0001L9", "--to"])
                    .arg(&out);
                c
            } else {
                let mut c = Command::new("tar");
                c.arg("-xf").arg(&tape_file).arg("-C").arg(&out);
                c
            };
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            let start = Instant::now();
            let done = cmd.output().expect("run");
            let secs = start.elapsed().as_secs_f64();
            let stderr = String::from_utf8_lossy(&done.stderr);
            assert!(done.status.success(), "{cmd:?} failed: {stderr}");
            if which == "tapedeck-no-sums" {
                unchecked.push(secs);
            } else if which == "tapedeck" {
                ours.push(secs);
                // "restore: helper thread in H of N large spans"
                if let Some(rest) = stderr.split("helper thread in ").nth(1) {
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    if let (Some(h), Some(n)) = (words.first(), words.get(2)) {
                        helped += h.parse::<u64>().unwrap_or(0);
                        spans += n.parse::<u64>().unwrap_or(0);
                    }
                }
            } else {
                tars.push(secs);
            }
        }
    }
    let _ = fs::remove_dir_all(&out);
    use_catalog(&with_sums);
    let (ours, tar, unchecked) = (median(ours), median(tars), median(unchecked));
    println!(
        "member-record checksums: restore {ours:.2} s checked, {unchecked:.2} s without \
         checksums: {:.3}x the time (target within 5 %)",
        ours / unchecked
    );
    let mbs = |secs: f64| tape_bytes as f64 / secs / 1e6;
    let ratio = tar / ours;
    println!(
        "whole-tape restore: tapedeck {ours:.2} s ({:.0} MB/s, BLAKE3 checked), tar -xf {tar:.2} s \
         ({:.0} MB/s): {ratio:.2}x tar's speed (target >= 0.8): {}",
        mbs(ours),
        mbs(tar),
        if ratio >= 0.8 { "PASS" } else { "FAIL" }
    );
    println!(
        "  the helper thread (writes beside reading and hashing) took {helped} of {spans} \
         large-file spans; it is used where it moves data faster, on a busy machine not"
    );

    // Single files: what the cartridge reads for each.
    for (name, path) in [
        (
            "small",
            src.join(format!("small/d{:03}/f{:06}", (small / 2) / 500, small / 2)),
        ),
        ("large", src.join("large/large3.bin")),
    ] {
        let size = fs::metadata(&path).expect("source file").len();
        let before = bytes_read(&home);
        let _ = fs::remove_dir_all(&out);
        let mut c = tapedeck(&home);
        c.args(["restore", "--file"])
            .arg(&path)
            .arg("--to")
            .arg(&out);
        run_ok(c);
        let read = bytes_read(&home) - before;
        println!(
            "single {name} file of {size} bytes: {read} bytes read from the cartridge \
             (limit size + 2 blocks = {}): {}",
            size + 2 * BLOCK,
            if read <= size + 2 * BLOCK {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    let _ = fs::remove_dir_all(&out);
}
