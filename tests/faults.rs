//! Faults in the middle of a backup, through the binary against the virtual library: a
//! volume that fails to write, mid-file and mid-span. Each ends with a consistent
//! catalogue that points only at copies on tape.

mod common;

use common::{
    backup_json, noise, only_version, pool_backup, pool_library, spanning_source, strings,
    tape_file, tar_extract, tar_extract_ok, tar_extract_volumes, under, versions, wait_json, Home,
};
use std::fs;
use std::path::Path;

/// A library of small LTO-9 cartridges and a pool `p`; the first cartridge is loaded.
fn library(home: &Home, capacity: &str) {
    pool_library(home, capacity);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
}

/// Where `find` says the only version of `path` is: (volume, tape file) of each segment.
fn placed(home: &Home, path: &Path) -> Vec<(String, u64)> {
    only_version(home, path)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["volume"].as_str().unwrap().to_string(),
                s["tape_file"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_write_error_mid_file_moves_to_the_next_volume_and_writes_the_file_again_whole() {
    let home = Home::new();
    library(&home, "64MiB");
    // Block 40 of the first cartridge fails: label at 0, filemark at 1, data from 2, so
    // the error hits 38 blocks of 64 KiB (2.4 MB) into the stream, inside `b-big`.
    home.run(&["vlib", "set", "TD0001L9", "--write-error-at", "40"])
        .success();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a-first"), noise(1_000_000, 1)).unwrap();
    fs::write(src.join("b-big"), noise(5_000_000, 2)).unwrap();
    for i in 0..10 {
        fs::write(src.join(format!("c-small{i}")), noise(50_000, 10 + i)).unwrap();
    }
    let summary = pool_backup(&home, &src, 0);
    assert_eq!(summary["status"], "complete", "{summary}");
    assert_eq!(strings(&summary["failed_volumes"]), ["TD0001L9"]);
    let volumes = strings(&summary["volumes"]);
    assert_eq!(volumes.len(), 2, "{summary}");
    assert_eq!(volumes[0], "TD0001L9");
    assert_eq!(summary["files"], 13, "{summary}");

    // The failed volume is in error, with the error on record.
    let failed = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(failed["status"], "error", "{failed}");
    // What was on it before the error stays recorded there; the file in flight is
    // recorded only on the next volume, whole.
    assert_eq!(
        placed(&home, &src.join("a-first")),
        [("TD0001L9".to_string(), 1)]
    );
    assert_eq!(placed(&home, &src.join("b-big")), [(volumes[1].clone(), 1)]);
    assert_eq!(
        placed(&home, &src.join("c-small9")),
        [(volumes[1].clone(), 1)]
    );

    // GNU tar restores the file in flight and the rest from the next volume alone...
    let out = home.path().join("out");
    tar_extract_ok(&tape_file(&home, &volumes[1], 1), &out);
    let back = under(&out, &src);
    assert_eq!(fs::read(back.join("b-big")).unwrap(), noise(5_000_000, 2));
    for i in 0..10 {
        assert_eq!(
            fs::read(back.join(format!("c-small{i}"))).unwrap(),
            noise(50_000, 10 + i)
        );
    }
    assert!(!back.join("a-first").exists());
    // ...and what came before the error from the failed one.
    let early = home.path().join("early");
    tar_extract(&tape_file(&home, "TD0001L9", 1), &early);
    let back = under(&early, &src);
    assert_eq!(fs::read(back.join("a-first")).unwrap(), noise(1_000_000, 1));
    // The index is on the last volume.
    assert!(tape_file(&home, &volumes[1], 2).exists());
}

#[test]
fn a_write_error_on_the_volume_a_span_continued_on_rewrites_the_split_file_whole() {
    let home = Home::new();
    library(&home, "6MiB");
    let src = spanning_source(home.path(), 20);
    // The second cartridge (the span's next volume) fails 5 blocks into its data, inside
    // the continuation of `b-big`.
    home.run(&["vlib", "set", "TD0002L9", "--write-error-at", "7"])
        .success();
    let summary = pool_backup(&home, &src, 0);
    assert_eq!(summary["status"], "complete", "{summary}");
    let volumes = strings(&summary["volumes"]);
    assert_eq!(
        strings(&summary["failed_volumes"]),
        ["TD0002L9"],
        "{summary}"
    );
    assert_eq!(volumes[..2], ["TD0001L9", "TD0002L9"], "{summary}");
    assert!(volumes.len() >= 3, "{summary}");
    // `b-big` was cut by the end of the first volume; its continuation failed, so it is
    // written whole on the third and recorded there only.
    assert_eq!(placed(&home, &src.join("b-big")), [(volumes[2].clone(), 1)]);
    let out = home.path().join("out");
    let done = tar_extract(&tape_file(&home, &volumes[2], 1), &out);
    let back = under(&out, &src);
    assert!(
        back.join("b-big").exists(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(fs::read(back.join("b-big")).unwrap(), noise(3_000_000, 2));
    // Every file has a good copy where the catalogue says.
    for i in 0..20 {
        let p = src.join(format!("c-small{i:02}"));
        let place = placed(&home, &p);
        assert!(
            !place.iter().any(|(v, _)| v == "TD0002L9"),
            "{p:?} recorded on the failed volume: {place:?}"
        );
    }
    let failed = home.json(&["volume", "show", "--tape", "TD0002L9", "--json"]);
    assert_eq!(failed["status"], "error", "{failed}");
}

#[test]
fn when_every_volume_fails_the_backup_fails_naming_the_volumes() {
    let home = Home::new();
    library(&home, "64MiB");
    let cartridges: Vec<String> = fs::read_dir(home.vlib().join("cartridges"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|b| b.ends_with("L9"))
        .collect();
    for c in &cartridges {
        home.run(&["vlib", "set", c, "--write-error-at", "10"])
            .success();
    }
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), noise(2_000_000, 3)).unwrap();
    let summary = pool_backup(&home, &src, 1);
    assert_eq!(summary["status"], "failed", "{summary}");
    // Only the source directory (written before the first error) is saved.
    assert_eq!(summary["bytes"], 0, "{summary}");
    let failed = strings(&summary["failed_volumes"]);
    assert_eq!(failed.len(), 2, "{summary}");
    for v in strings(&summary["volumes"]) {
        let shown = home.json(&["volume", "show", "--tape", &v, "--json"]);
        assert_eq!(shown["status"], "error", "{shown}");
    }
    // Nothing is recorded that is not on tape.
    let found = versions(&home, src.join("big"));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_changer_that_fails_to_move_fails_the_backup_naming_the_volume_and_the_file() {
    let home = Home::new();
    library(&home, "6MiB");
    home.run(&["vlib", "changer", "--jam", "on"]).success();
    let src = spanning_source(home.path(), 0);
    let (summary, stderr) = backup_json(
        &home,
        &["--drive", "lto9", "--pool", "p", "--block-size", "64KiB"],
        &[&src],
        1,
    );
    assert_eq!(summary["status"], "failed", "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("TD0001L9"), "{error}");
    assert!(error.contains("jammed"), "{error}");
    let in_flight = src.join("b-big");
    assert!(error.contains(in_flight.to_str().unwrap()), "{error}");
    assert!(stderr.contains("failed"), "{stderr}");
    // The full volume is full; the file before the cut is recorded, the one in flight not.
    let full = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(full["status"], "full", "{full}");
    assert_eq!(
        placed(&home, &src.join("a-big")),
        [("TD0001L9".to_string(), 1)]
    );
    let found = versions(&home, &in_flight);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn early_warning_injected_on_the_next_volume_spans_on_to_a_third() {
    let home = Home::new();
    library(&home, "6MiB");
    // The second cartridge reports early warning after 1 MiB.
    home.run(&["vlib", "set", "TD0002L9", "--early-warning-at", "1MiB"])
        .success();
    let src = spanning_source(home.path(), 0);
    let summary = pool_backup(&home, &src, 0);
    let volumes = strings(&summary["volumes"]);
    assert_eq!(volumes.len(), 3, "{summary}");
    assert_eq!(volumes[1], "TD0002L9", "{summary}");
    let out = home.path().join("out");
    tar_extract_volumes(&home, &volumes, &out);
    let back = under(&out, &src);
    assert_eq!(fs::read(back.join("b-big")).unwrap(), noise(3_000_000, 2));
    let segments = placed(&home, &src.join("b-big"));
    assert!(segments.len() >= 2, "{segments:?}");
}

#[test]
fn a_drive_that_goes_offline_while_the_backup_waits_for_a_tape_ends_it_cleanly() {
    let home = Home::new();
    library(&home, "6MiB");
    let src = spanning_source(home.path(), 0);
    // No pool, so no changer: the operator is asked, and nobody answers.
    let child = common::spawn_backup_with(
        &home,
        &[
            "--drive",
            "lto9",
            "--block-size",
            "64KiB",
            "--change-timeout",
            "6",
        ],
        &src,
    );
    // Once the first volume is full, the drive goes offline.
    let mut waited = 0;
    loop {
        let shown = home
            .cmd()
            .args(["volume", "show", "--tape", "TD0001L9", "--json"])
            .output()
            .unwrap();
        let shown: serde_json::Value =
            serde_json::from_slice(&shown.stdout).unwrap_or(serde_json::Value::Null);
        if shown["status"] == "full" {
            break;
        }
        waited += 1;
        assert!(waited < 200, "the first volume never filled: {shown}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    home.run(&["vlib", "set", "TD0001L9", "--not-ready", "on"])
        .success();
    let (summary, _) = wait_json(child, 1);
    assert_eq!(summary["status"], "failed", "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("TD0001L9"), "{error}");
    // A drive that is not ready looks to `st` like one without a tape.
    assert!(error.contains("lto9: no tape loaded"), "{error}");
    assert!(error.contains("b-big"), "{error}");
    assert_eq!(
        placed(&home, &src.join("a-big")),
        [("TD0001L9".to_string(), 1)]
    );
}
