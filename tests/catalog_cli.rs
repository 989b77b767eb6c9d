//! Pools, volumes, labels and catalogue queries through the command line, with the
//! catalogue filled through the library where no backup command exists to do it.

mod common;

use common::{tape_file, Home};
use predicates::prelude::*;
use std::fs;
use tapedeck::catalog::{BackupStatus, Catalog, FileKind, FileRecord, NewBackup, SegmentRecord};
use tapedeck::tape::TapeDrive;
use tapedeck::vlib::Library;

/// Records a finished backup of `paths` on `volume` (as the writer will).
fn record_backup(h: &Home, volume: &str, job: &str, started: i64, paths: &[(&str, i64)]) {
    let mut cat = h.catalog();
    let vol = cat.volume(volume).unwrap();
    let uuid = format!("{job}-{started}");
    let pool = vol.pool.clone();
    let id = cat
        .begin_backup(&NewBackup {
            uuid: &uuid,
            job: Some(job),
            kind: "full",
            pool: pool.as_deref(),
            started_at: started,
            drive: Some("lto9"),
            origin: "tapedeck",
            ..Default::default()
        })
        .unwrap();
    cat.add_backup_volume(id, 0, vol.id, Some(1), Some(2))
        .unwrap();
    let mut batch = cat.file_batch(id);
    for (i, (path, size)) in paths.iter().enumerate() {
        batch
            .push(FileRecord {
                path: path.to_string(),
                kind: FileKind::File,
                size: *size,
                mtime_ns: Some(started * 1_000_000_000),
                mode: Some(0o644),
                uid: Some(0),
                gid: Some(0),
                link: None,
                blake3: Some([7; 32]),
                segments: vec![SegmentRecord {
                    volume_id: vol.id,
                    tape_file: Some(1),
                    block: Some(2 + i as i64),
                    offset: Some(0),
                    file_offset: 0,
                    length: *size,
                }],
            })
            .unwrap();
    }
    batch.finish().unwrap();
    cat.finish_backup(id, BackupStatus::Complete, started + 60, None)
        .unwrap();
}

#[test]
fn pools_are_created_listed_and_typos_suggested() {
    let h = Home::with_fast_vlib();
    h.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success()
        .stdout(predicate::str::contains(
            "Created pool daily (daily, data kept 30 days)",
        ));
    h.run(&[
        "pool",
        "create",
        "--name",
        "yearly",
        "--retention",
        "3650",
        "--kind",
        "archive",
    ])
    .success();
    h.run(&["pool", "create", "--name", "daily", "--retention", "3"])
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    let pools = h.json(&["pool", "list", "--json"]);
    assert_eq!(pools.as_array().unwrap().len(), 2);
    assert_eq!(pools[1]["kind"], "archive");
    h.run(&[
        "pool",
        "add-volume",
        "--pool",
        "dayly",
        "--tape",
        "TD0002L9",
    ])
    .code(2)
    .stderr(predicate::str::contains("did you mean `daily`?"));
    h.run(&[
        "pool",
        "add-volume",
        "--pool",
        "daily",
        "--tape",
        "TD0002L9",
    ])
    .success();
    let vols = h.json(&["list", "--pool", "daily", "--json"]);
    assert_eq!(vols[0]["label"], "TD0002L9");
    assert_eq!(vols[0]["status"], "empty");
    h.run(&["volume", "show", "--tape", "TD0002L8"])
        .code(2)
        .stderr(predicate::str::contains("did you mean `TD0002L9`?"));
}

#[test]
fn labelling_writes_tape_file_zero_that_tar_reads() {
    let h = Home::with_fast_vlib();
    h.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    h.run(&[
        "volume",
        "label",
        "--pool",
        "daily",
        "--drive",
        "lto9",
        "--block-size",
        "256KiB",
    ])
    .success()
    .stdout(predicate::str::contains(
        "Labelled TD0001L9 in lto9 (pool daily, 256 KiB blocks)",
    ));
    let label_file = tape_file(&h, "TD0001L9", 0);
    assert_eq!(fs::metadata(&label_file).unwrap().len(), 256 * 1024);
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(&label_file)
        .arg("TAPEDECK-LABEL.json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let label: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(label["label"], "TD0001L9");
    assert_eq!(label["pool"], "daily");
    assert_eq!(label["block_size"], 262144);
    let v = h.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(v["uuid"], label["uuid"]);
    assert_eq!(v["status"], "empty");
    assert_eq!(v["media"], "LTO-9");
    // The drive is left after the label, where data is appended.
    assert_eq!(
        h.stdout(&["tape", "tell", "--drive", "lto9"]),
        "At block 2.\n"
    );
    h.run(&["volume", "label", "--tape", "OTHER1", "--drive", "lto9"])
        .code(2)
        .stderr(predicate::str::contains(
            "is labelled TD0001L9; use --force",
        ));
}

#[test]
fn unexpired_data_is_protected_until_forced() {
    let h = Home::with_fast_vlib();
    h.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    h.run(&["volume", "label", "--pool", "daily"]).success();
    let now = jiff::Timestamp::now().as_second();
    record_backup(&h, "TD0001L9", "home", now, &[("/home/a.txt", 5)]);
    h.run(&["volume", "label", "--pool", "daily"])
        .code(2)
        .stderr(predicate::str::contains("protected until"))
        .stderr(predicate::str::contains("--force"));
    h.run(&["volume", "label", "--pool", "daily", "--force"])
        .success();
    let v = h.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(v["passes"], 2);
    assert_eq!(v["expires_at"], serde_json::Value::Null);
}

#[test]
fn foreign_data_is_not_overwritten_without_force() {
    let h = Home::with_fast_vlib();
    h.run(&["load", "2", "--drive", "lto9"]).success();
    {
        let lib = Library::open(&h.path().join("vlib")).unwrap();
        let mut d = lib.open_drive("lto9").unwrap();
        d.set_block_size(10240).unwrap();
        d.rewind().unwrap();
        let archive = std::process::Command::new("tar")
            .args(["-cf", "-", "-C", "/", "etc/hostname"])
            .output()
            .unwrap()
            .stdout;
        for block in archive.chunks(10240) {
            d.write_block(block).unwrap();
        }
    }
    h.run(&["volume", "label", "--drive", "lto9"])
        .code(2)
        .stderr(predicate::str::contains(
            "a tar archive starting with `etc/hostname`",
        ));
    h.run(&["volume", "label", "--drive", "lto9", "--force"])
        .success();
}

#[test]
fn find_and_list_answer_from_the_catalogue() {
    let h = Home::with_fast_vlib();
    h.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    h.run(&["volume", "label", "--pool", "daily"]).success();
    record_backup(
        &h,
        "TD0001L9",
        "home",
        1_700_000_000,
        &[
            ("/home/u/Holiday-2024.mp4", 1000),
            ("/home/u/notes.txt", 10),
        ],
    );
    record_backup(
        &h,
        "TD0001L9",
        "home",
        1_700_100_000,
        &[("/home/u/notes.txt", 12)],
    );
    let v = h.json(&["find", "--file", "/home/u/notes.txt", "--json"]);
    let versions = v.as_array().unwrap();
    assert_eq!(versions.len(), 2, "every version");
    assert_eq!(versions[0]["size"], 12, "newest first");
    assert_eq!(versions[0]["segments"][0]["volume"], "TD0001L9");
    assert_eq!(versions[0]["segments"][0]["tape_file"], 1);
    assert_eq!(versions[0]["backup"]["job"], "home");
    let v = h.json(&["find", "holiday", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["path"], "/home/u/Holiday-2024.mp4");
    let v = h.json(&["find", "*.TXT", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    h.run(&["find", "holiday"])
        .success()
        .stdout(predicate::str::contains("TD0001L9 file 1 block 2"));
    h.run(&["find", "--file", "relative/path"]).code(2);
    let listed = h.json(&["list", "--tape", "TD0001L9", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    h.run(&["list", "--tape", "TD0001L9"])
        .success()
        .stdout(predicate::str::contains("3 files"));
    let status = h.json(&["status", "--job", "home", "--json"]);
    assert_eq!(status.as_array().unwrap().len(), 2);
    assert_eq!(status[0]["volumes"][0], "TD0001L9");
    h.run(&["status", "--job", "hme"])
        .code(2)
        .stderr(predicate::str::contains("did you mean `home`?"));
    let inv = h.json(&["inventory", "--json"]);
    let drive = &inv["elements"][0];
    assert_eq!(drive["element"], "drive lto9");
    assert_eq!(drive["volume"]["pool"], "daily");
}

#[test]
fn a_catalogue_from_a_newer_tapedeck_is_refused() {
    let h = Home::with_fast_vlib();
    h.run(&["pool", "list"]).success();
    let conn = h.sql();
    conn.pragma_update(None, "user_version", 42).unwrap();
    drop(conn);
    h.run(&["pool", "list"])
        .code(2)
        .stderr(predicate::str::contains(
            "newer tapedeck (schema version 42",
        ));
}

#[test]
fn check_and_online_backup() {
    let h = Home::with_fast_vlib();
    h.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    h.run(&["catalog", "check"])
        .success()
        .stdout(predicate::str::contains("is consistent"));
    let copy = h.path().join("copy.db");
    h.run(&["catalog", "backup", "--to", copy.to_str().unwrap()])
        .success();
    let cat = Catalog::open(&copy).unwrap();
    assert_eq!(cat.pool("daily").unwrap().retention_days, 30);
    h.run(&["catalog", "backup", "--to", copy.to_str().unwrap()])
        .code(2)
        .stderr(predicate::str::contains("refusing to overwrite"));
    let conn = h.sql();
    conn.execute(
        "INSERT INTO volumes (label, status, used, capacity) VALUES ('BAD', 'empty', 20, 10)",
        [],
    )
    .unwrap();
    drop(conn);
    h.run(&["catalog", "check"])
        .code(1)
        .stdout(predicate::str::contains(
            "volume BAD: used 20 > capacity 10",
        ));
}
