//! Running `tapedeck backup` for its JSON summary, and the libraries and sources the
//! backup tests share.

use super::{noise, Home};
use std::fs;
use std::path::{Path, PathBuf};

/// `tapedeck backup ARGS --json PATHS`, expected to exit with `code`: the JSON summary
/// (`Null` for exit 2, bad input, which prints none) and what went to stderr.
pub fn backup_json(
    home: &Home,
    args: &[&str],
    paths: &[&Path],
    code: i32,
) -> (serde_json::Value, String) {
    let out = home
        .cmd()
        .arg("backup")
        .args(args)
        .arg("--json")
        .args(paths)
        .assert()
        .code(code)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = if code == 2 {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
    };
    (summary, stderr)
}

/// `tapedeck backup --drive lto9 --memory-buffer 16MiB EXTRA SRC`, which must succeed:
/// its JSON summary.
pub fn backup_lto9(home: &Home, src: &Path, extra: &[&str]) -> serde_json::Value {
    let args = [&["--drive", "lto9", "--memory-buffer", "16MiB"][..], extra].concat();
    backup_json(home, &args, &[src], 0).0
}

/// What `pool_backup` passes: pool `p` on the LTO-9 drive, 64 KiB blocks, a 4 MiB buffer.
pub const POOL_BACKUP: [&str; 8] = [
    "--drive",
    "lto9",
    "--pool",
    "p",
    "--block-size",
    "64KiB",
    "--memory-buffer",
    "4MiB",
];

/// A backup of `src` into pool `p` on the LTO-9 drive with 64 KiB blocks and a 4 MiB
/// buffer, expected to exit with `code`: its JSON summary.
pub fn pool_backup(home: &Home, src: &Path, code: i32) -> serde_json::Value {
    backup_json(home, &POOL_BACKUP, &[src], code).0
}

/// A virtual library of `capacity` cartridges that does not wait for the drive model,
/// and a pool `p` (7 days' retention) for `pool_backup`.
pub fn pool_library(home: &Home, capacity: &str) {
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", capacity])
        .success();
    home.run(&["pool", "create", "--name", "p", "--retention", "7"])
        .success();
}

/// `src` under `root` with `a-big` (5 MB) and `b-big` (3 MB) of noise, then `smalls` files
/// `c-smallNN` of 100 kB: more than a 6 MiB cartridge holds, the cut falling inside `b-big`.
pub fn spanning_source(root: &Path, smalls: u64) -> PathBuf {
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a-big"), noise(5_000_000, 1)).unwrap();
    fs::write(src.join("b-big"), noise(3_000_000, 2)).unwrap();
    for i in 0..smalls {
        fs::write(src.join(format!("c-small{i:02}")), noise(100_000, 10 + i)).unwrap();
    }
    src
}

/// `tapedeck backup ARGS --json SRC` started in the background (no terminal).
pub fn spawn_backup_with(home: &Home, args: &[&str], src: &Path) -> std::process::Child {
    home.process()
        .arg("backup")
        .args(args)
        .arg("--json")
        .arg(src)
        .spawn()
        .unwrap()
}

/// A home with one backup of three files `a`, `b` and `c` of `size` bytes of noise (seeds 1
/// to 3) on TD0001L9: the home, the source directory and the backup's summary.
pub fn three_files_backed_up(size: usize) -> (Home, PathBuf, serde_json::Value) {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        fs::write(src.join(name), noise(size, i as u64 + 1)).unwrap();
    }
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let summary = backup_lto9(&home, &src, &[]);
    (home, src, summary)
}

/// A medium error on TD0001L9 two blocks after where the only version of `path` begins:
/// inside its data, for a file of a few MB.
pub fn read_error_inside(home: &Home, path: &Path) {
    let found = super::only_version(home, path);
    let block = found["segments"][0]["block"].as_u64().unwrap();
    home.run(&[
        "vlib",
        "set",
        "TD0001L9",
        "--read-error-at",
        &(block + 2).to_string(),
    ])
    .success();
}
