//! `tapedeck catalog rebuild` through the binary, against the virtual library: after the
//! catalogue is lost, rebuilding the volumes brings `find` back with the same places and
//! hashes; nothing is recorded twice; a damaged index is reported and `--scan` records
//! the data from its tar headers; a spanned backup is recorded whole from its last volume.

mod common;

use common::{
    backup_json, backup_lto9, noise, pool_backup, pool_library, spanning_source, tape_file, under,
    versions, Home,
};
use std::fs;
use std::path::{Path, PathBuf};

/// A source tree: small files, a 2 MB file, a symlink, a long name.
fn source_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("home/me/docs")).unwrap();
    fs::write(src.join("home/me/notes.txt"), b"remember the milk\n").unwrap();
    for i in 0..20 {
        fs::write(
            src.join(format!("home/me/docs/page{i:02}.txt")),
            format!("page {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    fs::write(src.join("home/me/big.bin"), noise(2_000_000, 3)).unwrap();
    std::os::unix::fs::symlink("notes.txt", src.join("home/me/link")).unwrap();
    let long = "a-directory-name-that-is-quite-long-".repeat(4);
    fs::create_dir_all(src.join(&long)).unwrap();
    fs::write(src.join(&long).join("deep.txt"), b"deep\n").unwrap();
    src
}

fn forget_catalogue(home: &Home) {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", home.db().display()));
        if p.exists() {
            fs::remove_file(p).unwrap();
        }
    }
}

/// What must survive a rebuild of a file version.
fn essence(v: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "path": v["path"], "kind": v["kind"], "size": v["size"], "mtime_ns": v["mtime_ns"],
        "mode": v["mode"], "uid": v["uid"], "gid": v["gid"], "link": v["link"],
        "blake3": v["blake3"], "backup": v["backup"]["uuid"], "status": v["backup"]["status"],
        "started_at": v["backup"]["started_at"],
        "segments": v["segments"],
    })
}

/// `tapedeck catalog rebuild --drive lto9 --json --tape TAPE EXTRA`, expected to exit with
/// `code`: the report and stderr.
fn rebuild(home: &Home, tape: &str, extra: &[&str], code: i32) -> (serde_json::Value, String) {
    let args = [
        "catalog", "rebuild", "--drive", "lto9", "--json", "--tape", tape,
    ];
    home.json_report(&[&args[..], extra].concat(), code)
}

/// Puts the cartridge `barcode` into drive lto9 (the one there goes back to its slot).
fn load(home: &Home, barcode: &str) {
    if home.library()["drives"][0]["cartridge"] == barcode {
        return;
    }
    if !home.library()["drives"][0]["cartridge"].is_null() {
        home.run(&["unload", "--drive", "lto9"]).success();
    }
    let lib = home.library();
    let slot = lib["slots"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s == barcode)
        .unwrap_or_else(|| panic!("{barcode} in no slot: {lib}"))
        + 1;
    home.run(&["load", &slot.to_string(), "--drive", "lto9"])
        .success();
}

#[test]
fn after_the_catalogue_is_lost_rebuilding_the_volume_brings_find_back() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9", "--pool", "daily"])
        .success();
    let first = backup_lto9(&home, &src, &[]);
    let second = backup_lto9(&home, &src.join("home/me/docs"), &[]);
    let notes = src.join("home/me/notes.txt");
    let page = src.join("home/me/docs/page07.txt");
    let link = src.join("home/me/link");
    let before: Vec<Vec<serde_json::Value>> = [&notes, &page, &link]
        .iter()
        .map(|p| versions(&home, p).iter().map(essence).collect())
        .collect();
    assert_eq!(before[1].len(), 2, "page07 is in both backups");

    forget_catalogue(&home);
    // The library still holds the labelled volume: the empty catalogue says it was lost.
    let out = home
        .cmd()
        .args(["find", "--file", notes.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tapedeck catalog rebuild --tape TD0001L9"),
        "{stderr}"
    );

    // The label names pool daily: the rebuild will not invent its retention.
    let (_, stderr) = rebuild(&home, "TD0001L9", &[], 2);
    assert!(
        stderr.contains("pool daily") && stderr.contains("tapedeck pool create"),
        "{stderr}"
    );
    home.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    let (report, stderr) = rebuild(&home, "TD0001L9", &[], 0);
    assert_eq!(report["known_before"], false, "{report}");
    assert_eq!(report["status"], "appendable", "{report}");
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let backups = report["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{report} {stderr}");
    assert_eq!(backups[0]["uuid"], first["uuid"]);
    assert_eq!(backups[1]["uuid"], second["uuid"]);
    assert!(backups.iter().all(|b| b["outcome"] == "recorded"));
    assert_eq!(backups[0]["files"], first["files"]);
    let kinds: Vec<&str> = report["tape_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["data", "index", "data", "index"]);

    // find answers as before: same backups, places on tape, hashes.
    let after: Vec<Vec<serde_json::Value>> = [&notes, &page, &link]
        .iter()
        .map(|p| versions(&home, p).iter().map(essence).collect())
        .collect();
    assert_eq!(after, before);
    let found = home.stdout(&["find", "page1"]);
    assert!(found.contains("page13.txt"), "{found}");
    // restore works from the rebuilt catalogue: the newest version, byte for byte.
    let back = home.path().join("back");
    home.run(&[
        "restore",
        "--drive",
        "lto9",
        "--file",
        src.join("home/me").to_str().unwrap(),
        "--to",
        back.to_str().unwrap(),
    ])
    .success();
    assert_eq!(
        fs::read(under(&back, &notes)).unwrap(),
        fs::read(&notes).unwrap()
    );
    let big = src.join("home/me/big.bin");
    assert_eq!(
        fs::read(under(&back, &big)).unwrap(),
        fs::read(&big).unwrap()
    );
    assert_eq!(
        fs::read(under(&back, &page)).unwrap(),
        fs::read(&page).unwrap()
    );
    home.run(&["catalog", "check"]).success();
    let volume = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(volume["pool"], "daily");
    assert_eq!(volume["tape_files"], 5, "{volume}");
    assert!(
        volume["expires_at"].as_i64().is_some(),
        "protected again: {volume}"
    );
    let status = home.json(&["status", "--json"]);
    assert!(
        status.to_string().contains("rebuild"),
        "origin shown: {status}"
    );

    // Rebuilding again records nothing twice.
    let (again, _) = rebuild(&home, "TD0001L9", &[], 0);
    assert!(
        again["backups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["outcome"] == "skipped" && b["origin"] == "rebuild"),
        "{again}"
    );
    assert_eq!(versions(&home, &page).len(), 2);
    // A backup appends after what the rebuild found.
    let third = backup_lto9(&home, &notes, &[]);
    assert_eq!(third["tape_file"], 5, "{third}");
}

#[test]
fn a_damaged_index_is_reported_and_scan_records_the_data_from_its_tar_headers() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let summary = backup_lto9(&home, &src, &[]);
    let big = src.join("home/me/big.bin");
    let original = versions(&home, &big);
    forget_catalogue(&home);
    // Damage the compressed index inside tape file 2.
    let index = tape_file(&home, "TD0001L9", 2);
    let mut bytes = fs::read(&index).unwrap();
    for b in &mut bytes[600..700] {
        *b = 0;
    }
    fs::write(&index, bytes).unwrap();

    let (report, stderr) = rebuild(&home, "TD0001L9", &[], 1);
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("tape file 2") && problems.contains("--scan"),
        "{report}"
    );
    assert!(stderr.contains("could not be recorded"), "{stderr}");
    assert!(versions(&home, &big).is_empty(), "nothing half-recorded");
    home.run(&["catalog", "check"]).success();

    let (report, _) = rebuild(&home, "TD0001L9", &["--scan"], 0);
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let scanned = &report["backups"][0];
    assert_eq!(scanned["source"], "scan", "{report}");
    assert_eq!(scanned["status"], "complete", "{report}");
    assert_eq!(scanned["files"], summary["files"], "{report}");
    let found = versions(&home, &big);
    assert_eq!(found.len(), 1);
    // The scan hashed the data and found the member where the backup put it.
    assert_eq!(found[0]["blake3"], original[0]["blake3"]);
    assert_eq!(
        found[0]["blake3"],
        blake3::hash(&fs::read(&big).unwrap()).to_hex().as_str()
    );
    assert_eq!(found[0]["segments"], original[0]["segments"]);
    assert_eq!(found[0]["mode"], original[0]["mode"]);
    let link = versions(&home, src.join("home/me/link"));
    assert_eq!(link[0]["link"], "notes.txt");
    home.run(&["catalog", "check"]).success();
    // Scanning again does not scan what is recorded.
    let (again, _) = rebuild(&home, "TD0001L9", &["--scan"], 0);
    assert!(again["backups"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(versions(&home, &big).len(), 1);
}

#[test]
fn a_spanned_backup_is_recorded_whole_from_its_last_volume() {
    let home = Home::new();
    pool_library(&home, "6MiB");
    let src = spanning_source(home.path(), 45);
    let summary = pool_backup(&home, &src, 0);
    let volumes: Vec<String> = summary["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(volumes.len() >= 3, "{summary}");
    let files = ["a-big", "b-big", "c-small00", "c-small44"].map(|f| src.join(f));
    let before: Vec<Vec<serde_json::Value>> = files
        .iter()
        .map(|f| versions(&home, f).iter().map(essence).collect())
        .collect();
    forget_catalogue(&home);
    home.run(&["pool", "create", "--name", "p", "--retention", "7"])
        .success();

    // The first volume alone: its data continues elsewhere, and no index is on it.
    load(&home, &volumes[0]);
    let (report, _) = rebuild(&home, &volumes[0], &[], 0);
    assert!(report["backups"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["notes"]
            .to_string()
            .contains("continues on other volumes"),
        "{report}"
    );
    assert_eq!(report["status"], "full", "{report}");
    // With --scan it records what it holds: a-big whole, b-big's first part.
    let (report, _) = rebuild(&home, &volumes[0], &["--scan"], 0);
    let scanned = report["backups"][0]["uuid"].as_str().unwrap().to_string();
    assert_eq!(report["backups"][0]["status"], "failed", "a part: {report}");
    let a = versions(&home, &files[0]);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["blake3"], before[0][0]["blake3"]);
    assert_eq!(a[0]["backup"]["uuid"], scanned);

    // The last volume holds the index: the whole backup, on every volume, replacing the scan.
    let last = volumes.last().unwrap();
    load(&home, last);
    let (report, _) = rebuild(&home, last, &[], 0);
    let b = &report["backups"][0];
    assert_eq!(b["uuid"], summary["uuid"], "{report}");
    assert_eq!(b["outcome"], "replaced", "{report}");
    assert_eq!(b["replaced"][0], scanned.as_str());
    assert_eq!(b["volumes"], serde_json::json!(volumes), "{report}");
    let after: Vec<Vec<serde_json::Value>> = files
        .iter()
        .map(|f| versions(&home, f).iter().map(essence).collect())
        .collect();
    assert_eq!(after, before);
    home.run(&["catalog", "check"]).success();
    // restore reads the file cut by a volume end from the two volumes.
    let back = home.path().join("back");
    home.run(&[
        "restore",
        "--drive",
        "lto9",
        "--file",
        files[1].to_str().unwrap(),
        "--to",
        back.to_str().unwrap(),
    ])
    .success();
    assert!(fs::read(under(&back, &files[1])).unwrap() == fs::read(&files[1]).unwrap());
    for v in &volumes[..volumes.len() - 1] {
        let shown = home.json(&["volume", "show", "--tape", v, "--json"]);
        assert_eq!(shown["status"], "full", "{shown}");
    }

    // A middle volume: its one tape file is part of the recorded backup.
    load(&home, &volumes[1]);
    let (report, _) = rebuild(&home, &volumes[1], &["--scan"], 0);
    assert!(report["backups"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(
        report["tape_files"][0]["backup"], summary["uuid"],
        "{report}"
    );
    assert_eq!(report["known_before"], true);
    let shown = home.json(&["volume", "show", "--tape", &volumes[1], "--json"]);
    assert!(
        shown["uuid"].is_string(),
        "filled in from the label: {shown}"
    );
    assert_eq!(versions(&home, &files[1]).len(), 1, "no duplicate");
}

#[test]
fn a_wrong_missing_or_blank_tape_is_refused_with_what_to_load() {
    let home = Home::with_fast_vlib();
    // Without --json: what the operator reads.
    let refused = |tape: &str| {
        let out = home
            .cmd()
            .args(["catalog", "rebuild", "--drive", "lto9", "--tape", tape])
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        String::from_utf8_lossy(&out).into_owned()
    };
    let text = refused("TD0002L9");
    assert!(
        text.contains("holds no tape") && text.contains("tapedeck load 2 --drive lto9"),
        "{text}"
    );
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    assert!(refused("TD0001L9").contains("blank"));
    home.run(&["volume", "label", "--drive", "lto9"]).success();
    let text = refused("TD0002L9");
    assert!(
        text.contains("is volume TD0001L9, not TD0002L9") && text.contains("slot 2"),
        "{text}"
    );
    // A labelled volume without backups rebuilds to itself.
    let (report, _) = rebuild(&home, "TD0001L9", &[], 0);
    assert_eq!(report["status"], "empty", "{report}");
    assert!(report["tape_files"].as_array().unwrap().is_empty());
}

#[test]
fn an_incremental_chain_rebuilt_in_any_order_goes_on_as_before() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..10 {
        fs::write(src.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    let job = |extra: &[&str]| backup_lto9(&home, &src, &[&["--job", "home"][..], extra].concat());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let full = job(&[]);
    fs::write(src.join("f3"), b"changed\n").unwrap();
    // Backups a second apart, as they are in life: the catalogue keeps seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The incremental goes on the second cartridge.
    load(&home, "TD0002L9");
    let inc = job(&["--incremental"]);
    assert_eq!(inc["parent"], full["uuid"], "{inc}");
    forget_catalogue(&home);

    // The incremental's volume first: its parent is not known yet.
    let (report, _) = rebuild(&home, "TD0002L9", &[], 0);
    assert_eq!(report["backups"][0]["uuid"], inc["uuid"], "{report}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("builds on backup") && notes.contains(full["uuid"].as_str().unwrap()),
        "{report}"
    );
    load(&home, "TD0001L9");
    rebuild(&home, "TD0001L9", &[], 0);
    load(&home, "TD0002L9");
    let (report, _) = rebuild(&home, "TD0002L9", &[], 0);
    assert_eq!(report["backups"][0]["outcome"], "skipped", "{report}");
    assert!(
        report["notes"].to_string().contains("linked to its parent"),
        "{report}"
    );
    home.run(&["catalog", "check"]).success();

    // The next incremental compares with the rebuilt chain: only the change is saved.
    fs::write(src.join("f7"), b"changed too\n").unwrap();
    let next = job(&["--incremental"]);
    assert_eq!(next["parent"], inc["uuid"], "{next}");
    assert_eq!(next["unchanged"], 9, "{next}");
}

#[test]
fn an_interrupted_rebuild_leaves_no_half_recorded_backup() {
    use tapedeck::rebuild::{self, Options, Progress, RebuildError};
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let first = backup_lto9(&home, &src, &[]);
    let second = backup_lto9(&home, &src.join("home/me/docs"), &[]);
    forget_catalogue(&home);

    let mut cat = home.catalog();
    let lib = tapedeck::vlib::Library::open(&home.vlib()).unwrap();
    let mut drive = lib.open_drive("lto9").unwrap();
    let opts = Options::default();
    let interrupt = opts.interrupt.clone();
    // Ctrl-C while the second backup's index is being read.
    let mut progress = |p: Progress| {
        if p == (Progress::TapeFile { tape_file: 4 }) {
            interrupt.request();
        }
    };
    let err = rebuild::rebuild_volume(&mut drive, &mut cat, "TD0001L9", &opts, &mut progress)
        .unwrap_err();
    assert!(matches!(err, RebuildError::Interrupted), "{err}");
    let known = |u: &serde_json::Value| cat.known_backup(u.as_str().unwrap()).unwrap();
    assert!(known(&first["uuid"]).is_some(), "the whole backup stays");
    assert!(known(&second["uuid"]).is_none(), "the half one is gone");
    assert!(cat.check().unwrap().is_ok(), "{:?}", cat.check().unwrap());
}

#[test]
fn a_tape_file_that_cannot_be_read_is_reported_and_the_rest_of_the_volume_is_read() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let first = backup_lto9(&home, &src.join("home/me/docs"), &[]);
    let second = backup_lto9(&home, &src.join("home/me/docs"), &[]);
    forget_catalogue(&home);
    // The first backup's index (tape file 2) is at block 4.
    assert_eq!(first["first_block"], 2);
    home.run(&["vlib", "set", "TD0001L9", "--read-error-at", "4"])
        .success();
    let (report, stderr) = rebuild(&home, "TD0001L9", &[], 1);
    assert_eq!(report["tape_files"][1]["kind"], "unreadable", "{report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("tape file 2: cannot be read") && problems.contains("medium error"),
        "{report}"
    );
    assert!(
        problems.contains("--scan records data tape file 1"),
        "{report}"
    );
    assert!(stderr.contains("could not be recorded"), "{stderr}");
    // What follows the bad spot is recorded.
    assert_eq!(report["backups"][0]["uuid"], second["uuid"], "{report}");
    // --scan records the data the unreadable index described.
    let (report, _) = rebuild(&home, "TD0001L9", &["--scan"], 0);
    let scanned: Vec<_> = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] == "scan" && b["tape_file"] == 1)
        .collect();
    assert_eq!(scanned.len(), 1, "{report}");
    let page = versions(&home, src.join("home/me/docs/page03.txt"));
    assert_eq!(page.len(), 2, "both backups' copies");
    home.run(&["catalog", "check"]).success();
}

/// A sparse file of `islands` 4 KiB data runs, 1 MiB apart.
fn sparse_file(path: &Path, islands: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::File::create(path).unwrap();
    for i in 0..islands {
        f.seek(SeekFrom::Start(i << 20)).unwrap();
        f.write_all(&noise(4096, i + 1)).unwrap();
    }
    f.set_len(islands << 20).unwrap();
}

#[test]
fn scan_reads_what_gnu_tar_writes_as_the_dd_strategy_records_it() {
    let home = Home::with_fast_vlib();
    let proj = home.path().join("proj");
    let long = "a-directory-name-that-is-quite-long-".repeat(4);
    fs::create_dir_all(proj.join(&long)).unwrap();
    fs::write(proj.join(&long).join("deep.txt"), b"deep\n").unwrap();
    fs::write(proj.join("plain.bin"), noise(300_000, 9)).unwrap();
    // More holes than an old GNU sparse header holds: extension records follow it.
    sparse_file(&proj.join("holes-gnu"), 12);
    sparse_file(&proj.join("holes-pax"), 3);
    std::os::unix::fs::symlink("plain.bin", proj.join("link")).unwrap();
    let gnu = home.path().join("gnu.tar");
    let pax = home.path().join("pax.tar");
    let deep = format!("proj/{long}/deep.txt");
    for (archive, format, members) in [
        (
            &gnu,
            "--format=gnu",
            vec!["proj/holes-gnu", "proj/plain.bin", "proj/link"],
        ),
        (&pax, "--format=pax", vec!["proj/holes-pax", deep.as_str()]),
    ] {
        let ok = std::process::Command::new("tar")
            .arg("-C")
            .arg(home.path())
            .args(["--sparse", format, "-cf"])
            .arg(archive)
            .args(&members)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let dd = ["--drive", "lto9", "--strategy", "dd", "--from"];
    let from = [gnu.to_str().unwrap(), pax.to_str().unwrap()];
    let (summary, _) = backup_json(&home, &[&dd[..], &from].concat(), &[], 0);
    assert_eq!(summary["status"], "complete", "{summary}");
    let names = [
        "/proj/holes-gnu",
        "/proj/holes-pax",
        "/proj/plain.bin",
        "/proj/link",
        &format!("/proj/{long}/deep.txt"),
    ];
    let before: Vec<serde_json::Value> = names
        .iter()
        .map(|n| versions(&home, Path::new(n))[0].clone())
        .collect();
    forget_catalogue(&home);
    fs::write(tape_file(&home, "TD0001L9", 2), vec![0u8; 512 * 1024]).unwrap();
    let (report, _) = rebuild(&home, "TD0001L9", &["--scan"], 0);
    assert_eq!(report["backups"][0]["source"], "scan", "{report}");
    assert!(report["notes"].to_string().contains("sparse"), "{report}");
    for (name, was) in names.iter().zip(&before) {
        let now = &versions(&home, Path::new(name))[0];
        for field in [
            "kind", "size", "mode", "mtime_ns", "link", "blake3", "segments",
        ] {
            assert_eq!(now[field], was[field], "{name}: {field}");
        }
    }
    assert_eq!(before[0]["size"], 12 << 20);
}

/// Flips one bit in the first packed member record, leaving its checksum as it was.
fn damage_a_member_record(home: &Home) {
    let sql = home.sql();
    let (first, mut data): (i64, Vec<u8>) = sql
        .query_row(
            "SELECT first_seq, data FROM members ORDER BY backup_id, first_seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    data[1] ^= 1;
    sql.execute(
        "UPDATE members SET data = ?1 WHERE first_seq = ?2",
        rusqlite::params![data, first],
    )
    .unwrap();
}

#[test]
fn a_scanned_backup_whose_records_are_damaged_is_scanned_again() {
    let home = Home::with_fast_vlib();
    let src = source_tree(home.path());
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let summary = backup_lto9(&home, &src, &[]);
    forget_catalogue(&home);
    // No index to record it from: only --scan can.
    let index = tape_file(&home, "TD0001L9", 2);
    let mut bytes = fs::read(&index).unwrap();
    bytes[600..700].fill(0);
    fs::write(&index, bytes).unwrap();
    let (report, _) = rebuild(&home, "TD0001L9", &["--scan"], 0);
    let scanned = report["backups"][0]["uuid"].as_str().unwrap().to_string();
    assert_eq!(report["backups"][0]["source"], "scan", "{report}");
    let big = src.join("home/me/big.bin");
    let original = versions(&home, &big);

    damage_a_member_record(&home);
    home.run(&["catalog", "check"]).code(1);
    // Without --scan the rebuild says what will record it again.
    let (report, _) = rebuild(&home, "TD0001L9", &[], 1);
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(&scanned) && problems.contains("--scan"),
        "{report}"
    );
    let (report, _) = rebuild(&home, "TD0001L9", &["--scan"], 0);
    let again = &report["backups"][0];
    assert_eq!(again["outcome"], "replaced", "{report}");
    assert_eq!(again["replaced"][0], scanned.as_str(), "{report}");
    assert_eq!(again["files"], summary["files"], "{report}");
    home.run(&["catalog", "check"]).success();
    let found = versions(&home, &big);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["blake3"], original[0]["blake3"]);
    assert_eq!(found[0]["segments"], original[0]["segments"]);
    let back = home.path().join("back");
    home.run(&[
        "restore",
        "--drive",
        "lto9",
        "--file",
        big.to_str().unwrap(),
        "--to",
        back.to_str().unwrap(),
    ])
    .success();
    assert_eq!(
        fs::read(under(&back, &big)).unwrap(),
        fs::read(&big).unwrap()
    );
}
