//! Data on tape is never given up by accident: the mt-like writing commands, labelling
//! and allocation all ask the catalogue's one decision (`check_overwrite`), a backup no
//! retention applies to holds its volume until an operator expires it, and a forced write
//! is recorded and named.

mod common;
use common::*;

/// A home with a pool `daily` (30 days) and one backup of three files into it on TD0001L9.
fn protected_backup() -> Home {
    let home = Home::with_fast_vlib();
    home.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    let src = many_files(home.path(), 3, 1000);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let (summary, stderr) = backup_json(
        &home,
        &[
            "--drive",
            "lto9",
            "--pool",
            "daily",
            "--memory-buffer",
            "16MiB",
        ],
        &[&src],
        0,
    );
    assert_eq!(summary["volume"], "TD0001L9", "{stderr}");
    home
}

fn overwritten(home: &Home) -> i64 {
    home.sql_value("SELECT SUM(overwritten) FROM backup_volumes")
}

fn stderr_of(home: &Home, args: &[&str], code: i32) -> String {
    let out = home.run(args).code(code).get_output().clone();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn weof_before_end_of_data_is_refused_on_unexpired_data() {
    let home = protected_backup();
    home.run(&["tape", "rewind", "--drive", "lto9"]).success();
    let err = stderr_of(&home, &["tape", "weof", "--drive", "lto9"], 2);
    assert!(
        err.contains("TD0001L9") && err.contains("protected until") && err.contains("--force"),
        "{err}"
    );
    assert!(
        err.contains("1 complete backup"),
        "says what is at stake: {err}"
    );
    // Nothing was written: the backup still verifies.
    home.run(&["verify", "--tape", "TD0001L9", "--drive", "lto9"])
        .success();
    assert_eq!(overwritten(&home), 0);
    // Forced after the label: the backup in tape file 1 is given up, and recorded so.
    home.run(&["tape", "rewind", "--drive", "lto9"]).success();
    home.run(&["tape", "fsf", "--drive", "lto9"]).success();
    let err = stderr_of(&home, &["tape", "weof", "--drive", "lto9", "--force"], 0);
    assert!(err.contains("gave up 1 complete backup"), "{err}");
    assert_eq!(overwritten(&home), 1);
    let found = home.stdout(&["find", "f001"]);
    assert!(
        !found.contains("TD0001L9"),
        "find no longer points there: {found}"
    );
}

#[test]
fn weof_at_end_of_data_is_allowed() {
    let home = protected_backup();
    home.run(&["tape", "eod", "--drive", "lto9"]).success();
    home.run(&["tape", "weof", "--drive", "lto9"]).success();
    assert_eq!(overwritten(&home), 0);
}

#[test]
fn erase_is_refused_on_unexpired_data_and_records_a_forced_one() {
    let home = protected_backup();
    home.run(&["tape", "rewind", "--drive", "lto9"]).success();
    let err = stderr_of(&home, &["tape", "erase", "--drive", "lto9"], 2);
    assert!(err.contains("protected until"), "{err}");
    let err = stderr_of(&home, &["tape", "erase", "--drive", "lto9", "--force"], 0);
    assert!(err.contains("Overriding (--force)"), "{err}");
    assert_eq!(overwritten(&home), 1);
}

#[test]
fn a_backup_without_a_pool_holds_its_volume_until_expired() {
    let home = Home::with_fast_vlib();
    home.run(&["pool", "create", "--name", "daily", "--retention", "30"])
        .success();
    let src = many_files(home.path(), 3, 1000);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    backup_lto9(&home, &src, &[]);
    let v = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(v["expires_at"], serde_json::Value::Null, "{v}");
    assert_eq!(v["complete_backups"], 1, "{v}");
    assert!(home.stdout(&["volume", "list"]).contains("held"));
    // Relabelling it into a pool, as the issue did, is refused and says why.
    let err = stderr_of(
        &home,
        &["volume", "label", "--drive", "lto9", "--pool", "daily"],
        2,
    );
    assert!(
        err.contains("until an operator expires it")
            && err.contains("volume expire --tape TD0001L9"),
        "{err}"
    );
    assert!(err.contains("gives up 1 complete backup"), "{err}");
    // Expired, a relabel still needs --force: it holds a complete backup.
    home.run(&["volume", "expire", "--tape", "TD0001L9"])
        .success();
    let err = stderr_of(
        &home,
        &["volume", "label", "--drive", "lto9", "--pool", "daily"],
        2,
    );
    assert!(
        err.contains("holds complete backups") && err.contains("--force"),
        "{err}"
    );
    let err = stderr_of(
        &home,
        &[
            "volume", "label", "--drive", "lto9", "--pool", "daily", "--force",
        ],
        0,
    );
    assert!(err.contains("Gave up 1 complete backup"), "{err}");
    assert_eq!(overwritten(&home), 1);
}

#[test]
fn a_read_only_volume_is_refused_unless_forced() {
    let home = Home::with_fast_vlib();
    labelled(&home);
    home.sql()
        .execute(
            "UPDATE volumes SET read_only = 'imported: written by another program'",
            [],
        )
        .unwrap();
    let err = stderr_of(&home, &["volume", "label", "--drive", "lto9"], 2);
    assert!(err.contains("read-only (imported"), "{err}");
    home.run(&["tape", "rewind", "--drive", "lto9"]).success();
    let err = stderr_of(&home, &["tape", "weof", "--drive", "lto9"], 2);
    assert!(err.contains("read-only"), "{err}");
    home.run(&["volume", "label", "--drive", "lto9", "--force"])
        .success();
}
