//! `tapedeck verify` through the binary: a good tape verifies, a flipped byte names the
//! damaged member, a cut tape file names the missing ones, `--quick` reads headers only,
//! and what cannot be verified is refused with a clear message.

mod common;

use common::{noise, read_error_inside, tape_file, three_files_backed_up, Home};
use std::fs;
use std::path::Path;

/// `tapedeck verify ARGS --json`, expected to exit with `code`: the report and stderr.
fn verify(home: &Home, args: &[&str], code: i32) -> (serde_json::Value, String) {
    home.json_report(&[&["verify"][..], args, &["--json"]].concat(), code)
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["path"].as_str().unwrap().to_string(),
                o["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Flips one byte of the tape file at `at`.
fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn position_of(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the bytes are on the tape")
}

#[test]
fn a_good_tape_verifies_and_a_flipped_byte_names_its_member() {
    let (home, src, summary) = three_files_backed_up(900_000);
    let (report, _) = verify(&home, &["--tape", "TD0001L9"], 0);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["verified"], report["members"]);
    assert!(report["verified"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["data_bytes"], 2_700_000);

    // One byte in the middle of b's data.
    let tape = tape_file(&home, "TD0001L9", 1);
    let b = noise(900_000, 2);
    let at = position_of(&fs::read(&tape).unwrap(), &b[400_000..400_064]) + 32;
    flip(&tape, at);
    let (report, stderr) = verify(&home, &["--tape", "TD0001L9"], 1);
    let bad = statuses(&report);
    assert_eq!(
        bad,
        vec![(src.join("b").display().to_string(), "damaged".to_string())],
        "{report}"
    );
    assert!(
        report["outcomes"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("BLAKE3"),
        "{report}"
    );
    assert!(stderr.contains("not verified"), "{stderr}");
    // --quick reads headers only: the data damage is not its business.
    let (report, _) = verify(&home, &["--tape", "TD0001L9", "--quick"], 0);
    assert_eq!(report["data_bytes"], 0, "{report}");
    // By backup, the same finding.
    let (report, _) = verify(
        &home,
        &["--backup", &summary["uuid"].as_str().unwrap()[..8]],
        1,
    );
    assert_eq!(statuses(&report).len(), 1, "{report}");
}

#[test]
fn a_damaged_header_and_a_cut_tape_file_are_found_by_quick_verify() {
    let (home, src, _) = three_files_backed_up(900_000);
    let tape = tape_file(&home, "TD0001L9", 1);
    let bytes = fs::read(&tape).unwrap();
    // c's header: its name, inside the 512-byte record before c's data.
    let c = noise(900_000, 3);
    let data_at = position_of(&bytes, &c[..64]);
    flip(&tape, data_at - 512 + 5);
    let (report, _) = verify(&home, &["--tape", "TD0001L9", "--quick"], 1);
    let found = statuses(&report);
    assert_eq!(
        found,
        vec![(src.join("c").display().to_string(), "damaged".to_string())],
        "{report}"
    );
    // Cut the tape file after a's data: b and c are missing or cut short.
    let a = noise(900_000, 1);
    let a_end = position_of(&bytes, &a[899_936..]) + 64;
    let block = 512 * 1024;
    fs::write(&tape, &bytes[..a_end.div_ceil(block) * block]).unwrap();
    let (report, _) = verify(&home, &["--tape", "TD0001L9"], 1);
    let found = statuses(&report);
    let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert!(names.contains(&src.join("c").to_str().unwrap()), "{report}");
    assert!(
        found.iter().all(|(_, s)| s == "missing" || s == "damaged"),
        "{report}"
    );
    assert!(
        !names.contains(&src.join("a").to_str().unwrap()),
        "a is whole: {report}"
    );
}

#[test]
fn what_cannot_be_verified_is_refused_clearly() {
    let home = Home::with_fast_vlib();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9"]).success();
    let (_, stderr) = verify(&home, &["--tape", "TD0001L9"], 2);
    assert!(stderr.contains("holds no members"), "{stderr}");
    let (_, stderr) = verify(&home, &["--tape", "NOPE01L9"], 2);
    assert!(stderr.contains("no volume `NOPE01L9`"), "{stderr}");
    let (_, stderr) = verify(&home, &["--backup", "0000"], 2);
    assert!(stderr.contains("no backup `0000`"), "{stderr}");
    home.run(&["verify"]).code(2);
}

#[test]
fn an_injected_medium_error_is_damage_and_the_rest_verifies() {
    // Large enough that a block in the middle holds nothing but a's data.
    let (home, src, _) = three_files_backed_up(3_000_000);
    read_error_inside(&home, &src.join("a"));
    let (report, _) = verify(&home, &["--tape", "TD0001L9"], 1);
    let found = statuses(&report);
    assert_eq!(
        found,
        vec![(src.join("a").display().to_string(), "damaged".to_string())],
        "{report}"
    );
    assert!(report["verified"].as_u64().unwrap() >= 3, "{report}");
}
