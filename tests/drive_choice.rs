//! The library picks tapes the drive can take, by the LTO rules: allocation and the next
//! volume of a backup, restore and verify; and it says where the tapes are.

mod common;
use common::*;

/// The default library: lto9 (LTO-9) and lto6 (LTO-6), slots 1-4 LTO-9, 5-8 LTO-6.
fn library_with_archive_pool() -> Home {
    let home = Home::with_fast_vlib();
    home.run(&[
        "pool",
        "create",
        "--name",
        "archive",
        "--retention",
        "30",
        "--kind",
        "archive",
    ])
    .success();
    home
}

fn backup_on(home: &Home, drive: &str, src: &std::path::Path) -> (serde_json::Value, String) {
    backup_json(
        home,
        &[
            "--drive",
            drive,
            "--pool",
            "archive",
            "--memory-buffer",
            "16MiB",
        ],
        &[src],
        0,
    )
}

#[test]
fn allocation_picks_a_cartridge_the_drive_can_write() {
    let home = library_with_archive_pool();
    let src = many_files(home.path(), 3, 1000);
    let (summary, stderr) = backup_on(&home, "lto6", &src);
    let volume = summary["volume"].as_str().unwrap();
    assert!(volume.ends_with("L6"), "{volume}: {stderr}");
    assert!(!stderr.contains("cannot be loaded"), "{stderr}");
}

#[test]
fn tape_load_says_what_the_drive_holds() {
    let home = Home::with_fast_vlib();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let out = home.stdout(&["tape", "load", "--drive", "lto9"]);
    assert!(out.contains("lto9 already holds TD0001L9"), "{out}");
}

#[test]
fn waiting_for_a_tape_is_logged_once_and_lists_only_what_the_drive_can_write() {
    let home = library_with_archive_pool();
    let src = many_files(home.path(), 3, 1000);
    // lto9 holds an LTO-9 tape of no use to lto6; lto6 is empty.
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let out = home
        .cmd()
        .args([
            "backup",
            "--drive",
            "lto6",
            "--change-timeout",
            "5",
            "--memory-buffer",
            "16MiB",
        ])
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("needs a tape").count(), 1, "{stderr}");
    assert!(stderr.contains("TD0005L6 (slot 5)"), "{stderr}");
    assert!(
        !stderr.contains("TD0001L9"),
        "an LTO-9 tape is no candidate: {stderr}"
    );
}

#[test]
fn volume_locations_follow_the_changer() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    let v = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(v["location"], "drive lto9", "{v}");
    // The changer puts it back into its slot.
    home.run(&["unload", "--drive", "lto9"]).success();
    let v = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(v["location"], "slot 1", "{v}");
    let list = home.stdout(&["volume", "list"]);
    assert!(
        list.contains("slot 1") && !list.contains("drive lto9"),
        "{list}"
    );
}

/// An LTO-6 volume written by lto6, then put back in its slot; lto9 holds TD0001L9.
fn lto6_volume_and_busy_lto9() -> (Home, String) {
    let home = library_with_archive_pool();
    let src = many_files(home.path(), 20, 1000);
    let (summary, _) = backup_on(&home, "lto6", &src);
    let volume = summary["volume"].as_str().unwrap().to_string();
    home.run(&["unload", "--drive", "lto6"]).success();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    (home, volume)
}

#[test]
fn verify_reads_in_a_drive_that_can_and_leaves_the_other_drive_alone() {
    let (home, volume) = lto6_volume_and_busy_lto9();
    let out = home.run(&["verify", "--tape", &volume]).success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!stderr.contains("Unloaded TD0001L9"), "{stderr}");
    assert_eq!(home.library()["drives"][0]["cartridge"], "TD0001L9");
    assert_eq!(home.library()["drives"][1]["cartridge"], volume.as_str());
}

#[test]
fn a_volume_no_drive_can_read_is_one_clear_error() {
    let (home, volume) = lto6_volume_and_busy_lto9();
    let out = home
        .cmd()
        .args(["verify", "--tape", &volume, "--drive", "lto9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no drive here can read"), "{stderr}");
    // lto9 kept its tape.
    assert_eq!(home.library()["drives"][0]["cartridge"], "TD0001L9");
}

#[test]
fn a_backup_on_lto6_that_fills_its_tape_continues_on_another_lto6_one() {
    let home = Home::new();
    pool_library(&home, "6MiB");
    // lto9 holds a blank LTO-9 cartridge, and slots 2-4 hold more: none is for lto6.
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = spanning_source(home.path(), 0);
    let args = [
        "--drive",
        "lto6",
        "--pool",
        "p",
        "--block-size",
        "64KiB",
        "--memory-buffer",
        "4MiB",
    ];
    let (summary, stderr) = backup_json(&home, &args, &[&src], 0);
    assert_eq!(summary["status"], "complete", "{summary}: {stderr}");
    let volumes = strings(&summary["volumes"]);
    assert!(volumes.len() >= 2, "{summary}");
    assert!(
        volumes
            .iter()
            .all(|v| v.ends_with("L6") || v.ends_with("L5")),
        "only cartridges lto6 can write: {volumes:?}"
    );
    assert!(!stderr.contains("cannot be loaded"), "{stderr}");
    assert_eq!(home.library()["drives"][0]["cartridge"], "TD0001L9");
    // The file cut by the end of the first tape is on both, and restores whole.
    let found = only_version(&home, src.join("b-big"));
    assert_eq!(found["segments"].as_array().unwrap().len(), 2, "{found}");
    let to = home.path().join("to");
    home.run(&[
        "restore",
        "--backup",
        summary["uuid"].as_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ])
    .success();
    same_files(&src, &under(&to, &src));
}
