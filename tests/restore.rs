//! `tapedeck restore` through the binary, against the virtual library: files back by
//! their catalogued place (byte-identical, with metadata), what a single-file restore
//! reads from the cartridge, whole tapes, job states, patterns, files split across three
//! volumes, crafted tapes that try to write outside the target, medium errors, overwrite
//! policies and bad input.

mod common;

use common::{
    backup_lto9, interrupt, noise, only_version, pool_backup, pool_library, read_error_inside,
    same_files, strings, tape_file, three_files_backed_up, under, wait_for_log, wait_json, Home,
};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tapedeck::catalog::{BackupStatus, FileKind, FileRecord, NewBackup, SegmentRecord};

const MIB: u64 = 1 << 20;

/// `tapedeck restore ARGS --json`, expected to exit with `code`: the report and stderr.
fn restore(home: &Home, args: &[&str], code: i32) -> (serde_json::Value, String) {
    home.json_report(&[&["restore"][..], args, &["--json"]].concat(), code)
}

fn bytes_read(home: &Home, label: &str) -> u64 {
    let meta: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(home.cartridge(label).join("cartridge.json")).unwrap(),
    )
    .unwrap();
    meta["counters"]["bytes_read"].as_u64().unwrap()
}

fn outcome<'a>(report: &'a serde_json::Value, path: &Path) -> &'a serde_json::Value {
    let p = path.to_str().unwrap();
    report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"] == p)
        .unwrap_or_else(|| panic!("no outcome for {p}: {report}"))
}

#[test]
fn one_file_comes_back_byte_identical_with_its_metadata() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    let file = src.join("docs/report.bin");
    fs::write(&file, noise(1_500_000, 3)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let xattrs = xattr::set(&file, "user.colour", b"blue").is_ok();
    let root = nix::unistd::geteuid().is_root();
    if root {
        nix::unistd::chown(
            &file,
            Some(nix::unistd::Uid::from_raw(4321)),
            Some(nix::unistd::Gid::from_raw(4322)),
        )
        .unwrap();
    }
    let mtime = nix::sys::time::TimeSpec::new(1_600_000_000, 123_456_789);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &file,
        &mtime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    fs::write(src.join("docs/other.txt"), b"other").unwrap();
    std::os::unix::fs::symlink("report.bin", src.join("docs/link")).unwrap();
    fs::hard_link(&file, src.join("hard.bin")).unwrap();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let first = backup_lto9(&home, &src, &[]);
    // A second backup of a changed file: --file takes the newest, --backup the older.
    fs::write(src.join("docs/other.txt"), b"other, changed").unwrap();
    backup_lto9(&home, &src.join("docs/other.txt"), &[]);

    let to = home.path().join("to");
    let (report, _) = restore(
        &home,
        &[
            "--file",
            file.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(report["restored"], 1, "{report}");
    let back = under(&to, &file);
    assert_eq!(fs::read(&back).unwrap(), fs::read(&file).unwrap());
    let m = fs::symlink_metadata(&back).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));
    if root {
        assert_eq!((m.uid(), m.gid()), (4321, 4322));
    }
    if xattrs {
        assert_eq!(
            xattr::get(&back, "user.colour").unwrap().as_deref(),
            Some(b"blue".as_slice())
        );
    }
    // Only the file and the directories on its way: nothing else.
    assert!(!under(&to, &src.join("docs/other.txt")).exists());

    // The symlink as recorded; a hard link whose target is not restored gets its data.
    let (_, _) = restore(
        &home,
        &[
            "--file",
            src.join("docs/link").to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        fs::read_link(under(&to, &src.join("docs/link"))).unwrap(),
        PathBuf::from("report.bin")
    );
    let to2 = home.path().join("to2");
    restore(
        &home,
        &[
            "--file",
            src.join("hard.bin").to_str().unwrap(),
            "--to",
            to2.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        fs::read(under(&to2, &src.join("hard.bin"))).unwrap(),
        fs::read(&file).unwrap()
    );

    // Newest version by default; the older one by --backup or --date.
    let other = src.join("docs/other.txt");
    restore(
        &home,
        &[
            "--file",
            other.to_str().unwrap(),
            "--to",
            to2.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(fs::read(under(&to2, &other)).unwrap(), b"other, changed");
    let first_uuid = first["uuid"].as_str().unwrap().to_string();
    let to3 = home.path().join("to3");
    restore(
        &home,
        &[
            "--file",
            other.to_str().unwrap(),
            "--backup",
            &first_uuid[..8],
            "--to",
            to3.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(fs::read(under(&to3, &other)).unwrap(), b"other");

    // A whole directory: everything under it from that backup.
    let to4 = home.path().join("to4");
    restore(
        &home,
        &[
            "--file",
            src.join("docs").to_str().unwrap(),
            "--backup",
            &first_uuid,
            "--to",
            to4.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(fs::read(under(&to4, &other)).unwrap(), b"other");
    assert!(under(&to4, &src.join("docs/link"))
        .symlink_metadata()
        .is_ok());
    assert!(!under(&to4, &src.join("hard.bin")).exists());
}

#[test]
fn one_file_from_a_tape_of_two_gb_reads_its_size_and_at_most_two_blocks_more() {
    let home = Home::with_fast_vlib();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9"]).success();
    // 2 GB of other data, then the file, on a crafted tape: the big member's data is a
    // hole in the cartridge's tape file, so the test writes almost nothing to disk.
    let wanted = noise(700_000, 9);
    let members = vec![
        Crafted::file("data/zeros-1", Content::Zeros(1 << 30)),
        Crafted::file("data/zeros-2", Content::Zeros((1 << 30) + 12345)),
        Crafted::file("data/wanted.bin", Content::Bytes(wanted.clone())),
        Crafted::file("data/after", Content::Zeros(5 * MIB)),
    ];
    craft_tape(&home, "TD0001L9", &members);
    let block = 512 * 1024;
    let before = bytes_read(&home, "TD0001L9");
    let to = home.path().join("to");
    let (report, _) = restore(
        &home,
        &["--file", "/data/wanted.bin", "--to", to.to_str().unwrap()],
        0,
    );
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(fs::read(to.join("data/wanted.bin")).unwrap(), wanted);
    let read = bytes_read(&home, "TD0001L9") - before;
    assert!(
        read <= wanted.len() as u64 + 2 * block,
        "read {read} bytes from the cartridge for a {} byte file",
        wanted.len()
    );
    assert_eq!(report["tape_bytes"].as_u64().unwrap(), read);

    // The dry run says the same without reading anything.
    let plan = home.json(&[
        "restore",
        "--file",
        "/data/wanted.bin",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(plan["locates"], 1, "{plan}");
    assert!(plan["tape_bytes"].as_u64().unwrap() <= wanted.len() as u64 + 2 * block);
    assert_eq!(plan["volumes"][0]["volume"], "TD0001L9");
    assert_eq!(bytes_read(&home, "TD0001L9") - before, read);
}

#[test]
fn a_whole_tape_and_patterns() {
    let home = Home::with_fast_vlib();
    let src = common::many_files(home.path(), 20, 3000);
    fs::write(src.join("picture.JPG"), noise(100_000, 4)).unwrap();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    backup_lto9(&home, &src, &[]);
    let more = home.path().join("more");
    fs::create_dir(&more).unwrap();
    fs::write(more.join("second.txt"), b"second backup").unwrap();
    backup_lto9(&home, &more, &[]);

    let to = home.path().join("all");
    let (report, _) = restore(
        &home,
        &["--tape", "TD0001L9", "--to", to.to_str().unwrap()],
        0,
    );
    assert_eq!(report["failed"], 0, "{report}");
    same_files(&src, &under(&to, &src));
    assert_eq!(
        fs::read(under(&to, &more.join("second.txt"))).unwrap(),
        b"second backup"
    );
    // One pass: a single LOCATE per tape file, everything read in order.
    let plan = home.json(&["restore", "--tape", "TD0001L9", "--dry-run", "--json"]);
    assert_eq!(plan["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(plan["locates"], 2, "one per backup's tape file: {plan}");

    // A name glob across the catalogue; a path pattern within a tape.
    let to = home.path().join("jpg");
    let (report, _) = restore(
        &home,
        &["--pattern", "*.jpg", "--to", to.to_str().unwrap()],
        0,
    );
    assert_eq!(report["restored"], 1, "{report}");
    assert!(under(&to, &src.join("picture.JPG")).exists());
    let to = home.path().join("sub");
    let pattern = format!("{}/f01*", src.display());
    let (report, _) = restore(
        &home,
        &[
            "--tape",
            "TD0001L9",
            "--pattern",
            &pattern,
            "--to",
            to.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(report["restored"], 10, "f010..f019: {report}");
    assert!(under(&to, &src.join("f015")).exists());
    assert!(!under(&to, &src.join("f005")).exists());
    // A directory alone: everything under it, newest versions.
    let to = home.path().join("dir");
    let (report, _) = restore(
        &home,
        &[
            "--pattern",
            src.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        report["restored"], 22,
        "the directory and its 21 files: {report}"
    );
    assert!(under(&to, &src.join("picture.JPG")).exists());
}

#[test]
fn a_job_is_restored_as_it_was_at_a_date() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a1").unwrap();
    fs::write(src.join("b"), b"b1").unwrap();
    fs::write(src.join("c"), b"c1").unwrap();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let first = backup_lto9(&home, &src, &["--job", "home"]);
    fs::write(src.join("b"), b"b2").unwrap();
    fs::remove_file(src.join("c")).unwrap();
    let second = backup_lto9(&home, &src, &["--job", "home", "--incremental"]);
    assert_eq!(second["kind"], "incremental", "{second}");
    assert_eq!(second["deleted"], 1, "{second}");
    // Known start times, so dates fall between the two.
    let db = home.sql();
    for (backup, at) in [(&first, 1000), (&second, 2000)] {
        db.execute(
            "UPDATE backups SET started_at = ?1 WHERE uuid = ?2",
            rusqlite::params![at, backup["uuid"].as_str().unwrap()],
        )
        .unwrap();
    }

    let early = home.path().join("early");
    let (report, _) = restore(
        &home,
        &[
            "--job",
            "home",
            "--date",
            "@1500",
            "--to",
            early.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(fs::read(under(&early, &src.join("b"))).unwrap(), b"b1");
    assert_eq!(fs::read(under(&early, &src.join("c"))).unwrap(), b"c1");
    let late = home.path().join("late");
    let (report, _) = restore(
        &home,
        &[
            "--job",
            "home",
            "--date",
            "@2500",
            "--to",
            late.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(fs::read(under(&late, &src.join("a"))).unwrap(), b"a1");
    assert_eq!(fs::read(under(&late, &src.join("b"))).unwrap(), b"b2");
    assert!(
        !under(&late, &src.join("c")).exists(),
        "deleted in the incremental"
    );
    // Before the first backup there is nothing; an unknown job is named.
    let x = home.path().join("x");
    let x = x.to_str().unwrap();
    let (_, stderr) = restore(&home, &["--job", "home", "--date", "@10", "--to", x], 2);
    assert!(stderr.contains("no complete backup chain"), "{stderr}");
    let (_, stderr) = restore(&home, &["--job", "hom", "--date", "@10", "--to", x], 2);
    assert!(stderr.contains("did you mean `home`"), "{stderr}");
}

/// A backup over three 6 MiB volumes in pool `p`, with one file spanning all three.
fn spanned_backup(home: &Home) -> (PathBuf, serde_json::Value) {
    pool_library(home, "6MiB");
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a-small"), noise(100_000, 1)).unwrap();
    fs::write(src.join("b-huge"), noise(11_000_000, 2)).unwrap();
    fs::write(src.join("c-small"), noise(200_000, 3)).unwrap();
    let summary = pool_backup(home, &src, 0);
    assert_eq!(summary["volumes"].as_array().unwrap().len(), 3, "{summary}");
    (src, summary)
}

#[test]
fn a_file_split_over_three_volumes_is_joined_with_changer_loads() {
    let home = Home::new();
    let (src, summary) = spanned_backup(&home);
    let huge = src.join("b-huge");
    let found = only_version(&home, &huge);
    assert_eq!(found["segments"].as_array().unwrap().len(), 3, "{found}");
    // The drive holds the last volume; the plan starts with the first.
    let plan = home.json(&[
        "restore",
        "--backup",
        summary["uuid"].as_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    let order: Vec<&str> = plan["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volume"].as_str().unwrap())
        .collect();
    let volumes = strings(&summary["volumes"]);
    assert_eq!(order, volumes, "volumes in the order the backup wrote them");

    let to = home.path().join("to");
    let (report, stderr) = restore(
        &home,
        &[
            "--backup",
            summary["uuid"].as_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(report["failed"], 0, "{report} {stderr}");
    for name in ["a-small", "b-huge", "c-small"] {
        assert_eq!(
            fs::read(under(&to, &src.join(name))).unwrap(),
            fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(
        stderr.contains("Loaded"),
        "the changer loaded volumes: {stderr}"
    );
}

#[test]
fn a_volume_not_in_the_library_is_waited_for_and_the_split_file_joined() {
    let home = Home::new();
    let (src, summary) = spanned_backup(&home);
    let middle = summary["volumes"][1].as_str().unwrap().to_string();
    // Take the middle volume out of the library (offsite).
    home.edit_library(|lib| {
        for s in lib["slots"].as_array_mut().unwrap() {
            if s == middle.as_str() {
                *s = serde_json::Value::Null;
            }
        }
    });
    let huge = src.join("b-huge");
    let to = home.path().join("to");
    // Nobody to ask: the file fails with what to do, at once.
    let (report, _) = restore(
        &home,
        &[
            "--file",
            huge.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        1,
    );
    let detail = outcome(&report, &huge)["detail"].as_str().unwrap();
    assert!(
        detail.contains(&middle) && detail.contains("--change-timeout"),
        "{detail}"
    );
    assert!(!under(&to, &huge).exists(), "no partial file left");

    // With --change-timeout the restore waits; the volume comes back into the mail slot.
    let child = home
        .process()
        .args(["restore", "--json", "--change-timeout", "60", "--file"])
        .arg(&huge)
        .arg("--to")
        .arg(&to)
        .spawn()
        .unwrap();
    wait_for_log(&home, &format!("needs volume {middle}"));
    home.edit_library(|lib| lib["import_export"][0] = serde_json::Value::from(middle.as_str()));
    wait_json(child, 0);
    assert_eq!(
        fs::read(under(&to, &huge)).unwrap(),
        fs::read(&huge).unwrap()
    );
}

/// What a crafted member holds.
enum Content {
    Bytes(Vec<u8>),
    /// Zeros, left as a hole in the tape file.
    Zeros(u64),
}

/// A member written raw onto a crafted tape (any name, even one tar would refuse) and
/// recorded in the catalogue as `catalogue_path`.
struct Crafted {
    name: String,
    catalogue_path: String,
    kind: FileKind,
    content: Content,
    link: Option<String>,
}

impl Crafted {
    fn file(name: &str, content: Content) -> Crafted {
        Crafted {
            name: name.into(),
            catalogue_path: format!("/{name}"),
            kind: FileKind::File,
            content,
            link: None,
        }
    }

    fn symlink(name: &str, target: &str) -> Crafted {
        Crafted {
            name: name.into(),
            catalogue_path: format!("/{name}"),
            kind: FileKind::Symlink,
            content: Content::Bytes(Vec::new()),
            link: Some(target.into()),
        }
    }

    fn size(&self) -> u64 {
        match &self.content {
            Content::Bytes(b) => b.len() as u64,
            Content::Zeros(n) => *n,
        }
    }
}

fn raw_header(m: &Crafted) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    {
        let b = h.as_mut_bytes();
        b[..m.name.len()].copy_from_slice(m.name.as_bytes());
        if let Some(l) = &m.link {
            b[157..157 + l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(match m.kind {
        FileKind::Symlink => tar::EntryType::Symlink,
        FileKind::HardLink => tar::EntryType::Link,
        FileKind::Dir => tar::EntryType::Directory,
        _ => tar::EntryType::Regular,
    });
    h.set_size(if m.kind == FileKind::File {
        m.size()
    } else {
        0
    });
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    *h.as_bytes()
}

/// Writes `members` as tape file 1 of the (labelled) cartridge `label` and records them
/// as one complete backup. Returns the backup's uuid.
fn craft_tape(home: &Home, label: &str, members: &[Crafted]) -> String {
    let block = 512 * 1024u64;
    let dir = home.cartridge(label);
    let mut tape = fs::File::create(dir.join("00001.tar")).unwrap();
    let mut places = Vec::new();
    let mut at = 0u64;
    for m in members {
        places.push(at);
        tape.seek(SeekFrom::Start(at)).unwrap();
        tape.write_all(&raw_header(m)).unwrap();
        at += 512;
        let size = if m.kind == FileKind::File {
            m.size()
        } else {
            0
        };
        if let Content::Bytes(b) = &m.content {
            tape.write_all(b).unwrap();
        }
        at += size.div_ceil(512) * 512;
    }
    at += 1024; // end-of-archive records
    tape.set_len(at.div_ceil(block) * block).unwrap();
    drop(tape);
    fs::File::create(dir.join("00002.tar")).unwrap();
    let meta_path = dir.join("cartridge.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["filemarks"] = 2.into();
    fs::write(&meta_path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();

    let mut cat = home.catalog();
    let volume = cat.volume(label).unwrap();
    let uuid = format!("crafted-{}", members.len());
    let id = cat
        .begin_backup(&NewBackup {
            uuid: &uuid,
            kind: "full",
            started_at: 1_600_000_000,
            origin: "tapedeck",
            block_size: Some(block as i64),
            ..Default::default()
        })
        .unwrap();
    cat.add_backup_volume(id, 0, volume.id, Some(1), Some(2))
        .unwrap();
    let mut batch = cat.file_batch(id);
    for (m, &place) in members.iter().zip(&places) {
        // Holes are not hashed (nothing reads them here).
        let hash = match &m.content {
            Content::Bytes(b) => Some(*blake3::hash(b).as_bytes()),
            Content::Zeros(_) => None,
        };
        batch
            .push(FileRecord {
                path: m.catalogue_path.clone(),
                kind: m.kind,
                size: if m.kind == FileKind::File {
                    m.size() as i64
                } else {
                    0
                },
                mtime_ns: Some(1_600_000_000_000_000_000),
                mode: Some(0o644),
                uid: Some(0),
                gid: Some(0),
                link: m.link.clone(),
                blake3: hash.filter(|_| m.kind == FileKind::File),
                segments: vec![SegmentRecord {
                    volume_id: volume.id,
                    tape_file: Some(1),
                    block: Some((2 + place / block) as i64),
                    offset: Some((place % block) as i64),
                    file_offset: 0,
                    length: if m.kind == FileKind::File {
                        m.size() as i64
                    } else {
                        0
                    },
                }],
            })
            .unwrap();
    }
    batch.finish().unwrap();
    cat.finish_backup(id, BackupStatus::Complete, 1_600_000_100, None)
        .unwrap();
    uuid
}

#[test]
fn members_that_would_land_outside_the_target_are_refused_one_by_one() {
    let home = Home::with_fast_vlib();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9"]).success();
    let outside = home.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let members = vec![
        Crafted::file("ok/first.txt", Content::Bytes(b"fine".to_vec())),
        Crafted {
            catalogue_path: "/../escape.txt".into(),
            ..Crafted::file("../escape.txt", Content::Bytes(b"climbing".to_vec()))
        },
        Crafted {
            catalogue_path: format!("/{}", outside.join("abs.txt").display()),
            ..Crafted::file(
                outside.join("abs.txt").to_str().unwrap(),
                Content::Bytes(b"absolute".to_vec()),
            )
        },
        Crafted::symlink("ok/door", outside.to_str().unwrap()),
        Crafted::file("ok/door/through.txt", Content::Bytes(b"through".to_vec())),
        Crafted::symlink("up", "../.."),
        Crafted::file("up/also.txt", Content::Bytes(b"also".to_vec())),
        Crafted::file("ok/last.txt", Content::Bytes(b"still restored".to_vec())),
    ];
    craft_tape(&home, "TD0001L9", &members);
    let to = home.path().join("target");
    let (report, stderr) = restore(
        &home,
        &["--tape", "TD0001L9", "--to", to.to_str().unwrap()],
        1,
    );
    // Nothing landed outside the target.
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!home.path().join("escape.txt").exists());
    assert!(!Path::new("/escape.txt").exists());
    // Each bad member is refused with a reason; the rest is restored.
    for (path, word) in [
        ("/../escape.txt", ".."),
        ("/ok/door/through.txt", "symlink"),
        ("/up/also.txt", "symlink"),
    ] {
        let o = outcome(&report, Path::new(path));
        assert_eq!(o["status"], "refused", "{o}");
        assert!(o["detail"].as_str().unwrap().contains(word), "{o}");
    }
    let abs = report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str().unwrap().ends_with("abs.txt"))
        .unwrap();
    assert_eq!(abs["status"], "refused", "{abs}");
    assert!(
        abs["detail"].as_str().unwrap().contains("absolute"),
        "{abs}"
    );
    assert_eq!(fs::read(to.join("ok/first.txt")).unwrap(), b"fine");
    assert_eq!(fs::read(to.join("ok/last.txt")).unwrap(), b"still restored");
    assert!(stderr.contains("nothing is written through"), "{stderr}");
}

#[test]
fn a_medium_error_damages_one_member_and_the_rest_is_restored() {
    let (home, src, _) = three_files_backed_up(3_000_000);
    read_error_inside(&home, &src.join("b"));
    let to = home.path().join("to");
    let (report, stderr) = restore(
        &home,
        &["--tape", "TD0001L9", "--to", to.to_str().unwrap()],
        1,
    );
    let b = outcome(&report, &src.join("b"));
    assert_eq!(b["status"], "damaged", "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("medium error"),
        "{b}"
    );
    assert!(
        !under(&to, &src.join("b")).exists(),
        "no damaged file left behind"
    );
    for name in ["a", "c"] {
        assert_eq!(
            fs::read(under(&to, &src.join(name))).unwrap(),
            fs::read(src.join(name)).unwrap()
        );
    }
    assert!(stderr.contains("medium error"), "{stderr}");
}

#[test]
fn existing_files_are_kept_replaced_or_replaced_when_older() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    let f = src.join("f.txt");
    fs::write(&f, b"from tape").unwrap();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    backup_lto9(&home, &src, &[]);
    let to = home.path().join("to");
    let target = under(&to, &f);
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    let file_args = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["--file".to_string(), f.display().to_string()];
        v.extend(["--to".into(), to.display().to_string()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str], code| {
        let args = file_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        restore(&home, &args, code).0
    };
    // never (the default): kept, reported, exit 0.
    fs::write(&target, b"local").unwrap();
    let report = run(&[], 0);
    assert_eq!(report["kept"], 1, "{report}");
    assert_eq!(fs::read(&target).unwrap(), b"local");
    // older: a newer local file is kept, an older one replaced.
    let report = run(&["--overwrite", "older"], 0);
    assert_eq!(report["kept"], 1, "{report}");
    let old = nix::sys::time::TimeSpec::new(1000, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &target,
        &old,
        &old,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    let report = run(&["--overwrite", "older"], 0);
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(fs::read(&target).unwrap(), b"from tape");
    // always: replaced whatever its age.
    fs::write(&target, b"local again").unwrap();
    let report = run(&["--overwrite", "always"], 0);
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(fs::read(&target).unwrap(), b"from tape");
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let home = Home::with_fast_vlib();
    let src = common::many_files(home.path(), 2, 100);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    backup_lto9(&home, &src, &[]);
    let file = src.join("f000");
    let x = home.path().join("x");
    let x = x.to_str().unwrap();
    // --to is required: never the current directory by default.
    home.run(&["restore", "--file", file.to_str().unwrap()])
        .code(2)
        .stderr(predicates::str::contains("--to"));
    let (_, stderr) = restore(&home, &["--tape", "NOPE01L9", "--to", x], 2);
    assert!(stderr.contains("no volume `NOPE01L9`"), "{stderr}");
    let (_, stderr) = restore(&home, &["--file", "/not/backed/up", "--to", x], 2);
    assert!(stderr.contains("in no backup"), "{stderr}");
    let (_, stderr) = restore(&home, &["--file", "relative/path", "--to", x], 2);
    assert!(stderr.contains("not an absolute path"), "{stderr}");
    let (_, stderr) = restore(
        &home,
        &[
            "--file",
            file.to_str().unwrap(),
            "--date",
            "someday",
            "--to",
            x,
        ],
        2,
    );
    assert!(stderr.contains("is not a date"), "{stderr}");
    let (_, stderr) = restore(&home, &["--pattern", "no-such-name-anywhere", "--to", x], 2);
    assert!(stderr.contains("nothing matches"), "{stderr}");

    // A foreign tape file where the catalogue places members: damaged, named, no panic.
    let data = tape_file(&home, "TD0001L9", 1);
    let len = fs::metadata(&data).unwrap().len() as usize;
    fs::write(&data, noise(len, 77)).unwrap();
    let to = home.path().join("to");
    let (report, _) = restore(
        &home,
        &["--tape", "TD0001L9", "--to", to.to_str().unwrap()],
        1,
    );
    let o = outcome(&report, &file);
    assert_eq!(o["status"], "damaged", "{o}");
    assert!(
        o["detail"].as_str().unwrap().contains("not a tar header"),
        "{o}"
    );
    // A truncated tape file keeps its recorded length on tape: what is gone reads as a
    // medium error, so its members are damaged.
    fs::write(&data, b"").unwrap();
    let (report, _) = restore(
        &home,
        &["--tape", "TD0001L9", "--to", to.to_str().unwrap()],
        1,
    );
    let o = outcome(&report, &file);
    assert_eq!(o["status"], "damaged", "{o}");
    assert!(o["detail"].as_str().unwrap().contains("cut short"), "{o}");
}

#[test]
fn ctrl_c_stops_after_the_member_being_restored() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("f{i}")), noise(4_000_000, i + 40)).unwrap();
    }
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    backup_lto9(&home, &src, &[]);
    // Reading now at about 4 MB/s: the restore takes seconds.
    home.edit_library(|lib| lib["time_scale"] = serde_json::json!(0.01));
    let to = home.path().join("to");
    let child = home
        .process()
        .args(["restore", "--json", "--tape", "TD0001L9", "--to"])
        .arg(&to)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    interrupt(&child);
    let (report, _) = wait_json(child, 130);
    assert_eq!(report["interrupted"], true, "{report}");
    let restored = report["restored"].as_u64().unwrap();
    assert!(restored < 7, "stopped early: {report}");
    // What is there is whole; nothing half-written is left.
    let back = under(&to, &src);
    let mut whole = 0;
    for entry in fs::read_dir(&back).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_owned();
        assert_eq!(
            fs::read(&p).unwrap(),
            fs::read(src.join(&name)).unwrap(),
            "{p:?}"
        );
        whole += 1;
    }
    assert!(whole < 6, "{whole} files: the restore was not stopped");
}
