//! Faults of the media under a backup, through the binary against the virtual library,
//! injected with the fault hook (`TAPEDECK_FAULT`, src/fault.rs): a disk that fills or
//! fails under the virtual cartridge or under the catalogue, a cut tape file, a process
//! that dies.

mod common;

use common::{noise, Home};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// A source of `n` files of `size` bytes of noise (seeds from `seed`).
fn source(home: &Home, name: &str, n: u64, size: usize, seed: u64) -> PathBuf {
    let src = home.path().join(name);
    fs::create_dir(&src).unwrap();
    for i in 0..n {
        fs::write(src.join(format!("f{i:02}")), noise(size, seed + i)).unwrap();
    }
    src
}

/// How often each fault point was reached, from the tally files of every process.
fn tally(dir: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        for line in fs::read_to_string(entry.unwrap().path()).unwrap().lines() {
            let (point, n) = line.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            let c = counts.entry(point.to_string()).or_insert(0);
            *c = (*c).max(n);
        }
    }
    counts
}

#[test]
fn a_census_counts_every_fault_point_and_a_planned_kill_fires() {
    let home = Home::with_fast_vlib();
    let src = source(&home, "src", 3, 100_000, 1);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let census = home.path().join("census");
    fs::create_dir(&census).unwrap();
    let out = home
        .cmd()
        .env("TAPEDECK_FAULT_TALLY", &census)
        .args(["backup", "--drive", "lto9", "--json"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = tally(&census);
    for point in ["catalog-write", "vtape-write", "vtape-meta"] {
        assert!(
            counts.get(point).copied().unwrap_or(0) >= 1,
            "{point}: {counts:?}"
        );
    }

    let out = home
        .cmd()
        .env("TAPEDECK_FAULT", "kill:catalog-write:1")
        .args(["backup", "--drive", "lto9", "--json"])
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9), "{:?}", out.status);
}

/// `tapedeck backup --drive lto9 --json SRC` with `fault` planned (`TAPEDECK_FAULT`),
/// expected to exit with `code`: its JSON summary (`Null` if it printed none) and stderr.
fn backup_with_fault(
    home: &Home,
    src: &Path,
    fault: &str,
    code: i32,
) -> (serde_json::Value, String) {
    let out = home
        .cmd()
        .env("TAPEDECK_FAULT", fault)
        .args([
            "backup",
            "--drive",
            "lto9",
            "--block-size",
            "64KiB",
            "--memory-buffer",
            "16MiB",
            "--json",
        ])
        .arg(src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (summary, stderr)
}

/// Restores backup `id` into `to`, expecting exit `code`: its stdout and stderr.
fn restore_backup(home: &Home, id: &str, to: &Path, code: i32) -> (String, String) {
    let out = home
        .cmd()
        .args(["restore", "--drive", "lto9", "--backup", id, "--to"])
        .arg(to)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Every file of `src` came back under `to` byte for byte.
fn assert_restored(to: &Path, src: &Path) {
    let back = common::under(to, src);
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            fs::read(back.join(entry.file_name())).unwrap(),
            fs::read(entry.path()).unwrap(),
            "{}",
            entry.path().display()
        );
    }
}

/// The lengths of a cartridge's tape files, in tape order.
fn tape_file_lengths(home: &Home, label: &str) -> Vec<u64> {
    let mut files: Vec<_> = fs::read_dir(home.cartridge(label))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect()
}

fn block_size(home: &Home, label: &str) -> u64 {
    let meta: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(home.cartridge(label).join("cartridge.json")).unwrap(),
    )
    .unwrap();
    meta["block_size"].as_u64().unwrap()
}

fn backup_status(home: &Home, id: &str) -> String {
    home.sql_value(&format!("SELECT status FROM backups WHERE uuid = '{id}'"))
}

#[test]
fn a_disk_that_fills_mid_block_leaves_whole_blocks_and_the_earlier_backup() {
    for fault in ["enospc:vtape-write:3", "eio:vtape-write:3"] {
        let home = Home::with_fast_vlib();
        home.run(&["tape", "load", "--drive", "lto9"]).success();
        let first = source(&home, "first", 3, 300_000, 1);
        let (done, _) = backup_with_fault(&home, &first, "", 0);
        assert_eq!(done["status"], "complete", "{done}");

        let second = source(&home, "second", 4, 2_000_000, 20);
        let (failed, stderr) = backup_with_fault(&home, &second, fault, 1);
        assert_eq!(failed["status"], "failed", "{fault}: {failed}\n{stderr}");
        let bs = block_size(&home, "TD0001L9");
        for len in tape_file_lengths(&home, "TD0001L9") {
            assert_eq!(len % bs, 0, "{fault}: a tape file of {len} bytes");
        }
        let id = failed["uuid"].as_str().unwrap();
        assert_eq!(backup_status(&home, id), "failed", "{fault}");

        // The earlier backup restores, and the next one runs once the disk has space.
        let out = home.path().join("out-first");
        restore_backup(&home, done["uuid"].as_str().unwrap(), &out, 0);
        assert_restored(&out, &first);
        if fault.starts_with("eio") {
            // A failing disk is a write error of the drive: the volume takes no more.
            let v = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
            assert_eq!(v["status"], "error", "{v}");
            continue;
        }
        let (next, stderr) = backup_with_fault(&home, &second, "", 0);
        assert_eq!(next["status"], "complete", "{fault}: {next}\n{stderr}");
        let out = home.path().join("out-next");
        restore_backup(&home, next["uuid"].as_str().unwrap(), &out, 0);
        assert_restored(&out, &second);
    }
}

#[test]
fn a_cut_tape_file_costs_only_its_own_members() {
    let home = Home::with_fast_vlib();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let sources: Vec<_> = (0..3)
        .map(|i| source(&home, &format!("src{i}"), 3, 400_000, 10 * i))
        .collect();
    let ids: Vec<String> = sources
        .iter()
        .map(|src| {
            let (s, _) = backup_with_fault(&home, src, "", 0);
            assert_eq!(s["status"], "complete", "{s}");
            assert_eq!(s["volume"], "TD0001L9", "{s}");
            s["uuid"].as_str().unwrap().to_string()
        })
        .collect();
    home.run(&["tape", "unload", "--drive", "lto9"]).success();
    // The middle backup's data tape file (3: label, data, index, data, ...) loses its end
    // and part of a block, as a crash or a full disk under an old tapedeck left it.
    let cut = home.cartridge("TD0001L9").join("00003.tar");
    let len = fs::metadata(&cut).unwrap().len();
    let bs = block_size(&home, "TD0001L9");
    assert!(len >= 4 * bs, "{len}");
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len - 2 * bs - 1000)
        .unwrap();

    for (i, (id, src)) in ids.iter().zip(&sources).enumerate() {
        let out = home.path().join(format!("out{i}"));
        if i == 1 {
            let (stdout, stderr) = restore_backup(&home, id, &out, 1);
            let said = format!("{stdout}{stderr}").to_lowercase();
            assert!(
                said.contains("damaged") || said.contains("missing"),
                "{said}"
            );
        } else {
            restore_backup(&home, id, &out, 0);
            assert_restored(&out, src);
        }
    }
    // The cartridge takes the next backup after its intact tape files.
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let (s, stderr) = backup_with_fault(&home, &sources[0], "", 0);
    assert_eq!(s["status"], "complete", "{s}\n{stderr}");
}

#[test]
fn a_backup_that_fails_for_lack_of_a_next_tape_counts_its_volume_once() {
    let home = Home::new();
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
    home.run(&["pool", "create", "--name", "p", "--retention", "7"])
        .success();
    let src = common::many_files(home.path(), 12, 1 << 20);
    let summary = common::pool_backup(&home, &src, 1);
    assert_eq!(summary["status"], "failed", "{summary}");
    let on_tape: u64 = tape_file_lengths(&home, "TD0001L9").iter().sum();
    let used: i64 = home.sql_value("SELECT used FROM volumes WHERE label = 'TD0001L9'");
    assert!(
        used > 0 && used as u64 <= on_tape,
        "used {used}, {on_tape} bytes on tape"
    );
    home.run(&["catalog", "check"]).success();
}

#[test]
fn a_backup_that_cannot_commit_to_the_catalogue_is_never_left_running() {
    let home = Home::with_fast_vlib();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = source(&home, "src", 3, 100_000, 1);
    let (done, _) = backup_with_fault(&home, &src, "", 0);
    assert_eq!(done["status"], "complete", "{done}");
    let census = home.path().join("census");
    fs::create_dir(&census).unwrap();
    let out = home
        .cmd()
        .env("TAPEDECK_FAULT_TALLY", &census)
        .args([
            "backup",
            "--drive",
            "lto9",
            "--block-size",
            "64KiB",
            "--json",
        ])
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success());
    let commits = tally(&census)["catalog-write"];
    // Every commit of a backup fails in turn (the first ones may come before the backup
    // row exists); whatever fails, no backup is left running, for any reader.
    for n in 1..=commits {
        for action in ["eio", "kill"] {
            let fault = format!("{action}:catalog-write:{n}");
            let out = home
                .cmd()
                .env("TAPEDECK_FAULT", &fault)
                .args([
                    "backup",
                    "--drive",
                    "lto9",
                    "--block-size",
                    "64KiB",
                    "--json",
                ])
                .arg(&src)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{fault}");
            let status = home.json(&["status", "--json"]).to_string();
            assert!(!status.contains("\"running\""), "{fault}: {status}");
        }
    }
}
