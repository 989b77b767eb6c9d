//! Throughput of `tapedeck backup` against the tools it replaces, measured in one run so
//! the ratios hold on a shared machine:
//!
//! - large files on tmpfs into a tmpfs virtual tape (time scale 0) and into a plain file,
//!   BLAKE3 on, against `tar -cf - DIR | mbuffer -m 1G -o FILE` and `cat FILES > FILE`;
//! - 100 000 files of 4 KiB on disk, with the page cache dropped before each run (needs
//!   root; skipped otherwise) and warm, against GNU tar;
//! - peak memory beyond the ring buffer.
//!
//! `cargo bench --bench throughput`. Environment: THROUGHPUT_DIR (tmpfs work directory,
//! default /dev/shm/tapedeck-throughput), THROUGHPUT_BYTES (large-file total, default
//! 2GiB), THROUGHPUT_SMALL_DIR (on-disk directory for the small files, default
//! /var/tmp/tapedeck-small), THROUGHPUT_SMALL_FILES (default 100000), THROUGHPUT_RUNS
//! (default 3; the median counts).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_tapedeck");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| tapedeck::units::parse_size(&v).ok())
        .unwrap_or(default)
}

/// Deterministic incompressible-looking bytes (xorshift), fast to make.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn make_large(dir: &Path, total: u64) -> Vec<PathBuf> {
    let n = 8u64;
    let each = total / n;
    fs::create_dir_all(dir).expect("work directory");
    let mut chunk = vec![0u8; 8 << 20];
    (0..n)
        .map(|i| {
            let path = dir.join(format!("large{i}.bin"));
            if fs::metadata(&path).map(|m| m.len()).ok() != Some(each) {
                let mut f = fs::File::create(&path).expect("create");
                let mut left = each;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    fill(&mut chunk[..k], i * 1_000_003 + left);
                    f.write_all(&chunk[..k]).expect("write");
                    left -= k as u64;
                }
            }
            path
        })
        .collect()
}

fn make_small(dir: &Path, files: u64) {
    let marker = dir.join(format!(".complete-{files}"));
    if marker.exists() {
        return;
    }
    let _ = fs::remove_dir_all(dir);
    let mut data = vec![0u8; 4096];
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&sub).expect("small dir");
        }
        fill(&mut data, i + 7);
        fs::write(sub.join(format!("f{i:06}")), &data).expect("small file");
    }
    fs::write(marker, b"").expect("marker");
}

fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// One command under test: what to do before each run (untimed), and the command.
struct Contender<'a> {
    before: Box<dyn FnMut() + 'a>,
    cmd: Box<dyn FnMut() -> Command + 'a>,
}

fn contender<'a>(before: impl FnMut() + 'a, cmd: impl FnMut() -> Command + 'a) -> Contender<'a> {
    Contender {
        before: Box::new(before),
        cmd: Box::new(cmd),
    }
}

/// Runs every contender `runs` times, taking turns so that all see the same machine
/// (page cache, memory pressure, other load); returns each one's median seconds.
fn race(runs: u32, contenders: &mut [Contender<'_>]) -> Vec<f64> {
    let mut times = vec![Vec::new(); contenders.len()];
    for _ in 0..runs {
        for (c, t) in contenders.iter_mut().zip(&mut times) {
            (c.before)();
            let mut cmd = (c.cmd)();
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            let start = Instant::now();
            let out = cmd.output().expect("run");
            t.push(start.elapsed().as_secs_f64());
            assert!(
                out.status.success(),
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn tapedeck(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("TAPEDECK_HOME", home)
        .env("TAPEDECK_CONFIG", home.join("config.toml"))
        .env_remove("TAPEDECK_DRIVE");
    c
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() {
    let work = PathBuf::from(
        std::env::var("THROUGHPUT_DIR").unwrap_or_else(|_| "/dev/shm/tapedeck-throughput".into()),
    );
    let total = env_u64("THROUGHPUT_BYTES", 2 << 30);
    let runs = env_u64("THROUGHPUT_RUNS", 3) as u32;
    let src = work.join("src");
    let out = work.join("out");
    let files = make_large(&src, total);
    let home = work.join("home");
    let fresh_library = || {
        // Every run writes to a fresh, labelled cartridge, so tmpfs holds the same amount
        // of data whichever tool runs.
        let _ = fs::remove_dir_all(&home);
        fs::create_dir_all(&home).expect("home");
        fs::write(home.join("config.toml"), "").expect("config");
        for args in [
            &["vlib", "init", "--time-scale", "0", "--capacity", "64GiB"][..],
            &["tape", "load", "--drive", "lto9"][..],
            // Labelled (and the catalogue created) before the timed run.
            &["volume", "label", "--drive", "lto9"][..],
        ] {
            let o = tapedeck(&home).args(args).output().expect("run");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    };

    println!(
        "large files: {} in 8 files on {}",
        tapedeck::units::format_size(total),
        work.display()
    );
    let rm_out = || {
        let _ = fs::remove_file(&out);
    };
    let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let with_mbuffer = have("mbuffer");
    fresh_library();
    let mut contenders = vec![
        contender(rm_out, || {
            sh(&format!("cat {} > {}", list.join(" "), out.display()))
        }),
        contender(rm_out, || {
            let mut c = tapedeck(&home);
            c.args(["backup", "--memory-buffer", "1GiB", "--device"])
                .arg(&out)
                .arg(&src);
            c
        }),
        contender(
            || {
                rm_out();
                fresh_library();
            },
            || {
                let mut c = tapedeck(&home);
                c.args(["backup", "--drive", "lto9", "--memory-buffer", "1GiB"])
                    .arg(&src);
                c
            },
        ),
    ];
    if with_mbuffer {
        contenders.push(contender(rm_out, || {
            sh(&format!(
                "tar -cf - -C {} . | mbuffer -q -m 1G -o {}",
                src.display(),
                out.display()
            ))
        }));
    }
    let medians = race(runs, &mut contenders);
    drop(contenders);
    let (cat, device, vtape) = (medians[0], medians[1], medians[2]);
    let mbuffer = medians.get(3).copied();
    let rate = |secs: f64| total as f64 / secs / 1e6;
    println!("  cat FILES > FILE             {:8.0} MB/s", rate(cat));
    if let Some(m) = mbuffer {
        println!("  tar | mbuffer -m 1G          {:8.0} MB/s", rate(m));
    } else {
        println!("  tar | mbuffer -m 1G          (mbuffer not installed: apt-get install mbuffer)");
    }
    println!("  tapedeck backup --device     {:8.0} MB/s", rate(device));
    println!("  tapedeck backup, vlib tape   {:8.0} MB/s", rate(vtape));
    let to_tape_vs_cat = cat / vtape;
    println!(
        "  vlib tape / cat = {to_tape_vs_cat:.2}x (target >= 0.75x) {}",
        verdict(to_tape_vs_cat >= 0.75)
    );
    if let Some(m) = mbuffer {
        let r = m / vtape;
        println!(
            "  vlib tape / tar|mbuffer = {r:.2}x (target >= 1.5x) {}",
            verdict(r >= 1.5)
        );
    }
    rm_out();

    // Memory beyond the buffer: a small buffer makes the rest visible.
    let mut c = tapedeck(&home);
    c.args(["backup", "--json", "--memory-buffer", "64MiB", "--device"])
        .arg(&out)
        .arg(&src);
    let o = c.output().expect("run");
    rm_out();
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    if let Some(peak) = summary["peak_memory"].as_u64() {
        let beyond = peak.saturating_sub(64 << 20);
        println!(
            "  peak memory with a 64 MiB buffer: {} ({} beyond the buffer; target <= 64 MiB) {}",
            tapedeck::units::format_size(peak),
            tapedeck::units::format_size(beyond),
            verdict(beyond <= 64 << 20)
        );
    }

    let small_dir = PathBuf::from(
        std::env::var("THROUGHPUT_SMALL_DIR").unwrap_or_else(|_| "/var/tmp/tapedeck-small".into()),
    );
    let small_files = env_u64("THROUGHPUT_SMALL_FILES", 100_000);
    if small_files == 0 {
        let _ = fs::remove_dir_all(&home);
        return;
    }
    make_small(&small_dir, small_files);
    println!(
        "small files: {small_files} x 4 KiB in {}",
        small_dir.display()
    );
    let cold = drop_caches();
    for (label, drop) in [("cold cache", true), ("warm cache", false)] {
        if drop && !cold {
            println!("  {label}: skipped (dropping the page cache needs root)");
            continue;
        }
        let before = || {
            rm_out();
            // Warm runs follow the cold ones, which read everything into the cache.
            if drop {
                drop_caches();
            }
        };
        let medians = race(
            runs,
            &mut [
                contender(before, || {
                    sh(&format!(
                        "tar -cf {} {}",
                        out.display(),
                        small_dir.display()
                    ))
                }),
                contender(before, || {
                    let mut c = tapedeck(&home);
                    c.args(["backup", "--memory-buffer", "256MiB", "--device"])
                        .arg(&out)
                        .arg(&small_dir);
                    c
                }),
            ],
        );
        let (tar, td) = (medians[0], medians[1]);
        let fps = |secs: f64| small_files as f64 / secs;
        let ratio = tar / td;
        let target = if drop { 2.0 } else { 1.0 };
        println!(
            "  {label}: GNU tar {:8.0} files/s, tapedeck {:8.0} files/s = {ratio:.2}x (target >= {target}x) {}",
            fps(tar),
            fps(td),
            verdict(ratio >= target)
        );
    }
    rm_out();
    let _ = fs::remove_dir_all(&home);
}
