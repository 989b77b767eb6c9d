//! Catalogue benchmark: builds synthetic catalogues (1 M and 10 M files by default) and
//! prints the insert rate, exact-path lookup and name-pattern search latencies, and the
//! database size per file.
//!
//! `cargo bench --bench catalog` (sizes: `CATALOG_BENCH_FILES=1000000,10000000`).
//!
//! Each size is built twice in the same run, with the member records' checksums and
//! without (as records written before schema 3: neither computed on insert nor checked on
//! reading), alternating, so the ratio holds on a shared machine; with
//! `CATALOG_BENCH_ROUNDS` (default 1) pairs per size, the median of each is compared.

use std::time::{Duration, Instant};
use tapedeck::catalog::{
    BackupStatus, Catalog, FileBatch, FileKind, FileRecord, NewBackup, PoolKind, SegmentRecord,
};

/// A small deterministic generator (xorshift), so every run builds the same catalogue.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "holiday", "report", "invoice", "scan", "video", "draft", "final", "backup", "project",
    "photo", "render", "export", "raw", "notes", "budget", "contract", "meeting", "archive",
];
const EXTS: &[&str] = &[
    "jpg", "mp4", "pdf", "txt", "mkv", "cr2", "docx", "wav", "tar", "json",
];
const COMMON: &[&str] = &[
    "index.html",
    "README.md",
    "Makefile",
    "__init__.py",
    "desktop.ini",
    "Thumbs.db",
    "config.json",
    "main.rs",
    "package.json",
    ".gitignore",
];

/// The name of file `i`: a third common names, the rest camera-style or word-number names.
fn name(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=2 => COMMON[rng.below(COMMON.len() as u64) as usize].to_string(),
        3..=5 => format!(
            "IMG_{:04}.{}",
            rng.below(10_000),
            EXTS[rng.below(3) as usize]
        ),
        _ => format!(
            "{}-{}.{}",
            WORDS[rng.below(WORDS.len() as u64) as usize],
            rng.below(1_000_000),
            EXTS[rng.below(EXTS.len() as u64) as usize]
        ),
    }
}

/// Directory of file `i`: about 25 files per directory, four levels deep.
fn dir_of(i: u64) -> String {
    let d = i / 25;
    format!(
        "/data/{}/{}-{}/{}/d{}",
        WORDS[(d / 20_000 % WORDS.len() as u64) as usize],
        WORDS[(d / 400 % WORDS.len() as u64) as usize],
        d / 400,
        d / 20,
        d
    )
}

struct Figures {
    files: u64,
    insert_rate: f64,
    /// Every member of the backup read in tape order (what a whole-backup restore plans).
    walk: Duration,
    /// The same walk without checking the records' checksums.
    walk_unchecked: Duration,
    /// The checksums of every record computed, nothing else (the records already read).
    sums: Duration,
    path_avg: Duration,
    path_p99: Duration,
    patterns: Vec<(String, usize, Duration)>,
    bytes_per_file: f64,
}

fn build(files: u64, dir: &std::path::Path, sums: bool) -> (Catalog, Vec<String>, f64) {
    tapedeck::catalog::members::bench_checksums(sums);
    let path = dir.join(format!(
        "bench-{files}-{}.db",
        if sums { "sum" } else { "nosum" }
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut cat = Catalog::open(&path).expect("open catalogue");
    cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
    let vol = cat.register_volume("BENCH1", None, Some("daily")).unwrap();
    let id = cat
        .begin_backup(&NewBackup {
            uuid: "bench",
            job: Some("bench"),
            kind: "full",
            pool: Some("daily"),
            started_at: 1_700_000_000,
            origin: "tapedeck",
            ..Default::default()
        })
        .unwrap();
    cat.add_backup_volume(id, 0, vol.id, Some(1), Some(2))
        .unwrap();
    let mut rng = Rng(0x5eed);
    let mut sample = Vec::new();
    let block_size = 512 * 1024i64;
    let mut offset = 0i64;
    // Records are made a batch at a time outside the timed part, so the figure is the
    // catalogue's own rate.
    let mut inserting = Duration::ZERO;
    {
        let mut batch: FileBatch<'_> = cat.file_batch(id);
        let mut i = 0;
        while i < files {
            let chunk = (files - i).min(FileBatch::BATCH as u64);
            let mut records = Vec::with_capacity(chunk as usize);
            for _ in 0..chunk {
                let size = (rng.below(4_000_000) + 1) as i64;
                let path = format!("{}/{}", dir_of(i), name(&mut rng));
                if i % (files / 1000).max(1) == 0 {
                    sample.push(path.clone());
                }
                let mut hash = [0u8; 32];
                for part in hash.chunks_mut(8) {
                    part.copy_from_slice(&rng.next().to_le_bytes());
                }
                records.push(FileRecord {
                    path,
                    kind: FileKind::File,
                    size,
                    mtime_ns: Some(1_600_000_000_000_000_000 + (rng.below(1 << 40) as i64)),
                    mode: Some(0o644),
                    uid: Some(1000),
                    gid: Some(1000),
                    link: None,
                    blake3: Some(hash),
                    segments: vec![SegmentRecord {
                        volume_id: vol.id,
                        tape_file: Some(1),
                        block: Some(2 + offset / block_size),
                        offset: Some(offset % block_size),
                        file_offset: 0,
                        length: size,
                    }],
                });
                offset += 512 + (size + 511) / 512 * 512;
                i += 1;
            }
            let t = Instant::now();
            for r in records {
                batch.push(r).unwrap();
            }
            if i == files {
                batch.flush().unwrap();
            }
            inserting += t.elapsed();
        }
        batch.finish().unwrap();
    }
    cat.finish_backup(id, BackupStatus::Complete, 1_700_003_600, None)
        .unwrap();
    let rate = files as f64 / inserting.as_secs_f64();
    (cat, sample, rate)
}

fn measure(files: u64, dir: &std::path::Path, sums: bool) -> Figures {
    eprintln!("building a catalogue of {files} files (checksums {sums}) ...");
    let (cat, sample, insert_rate) = build(files, dir, sums);
    eprintln!("  inserted at {insert_rate:.0} files/s");
    let path = cat.path().to_path_buf();
    drop(cat);
    // Lookups from a fresh connection, as a `tapedeck find` process would make them.
    let cat = Catalog::open(&path).unwrap();
    let mut times: Vec<Duration> = sample
        .iter()
        .map(|p| {
            let t = Instant::now();
            let found = cat.find_path(p).unwrap();
            let d = t.elapsed();
            assert!(!found.is_empty(), "{p} not found");
            d
        })
        .collect();
    times.sort();
    // Reading the same catalogue with the records checked and not, alternating.
    let mut walks = (Vec::new(), Vec::new());
    for round in 0..6 {
        let check = round % 2 == 0;
        tapedeck::catalog::members::bench_checksums(check);
        let t = Instant::now();
        let mut walked = 0u64;
        cat.files_of_backup("bench", |_| {
            walked += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(walked, files);
        if check { &mut walks.0 } else { &mut walks.1 }.push(t.elapsed().as_secs_f64());
    }
    tapedeck::catalog::members::bench_checksums(true);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let walk = Duration::from_secs_f64(median(walks.0));
    let walk_unchecked = Duration::from_secs_f64(median(walks.1));
    let records: Vec<(i64, i64, i64, i64, Vec<u8>)> = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare("SELECT backup_id, first_seq, dir_id, count, data FROM members")
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    let t = Instant::now();
    let mut all = 0i64;
    for (b, f, d, c, data) in &records {
        all ^= tapedeck::catalog::members::record_sum(*b, *f, *d, *c, data);
    }
    let sums = t.elapsed();
    std::hint::black_box(all);
    let path_avg = times.iter().sum::<Duration>() / times.len() as u32;
    let path_p99 = times[times.len() * 99 / 100];
    let mut patterns = Vec::new();
    for pattern in [
        "holiday-4242",
        "invoice-99",
        "IMG_0420",
        "budget-1234",
        "*.docx",
    ] {
        // First run warms the page cache as a second search in a session would find it.
        cat.find_pattern(pattern, 1000).unwrap();
        let t = Instant::now();
        let (hits, _) = cat.find_pattern(pattern, 1000).unwrap();
        patterns.push((pattern.to_string(), hits.len(), t.elapsed()));
    }
    drop(cat);
    let size: u64 = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    Figures {
        files,
        insert_rate,
        walk,
        walk_unchecked,
        sums,
        path_avg,
        path_p99,
        patterns,
        bytes_per_file: size as f64 / files as f64,
    }
}

fn print(f: &Figures) {
    println!("catalogue with {} files", f.files);
    println!("  insert rate        {:>12.0} files/s", f.insert_rate);
    println!("  whole-backup walk  {:>12.3} s", f.walk.as_secs_f64());
    println!(
        "  find --file        {:>9.3} ms average, {:.3} ms p99 ({} lookups)",
        f.path_avg.as_secs_f64() * 1e3,
        f.path_p99.as_secs_f64() * 1e3,
        1000
    );
    for (p, hits, t) in &f.patterns {
        println!(
            "  find {:<14} {:>9.3} ms, {hits} versions (limit 1000)",
            format!("'{p}'"),
            t.as_secs_f64() * 1e3
        );
    }
    println!("  database size      {:>12.1} bytes/file", f.bytes_per_file);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with no argument:
    // keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<u64> = match std::env::var("CATALOG_BENCH_FILES") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) if benching => vec![1_000_000, 10_000_000],
        Err(_) => vec![20_000],
    };
    let dir =
        tempfile::tempdir_in(std::env::var("CATALOG_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .expect("scratch directory");
    let keep = std::env::var_os("CATALOG_BENCH_KEEP").is_some();
    let rounds = std::env::var("CATALOG_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    for files in sizes {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            with.push(measure(files, dir.path(), true));
            without.push(measure(files, dir.path(), false));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let rate = |v: &[Figures]| median(&mut v.iter().map(|f| f.insert_rate).collect());
        let walk = |v: &[Figures]| median(&mut v.iter().map(|f| f.walk.as_secs_f64()).collect());
        let unchecked = median(
            &mut with
                .iter()
                .map(|f| f.walk_unchecked.as_secs_f64())
                .collect(),
        );
        let find =
            |v: &[Figures]| median(&mut v.iter().map(|f| f.path_avg.as_secs_f64()).collect());
        let sum_time = median(&mut with.iter().map(|f| f.sums.as_secs_f64()).collect());
        let insert_time = files as f64 / rate(&with);
        print(with.last().expect("one round at least"));
        println!(
            "  computing every record's checksum alone: {:.1} ms, {:.2} % of the insert time",
            sum_time * 1e3,
            100.0 * sum_time / insert_time
        );
        println!(
            "  member-record checksum ({rounds} rounds, medians): insert {:.3}x the time \
             without, whole-backup walk {:.3}x (same catalogue, checked or not), find --file \
             {:.3}x (target within 5 %)",
            rate(&without) / rate(&with),
            walk(&with) / unchecked,
            find(&with) / find(&without),
        );
        eprintln!(
            "  insert rate with {:.0}, without {:.0} files/s; walk {:.3} / {:.3} s",
            rate(&with),
            rate(&without),
            walk(&with),
            unchecked
        );
    }
    if keep {
        eprintln!("kept {}", dir.keep().display());
    }
}
