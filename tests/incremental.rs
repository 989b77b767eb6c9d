//! Incremental and differential backups through the binary, against the virtual library:
//! what goes on tape (read back with GNU tar), what the catalogue and the index record,
//! deletions, chains, and the refusals.

mod common;

use common::{labelled, member_name, read_index, tape_file, tar_extract_ok, tar_list, under, Home};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

/// `tapedeck backup --drive lto9 --job JOB ARGS --json PATHS`, which must make a complete
/// backup: the JSON summary and what went to stderr.
fn backup_json(home: &Home, job: &str, args: &[&str], paths: &[&Path]) -> (Value, String) {
    let lto9 = ["--drive", "lto9", "--memory-buffer", "16MiB", "--job", job];
    let (summary, stderr) = common::backup_json(home, &[&lto9[..], args].concat(), paths, 0);
    assert_eq!(summary["status"], "complete", "{summary}\n{stderr}");
    (summary, stderr)
}

fn backup(home: &Home, job: &str, args: &[&str], src: &Path) -> Value {
    backup_json(home, job, args, &[src]).0
}

/// Every version of `path` the catalogue knows, newest first: (backup kind, member type).
fn versions(home: &Home, path: &Path) -> Vec<(String, String)> {
    common::versions(home, path)
        .iter()
        .map(|v| {
            (
                v["backup"]["kind"].as_str().unwrap().to_string(),
                v["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A small tree: `keep` and `sub/keep2` stay, the test changes the others.
fn tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("keep"), b"unchanged\n").unwrap();
    fs::write(src.join("sub/keep2"), b"unchanged too\n").unwrap();
    fs::write(src.join("edit"), b"first\n").unwrap();
    fs::write(src.join("gone"), b"to be deleted\n").unwrap();
    fs::write(src.join("mode"), b"chmod only\n").unwrap();
    fs::set_permissions(src.join("mode"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(src.join("same"), b"aaaa\n").unwrap();
    set_old_mtime(&src.join("same"));
    src
}

/// Gives `path` the same old modification time every time.
fn set_old_mtime(path: &Path) {
    let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn an_incremental_stores_only_what_changed_and_records_deletions() {
    let home = Home::with_fast_vlib();
    let src = tree(home.path());
    labelled(&home);
    let full = backup(&home, "home", &[], &src);
    assert_eq!(full["kind"], "full", "{full}");
    assert_eq!(full["parent"], Value::Null, "{full}");
    assert_eq!(full["files"], 8, "{full}");

    fs::write(src.join("edit"), b"second, longer\n").unwrap();
    fs::write(src.join("new"), b"new\n").unwrap();
    fs::remove_file(src.join("gone")).unwrap();
    // Same size and mtime, other permissions.
    fs::set_permissions(src.join("mode"), fs::Permissions::from_mode(0o600)).unwrap();
    // Other content of the same size, the old mtime put back: only ctime tells.
    fs::write(src.join("same"), b"bbbb\n").unwrap();
    set_old_mtime(&src.join("same"));

    let inc = backup(&home, "home", &["--incremental"], &src);
    assert_eq!(inc["kind"], "incremental", "{inc}");
    assert_eq!(inc["parent"], full["uuid"], "{inc}");
    assert_eq!(inc["deleted"], 1, "{inc}");
    assert_eq!(inc["unchanged"], 2, "{inc}");
    // The directories, the edited, new, chmod'ed and rewritten files.
    assert_eq!(inc["files"], 6, "{inc}");

    // The full is tape files 1 (data) and 2 (index); the incremental 3 and 4.
    let mut listing = tar_list(&tape_file(&home, "TD0001L9", 3));
    listing.sort();
    let mut want: Vec<String> = ["", "sub", "edit", "mode", "new", "same"]
        .iter()
        .map(|p| {
            let m = member_name(&src.join(p));
            if p.is_empty() || *p == "sub" {
                format!("{}/", m.trim_end_matches('/'))
            } else {
                m
            }
        })
        .collect();
    want.sort();
    assert_eq!(listing, want);
    let restore = home.path().join("restore");
    tar_extract_ok(&tape_file(&home, "TD0001L9", 3), &restore);
    let back = under(&restore, &src);
    assert_eq!(fs::read(back.join("edit")).unwrap(), b"second, longer\n");
    let mode = fs::metadata(back.join("mode"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(fs::read(back.join("same")).unwrap(), b"bbbb\n");

    // The index names the parent and records the deletion without a place on tape.
    let (_, lines) = read_index(&tape_file(&home, "TD0001L9", 4));
    assert_eq!(lines[0]["kind"], "incremental");
    assert_eq!(lines[0]["parent"], full["uuid"]);
    let gone = lines
        .iter()
        .find(|l| l["path"] == src.join("gone").to_str().unwrap())
        .expect("the deletion in the index");
    assert_eq!(gone["type"], "deleted");
    assert_eq!(gone["segments"], serde_json::json!([]));
    let edit = lines
        .iter()
        .find(|l| l["path"] == src.join("edit").to_str().unwrap())
        .unwrap();
    assert!(edit["ino"].as_u64().is_some() && edit["ctime"].as_i64().is_some());

    // The catalogue: every version, with its backup's kind.
    assert_eq!(
        versions(&home, &src.join("gone")),
        [
            ("incremental".into(), "deleted".into()),
            ("full".into(), "file".into())
        ]
    );
    assert_eq!(versions(&home, &src.join("keep")).len(), 1);
    assert_eq!(versions(&home, &src.join("edit")).len(), 2);
    // The deletion is listed by `find` but not on the tape.
    let table = home.stdout(&["find", "--file", src.join("gone").to_str().unwrap()]);
    assert!(table.contains("deleted"), "{table}");
    assert!(table.contains("incremental"), "{table}");
    let on_tape = home.stdout(&["list", "--tape", "TD0001L9"]);
    assert_eq!(on_tape.matches("/gone").count(), 1, "{on_tape}");

    // Re-created: a third version. Nothing else changed.
    fs::write(src.join("gone"), b"back again\n").unwrap();
    let again = backup(&home, "home", &["--incremental"], &src);
    assert_eq!(again["parent"], inc["uuid"], "{again}");
    assert_eq!(again["deleted"], 0, "{again}");
    assert_eq!(again["files"], 3, "{again}");
    assert_eq!(
        versions(&home, &src.join("gone")),
        [
            ("incremental".into(), "file".into()),
            ("incremental".into(), "deleted".into()),
            ("full".into(), "file".into())
        ]
    );
    let check = home.json(&["catalog", "check", "--json"]);
    assert_eq!(check["problems"], serde_json::json!([]), "{check}");
}

#[test]
fn a_differential_holds_everything_since_the_full() {
    let home = Home::with_fast_vlib();
    let src = tree(home.path());
    labelled(&home);
    let full = backup(&home, "docs", &[], &src);
    fs::write(src.join("edit"), b"changed once\n").unwrap();
    let inc1 = backup(&home, "docs", &["--incremental"], &src);
    fs::write(src.join("sub/keep2"), b"changed later\n").unwrap();
    let inc2 = backup(&home, "docs", &["--incremental"], &src);
    assert_eq!(inc2["parent"], inc1["uuid"]);
    let inc2_files = tar_list(&tape_file(&home, "TD0001L9", 5));
    assert!(!inc2_files.contains(&member_name(&src.join("edit"))));

    let diff = backup(&home, "docs", &["--since-full"], &src);
    assert_eq!(diff["kind"], "differential", "{diff}");
    assert_eq!(diff["parent"], full["uuid"], "{diff}");
    let listing = tar_list(&tape_file(&home, "TD0001L9", 7));
    assert!(
        listing.contains(&member_name(&src.join("edit"))),
        "{listing:?}"
    );
    assert!(
        listing.contains(&member_name(&src.join("sub/keep2"))),
        "{listing:?}"
    );
    assert!(
        !listing.contains(&member_name(&src.join("keep"))),
        "{listing:?}"
    );
    // An incremental after it builds on the differential.
    let inc3 = backup(&home, "docs", &["--incremental"], &src);
    assert_eq!(inc3["parent"], diff["uuid"], "{inc3}");
    assert_eq!(inc3["files"], 2, "only the two directories: {inc3}");
    let status = home
        .json(&["status", "--job", "docs", "--json"])
        .to_string();
    assert!(status.contains("differential"), "{status}");
}

#[test]
fn incremental_without_a_job_is_refused() {
    let home = Home::with_fast_vlib();
    let src = tree(home.path());
    labelled(&home);
    for flag in ["--incremental", "--since-full"] {
        home.cmd()
            .args(["backup", "--drive", "lto9", flag])
            .arg(&src)
            .assert()
            .code(2)
            .stderr(predicates::str::contains("needs --job"));
    }
    assert!(!tape_file(&home, "TD0001L9", 1).exists());
}

#[test]
fn the_first_incremental_of_a_job_runs_as_a_full_and_says_so() {
    let home = Home::with_fast_vlib();
    let src = tree(home.path());
    labelled(&home);
    // Another job's backup does not count.
    backup(&home, "other", &[], &src);
    let (first, stderr) = backup_json(&home, "new-job", &["--incremental"], &[&src]);
    assert_eq!(first["kind"], "full", "{first}");
    assert_eq!(first["parent"], Value::Null, "{first}");
    assert!(stderr.contains("runs as a full"), "{stderr}");
    assert_eq!(first["files"], 8, "{first}");
    let (diff, stderr) = backup_json(&home, "third", &["--since-full"], &[&src]);
    assert_eq!(diff["kind"], "full", "{diff}");
    assert!(stderr.contains("no complete full backup"), "{stderr}");
    // The next one builds on it.
    let next = backup(&home, "new-job", &["--incremental"], &src);
    assert_eq!(next["kind"], "incremental", "{next}");
    assert_eq!(next["parent"], first["uuid"], "{next}");
}

#[test]
fn a_hard_link_whose_first_name_is_unchanged_is_stored_whole() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"linked content\n").unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    labelled(&home);
    // The job's first backup held only `a`; now the whole directory, so `b` is new while
    // `a` is unchanged and not in the incremental.
    backup(&home, "links", &[], &src.join("a"));
    let inc = backup(&home, "links", &["--incremental"], &src);
    assert_eq!(inc["kind"], "incremental", "{inc}");
    let listing = tar_list(&tape_file(&home, "TD0001L9", 3));
    assert!(
        !listing.contains(&member_name(&src.join("a"))),
        "{listing:?}"
    );
    assert!(
        listing.contains(&member_name(&src.join("b"))),
        "{listing:?}"
    );

    // GNU tar restores `b` from the incremental's tape file alone.
    let restore = home.path().join("restore");
    tar_extract_ok(&tape_file(&home, "TD0001L9", 3), &restore);
    let back = under(&restore, &src);
    assert_eq!(fs::read(back.join("b")).unwrap(), b"linked content\n");
    assert_eq!(
        versions(&home, &src.join("b")),
        [("incremental".into(), "file".into())]
    );
    // Not a deletion: `a` was seen.
    assert_eq!(inc["deleted"], 0, "{inc}");

    // When the content changes, both names are stored: the first as the file, the second
    // as a link to it.
    fs::write(src.join("a"), b"new linked content\n").unwrap();
    backup(&home, "links", &["--incremental"], &src);
    let out = Std::new("tar")
        .arg("-tvf")
        .arg(tape_file(&home, "TD0001L9", 5))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" link to "), "{text}");
}

#[test]
fn deletions_are_only_recorded_under_the_sources() {
    let home = Home::with_fast_vlib();
    let root = home.path().join("data");
    fs::create_dir_all(root.join("one")).unwrap();
    fs::create_dir_all(root.join("two")).unwrap();
    fs::write(root.join("one/f"), b"1").unwrap();
    fs::write(root.join("two/g"), b"2").unwrap();
    labelled(&home);
    backup_json(&home, "split", &[], &[&root.join("one"), &root.join("two")]);
    fs::remove_file(root.join("one/f")).unwrap();
    // Only `one` this time: `two/g` was not looked at, so it is not deleted.
    let (inc, _) = backup_json(&home, "split", &["--incremental"], &[&root.join("one")]);
    assert_eq!(inc["deleted"], 1, "{inc}");
    assert_eq!(versions(&home, &root.join("two/g")).len(), 1);
    assert_eq!(versions(&home, &root.join("one/f"))[0].1, "deleted");
}
