//! `tapedeck catalog import-tape` through the binary: tapes tapedeck did not write, as
//! pytp wrote them (`tar -cf - ... | mbuffer > /dev/nst0`, one plain GNU tar archive per
//! tape file, no label), catalogued so that `find`, `restore` and `verify` work on them;
//! importing again records nothing twice; a damaged tape file costs only itself; and
//! `migrate-pytp` and the import agree on one volume and one backup per tape file, in
//! either order.

mod common;

use common::{noise, only_version, under, versions, Home};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tapedeck::tape::{Changer, Element, TapeDrive};
use tapedeck::vlib::Library;

/// The tape's block size: `tar -b 128` records.
const BLOCK: usize = 65536;
const TAPE: &str = "TD0001L9";

/// What goes into one tape file.
enum TapeFile {
    /// A filemark and nothing before it.
    Empty,
    Data(Vec<u8>),
}

/// `tar -cf - -b 128 -C root PATHS` with the system's GNU tar, as pytp ran it.
fn gnu_tar(root: &Path, paths: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["-cf", "-", "-b", "128", "-C"])
        .arg(root)
        .args(paths)
        .output()
        .expect("GNU tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len() % BLOCK, 0, "tar pads to whole records");
    out.stdout
}

/// Writes `files` onto the cartridge in slot 1 from BOT, through drive lto9 as `st` would
/// take them (each tape file closed by a filemark), and leaves it loaded there.
fn write_foreign_tape(home: &Home, files: &[TapeFile]) {
    write_foreign_tape_from(home, 1, files)
}

/// As [`write_foreign_tape`], for the cartridge in slot `slot` (the drive must be empty).
fn write_foreign_tape_from(home: &Home, slot: u32, files: &[TapeFile]) {
    let lib = Library::open(&home.vlib()).unwrap();
    lib.changer()
        .move_medium(Element::Slot(slot), Element::Drive(0))
        .unwrap();
    let mut drive = lib.open_drive("lto9").unwrap();
    drive.set_block_size(BLOCK as u32).unwrap();
    drive.rewind().unwrap();
    for f in files {
        if let TapeFile::Data(bytes) = f {
            for block in bytes.chunks(BLOCK) {
                drive.write_block(block).unwrap();
            }
        }
        drive.write_filemarks(1, false).unwrap();
    }
    drive.rewind().unwrap();
}

/// Two source trees as pytp's yearly archives would hold them: `data/docs` (small files,
/// a symlink, a 3 MB file that crosses blocks) and `data/photos`.
fn sources(root: &Path) -> PathBuf {
    let src = root.join("src");
    let docs = src.join("data/docs");
    fs::create_dir_all(docs.join("letters")).unwrap();
    fs::write(docs.join("notes.txt"), b"remember the milk\n").unwrap();
    for i in 0..12 {
        fs::write(
            docs.join(format!("letters/l{i:02}.txt")),
            format!("letter {i}\n").repeat(i * 50 + 1),
        )
        .unwrap();
    }
    fs::write(docs.join("big.bin"), noise(3_000_000, 7)).unwrap();
    std::os::unix::fs::symlink("notes.txt", docs.join("link")).unwrap();
    let photos = src.join("data/photos");
    fs::create_dir_all(&photos).unwrap();
    fs::write(photos.join("a.jpg"), noise(200_000, 8)).unwrap();
    fs::write(photos.join("b.jpg"), noise(70_000, 9)).unwrap();
    src
}

fn import(home: &Home, extra: &[&str], code: i32) -> (Value, String) {
    let args = ["catalog", "import-tape", "--drive", "lto9", "--json"];
    home.json_report(&[&args[..], extra].concat(), code)
}

fn outcomes(report: &Value) -> Vec<String> {
    report["tape_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap().to_string())
        .collect()
}

fn count(home: &Home, sql: &str) -> i64 {
    home.sql_value(sql)
}

/// Every file under `src` is under `back` with the same bytes.
fn same_tree(src: &Path, back: &Path) {
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let there = back.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            same_tree(&entry.path(), &there);
        } else if kind.is_symlink() {
            assert_eq!(
                fs::read_link(entry.path()).unwrap(),
                fs::read_link(&there).unwrap()
            );
        } else {
            assert!(
                fs::read(entry.path()).unwrap() == fs::read(&there).unwrap(),
                "{} differs",
                there.display()
            );
        }
    }
}

#[test]
fn a_pytp_tape_is_catalogued_then_found_restored_and_verified() {
    let home = Home::with_fast_vlib();
    let src = sources(home.path());
    // A filemark at BOT (an empty tape file 0), then the two archives.
    write_foreign_tape(
        &home,
        &[
            TapeFile::Empty,
            TapeFile::Data(gnu_tar(&src, &["data/docs"])),
            TapeFile::Data(gnu_tar(&src, &["data/photos"])),
        ],
    );

    let (report, _) = import(&home, &[], 0);
    assert_eq!(report["volume"], TAPE);
    assert_eq!(outcomes(&report), ["empty", "recorded", "recorded"]);
    assert!(report["uuid"].as_str().unwrap().starts_with("first-block:"));
    assert_eq!(report["block_size"], BLOCK);
    assert_eq!(report["status"], "full");
    assert_eq!(report["tape_files"][1]["files"], 17, "{report}");

    let v = home.json(&["volume", "show", "--tape", TAPE, "--json"]);
    assert!(
        v["read_only"].as_str().unwrap().starts_with("foreign"),
        "{v}"
    );
    assert_eq!(v["status"], "full");
    let list = home.stdout(&["volume", "list"]);
    assert!(list.contains("full read-only"), "{list}");

    // find: the place on tape and the hash read from the tape.
    let big = only_version(&home, "/data/docs/big.bin");
    assert_eq!(big["size"], 3_000_000);
    assert_eq!(
        big["blake3"],
        blake3::hash(&fs::read(src.join("data/docs/big.bin")).unwrap())
            .to_hex()
            .to_string()
    );
    assert_eq!(big["segments"][0]["volume"], TAPE);
    assert_eq!(big["segments"][0]["tape_file"], 1);
    assert_eq!(
        big["backup"]["origin"].as_str().unwrap_or("import"),
        "import"
    );

    // restore the whole volume and compare; verify reads every member back.
    let out = home.path().join("out");
    home.run(&[
        "restore",
        "--drive",
        "lto9",
        "--tape",
        TAPE,
        "--to",
        out.to_str().unwrap(),
    ])
    .success();
    same_tree(&src.join("data"), &under(&out, Path::new("/data")));
    home.run(&["verify", "--drive", "lto9", "--tape", TAPE])
        .success();

    // Importing again records nothing twice.
    let backups = count(&home, "SELECT COUNT(*) FROM backups");
    let (again, _) = import(&home, &[], 0);
    assert_eq!(outcomes(&again), ["empty", "skipped", "skipped"]);
    assert_eq!(again["known_before"], true);
    assert_eq!(count(&home, "SELECT COUNT(*) FROM backups"), backups);
    assert_eq!(count(&home, "SELECT COUNT(*) FROM volumes"), 1);
    assert_eq!(versions(&home, "/data/photos/a.jpg").len(), 1);
    // ... also under another name: the tape is known by its first block.
    let (_, err) = import(&home, &["--label", "OTHER"], 2);
    assert!(err.contains("as volume TD0001L9"), "{err}");
}

#[test]
fn tapedeck_blank_and_unnamed_tapes_are_refused() {
    let home = Home::with_fast_vlib();
    home.run(&["load", "1", "--drive", "lto9"]).success();
    let (_, err) = import(&home, &[], 2);
    assert!(err.contains("is blank"), "{err}");
    home.run(&["volume", "label", "--drive", "lto9"]).success();
    let (_, err) = import(&home, &[], 2);
    assert!(
        err.contains("tapedeck volume TD0001L9") && err.contains("catalog rebuild"),
        "{err}"
    );
    // A tape holding nothing but filemarks is blank too.
    home.run(&["unload", "--drive", "lto9"]).success();
    let lib = Library::open(&home.vlib()).unwrap();
    lib.changer()
        .move_medium(Element::Slot(2), Element::Drive(0))
        .unwrap();
    let mut drive = lib.open_drive("lto9").unwrap();
    drive.set_block_size(BLOCK as u32).unwrap();
    drive.write_filemarks(2, false).unwrap();
    drop(drive);
    let (_, err) = import(&home, &[], 2);
    assert!(err.contains("is blank"), "{err}");
}

#[test]
fn a_damaged_tape_file_is_reported_and_the_others_are_catalogued() {
    let home = Home::with_fast_vlib();
    let src = sources(home.path());
    let mut cut = gnu_tar(&src, &["data/docs"]);
    // The third member's header is overwritten: the archive stops making sense there.
    let at = cut.windows(10).position(|w| w == b"data/docs/").unwrap();
    let second = at
        + 512
        + cut[at + 512..]
            .windows(10)
            .position(|w| w == b"data/docs/")
            .unwrap();
    for b in &mut cut[second + 100..second + 160] {
        *b = 0x5a;
    }
    let files = [
        gnu_tar(&src, &["data/photos/a.jpg"]),
        cut,
        vec![0x41; BLOCK],
        gnu_tar(&src, &["data/photos/b.jpg"]),
        gnu_tar(&src, &["data/docs/big.bin"]),
    ];
    // A medium error inside the last tape file (each tape file's blocks and its filemark
    // count as objects).
    let last_start: usize = files[..4].iter().map(|f| f.len() / BLOCK + 1).sum();
    write_foreign_tape(&home, &files.map(TapeFile::Data));
    let meta = home.cartridge(TAPE).join("cartridge.json");
    let mut cart: Value = serde_json::from_str(&fs::read_to_string(&meta).unwrap()).unwrap();
    cart["faults"]["read_error_at"] = json!(last_start + 20);
    fs::write(&meta, cart.to_string()).unwrap();

    let (report, err) = import(&home, &[], 1);
    assert_eq!(
        outcomes(&report),
        ["recorded", "damaged", "damaged", "recorded", "damaged"],
        "{report}"
    );
    assert!(
        report["problems"][2]
            .as_str()
            .unwrap()
            .starts_with("tape file 4: "),
        "{report}"
    );
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("tape file 1: cannot be scanned") && problems.contains("members"),
        "{problems}"
    );
    assert!(
        problems.contains("tape file 2: cannot be scanned") && problems.contains("not a tar"),
        "{problems}"
    );
    assert!(err.contains("3 tape files could not be recorded"), "{err}");
    only_version(&home, "/data/photos/a.jpg");
    only_version(&home, "/data/photos/b.jpg");
    assert!(versions(&home, "/data/docs/notes.txt").is_empty());
    let out = home.path().join("out");
    home.run(&[
        "restore",
        "--drive",
        "lto9",
        "--file",
        "/data/photos/b.jpg",
        "--to",
        out.to_str().unwrap(),
    ])
    .success();
    assert!(
        fs::read(under(&out, Path::new("/data/photos/b.jpg"))).unwrap()
            == fs::read(src.join("data/photos/b.jpg")).unwrap()
    );
    // Importing again retries only what is not recorded (and fails the same way).
    let (again, _) = import(&home, &[], 1);
    assert_eq!(
        outcomes(&again),
        ["skipped", "damaged", "damaged", "skipped", "damaged"]
    );
}

/// pytp's snapshot file for the tape: a full backup of data/docs in tape file 0 and an
/// incremental of data/photos in tape file 1, as pytp's `_backup.json` records them.
fn pytp_snapshots(root: &Path, src: &Path) -> PathBuf {
    let dir = root.join("snapshots");
    fs::create_dir_all(&dir).unwrap();
    let entry = |path: &str| {
        let m = fs::metadata(src.join(path.trim_start_matches('/'))).unwrap();
        let mtime = m
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        (
            path.to_string(),
            json!({"type": "file", "mtime": mtime, "size": m.len()}),
        )
    };
    let docs: serde_json::Map<String, Value> = ["/data/docs/notes.txt", "/data/docs/big.bin"]
        .into_iter()
        .map(entry)
        .collect();
    let photos: serde_json::Map<String, Value> = ["/data/photos/a.jpg", "/data/photos/b.jpg"]
        .into_iter()
        .map(entry)
        .collect();
    let snapshot = json!([
        {"type": "full", "label": TAPE, "timestamp": "2024-01-01T10:00:00",
         "strategy": "tar", "block_size": BLOCK, "tape_position": 0, "files": docs},
        {"type": "incremental", "label": TAPE, "timestamp": "2024-02-01T10:00:00",
         "strategy": "tar", "block_size": BLOCK, "tape_position": 1, "files": photos},
    ]);
    fs::write(dir.join("data_backup.json"), snapshot.to_string()).unwrap();
    dir
}

fn migrate(home: &Home, snapshots: &Path) -> Value {
    home.json(&[
        "migrate-pytp",
        "--timezone",
        "UTC",
        "--snapshots",
        snapshots.to_str().unwrap(),
        "--json",
    ])
}

/// What both orders must end with: one volume, two backups (pytp's uuids, kinds and
/// times, members from the tape), every file once, with its place and hash.
fn agreed(home: &Home, pytp_uuids: &[String]) {
    assert_eq!(count(home, "SELECT COUNT(*) FROM volumes"), 1);
    assert_eq!(count(home, "SELECT COUNT(*) FROM backups"), 2);
    let v = home.json(&["volume", "show", "--tape", TAPE, "--json"]);
    assert!(v["read_only"].is_string(), "{v}");
    let big = only_version(home, "/data/docs/big.bin");
    assert_eq!(big["backup"]["uuid"], pytp_uuids[0].as_str());
    assert!(big["blake3"].is_string(), "{big}");
    assert!(big["segments"][0]["block"].is_number(), "{big}");
    let letter = only_version(home, "/data/docs/letters/l03.txt");
    assert_eq!(letter["backup"]["uuid"], pytp_uuids[0].as_str());
    let photo = only_version(home, "/data/photos/b.jpg");
    assert_eq!(photo["backup"]["uuid"], pytp_uuids[1].as_str());
    assert_eq!(
        count(
            home,
            "SELECT COUNT(*) FROM backups b JOIN backups p ON p.id = b.parent_id
             WHERE b.kind = 'incremental' AND p.kind = 'full'"
        ),
        1,
        "the incremental still builds on the full backup"
    );
    home.run(&["verify", "--drive", "lto9", "--tape", TAPE])
        .success();
}

fn uuids(report: &Value) -> Vec<String> {
    let mut rows: Vec<&Value> = report["backups"].as_array().unwrap().iter().collect();
    rows.sort_by_key(|b| b["entry"].as_u64());
    rows.iter()
        .map(|b| b["uuid"].as_str().unwrap().to_string())
        .collect()
}

fn pytp_tape(home: &Home) -> PathBuf {
    let src = sources(home.path());
    write_foreign_tape(
        home,
        &[
            TapeFile::Data(gnu_tar(&src, &["data/docs"])),
            TapeFile::Data(gnu_tar(&src, &["data/photos"])),
        ],
    );
    pytp_snapshots(home.path(), &src)
}

#[test]
fn migrate_pytp_then_import_agree_on_one_volume_and_backup_per_tape_file() {
    let home = Home::with_fast_vlib();
    let snapshots = pytp_tape(&home);
    let migrated = migrate(&home, &snapshots);
    let pytp = uuids(&migrated);
    assert_eq!(pytp.len(), 2, "{migrated}");
    let (report, _) = import(&home, &[], 0);
    assert_eq!(report["known_before"], true);
    assert_eq!(outcomes(&report), ["merged", "merged"], "{report}");
    assert_eq!(report["tape_files"][0]["pytp_backup"], pytp[0].as_str());
    agreed(&home, &pytp);
    // Both again: nothing changes.
    import(&home, &[], 0);
    migrate(&home, &snapshots);
    agreed(&home, &pytp);
}

#[test]
fn import_then_migrate_pytp_agree_on_one_volume_and_backup_per_tape_file() {
    let home = Home::with_fast_vlib();
    let snapshots = pytp_tape(&home);
    let (report, _) = import(&home, &[], 0);
    assert_eq!(outcomes(&report), ["recorded", "recorded"]);
    let migrated = migrate(&home, &snapshots);
    let pytp = uuids(&migrated);
    let text = migrated["issues"].to_string();
    assert!(text.contains("import-tape"), "{migrated}");
    agreed(&home, &pytp);
    migrate(&home, &snapshots);
    import(&home, &[], 0);
    agreed(&home, &pytp);
}

#[test]
fn two_tapes_that_start_alike_are_two_volumes() {
    let home = Home::with_fast_vlib();
    let src = sources(home.path());
    // Two fulls of the same tree, a year apart: their first blocks are the same.
    let full = gnu_tar(&src, &["data"]);
    write_foreign_tape(&home, &[TapeFile::Data(full.clone())]);
    let (first, _) = import(&home, &[], 0);
    assert_eq!(first["volume"], "TD0001L9");
    home.run(&["unload", "--drive", "lto9"]).success();
    write_foreign_tape_from(&home, 2, &[TapeFile::Data(full)]);
    let (second, err) = import(&home, &[], 0);
    assert_eq!(second["volume"], "TD0002L9", "{err}");
    assert_eq!(outcomes(&second), ["recorded"]);
    assert_ne!(second["uuid"], first["uuid"]);
    assert_eq!(count(&home, "SELECT COUNT(*) FROM volumes"), 2);
    // Each is found, and restores and verifies from its own cartridge.
    assert_eq!(versions(&home, "/data/photos/a.jpg").len(), 2);
    home.run(&["verify", "--drive", "lto9", "--tape", "TD0002L9"])
        .success();
    home.run(&["verify", "--drive", "lto9", "--tape", "TD0001L9"])
        .success();
    // Importing the second again changes nothing.
    let (again, _) = import(&home, &[], 0);
    assert_eq!(
        again["volume"], "TD0001L9",
        "TD0001L9 is loaded after its verify"
    );
    assert_eq!(count(&home, "SELECT COUNT(*) FROM volumes"), 2);
}
