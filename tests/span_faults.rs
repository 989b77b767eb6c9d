//! Faults while a backup spans onto its next cartridge, through the binary against the
//! virtual library with the fault hook (`TAPEDECK_FAULT`, src/fault.rs): after each, the
//! catalogue check is clean (or names real damage) and the next backup runs.

mod common;

use common::{noise, Home};
use std::fs;
use std::path::{Path, PathBuf};

/// `n` files of `size` bytes of noise under `root`.
fn tree(root: &Path, n: usize, size: usize, seed: u64) -> PathBuf {
    fs::create_dir_all(root).unwrap();
    for i in 0..n {
        fs::write(root.join(format!("f{i:02}")), noise(size, seed + i as u64)).unwrap();
    }
    root.to_path_buf()
}

/// A library of 24 MiB LTO-9 cartridges, pool `p`, and a first small backup on
/// TD0001L9.
fn scene(small: &Path) -> Home {
    let home = Home::new();
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "24MiB"])
        .success();
    home.run(&["pool", "create", "--name", "p", "--retention", "7"])
        .success();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    backup(&home, small, None);
    home
}

/// `backup --pool p` of `src` with `fault` planned: exit status and JSON summary.
fn backup(home: &Home, src: &Path, fault: Option<&str>) -> (Option<i32>, serde_json::Value) {
    let mut cmd = home.cmd();
    if let Some(f) = fault {
        cmd.env("TAPEDECK_FAULT", f);
    }
    let out = cmd
        .args(["backup", "--drive", "lto9", "--pool", "p", "--json"])
        .arg(src)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    if fault.is_none() {
        assert!(
            out.status.success() && summary["status"] == "complete",
            "{summary} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.code(), summary)
}

fn volume_known(home: &Home, label: &str) -> bool {
    home.sql_value::<i64>(&format!(
        "SELECT COUNT(*) FROM volumes WHERE label = '{label}'"
    )) > 0
}

/// `catalog check`: exit code and stdout.
fn check(home: &Home) -> (Option<i32>, String) {
    let out = home.cmd().args(["catalog", "check"]).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Kills the spanning backup at each catalogue write in turn until one dies after the
/// label went on TD0002L9 and before the catalogue recorded it: the library then holds
/// a label the catalogue does not know, on a cartridge with nothing else on it.
#[test]
fn a_label_the_catalogue_never_recorded_is_a_note_and_the_cartridge_is_used_next() {
    let work = tempfile::tempdir().unwrap();
    let small = tree(&work.path().join("small"), 4, 30_000, 1);
    let big = tree(&work.path().join("big"), 13, 2_000_000, 100);
    for n in 1..=60 {
        let home = scene(&small);
        let (code, _) = backup(&home, &big, Some(&format!("kill:catalog-write:{n}")));
        if code.is_some() {
            // Ran to its end before the n-th catalogue write: no later one can hit.
            panic!("no catalogue write between the label and its record (up to {n})");
        }
        let labelled =
            fs::metadata(home.cartridge("TD0002L9").join("00000.tar")).is_ok_and(|m| m.len() > 0);
        if !labelled || volume_known(&home, "TD0002L9") {
            continue;
        }
        let (code, out) = check(&home);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.contains("note") && out.contains("holds only the label of volume TD0002L9"),
            "{out}"
        );
        // TD0001L9 is full: the next backup takes the cartridge holding only a label.
        let (_, summary) = backup(&home, &small, None);
        assert_eq!(summary["volume"], "TD0002L9", "{summary}");
        let (code, out) = check(&home);
        assert_eq!(code, Some(0), "{out}");
        return;
    }
    panic!("no kill left a label the catalogue does not know");
}

/// Bytes in the tape files of a virtual cartridge.
fn on_tape(home: &Home, barcode: &str) -> u64 {
    fs::read_dir(home.cartridge(barcode))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Kills the spanning backup at each catalogue write in turn until one dies after it
/// filled TD0001L9 to early warning (1 MiB before the end of a 24 MiB cartridge) and
/// before the catalogue recorded it full: the next backup must not append there.
#[test]
fn a_volume_left_appendable_past_early_warning_is_full_for_the_next_backup() {
    let work = tempfile::tempdir().unwrap();
    let small = tree(&work.path().join("small"), 4, 30_000, 1);
    let big = tree(&work.path().join("big"), 13, 2_000_000, 100);
    for n in 1..=60 {
        let home = scene(&small);
        let (code, _) = backup(&home, &big, Some(&format!("kill:catalog-write:{n}")));
        assert!(code.is_none(), "ran to its end before catalogue write {n}");
        let status: String = home.sql_value("SELECT status FROM volumes WHERE label = 'TD0001L9'");
        if status != "appendable" || on_tape(&home, "TD0001L9") < 23 << 20 {
            continue;
        }
        let (_, summary) = backup(&home, &small, None);
        assert_ne!(summary["volume"], "TD0001L9", "{summary}");
        let status: String = home.sql_value("SELECT status FROM volumes WHERE label = 'TD0001L9'");
        assert_eq!(status, "full");
        let (code, out) = check(&home);
        assert_eq!(code, Some(0), "{out}");
        return;
    }
    panic!("no kill left TD0001L9 appendable past early warning");
}

/// As above, on a volume whose capacity the catalogue does not know (a real drive says
/// early warning only on a write): the next backup learns that the tape is full only when
/// the tape ends under its index. It fails, the volume is marked full, and the backup
/// after it runs on another volume.
#[test]
fn a_tape_that_ends_under_the_index_is_full_for_the_next_backup() {
    let work = tempfile::tempdir().unwrap();
    let small = tree(&work.path().join("small"), 4, 30_000, 1);
    let big = tree(&work.path().join("big"), 13, 2_000_000, 100);
    for n in 1..=60 {
        let home = scene(&small);
        let (code, _) = backup(&home, &big, Some(&format!("kill:catalog-write:{n}")));
        assert!(code.is_none(), "ran to its end before catalogue write {n}");
        let status: String = home.sql_value("SELECT status FROM volumes WHERE label = 'TD0001L9'");
        if status != "appendable" || on_tape(&home, "TD0001L9") < 23 << 20 {
            continue;
        }
        home.sql()
            .execute(
                "UPDATE volumes SET capacity = NULL WHERE label = 'TD0001L9'",
                [],
            )
            .unwrap();
        let out = home
            .cmd()
            .args(["backup", "--drive", "lto9", "--pool", "p", "--json"])
            .arg(&small)
            .output()
            .unwrap();
        if out.status.success() {
            // The index fitted after all: nothing to learn from this kill.
            continue;
        }
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["volume"], "TD0001L9", "{summary}");
        assert!(
            summary["error"]
                .as_str()
                .unwrap_or("")
                .contains("physical end"),
            "{summary}"
        );
        let status: String = home.sql_value("SELECT status FROM volumes WHERE label = 'TD0001L9'");
        assert_eq!(status, "full");
        let (code, summary) = backup(&home, &small, None);
        assert_eq!(code, Some(0), "{summary}");
        assert_ne!(summary["volume"], "TD0001L9", "{summary}");
        return;
    }
    panic!("no kill left TD0001L9 appendable past early warning with the index not fitting");
}
