//! `tapedeck backup --strategy tar` (a bounded disk spool between encoder and drive) and
//! `--strategy dd` (tar archives made elsewhere, passed through) through the binary,
//! against the virtual library: what lands on tape (read back with GNU tar), what the
//! catalogue records, how much disk the spool takes, and the refusals.

mod common;

use common::{
    backup_json, interrupt, labelled, many_files, noise, only_version, pool_library, same_files,
    slow_library, spanning_source, spawn_backup_with, strings, tape_file, tar_extract_ok,
    tar_extract_volumes, tar_list, under, wait_for_data, wait_json, Home, POOL_BACKUP,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BLOCK: u64 = 512 * 1024;

/// Bytes the spool's chunk files hold now (the files inside the spool directory's
/// `tapedeck-spool-*` directories; a file deleted while looked at counts as gone).
fn spool_bytes(spool: &Path) -> (u64, usize) {
    let (mut bytes, mut files) = (0, 0);
    let Ok(dirs) = fs::read_dir(spool) else {
        return (0, 0);
    };
    for dir in dirs.flatten() {
        let Ok(chunks) = fs::read_dir(dir.path()) else {
            continue;
        };
        for chunk in chunks.flatten() {
            if let Ok(meta) = chunk.metadata() {
                bytes += meta.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

/// Watches `spool` until dropped: the most bytes and chunk files seen at once.
struct SpoolWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    files: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpoolWatch {
    fn start(spool: &Path) -> SpoolWatch {
        let (stop, peak, files) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let thread = {
            let (stop, peak, most_files, spool) = (
                stop.clone(),
                peak.clone(),
                files.clone(),
                spool.to_path_buf(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (bytes, files) = spool_bytes(&spool);
                    peak.fetch_max(bytes, Ordering::Relaxed);
                    most_files.fetch_max(files as u64, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        SpoolWatch {
            stop,
            peak,
            files,
            thread: Some(thread),
        }
    }

    /// (peak bytes, most chunk files) seen.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.peak.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn the_tar_strategy_stages_through_a_spool_much_smaller_than_the_backup() {
    let home = Home::new();
    // A drive slower than the disk, so the spool fills while the tape is written.
    slow_library(&home);
    labelled(&home);
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..8 {
        fs::write(src.join(format!("big{i}")), noise(2_000_000, i + 1)).unwrap();
    }
    for i in 0..40 {
        fs::write(src.join(format!("small{i:02}")), noise(20_000, 100 + i)).unwrap();
    }
    let spool = home.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let size = 4 * BLOCK; // 2 MiB, a ninth of the data
    let watch = SpoolWatch::start(&spool);
    let (summary, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--memory-buffer",
            "4MiB",
            "--strategy",
            "tar",
            "--spool-dir",
            spool.to_str().unwrap(),
            "--spool-size",
            "2MiB",
        ],
        &[&src],
        0,
    );
    let (seen_peak, seen_files) = watch.finish();
    assert_eq!(summary["status"], "complete", "{summary} {stderr}");
    assert_eq!(summary["strategy"], "tar");
    assert_eq!(summary["files"], 49, "{summary}");
    let tape_bytes = summary["tape_bytes"].as_u64().unwrap();
    assert!(tape_bytes > 8 * size, "{summary}");

    // The disk never held more than the spool: by its own count, and as seen from outside.
    let peak = summary["peak_spool_bytes"].as_u64().unwrap();
    assert_eq!(summary["spool_size"], size);
    assert!(peak <= size, "peak {peak} > spool {size}");
    assert!(peak >= size / 2, "a whole chunk was spooled: {summary}");
    assert!(seen_peak <= size, "seen {seen_peak} on disk > spool {size}");
    assert!(
        seen_peak > 0 && seen_files >= 1,
        "the spool was not seen in use"
    );
    assert!(seen_files <= 2, "{seen_files} chunk files at once");
    // Nothing is left behind.
    assert_eq!(fs::read_dir(&spool).unwrap().count(), 0);

    // GNU tar extracts it byte for byte.
    let restore = home.path().join("restore");
    tar_extract_ok(&tape_file(&home, "TD0001L9", 1), &restore);
    same_files(&src, &under(&restore, &src));

    // The catalogue records the strategy and the files at their places.
    let strategy: String = home.sql_value("SELECT strategy FROM backups");
    assert_eq!(strategy, "tar");
    let found = only_version(&home, src.join("big3"));
    assert_eq!(
        found["blake3"],
        blake3::hash(&noise(2_000_000, 4)).to_hex().to_string()
    );
    member_at(
        &home,
        "TD0001L9",
        &found["segments"][0],
        &format!("{}/big3", src.strip_prefix("/").unwrap().display()),
    );
}

#[test]
fn a_spool_larger_than_the_free_space_is_refused_before_the_tape_moves() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    let src = many_files(home.path(), 3, 1000);
    let spool = home.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let (_, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--strategy",
            "tar",
            "--spool-dir",
            spool.to_str().unwrap(),
            "--spool-size",
            "1EiB",
        ],
        &[&src],
        2,
    );
    assert!(stderr.contains("free"), "{stderr}");
    assert!(stderr.contains("1 EiB"), "{stderr}");
    assert!(stderr.contains(spool.to_str().unwrap()), "{stderr}");
    // A spool directory that does not exist.
    let (_, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--strategy",
            "tar",
            "--spool-dir",
            home.path().join("nowhere").to_str().unwrap(),
        ],
        &[&src],
        2,
    );
    assert!(stderr.contains("nowhere"), "{stderr}");
    // Spool options without the tar strategy.
    let (_, stderr) = backup_json(
        &home,
        &["--drive", "lto9", "--spool-size", "1GiB"],
        &[&src],
        2,
    );
    assert!(stderr.contains("--strategy tar"), "{stderr}");
    // Nothing went to tape, nothing to the catalogue, nothing was left in the spool.
    assert!(!tape_file(&home, "TD0001L9", 1).exists());
    let backups: i64 = home.sql_value("SELECT count(*) FROM backups");
    assert_eq!(backups, 0);
    assert_eq!(fs::read_dir(&spool).unwrap().count(), 0);
}

#[test]
fn ctrl_c_during_a_spooled_backup_drains_it_and_removes_the_spool() {
    let home = Home::new();
    slow_library(&home);
    labelled(&home);
    let src = many_files(home.path(), 40, 1 << 20);
    let spool = home.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let child = spawn_backup_with(
        &home,
        &[
            "--drive",
            "lto9",
            "--memory-buffer",
            "4MiB",
            "--strategy",
            "tar",
            "--spool-size",
            "4MiB",
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
        &src,
    );
    let data = tape_file(&home, "TD0001L9", 1);
    wait_for_data(&data);
    interrupt(&child);
    let (summary, _) = wait_json(child, 130);
    assert_eq!(summary["status"], "aborted", "{summary}");
    let saved = summary["files"].as_u64().unwrap();
    assert!(saved > 0 && saved < 41, "{summary}");
    // The spool is gone; the tape file is a whole archive with at least the saved files.
    assert_eq!(fs::read_dir(&spool).unwrap().count(), 0);
    assert!(tar_list(&data).len() as u64 >= saved);
}

/// A tree to pack with GNU tar: files, a subdirectory, a symlink, a long name.
fn tar_tree(root: &Path, name: &str, seed: u64) -> PathBuf {
    let src = root.join(name);
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    fs::write(src.join("sub/b.bin"), noise(300_000, seed)).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let long = format!("{}.dat", "a-long-file-name-".repeat(8));
    fs::write(src.join(&long), noise(1000, seed + 1)).unwrap();
    src
}

fn long_name() -> String {
    format!("{}.dat", "a-long-file-name-".repeat(8))
}

/// Checks that `segment` (from `find --json`) points at the start of `member`: GNU tar
/// reading the tape file from that block and offset lists `member` first.
fn member_at(home: &Home, label: &str, segment: &serde_json::Value, member: &str) {
    let n = segment["tape_file"].as_u64().unwrap();
    let bytes = fs::read(tape_file(home, label, n)).unwrap();
    // The data tape file after the label's block and filemark starts at block 2; later
    // ones after earlier files: the first block of this one is found from its size.
    let first_block = first_block_of(home, label, n);
    let block = segment["block"].as_u64().unwrap();
    let at = ((block - first_block) * BLOCK + segment["offset"].as_u64().unwrap()) as usize;
    let rest = home.path().join("rest.tar");
    fs::write(&rest, &bytes[at..]).unwrap();
    let out = Std::new("tar").arg("-tf").arg(&rest).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listing.lines().next(),
        Some(member),
        "at block {block} offset {}: {listing}",
        segment["offset"]
    );
}

/// The logical block where tape file `n` of a virtual cartridge starts (each earlier tape
/// file's blocks plus its filemark).
fn first_block_of(home: &Home, label: &str, n: u64) -> u64 {
    (0..n)
        .map(|k| {
            let len = fs::metadata(tape_file(home, label, k)).unwrap().len();
            len.div_ceil(BLOCK) + 1
        })
        .sum()
}

#[test]
fn dd_from_stdin_writes_a_tar_stream_and_catalogues_its_members_at_their_headers() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    let src = tar_tree(home.path(), "proj", 1);
    let exe = assert_cmd::cargo::cargo_bin("tapedeck");
    let out = Std::new("sh")
        .arg("-c")
        .arg(r#"tar -C "$1" -cf - proj | "$2" backup --drive lto9 --strategy dd --from - --json"#)
        .arg("sh")
        .arg(home.path())
        .arg(&exe)
        .env("TAPEDECK_HOME", home.path())
        .env("TAPEDECK_CONFIG", home.config())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "complete", "{summary}");
    assert_eq!(summary["strategy"], "dd");
    // proj/, a.txt, sub/, sub/b.bin, link, the long one.
    assert_eq!(summary["files"], 6, "{summary}");

    // The tape file is the archive: GNU tar restores it.
    let restore = home.path().join("restore");
    tar_extract_ok(&tape_file(&home, "TD0001L9", 1), &restore);
    assert_eq!(
        fs::read(restore.join("proj/sub/b.bin")).unwrap(),
        noise(300_000, 1)
    );

    // Members are catalogued under their tar names with a leading `/`, with hashes and
    // positions that point at their first header (the long name's at its `L` record).
    let b = only_version(&home, "/proj/sub/b.bin");
    assert_eq!(b["size"], 300_000);
    assert_eq!(
        b["blake3"],
        blake3::hash(&noise(300_000, 1)).to_hex().to_string()
    );
    member_at(&home, "TD0001L9", &b["segments"][0], "proj/sub/b.bin");
    let long = only_version(&home, format!("/proj/{}", long_name()));
    member_at(
        &home,
        "TD0001L9",
        &long["segments"][0],
        &format!("proj/{}", long_name()),
    );
    let link = only_version(&home, "/proj/link");
    assert_eq!(link["kind"], "symlink");
    assert_eq!(link["link"], "a.txt");
    let strategy: String = home.sql_value("SELECT strategy FROM backups");
    assert_eq!(strategy, "dd");
    // The index tape file follows, as for any backup.
    assert!(tape_file(&home, "TD0001L9", 2).exists());
    let _ = src;
}

#[test]
fn dd_of_a_file_and_a_fifo_is_one_tape_file_listing_both() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    tar_tree(home.path(), "one", 1);
    tar_tree(home.path(), "two", 7);
    let first = home.path().join("one.tar");
    let made = Std::new("tar")
        .arg("-C")
        .arg(home.path())
        .arg("-cf")
        .arg(&first)
        .arg("one")
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = home.path().join("two.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut writer = Std::new("tar")
        .arg("-C")
        .arg(home.path())
        .arg("-cf")
        .arg(&fifo)
        .arg("two")
        .spawn()
        .unwrap();
    let (summary, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--strategy",
            "dd",
            "--from",
            first.to_str().unwrap(),
            fifo.to_str().unwrap(),
        ],
        &[],
        0,
    );
    assert!(writer.wait().unwrap().success());
    assert_eq!(summary["status"], "complete", "{summary} {stderr}");
    assert_eq!(summary["files"], 12, "{summary}");
    assert_eq!(summary["volumes"].as_array().unwrap().len(), 1);

    // One tape file, one archive: GNU tar lists both sets without `--ignore-zeros`.
    let listing = tar_list(&tape_file(&home, "TD0001L9", 1));
    assert!(
        listing.iter().any(|m| m.contains("one/sub/b.bin")),
        "{listing:?}"
    );
    assert!(
        listing.iter().any(|m| m.contains("two/sub/b.bin")),
        "{listing:?}"
    );
    assert_eq!(listing.len(), 12, "{listing:?}");
    assert!(tape_file(&home, "TD0001L9", 2).exists());
    let two = only_version(&home, "/two/sub/b.bin");
    assert_eq!(
        two["blake3"],
        blake3::hash(&noise(300_000, 7)).to_hex().to_string()
    );
    member_at(&home, "TD0001L9", &two["segments"][0], "two/sub/b.bin");
}

#[test]
fn dd_of_something_else_than_tar_is_refused_before_the_tape_moves() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    let junk = home.path().join("junk.bin");
    fs::write(&junk, noise(100_000, 3)).unwrap();
    let (_, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--strategy",
            "dd",
            "--from",
            junk.to_str().unwrap(),
        ],
        &[],
        2,
    );
    assert!(stderr.contains("not a tar archive"), "{stderr}");
    // From stdin, too.
    let out = home
        .cmd()
        .args([
            "backup",
            "--drive",
            "lto9",
            "--strategy",
            "dd",
            "--from",
            "-",
        ])
        .write_stdin("hello, this is not tar\n")
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin is not a tar archive"));
    // PATHs are not for dd; --from is only for dd.
    home.run(&["backup", "--drive", "lto9", "--strategy", "dd"])
        .code(2);
    let (_, stderr) = backup_json(
        &home,
        &["--drive", "lto9", "--from", junk.to_str().unwrap()],
        &[],
        2,
    );
    assert!(stderr.contains("--strategy dd"), "{stderr}");
    // An incremental compares scanned sources: not for dd.
    let (_, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--job",
            "j",
            "--incremental",
            "--strategy",
            "dd",
            "--from",
            junk.to_str().unwrap(),
        ],
        &[],
        2,
    );
    assert!(stderr.contains("--incremental"), "{stderr}");
    assert!(!tape_file(&home, "TD0001L9", 1).exists());
}

#[test]
fn a_dd_backup_spans_volumes_and_gnu_tar_restores_it_from_them() {
    let home = Home::new();
    pool_library(&home, "6MiB");
    let src = spanning_source(home.path(), 45);
    let archive = home.path().join("src.tar");
    let made = Std::new("tar")
        .arg("-C")
        .arg(home.path())
        .arg("-cf")
        .arg(&archive)
        .arg("src")
        .status()
        .unwrap();
    assert!(made.success());
    let dd = ["--strategy", "dd", "--from", archive.to_str().unwrap()];
    let (summary, stderr) = backup_json(&home, &[&POOL_BACKUP[..], &dd].concat(), &[], 0);
    assert_eq!(summary["status"], "complete", "{summary} {stderr}");
    let volumes = strings(&summary["volumes"]);
    assert!(volumes.len() >= 3, "{summary}");

    let restore = home.path().join("restore");
    tar_extract_volumes(&home, &volumes, &restore);
    same_files(&src, &restore.join("src"));

    // A member cut by a volume end has one segment per part, adding up.
    let b = only_version(&home, "/src/b-big");
    let segments = b["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{b}");
    let total: u64 = segments.iter().map(|s| s["length"].as_u64().unwrap()).sum();
    assert_eq!(total, 3_000_000);
    assert_eq!(segments[1]["file_offset"], segments[0]["length"]);
    assert_eq!(
        b["blake3"],
        blake3::hash(&noise(3_000_000, 2)).to_hex().to_string()
    );
}

#[test]
fn a_spool_chunk_that_cannot_fill_goes_to_tape_early() {
    // The stream (70 000 headers, 36 MB) fills neither a 1 GiB chunk nor the buffer,
    // while the scan waits for members to be recorded: the chunk ends early.
    let home = Home::with_fast_vlib();
    labelled(&home);
    let src = common::empty_files(home.path(), 70_000);
    let out = home
        .cmd()
        .args(["backup", "--drive", "lto9", "--flow", "hysteresis"])
        .args(["--memory-buffer", "512MiB", "--strategy", "tar"])
        .args(["--spool-size", "2GiB", "--json"])
        .arg(&src)
        .timeout(Duration::from_secs(120))
        .assert()
        .code(0)
        .get_output()
        .clone();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files"], 70_001, "{summary}");
}
