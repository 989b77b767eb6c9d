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
