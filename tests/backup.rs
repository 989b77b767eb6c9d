//! `tapedeck backup` through the binary, against the virtual library: what lands on tape
//! (read back with GNU tar), what the catalogue records, and every refusal and failure.

mod common;

use common::{
    backup_json, backup_lto9, interrupt, labelled, many_files, member_name, only_version,
    pool_backup, pool_library, read_index, same_files, slow_library, spanning_source,
    spawn_backup_with, strings, tape_file, tar_extract_ok, tar_extract_volumes, tar_list, under,
    wait_for_data, wait_for_log, wait_json, Home,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

/// A source tree with small and large files, a symlink, a hard link and a long name.
fn source_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("docs/deeper")).unwrap();
    for i in 0..50 {
        fs::write(
            src.join(format!("docs/note{i:02}.txt")),
            format!("note {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("docs/deeper/empty"), b"").unwrap();
    std::os::unix::fs::symlink("docs/note01.txt", src.join("link")).unwrap();
    fs::hard_link(src.join("big.bin"), src.join("hard.bin")).unwrap();
    let long = "a-directory-name-that-is-quite-long-".repeat(4);
    fs::create_dir_all(src.join(&long)).unwrap();
    fs::write(src.join(&long).join("file-with-a-long-path.txt"), b"long\n").unwrap();
    src
}

#[test]
fn a_backup_is_a_tar_tape_file_that_gnu_tar_restores() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    labelled(&home);
    let summary = backup_lto9(&home, &src, &[]);
    assert_eq!(summary["status"], "complete", "{summary}");
    assert_eq!(summary["tape_file"], 1);
    assert_eq!(summary["first_block"], 2);
    assert!(summary["files"].as_u64().unwrap() >= 57, "{summary}");

    // Plain GNU tar lists and extracts the data tape file.
    let data = tape_file(&home, "TD0001L9", 1);
    let listing = tar_list(&data);
    assert!(
        listing.contains(&member_name(&src.join("big.bin"))),
        "{listing:?}"
    );
    assert!(
        listing
            .iter()
            .any(|m| m.contains("file-with-a-long-path.txt")),
        "{listing:?}"
    );
    let restore = home.path().join("restore");
    tar_extract_ok(&data, &restore);
    let back = under(&restore, &src);
    assert_eq!(
        fs::read(back.join("big.bin")).unwrap(),
        fs::read(src.join("big.bin")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(back.join("docs/note07.txt")).unwrap(),
        "note 7\n".repeat(8)
    );
    assert_eq!(
        fs::read_link(back.join("link")).unwrap(),
        PathBuf::from("docs/note01.txt")
    );
    assert_eq!(fs::read(back.join("hard.bin")).unwrap().len(), 3_000_000);

    // The index tape file follows, one member with a JSON line per file.
    let (name, lines) = read_index(&tape_file(&home, "TD0001L9", 2));
    assert_eq!(
        name,
        format!(
            "TAPEDECK-INDEX-{}.jsonl.zst",
            summary["uuid"].as_str().unwrap()
        )
    );
    assert_eq!(lines[0]["uuid"], summary["uuid"]);
    let big = lines
        .iter()
        .find(|l| l["path"] == format!("{}", src.join("big.bin").display()))
        .expect("big.bin in the index");
    assert_eq!(big["size"], 3_000_000);
    let expected = blake3::hash(&fs::read(src.join("big.bin")).unwrap())
        .to_hex()
        .to_string();
    assert_eq!(big["blake3"], expected);

    // Small files are hashed by the readers: the same hash.
    let note = src.join("docs/note07.txt");
    let small = lines
        .iter()
        .find(|l| l["path"] == format!("{}", note.display()))
        .expect("note07.txt in the index");
    assert_eq!(
        small["blake3"],
        blake3::hash(&fs::read(&note).unwrap()).to_hex().to_string()
    );

    // The recorded position points at the member's header in the tape file.
    let seg = &big["segments"][0];
    let block = seg["block"].as_u64().unwrap();
    let offset = seg["offset"].as_u64().unwrap();
    let bytes = fs::read(&data).unwrap();
    let at = ((block - 2) * 512 * 1024 + offset) as usize;
    let header = tar::Header::from_byte_slice(&bytes[at..at + 512]);
    assert!(
        header.path().unwrap().ends_with("big.bin"),
        "{:?}",
        header.path()
    );

    // The catalogue knows the file, with the same place.
    let found = home.json(&[
        "find",
        "--json",
        "--file",
        src.join("big.bin").to_str().unwrap(),
    ]);
    let text = found.to_string();
    assert!(text.contains("TD0001L9"), "{text}");
    assert!(text.contains(&expected), "{text}");

    // The session's counters are kept with the drive's statistics.
    let counters: String =
        home.sql_value("SELECT counters FROM drive_stats WHERE drive = 'lto9' AND phase = 'after'");
    assert!(counters.contains("writer_stops"), "{counters}");

    // A second backup goes after the first one's index, never over it.
    let again = backup_lto9(&home, &src.join("docs"), &[]);
    assert_eq!(again["tape_file"], 3, "{again}");
    assert!(tape_file(&home, "TD0001L9", 1).exists());
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["status"], "appendable", "{volume}");
    assert_eq!(volume["tape_files"], 5, "{volume}");
}

#[test]
fn a_missing_source_is_refused_before_the_tape_moves() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    home.run(&["backup", "--drive", "lto9", "/no/such/path"])
        .code(2)
        .stderr(predicates::str::contains("/no/such/path"));
    assert!(!tape_file(&home, "TD0001L9", 1).exists());
}

#[test]
fn a_buffer_larger_than_memory_allows_is_refused_with_the_figures() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    labelled(&home);
    home.cmd()
        .args(["backup", "--drive", "lto9", "--memory-buffer", "100000GiB"])
        .arg(&src)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("largest buffer accepted"));
    assert!(!tape_file(&home, "TD0001L9", 1).exists());
}

#[test]
fn without_a_fitting_cartridge_a_pool_backup_is_refused_with_the_reasons() {
    let home = Home::new();
    // One slot: one LTO-9 cartridge, labelled for another pool.
    home.run(&[
        "vlib",
        "init",
        "--time-scale",
        "0",
        "--slots",
        "1",
        "--drives",
        "lto9",
    ])
    .success();
    let src = source_tree(home.path());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["pool", "create", "--name", "daily", "--retention", "7"])
        .success();
    home.run(&[
        "pool",
        "create",
        "--name",
        "monthly",
        "--kind",
        "monthly",
        "--retention",
        "90",
    ])
    .success();
    home.run(&["volume", "label", "--drive", "lto9", "--pool", "monthly"])
        .success();
    home.cmd()
        .args(["backup", "--drive", "lto9", "--pool", "daily"])
        .arg(&src)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("belongs to pool monthly"))
        .stderr(predicates::str::contains("no cartridge in the library"));
    assert!(!tape_file(&home, "TD0001L9", 1).exists());
}

#[test]
fn a_blank_virtual_cartridge_is_labelled_on_first_use() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let summary = backup_lto9(&home, &src, &[]);
    assert_eq!(summary["volume"], "TD0001L9", "{summary}");
    assert_eq!(summary["status"], "complete", "{summary}");
}

#[test]
fn a_write_error_fails_the_backup_and_records_nothing_past_it() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    labelled(&home);
    // Block 2 starts tape file 1; the fifth block of data fails.
    home.run(&["vlib", "set", "TD0001L9", "--write-error-at", "6"])
        .success();
    let (summary, _) = backup_json(
        &home,
        &["--drive", "lto9", "--memory-buffer", "16MiB"],
        &[&src],
        1,
    );
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("write"),
        "{summary}"
    );
    // Whatever is recorded ends before the failed block.
    let recorded: i64 = home.sql_value("SELECT COUNT(*) FROM tape_errors");
    assert_eq!(recorded, 1);
    let status = home.json(&["status", "--json"]).to_string();
    assert!(status.contains("failed"), "{status}");
    assert!(summary["files"].as_u64().unwrap() < 57, "{summary}");
}

#[test]
fn device_writes_the_bare_tar_stream() {
    let home = Home::new();
    let src = source_tree(home.path());
    let out = home.path().join("stream.tar");
    home.cmd()
        .args([
            "backup",
            "--memory-buffer",
            "16MiB",
            "--block-size",
            "64KiB",
            "--device",
        ])
        .arg(&out)
        .arg(&src)
        .assert()
        .success();
    let len = fs::metadata(&out).unwrap().len();
    assert_eq!(len % (64 * 1024), 0, "whole blocks only");
    assert!(tar_list(&out).iter().any(|m| m.contains("big.bin")));
}

fn spawn_backup(home: &Home, src: &Path) -> std::process::Child {
    spawn_backup_with(home, &["--drive", "lto9", "--memory-buffer", "4MiB"], src)
}

#[test]
fn ctrl_c_ends_the_tape_file_cleanly_and_marks_the_backup_aborted() {
    let home = Home::new();
    slow_library(&home);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = many_files(home.path(), 60, 1 << 20);
    let child = spawn_backup(&home, &src);
    wait_for_data(&tape_file(&home, "TD0001L9", 1));
    interrupt(&child);
    let (summary, _) = wait_json(child, 130);
    assert_eq!(summary["status"], "aborted", "{summary}");
    let saved = summary["files"].as_u64().unwrap();
    assert!(saved > 0 && saved < 61, "{summary}");

    // The tape file is a whole tar archive holding exactly the saved members.
    let listed = tar_list(&tape_file(&home, "TD0001L9", 1)).len() as u64;
    assert!(
        listed >= saved,
        "{listed} members on tape, {saved} recorded"
    );

    // The volume stays appendable and the next backup goes after it.
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["status"], "appendable", "{volume}");
    let status = home.json(&["status", "--json"]).to_string();
    assert!(status.contains("aborted"), "{status}");
}

#[test]
fn after_kill_9_the_next_backup_fails_the_orphan_and_appends() {
    let home = Home::new();
    slow_library(&home);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = many_files(home.path(), 30, 1 << 20);
    let mut child = spawn_backup(&home, &src);
    wait_for_data(&tape_file(&home, "TD0001L9", 1));
    child.kill().unwrap();
    child.wait().unwrap();

    let small = home.path().join("small");
    fs::create_dir(&small).unwrap();
    fs::write(small.join("a"), b"a").unwrap();
    let (summary, _) = backup_json(
        &home,
        &["--drive", "lto9", "--memory-buffer", "4MiB"],
        &[&small],
        0,
    );
    assert_eq!(summary["status"], "complete");
    assert!(summary["tape_file"].as_u64().unwrap() >= 2, "{summary}");
    let status = home.json(&["status", "--json"]).to_string();
    assert!(status.contains("failed"), "{status}");
    // The killed backup's partial tape file is still there, untouched.
    assert!(tape_file(&home, "TD0001L9", 1).exists());
}

#[test]
fn a_file_larger_than_the_volume_is_skipped_with_the_reason() {
    let home = Home::new();
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "16MiB"])
        .success();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("huge"), vec![7u8; 20 << 20]).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    let (summary, stderr) = backup_json(
        &home,
        &["--drive", "lto9", "--memory-buffer", "8MiB"],
        &[&src],
        0,
    );
    assert!(stderr.contains("not supported yet"), "{stderr}");
    assert_eq!(summary["skipped"], 1, "{summary}");
    assert_eq!(
        summary["files"], 2,
        "the directory and the small file: {summary}"
    );
}

#[test]
fn a_full_tape_fails_the_backup_cleanly_and_marks_the_volume_full() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    home.run(&["vlib", "set", "TD0001L9", "--early-warning-at", "6MiB"])
        .success();
    let src = many_files(home.path(), 6, 3 << 20);
    let (summary, _) = backup_json(
        &home,
        &["--drive", "lto9", "--memory-buffer", "8MiB"],
        &[&src],
        1,
    );
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("full"),
        "{summary}"
    );
    let saved = summary["files"].as_u64().unwrap();
    assert!((1..=3).contains(&saved), "{summary}");
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["status"], "full", "{volume}");
    // What was recorded is on tape: GNU tar reads the tape file up to where it ends.
    let list = Std::new("tar")
        .arg("-tf")
        .arg(tape_file(&home, "TD0001L9", 1))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout).lines().count() as u64;
    assert!(listed >= saved, "{listed} listed, {saved} recorded");
}

#[test]
fn no_tape_in_the_drive_is_refused_with_how_to_load_one() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.cmd()
        .args(["backup", "--drive", "lto9"])
        .arg(&src)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("tapedeck load"));
}

#[test]
fn device_streams_into_a_fifo_and_to_stdout() {
    let home = Home::new();
    let src = source_tree(home.path());
    let fifo = home.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    home.cmd()
        .args(["backup", "--memory-buffer", "8MiB", "--device"])
        .arg(&fifo)
        .arg(&src)
        .assert()
        .success();
    let stream = reader.join().unwrap();
    assert_eq!(stream.len() % (512 * 1024), 0);
    let mut archive = tar::Archive::new(stream.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("big.bin")), "{names:?}");

    // `-` is stdout; the JSON summary then goes to stderr.
    let out = home
        .cmd()
        .args([
            "backup",
            "--memory-buffer",
            "8MiB",
            "--json",
            "--device",
            "-",
        ])
        .arg(&src)
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(out.stdout.len(), stream.len());
    let summary: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(summary["status"], "complete");
}

#[test]
fn a_large_buffer_takes_memory_only_as_it_fills() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    let src = home.path().join("one");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"small").unwrap();
    let (summary, _) = backup_json(
        &home,
        &["--drive", "lto9", "--memory-buffer", "1GiB"],
        &[&src],
        0,
    );
    assert_eq!(summary["buffer"], 1u64 << 30);
    let peak = summary["peak_memory"].as_u64().unwrap();
    assert!(
        peak < 256 << 20,
        "peak memory {peak} for a 1 GiB buffer holding one file"
    );
}

#[test]
fn a_second_ctrl_c_stops_the_writer_at_once_and_keeps_the_catalogue_consistent() {
    let home = Home::new();
    slow_library(&home);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = many_files(home.path(), 60, 1 << 20);
    // The writer starts only once 29 MiB are buffered (hysteresis at 90 % of 32 MiB), so
    // when the first block is on tape there are seconds to drain at the drive's 4 MB/s
    // and the second Ctrl-C comes while they drain, however loaded the machine.
    let child = spawn_backup_with(
        &home,
        &[
            "--drive",
            "lto9",
            "--memory-buffer",
            "32MiB",
            "--flow",
            "hysteresis",
            "--high-watermark",
            "90",
        ],
        &src,
    );
    wait_for_data(&tape_file(&home, "TD0001L9", 1));
    interrupt(&child);
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&child);
    let (summary, stderr) = wait_json(child, 130);
    assert!(stderr.contains("interrupted again"), "{stderr}");
    assert_eq!(summary["status"], "aborted", "{summary}");
    // Every member recorded lies inside what was written.
    let tape_bytes = summary["tape_bytes"].as_u64().unwrap();
    let last_block: Option<i64> = home.sql_value("SELECT MAX(first_block) FROM backup_volumes");
    assert_eq!(last_block, Some(2));
    let on_tape = fs::metadata(tape_file(&home, "TD0001L9", 1)).unwrap().len();
    assert_eq!(
        on_tape, tape_bytes,
        "the tape file holds exactly what was written"
    );
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["status"], "appendable", "{volume}");
}

fn backup_to_pool(home: &Home, pool: &str, src: &Path) -> (serde_json::Value, String) {
    let args = ["--drive", "lto9", "--pool", pool, "--memory-buffer", "8MiB"];
    backup_json(home, &args, &[src], 0)
}

#[test]
fn a_pool_backup_loads_a_cartridge_from_the_library_and_keeps_filling_it() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    home.run(&["pool", "create", "--name", "daily", "--retention", "7"])
        .success();
    // Nothing in the drive: the first blank cartridge is loaded and labelled into the pool.
    let (first, stderr) = backup_to_pool(&home, "daily", &src);
    assert_eq!(first["volume"], "TD0001L9", "{first}");
    assert!(stderr.contains("Loaded TD0001L9"), "{stderr}");
    // The next backup appends to it without moving anything.
    let (second, stderr) = backup_to_pool(&home, "daily", &src);
    assert_eq!(second["volume"], "TD0001L9");
    assert_eq!(second["tape_file"], 3);
    assert!(!stderr.contains("Loaded"), "{stderr}");
}

#[test]
fn a_tape_of_another_pool_is_put_back_and_a_fitting_one_loaded() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    for (name, days) in [("daily", "7"), ("monthly", "90")] {
        home.run(&["pool", "create", "--name", name, "--retention", days])
            .success();
    }
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9", "--pool", "monthly"])
        .success();
    let (summary, stderr) = backup_to_pool(&home, "daily", &src);
    assert_eq!(summary["volume"], "TD0002L9", "{summary} {stderr}");
    assert!(stderr.contains("Unloaded TD0001L9"), "{stderr}");
    // The monthly tape was not written.
    let monthly = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(monthly["status"], "empty", "{monthly}");
    assert_eq!(monthly["pool"], "monthly");
}

#[test]
fn an_expired_full_volume_of_the_pool_is_recycled_before_a_blank_is_started() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    // Retention 0: data is unprotected as soon as the backup ends.
    home.run(&["pool", "create", "--name", "scratchy", "--retention", "0"])
        .success();
    let (first, _) = backup_to_pool(&home, "scratchy", &src);
    assert_eq!(first["volume"], "TD0001L9");
    home.catalog()
        .set_volume_status("TD0001L9", tapedeck::catalog::VolumeStatus::Full, None)
        .unwrap();
    let (again, stderr) = backup_to_pool(&home, "scratchy", &src);
    assert_eq!(again["volume"], "TD0001L9", "{again} {stderr}");
    assert_eq!(again["tape_file"], 1, "written from the start again");
    assert!(stderr.contains("Relabelled TD0001L9"), "{stderr}");
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["passes"], 2, "{volume}");
}

#[test]
fn without_a_terminal_the_backup_waits_for_a_tape_when_asked_to() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    let child = spawn_backup_with(&home, &["--drive", "lto9", "--change-timeout", "60"], &src);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Load a cartridge while it waits (the drive is only held while it looks).
    let mut loaded = false;
    for _ in 0..50 {
        if home
            .cmd()
            .args(["load", "1", "--drive", "lto9"])
            .output()
            .unwrap()
            .status
            .success()
        {
            loaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(loaded);
    let (summary, stderr) = wait_json(child, 0);
    assert!(stderr.contains("lto9 needs a tape"), "{stderr}");
    assert_eq!(summary["status"], "complete");
}

#[test]
fn waiting_for_a_tape_ends_with_the_reason_when_the_timeout_runs_out() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 1, 10);
    home.cmd()
        .args(["backup", "--drive", "lto9", "--change-timeout", "1"])
        .arg(&src)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "gave up waiting 1 s for a tape in lto9",
        ));
}

#[test]
fn a_backup_spans_volumes_and_gnu_tar_restores_it_from_them() {
    let home = Home::new();
    pool_library(&home, "6MiB");
    let src = spanning_source(home.path(), 45);
    let summary = pool_backup(&home, &src, 0);
    let volumes = strings(&summary["volumes"]);
    assert!(volumes.len() >= 3, "{summary}");
    assert_eq!(summary["status"], "complete");

    // GNU tar alone restores it from the volumes' data tape files, in order.
    let restore = home.path().join("restore");
    tar_extract_volumes(&home, &volumes, &restore);
    same_files(&src, &under(&restore, &src));
    // Each volume's part lists alone (GNU tar notes the cut at its end).
    let alone = Std::new("tar")
        .arg("-tf")
        .arg(tape_file(&home, &volumes[1], 1))
        .output()
        .unwrap();
    assert!(!alone.stdout.is_empty());

    // A file cut by a volume end has one segment per part, in order, adding up.
    let found = only_version(&home, src.join("b-big"));
    let segments = found["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{found}");
    assert_eq!(segments[0]["volume"], volumes[0].as_str());
    assert_eq!(segments[1]["volume"], volumes[1].as_str());
    assert_eq!(segments[1]["offset"], 0);
    let total: u64 = segments.iter().map(|s| s["length"].as_u64().unwrap()).sum();
    assert_eq!(total, 3_000_000);
    assert_eq!(segments[1]["file_offset"], segments[0]["length"]);
    // The full volumes are marked so; the index is on the last one.
    let first = home.json(&["volume", "show", "--tape", &volumes[0], "--json"]);
    assert_eq!(first["status"], "full", "{first}");
    let last = volumes.last().unwrap();
    assert!(tape_file(&home, last, 2).exists());
}

/// A library of one 6 MiB LTO-9 cartridge: a backup that fills it has no next volume.
fn one_small_cartridge(home: &Home) {
    home.run(&[
        "vlib",
        "init",
        "--time-scale",
        "0",
        "--capacity",
        "6MiB",
        "--slots",
        "1",
    ])
    .success();
}

#[test]
fn when_no_next_volume_can_be_had_the_backup_fails_and_the_full_volume_stays_full() {
    let home = Home::new();
    one_small_cartridge(&home);
    home.run(&["pool", "create", "--name", "p", "--retention", "7"])
        .success();
    let src = many_files(home.path(), 12, 1 << 20);
    let summary = pool_backup(&home, &src, 1);
    assert_eq!(summary["status"], "failed", "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("no next volume after TD0001L9"), "{error}");
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["status"], "full", "{volume}");
    let saved = summary["files"].as_u64().unwrap();
    assert!(
        (1..=5).contains(&saved),
        "only what is on the tape: {summary}"
    );
}

#[test]
fn ctrl_c_while_waiting_for_the_next_tape_aborts_the_backup() {
    let home = Home::new();
    one_small_cartridge(&home);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = many_files(home.path(), 12, 1 << 20);
    let child = spawn_backup_with(
        &home,
        &[
            "--drive",
            "lto9",
            "--block-size",
            "64KiB",
            "--memory-buffer",
            "4MiB",
            "--change-timeout",
            "60",
        ],
        &src,
    );
    // Wait until the first tape is full and the backup asks for the next.
    wait_for_log(&home, "needs a tape");
    interrupt(&child);
    let (summary, _) = wait_json(child, 130);
    assert_eq!(summary["status"], "aborted", "{summary}");
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["status"], "full", "{volume}");
}

#[test]
fn many_tiny_files_with_a_large_buffer_and_hysteresis_do_not_stall() {
    // 70 000 members of one header each fill less than 4 % of a 1 GiB buffer, while the
    // scan may only run 64 Ki entries ahead of what is recorded (on tape): the writer must
    // not wait for its 90 % watermark then.
    let home = Home::with_fast_vlib();
    labelled(&home);
    let src = common::empty_files(home.path(), 70_000);
    let out = home
        .cmd()
        .args(["backup", "--drive", "lto9", "--flow", "hysteresis"])
        .args(["--memory-buffer", "1GiB", "--json"])
        .arg(&src)
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(0)
        .get_output()
        .clone();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files"], 70_001, "{summary}");
}
