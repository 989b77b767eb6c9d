//! A damaged catalogue is said to be damaged, never read as if it were whole: a flipped
//! byte in a packed member record, a missing record, a damaged backups row, an emptied
//! catalogue beside labelled volumes, broken chains and labels the catalogue does not
//! know. Each names what is damaged and how to rebuild.

mod common;

use common::{three_files_backed_up, Home};
use std::fs;

/// Flips one bit of member record `first_seq` of the only backup, as a bad sector would:
/// the record's checksum is left as it was.
fn flip_record_byte(home: &Home, first_seq: i64, at: usize) {
    let sql = home.sql();
    let mut data: Vec<u8> = sql
        .query_row(
            "SELECT data FROM members WHERE first_seq = ?1",
            [first_seq],
            |r| r.get(0),
        )
        .unwrap();
    data[at] ^= 1;
    sql.execute(
        "UPDATE members SET data = ?1 WHERE first_seq = ?2",
        rusqlite::params![data, first_seq],
    )
    .unwrap();
}

/// The record holding the backed-up file `a`: its first member number and where the
/// member's name id is in its data, so a flip there still decodes (to another name).
fn record_of_a(home: &Home) -> (i64, usize) {
    let name_id: i64 = home.sql_value("SELECT id FROM names WHERE name = 'a'");
    let sql = home.sql();
    let mut stmt = sql.prepare("SELECT first_seq, data FROM members").unwrap();
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (first, data) in rows {
        let members = tapedeck::catalog::members::decode(&data).unwrap();
        if members.iter().any(|m| m.name_id == name_id) {
            // The first entry's name id is its second byte (one byte for small ids).
            return (first, 1);
        }
    }
    panic!("no record holds `a`");
}

/// Runs `args`, which must exit 1 and say that the catalogue is damaged, naming `backup`
/// and the rebuild command: its stderr.
fn damaged(home: &Home, args: &[&str], backup: &str) -> String {
    let out = home.cmd().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
    assert!(stderr.contains("is damaged"), "{args:?}: {stderr}");
    assert!(stderr.contains(backup), "{args:?}: {stderr}");
    assert!(
        stderr.contains("tapedeck catalog rebuild --tape TD0001L9"),
        "{args:?}: {stderr}"
    );
    stderr
}

#[test]
fn a_flipped_byte_in_a_member_record_fails_restore_verify_and_find() {
    let (home, _src, summary) = three_files_backed_up(10_000);
    let uuid = summary["uuid"].as_str().unwrap().to_string();
    let (first, at) = record_of_a(&home);
    flip_record_byte(&home, first, at);
    let to = home.path().join("to");
    let text = damaged(
        &home,
        &[
            "restore",
            "--tape",
            "TD0001L9",
            "--to",
            to.to_str().unwrap(),
        ],
        &uuid,
    );
    assert!(text.contains("checksum"), "{text}");
    assert!(text.contains(&format!("member record {first}")), "{text}");
    damaged(&home, &["verify", "--tape", "TD0001L9"], &uuid);
    damaged(&home, &["find", "a"], &uuid);
    damaged(&home, &["list", "--tape", "TD0001L9"], &uuid);
    let out = home.cmd().args(["catalog", "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&uuid) && stdout.contains("checksum"),
        "{stdout}"
    );

    // Rebuilding from the tape records the backup again: everything restores.
    home.run(&[
        "catalog", "rebuild", "--tape", "TD0001L9", "--drive", "lto9",
    ])
    .success();
    home.run(&["catalog", "check"]).success();
    home.run(&[
        "restore",
        "--tape",
        "TD0001L9",
        "--to",
        to.to_str().unwrap(),
    ])
    .success();
}

#[test]
fn a_missing_record_is_named_and_old_records_without_a_checksum_still_read() {
    let (home, _src, summary) = three_files_backed_up(1000);
    let uuid = summary["uuid"].as_str().unwrap().to_string();
    // Records written before checksums (NULL) are read as they are.
    home.sql()
        .execute("UPDATE members SET sum = NULL", [])
        .unwrap();
    home.run(&["restore", "--tape", "TD0001L9", "--dry-run"])
        .success();
    home.run(&["catalog", "check"]).success();
    let (first, _) = record_of_a(&home);
    home.sql()
        .execute("DELETE FROM members WHERE first_seq = ?1", [first])
        .unwrap();
    let to = home.path().join("to");
    let text = damaged(
        &home,
        &[
            "restore",
            "--tape",
            "TD0001L9",
            "--to",
            to.to_str().unwrap(),
        ],
        &uuid,
    );
    assert!(
        text.contains("missing") || text.contains("backup counts"),
        "{text}"
    );
    damaged(&home, &["verify", "--tape", "TD0001L9"], &uuid);
    home.run(&["catalog", "check"]).code(1);
}

#[test]
fn a_damaged_backups_row_is_named_not_a_raw_sql_error() {
    let (home, src, _) = three_files_backed_up(1000);
    // A flipped bit in the row's id: the members and tape files point at a backup that
    // is no longer there.
    home.sql()
        .execute_batch("PRAGMA foreign_keys = OFF; UPDATE backups SET id = id + 64;")
        .unwrap();
    let to = home.path().join("to");
    for args in [
        &[
            "restore",
            "--tape",
            "TD0001L9",
            "--to",
            to.to_str().unwrap(),
        ][..],
        &["verify", "--tape", "TD0001L9"],
        &["find", "a"],
    ] {
        let text = damaged(&home, args, "#1");
        assert!(!text.contains("Query returned no rows"), "{text}");
    }
    let out = home.cmd().args(["catalog", "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("backup #1: its row in the backups table is missing (rebuild TD0001L9)"),
        "{stdout}"
    );

    // Rebuilding records the backup again under its row, and what was left under the old
    // id goes: the catalogue is whole again.
    let out = home
        .cmd()
        .args([
            "catalog", "rebuild", "--tape", "TD0001L9", "--drive", "lto9",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let out = home.cmd().args(["catalog", "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{stdout}");
    let left: i64 = home.sql_value(
        "SELECT (SELECT COUNT(*) FROM members WHERE backup_id NOT IN (SELECT id FROM backups))
              + (SELECT COUNT(*) FROM backup_volumes
                 WHERE backup_id NOT IN (SELECT id FROM backups))",
    );
    assert_eq!(left, 0);
    home.run(&[
        "restore",
        "--tape",
        "TD0001L9",
        "--to",
        to.to_str().unwrap(),
    ])
    .success();
    common::same_files(&src, &common::under(&to, &src));
}

#[test]
fn an_emptied_catalogue_beside_labelled_volumes_is_reported_with_the_rebuild_command() {
    let (home, _src, _) = three_files_backed_up(1000);
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", home.db().display());
        if suffix.is_empty() {
            fs::write(&path, b"").unwrap();
        } else {
            let _ = fs::remove_file(&path);
        }
    }
    for args in [&["status"][..], &["find", "a"], &["catalog", "check"]] {
        let out = home.cmd().args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains("tapedeck catalog rebuild --tape TD0001L9"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("consistent"), "{text}");
        assert!(!text.contains("No backups yet"), "{text}");
    }
    // A schema-less catalogue (a new SQLite file) is the same.
    fs::remove_file(home.db()).unwrap();
    rusqlite::Connection::open(home.db())
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x); DROP TABLE unrelated;")
        .unwrap();
    home.run(&["status"]).code(1);
    // Rebuilding brings it back.
    home.run(&[
        "catalog", "rebuild", "--tape", "TD0001L9", "--drive", "lto9",
    ])
    .success();
    home.run(&["catalog", "check"]).success();
    home.run(&["find", "a"]).success();
}

#[test]
fn a_schema_less_read_only_catalogue_is_reported_lost_not_as_a_missing_table() {
    use std::os::unix::fs::PermissionsExt;
    let (home, _src, _) = three_files_backed_up(1000);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", home.db().display()));
    }
    rusqlite::Connection::open(home.db())
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x); DROP TABLE unrelated;")
        .unwrap();
    // Read-only: the tables cannot be created (as root the file is written all the same,
    // and the answer must be the same).
    fs::set_permissions(home.db(), fs::Permissions::from_mode(0o444)).unwrap();
    for args in [&["catalog", "check"][..], &["status"], &["find", "a"]] {
        let out = home.cmd().args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains("tapedeck catalog rebuild --tape TD0001L9"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("no such table"), "{args:?}: {text}");
        assert!(!text.contains("consistent"), "{args:?}: {text}");
    }
}

#[test]
fn a_new_catalogue_beside_a_blank_library_is_simply_empty() {
    let home = Home::with_fast_vlib();
    home.run(&["status"]).success();
    home.run(&["catalog", "check"]).success();
}

#[test]
fn catalog_check_names_broken_chains() {
    let (home, _src, summary) = three_files_backed_up(1000);
    let uuid = summary["uuid"].as_str().unwrap().to_string();
    let sql = home.sql();
    // An incremental with no parent, and one on a failed parent.
    sql.execute_batch(
        "INSERT INTO backups (uuid, kind, started_at, finished_at, status)
             VALUES ('orphan', 'incremental', 10, 11, 'complete');
         INSERT INTO backups (uuid, kind, started_at, finished_at, status)
             VALUES ('dead', 'full', 20, 21, 'failed');
         INSERT INTO backups (uuid, kind, parent_id, started_at, finished_at, status)
             VALUES ('child', 'incremental', (SELECT id FROM backups WHERE uuid = 'dead'),
                     30, 31, 'complete');
         INSERT INTO backups (uuid, kind, parent_id, started_at, finished_at, status)
             VALUES ('on-lost', 'incremental', 1, 40, 41, 'complete');
         UPDATE backup_volumes SET overwritten = 1 WHERE backup_id = 1;",
    )
    .unwrap();
    let out = home.cmd().args(["catalog", "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("backup orphan (incremental) has no parent"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backup child (incremental) builds on backup dead, which is failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "backup on-lost (incremental) builds on backup {uuid}, whose copy on volume \
             TD0001L9 was overwritten"
        )),
        "{stdout}"
    );
}

#[test]
fn catalog_check_compares_the_catalogue_with_the_librarys_labels() {
    let (home, _src, _) = three_files_backed_up(1000);
    // A second volume labelled and written to, then forgotten by the catalogue (one holding
    // only its label would be a note: nothing on it is lost).
    home.run(&["unload", "--drive", "lto9"]).success();
    home.run(&["load", "2", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9"]).success();
    home.run(&["tape", "eod", "--drive", "lto9"]).success();
    home.run(&["tape", "weof", "--drive", "lto9"]).success();
    home.run(&["catalog", "check"]).success();
    home.sql()
        .execute("DELETE FROM volumes WHERE label = 'TD0002L9'", [])
        .unwrap();
    // And the first one's uuid is not the one on its label.
    home.sql()
        .execute(
            "UPDATE volumes SET uuid = 'not-the-label' WHERE label = 'TD0001L9'",
            [],
        )
        .unwrap();
    let out = home.cmd().args(["catalog", "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("volume TD0002L9 (cartridge TD0002L9) is labelled in the library")
            && stdout.contains("tapedeck catalog rebuild --tape TD0002L9"),
        "{stdout}"
    );
    assert!(
        stdout.contains("volume TD0001L9: the library's cartridge TD0001L9 has label uuid"),
        "{stdout}"
    );
}
