//! `tapedeck migrate-pytp` against pytp's own formats (tests/fixtures/pytp): a config.json
//! with two drives and a library; snapshot files of the modern format (full backups without a
//! file list, incrementals with files and symlinks, tape positions as numbers, text, -1 or
//! missing), of the first format (no type, label, timestamp or position), one truncated and
//! one with a syntax error in the middle.

mod common;

use common::Home;
use predicates::prelude::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use tapedeck::catalog::{FileKind, VolumeStatus};
use tapedeck::config::Config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytp")
}

fn pytp_config() -> String {
    fixtures().join("config.json").display().to_string()
}

fn snapshots() -> String {
    fixtures().join("snapshots").display().to_string()
}

/// The binary in a scratch home, with pytp's times read as UTC.
fn cmd(h: &Home) -> assert_cmd::Command {
    let mut c = h.cmd();
    c.env("TZ", "UTC");
    c
}

fn migrate(h: &Home, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut args = vec!["migrate-pytp", "--timezone", "UTC"];
    args.extend_from_slice(extra);
    cmd(h).args(args).assert()
}

/// Runs a migration with `--json` and returns the report (exit code checked by `code`).
fn migrate_json(h: &Home, extra: &[&str], code: i32) -> Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let out = migrate(h, &args).code(code).get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

fn issues(report: &Value) -> Vec<String> {
    report["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} | {} | {} | {} | {}",
                i["severity"].as_str().unwrap(),
                i["file"].as_str().unwrap_or("-"),
                i["line"],
                i["entry"],
                i["message"].as_str().unwrap()
            )
        })
        .collect()
}

fn has_issue(all: &[String], parts: &[&str]) -> bool {
    all.iter().any(|i| parts.iter().all(|p| i.contains(p)))
}

#[test]
fn imports_every_snapshot_and_finds_files_on_their_tapes() {
    let h = Home::new();
    // Damaged files are in the set: exit 2 after importing everything else.
    let report = migrate_json(
        &h,
        &["--pytp-config", &pytp_config(), "--snapshots", &snapshots()],
        2,
    );
    assert_eq!(report["summary"]["imported"], 10, "{report:#}");
    assert_eq!(report["summary"]["file_records"], 12);

    let cat = h.catalog();
    // A modern incremental: the label and the tape file pytp recorded, "3" given as text.
    let report_odt = cat.find_path("/srv/data/docs/report.odt").unwrap();
    assert_eq!(report_odt.len(), 2, "{report_odt:#?}");
    assert_eq!(report_odt[0].size, 20480);
    assert_eq!(report_odt[0].segments[0].volume, "P0001L9");
    assert_eq!(report_odt[0].segments[0].tape_file, Some(3));
    assert_eq!(report_odt[1].size, 18432);
    assert_eq!(report_odt[1].segments[0].tape_file, Some(2));
    assert_eq!(report_odt[1].mtime_ns, Some(1_763_600_000_250_000_000));
    assert_eq!(report_odt[0].backup.kind, "incremental");
    assert_eq!(report_odt[0].backup.job.as_deref(), Some("nightly_docs"));
    assert_eq!(report_odt[0].backup.label.as_deref(), Some("P0001L9"));

    // Symlinks keep their target.
    let link = cat.find_path("/srv/data/docs/current").unwrap();
    assert_eq!(link[0].kind, FileKind::Symlink);
    assert_eq!(link[0].link.as_deref(), Some("report.odt"));

    // Positions -1 and missing: the volume is known, the tape file is not.
    let notes = cat.find_path("/srv/data/docs/notes.txt").unwrap();
    assert_eq!(notes.len(), 2);
    for v in &notes {
        assert_eq!(v.segments[0].volume, "P0002L9");
        assert_eq!(v.segments[0].tape_file, None);
    }

    // The first format: no label, no position: the placeholder volume.
    let beach = cat.find_path("/home/anna/photos/2019/beach.jpg").unwrap();
    assert_eq!(beach.len(), 1);
    assert_eq!(beach[0].size, 3_000_000);
    assert_eq!(beach[0].segments[0].volume, "pytp-unknown");
    assert_eq!(beach[0].segments[0].tape_file, None);
    assert_eq!(beach[0].backup.kind, "full");
    let photo_link = cat.find_path("/home/anna/photos/2019/link").unwrap();
    assert_eq!(photo_link[0].kind, FileKind::Symlink);

    // Damaged files: the entries before the damage are there, the rest is not.
    assert_eq!(cat.find_path("/srv/music/a.flac").unwrap().len(), 1);
    assert_eq!(
        cat.find_path("/srv/music/b.flac").unwrap()[0].segments[0].tape_file,
        Some(6)
    );
    assert!(cat.find_path("/srv/music/c.flac").unwrap().is_empty());
    assert_eq!(cat.find_path("/srv/videos/intro.mkv").unwrap().len(), 1);
    assert!(cat.find_path("/srv/videos/part2.mkv").unwrap().is_empty());

    // Backups: per job, of origin pytp, the full one without files included.
    let docs = cat.backups(Some("nightly_docs"), 100).unwrap();
    assert_eq!(docs.len(), 5);
    assert!(docs.iter().all(|b| b.origin == "pytp"));
    let full = docs.iter().find(|b| b.kind == "full").unwrap();
    assert_eq!(
        (full.files, full.volumes.clone()),
        (0, vec!["P0001L9".to_string()])
    );
    assert_eq!(cat.backups(None, 100).unwrap().len(), 10);

    // pytp's tapes are full volumes outside any pool; the placeholder is retired.
    let p1 = cat.volume("P0001L9").unwrap();
    assert_eq!((p1.status, p1.pool.clone()), (VolumeStatus::Full, None));
    assert_eq!(
        cat.volume("pytp-unknown").unwrap().status,
        VolumeStatus::Retired
    );

    // The catalogue's own invariants hold.
    cmd(&h)
        .args(["catalog", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("consistent"));
}

#[test]
fn the_report_lists_what_could_not_be_imported() {
    let h = Home::new();
    let out = migrate(
        &h,
        &[
            "--pytp-config",
            &pytp_config(),
            "--snapshots",
            &snapshots(),
            "--json",
        ],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "not all of pytp's history and configuration could be imported (2 problems)",
    ))
    .get_output()
    .stdout
    .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    let all = issues(&report);
    let text = all.join("\n");
    // Damage: the file and the line, and what was kept.
    assert!(
        has_issue(
            &all,
            &[
                "not-imported",
                "music_backup.json",
                "| 1 |",
                "truncated",
                "the 2 entries before it imported"
            ]
        ),
        "{text}"
    );
    assert!(
        has_issue(
            &all,
            &[
                "not-imported",
                "videos_backup.json",
                "| 27 |",
                "the 1 entry before it imported",
                "nor the 1 after it"
            ]
        ),
        "{text}"
    );
    // Imported without what pytp did not record.
    for parts in [
        &[
            "incomplete",
            "nightly_docs_backup.json",
            "| 0 |",
            "full backup with no file list",
        ][..],
        &[
            "incomplete",
            "nightly_docs_backup.json",
            "| 3 |",
            "tape position -1",
        ],
        &[
            "incomplete",
            "nightly_docs_backup.json",
            "| 4 |",
            "no tape position recorded",
        ],
        &[
            "incomplete",
            "photos_backup.json",
            "| 0 |",
            "no tape label",
            "pytp-unknown",
        ],
        &["incomplete", "photos_backup.json", "| 1 |", "no timestamp"],
        &[
            "note",
            "photos_backup.json",
            "| 0 |",
            "no type: taken as a full backup",
        ],
        &["note", "config.json", "slots 23 not imported"],
        &["note", "config.json", "tar_dir"],
        &["note", "snapshots", "README.txt"],
    ] {
        assert!(has_issue(&all, parts), "missing {parts:?} in:\n{text}");
    }
    assert!(
        !all.iter()
            .any(|i| i.contains("nightly_docs_backup.json | null | 1 |")),
        "nothing to say about a complete incremental:\n{text}"
    );
    // Per file: how many entries, imported, lost, where the damage is.
    let files = report["files"].as_array().unwrap();
    let videos = files
        .iter()
        .find(|f| f["name"] == "videos_backup.json")
        .unwrap();
    assert_eq!(videos["imported"], 1);
    assert_eq!(videos["not_imported"], 2);
    assert_eq!(videos["damaged_at"], "line 27, column 5");
    let docs = files
        .iter()
        .find(|f| f["name"] == "nightly_docs_backup.json")
        .unwrap();
    assert_eq!(docs["source_dir"], "/srv/data/docs");
    assert_eq!(docs["pytp_job"], "nightly");
    // Per entry: the -1 position is reported as unknown, "3" as tape file 3.
    let backups = report["backups"].as_array().unwrap();
    let entry = |n: u64| {
        backups
            .iter()
            .find(|b| b["file"] == "nightly_docs_backup.json" && b["entry"] == n)
            .unwrap()
    };
    assert_eq!(entry(2)["tape_file"], 3);
    assert!(entry(3).get("tape_file").is_none());
    assert_eq!(entry(0)["outcome"], "imported");
}

#[test]
fn the_human_report_names_damaged_files_with_their_lines() {
    let h = Home::new();
    migrate(
        &h,
        &["--pytp-config", &pytp_config(), "--snapshots", &snapshots()],
    )
    .code(2)
    .stdout(
        predicate::str::contains("music_backup.json: line 1, column")
            .and(predicate::str::contains(
                "videos_backup.json: line 27, column 5: damaged",
            ))
            .and(predicate::str::contains("Not imported (2):"))
            .and(predicate::str::contains(
                "nightly_docs_backup.json: entry 0: full backup with no file list",
            ))
            .and(predicate::str::contains("pytp-unknown"))
            .and(predicate::str::contains(
                "Imported 10 backups (12 file records)",
            ))
            // No --write-config: the snippet is printed.
            .and(predicate::str::contains("[[drive]]\nname = \"lto9\"")),
    );
}

#[test]
fn a_second_run_imports_nothing_new() {
    let h = Home::new();
    let args = ["--snapshots", &snapshots()];
    let first = migrate_json(&h, &args, 2);
    let second = migrate_json(&h, &args, 2);
    assert_eq!(first["summary"]["imported"], 10);
    assert_eq!(second["summary"]["imported"], 0);
    assert_eq!(second["summary"]["already_imported"], 10);
    let cat = h.catalog();
    assert_eq!(cat.backups(None, 100).unwrap().len(), 10);
    assert_eq!(cat.find_path("/srv/data/docs/report.odt").unwrap().len(), 2);

    // A clean history exits 0, and so does running it again.
    let h = Home::new();
    let one = fixtures().join("snapshots/nightly_docs_backup.json");
    let one = one.to_str().unwrap();
    let first = migrate_json(&h, &["--snapshots", one], 0);
    assert_eq!(first["summary"]["imported"], 5);
    let again = migrate_json(&h, &["--snapshots", one], 0);
    assert_eq!(again["summary"]["imported"], 0);
    assert_eq!(again["summary"]["already_imported"], 5);
    assert!(again["backups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["outcome"] == "already-imported"));
    assert_eq!(h.catalog().backups(None, 100).unwrap().len(), 5);
}

#[test]
fn the_configuration_snippet_parses_and_is_never_overwritten() {
    let h = Home::new();
    let target = h.path().join("pytp.toml");
    let target_s = target.to_str().unwrap();
    let report = migrate_json(
        &h,
        &["--pytp-config", &pytp_config(), "--write-config", target_s],
        0,
    );
    assert_eq!(report["config"]["written_to"], target_s);
    assert_eq!(
        report["config"]["drives"],
        serde_json::json!(["lto9", "lto6"])
    );
    let text = fs::read_to_string(&target).unwrap();
    let parsed = Config::parse(&target, &text).unwrap();
    assert_eq!(parsed.drives.len(), 2);
    assert_eq!(parsed.drives[0].name, "lto9");
    assert_eq!(parsed.drives[0].device, PathBuf::from("/dev/nst0"));
    assert_eq!(parsed.drives[0].block_size, Some(524_288));
    assert_eq!(parsed.drives[1].device, PathBuf::from("/dev/nst1"));
    assert_eq!(parsed.libraries.len(), 1);
    assert_eq!(parsed.libraries[0].name, "msl2024");
    assert_eq!(parsed.libraries[0].changer, PathBuf::from("/dev/sch0"));
    assert_eq!(parsed.libraries[0].drives, vec!["lto6", "lto9"]);
    // tapedeck itself runs on it.
    cmd(&h)
        .env("TAPEDECK_CONFIG", &target)
        .args(["config", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("msl2024"));

    // Never overwritten; refused before anything is imported.
    let h2 = Home::new();
    let kept = h2.path().join("mine.toml");
    fs::write(&kept, "# mine\n").unwrap();
    migrate(
        &h2,
        &[
            "--pytp-config",
            &pytp_config(),
            "--snapshots",
            &snapshots(),
            "--write-config",
            kept.to_str().unwrap(),
        ],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "already exists; refusing to overwrite it",
    ));
    assert_eq!(fs::read_to_string(&kept).unwrap(), "# mine\n");
    assert!(!h2.db().exists(), "nothing imported");
}

#[test]
fn a_dry_run_changes_nothing() {
    let h = Home::new();
    let target = h.path().join("pytp.toml");
    migrate(
        &h,
        &[
            "--pytp-config",
            &pytp_config(),
            "--snapshots",
            &snapshots(),
            "--write-config",
            target.to_str().unwrap(),
            "--dry-run",
        ],
    )
    .code(2)
    .stdout(
        predicate::str::contains("Dry run: nothing was changed.")
            .and(predicate::str::contains("would import"))
            .and(predicate::str::contains("Would import 10 backups"))
            .and(predicate::str::contains("would-create")),
    );
    assert!(!h.db().exists());
    assert!(!target.exists());
}

#[test]
fn tapedeck_find_shows_the_imported_history() {
    let h = Home::new();
    migrate(&h, &["--snapshots", &snapshots()]).code(2);
    let out = h
        .cmd()
        .args(["find", "--file", "/srv/data/docs/report.odt", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let versions: Value = serde_json::from_slice(&out).unwrap();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["segments"][0]["volume"], "P0001L9");
    assert_eq!(versions[0]["segments"][0]["tape_file"], 3);
}

#[test]
fn bad_arguments_are_bad_input() {
    let h = Home::new();
    migrate(&h, &[])
        .code(2)
        .stderr(predicate::str::contains("nothing to import"));
    migrate(&h, &["--snapshots", "/nonexistent/pytp/snapshots"])
        .code(2)
        .stdout(predicate::str::contains("/nonexistent/pytp/snapshots"));
    cmd(&h)
        .args([
            "migrate-pytp",
            "--snapshots",
            &snapshots(),
            "--timezone",
            "Mars/Olympus",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Mars/Olympus"));
    // tapedeck's own configuration is not taken for pytp's.
    let toml = h.path().join("tapedeck.toml");
    fs::write(&toml, "[[drive]]\nname = \"a\"\ndevice = \"/dev/nst0\"\n").unwrap();
    migrate(
        &h,
        &[
            "--pytp-config",
            toml.to_str().unwrap(),
            "--snapshots",
            &snapshots(),
        ],
    )
    .code(2)
    .stderr(predicate::str::contains("is a tapedeck configuration"));
    assert!(!h.db().exists());
}

/// The issue's words: `migrate-pytp --config config.json --snapshots DIR`. tapedeck's global
/// `--config` (its own TOML) takes that flag before migrate-pytp sees it; cli::main has to
/// hand it to migrate-pytp (see the patch in the migrate-pytp report).
#[test]
fn config_names_pytps_config_json() {
    let h = Home::new();
    let report = migrate_json(
        &h,
        &["--config", &pytp_config(), "--snapshots", &snapshots()],
        2,
    );
    assert_eq!(
        report["config"]["drives"],
        serde_json::json!(["lto9", "lto6"])
    );
    assert_eq!(report["summary"]["imported"], 10);
}
