//! A backup whose catalogue cannot be written, through the binary against the virtual
//! library: the catalogue's commits fail one by one with the fault hook
//! (`TAPEDECK_FAULT=enospc|eio:catalog-write:N`, src/fault.rs), and what the summary calls
//! saved is exactly what the catalogue holds, and verifies.

mod common;

use common::{noise, Home};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// 40 files of 100 kB, a 4 MB one and 10 more of 100 kB: on 6 MiB cartridges the backup
/// spans two, and the files that end on the first are committed at the tape change.
fn source(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..40 {
        fs::write(src.join(format!("a-small{i:02}")), noise(100_000, i)).unwrap();
    }
    fs::write(src.join("b-big"), noise(4_000_000, 100)).unwrap();
    for i in 0..10 {
        fs::write(src.join(format!("c-small{i:02}")), noise(100_000, 200 + i)).unwrap();
    }
    src
}

/// A home with 6 MiB cartridges and pool `p`, and the source.
fn home() -> (Home, PathBuf) {
    let home = Home::new();
    common::pool_library(&home, "6MiB");
    let src = source(home.path());
    (home, src)
}

/// `backup` into pool `p` with `fault` planned (none if empty): exit code, the JSON
/// summary (`Null` if none was printed) and stderr.
fn backup(
    home: &Home,
    src: &Path,
    fault: &str,
    tally: Option<&Path>,
) -> (i32, serde_json::Value, String) {
    let mut cmd = home.cmd();
    if !fault.is_empty() {
        cmd.env("TAPEDECK_FAULT", fault);
    }
    if let Some(dir) = tally {
        cmd.env("TAPEDECK_FAULT_TALLY", dir);
    }
    let out = cmd
        .arg("backup")
        .args(common::POOL_BACKUP)
        .arg("--json")
        .arg(src)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), summary, stderr)
}

/// How often each fault point was reached, from the tally files of every process.
fn tally(dir: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        for line in fs::read_to_string(entry.unwrap().path()).unwrap().lines() {
            let (point, n) = line.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            let c = counts.entry(point.to_string()).or_insert(0);
            *c = (*c).max(n);
        }
    }
    counts
}

/// The paths `list --tape` places in backup `id` on `volumes`, by kind.
fn listed(home: &Home, id: &str, volumes: &[String]) -> BTreeSet<(String, String)> {
    let mut paths = BTreeSet::new();
    for v in volumes {
        let list = home.json(&["list", "--tape", v, "--json"]);
        for f in list.as_array().unwrap() {
            if f["backup"]["uuid"] == id {
                paths.insert((
                    f["kind"].as_str().unwrap().to_string(),
                    f["path"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    paths
}

#[test]
fn a_summary_counts_as_saved_only_what_the_catalogue_committed() {
    // How many commits a backup makes, from a run with no fault.
    let (census_home, src) = home();
    let census = census_home.path().join("census");
    fs::create_dir(&census).unwrap();
    let (code, done, stderr) = backup(&census_home, &src, "", Some(&census));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["files"], done["streamed"], "{done}");
    assert_eq!(done["volumes"].as_array().unwrap().len(), 2, "{done}");
    let commits = tally(&census)["catalog-write"];
    assert!(commits >= 8, "{commits} commits");

    let (mut partly_saved, mut stopped_mid_backup) = (false, false);
    for n in 1..=commits {
        let action = if n % 2 == 0 { "enospc" } else { "eio" };
        let fault = format!("{action}:catalog-write:{n}");
        let (home, src) = home();
        let (code, summary, stderr) = backup(&home, &src, &fault, None);
        let said = format!("{fault}: exit {code}\n{summary}\n{stderr}");
        let backups: Vec<(String, String, i64)> = {
            let db = home.sql();
            let mut stmt = db
                .prepare("SELECT uuid, status, files FROM backups")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        // Whatever failed, no backup is left running.
        assert!(
            backups.iter().all(|b| b.1 != "running"),
            "{said}\n{backups:?}"
        );
        if summary.is_null() {
            // Failed before anything was written (no backup, or one ended as failed).
            assert_eq!(code, 1, "{said}");
            assert!(
                backups.iter().all(|b| b.1 == "failed" && b.2 == 0),
                "{said}"
            );
            continue;
        }
        let id = summary["uuid"].as_str().unwrap();
        let (_, status, files) = backups.iter().find(|b| b.0 == id).unwrap();
        assert_eq!(summary["status"], status.as_str(), "{said}");
        // A commit that failed on the way may have been made good (another cartridge
        // taken); a backup that could not record what it wrote fails, saying why.
        if code == 0 {
            assert_eq!(summary["status"], "complete", "{said}");
        } else {
            assert_eq!(code, 1, "{said}");
            assert_eq!(summary["status"], "failed", "{said}");
            let error = summary["error"].as_str().unwrap();
            assert!(
                error.starts_with("the catalogue could not be written: "),
                "{said}"
            );
        }
        // Saved is what the catalogue holds: the backup's count, and what it lists.
        let saved = summary["files"].as_i64().unwrap();
        let streamed = summary["streamed"].as_i64().unwrap();
        assert_eq!(saved, *files, "{said}");
        assert!(saved <= streamed, "{said}");
        let volumes = common::strings(&summary["volumes"]);
        let listed = listed(&home, id, &volumes);
        let listed_files = listed.iter().filter(|(k, _)| k != "deleted").count() as i64;
        assert_eq!(listed_files, saved, "{said}\n{listed:?}");
        let bytes: u64 = listed
            .iter()
            .filter(|(k, _)| k == "file")
            .map(|(_, p)| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(summary["bytes"].as_u64().unwrap(), bytes, "{said}");
        if code == 1 && saved > 0 && saved < streamed {
            partly_saved = true;
        }
        if code == 1 && volumes.len() == 1 {
            // Stopped at the tape change: nothing went to the next cartridge.
            stopped_mid_backup = true;
        }
        // Every file it calls saved reads back and matches.
        if saved > 0 {
            let out = home
                .cmd()
                .args(["verify", "--drive", "lto9", "--backup", id])
                .output()
                .unwrap();
            let verified = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{said}\n{verified}");
            assert!(
                verified.contains(&format!("{saved} of {saved} members verified")),
                "{said}\n{verified}"
            );
        }
        // The next backup runs (a small one: the library has few blank cartridges left).
        let small = home.path().join("small");
        fs::create_dir(&small).unwrap();
        fs::write(small.join("f"), noise(10_000, 7)).unwrap();
        let (code, next, stderr) = backup(&home, &small, "", None);
        assert_eq!(code, 0, "{said}\nnext: {next}\n{stderr}");
        // The catalogue is consistent, or names what the fault cost: a cartridge whose
        // label was written while the catalogue could not record it (labelling is not
        // part of the backup's own recording).
        let check = home.cmd().args(["catalog", "check"]).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success()
                || report
                    .lines()
                    .all(|l| l
                        .contains("is labelled in the library but the catalogue does not know it")),
            "{said}\n{report}"
        );
    }
    assert!(partly_saved, "no fault left a backup partly recorded");
    assert!(
        stopped_mid_backup,
        "no fault stopped a backup at the tape change"
    );
}

#[test]
fn the_human_summary_tells_what_was_streamed_but_not_saved() {
    let (census_home, src) = home();
    let census = census_home.path().join("census");
    fs::create_dir(&census).unwrap();
    let (code, _, stderr) = backup(&census_home, &src, "", Some(&census));
    assert_eq!(code, 0, "{stderr}");
    // The last commit of the files: the one before the backup's end is recorded (drive
    // counters, volume usage and the end come after it).
    let commits = tally(&census)["catalog-write"];
    let (home, src) = home();
    let out = home
        .cmd()
        .env(
            "TAPEDECK_FAULT",
            format!("enospc:catalog-write:{}", commits - 3),
        )
        .arg("backup")
        .args(common::POOL_BACKUP)
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the catalogue could not be written: ")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(stderr.contains("files     41 saved"), "{stderr}");
    assert!(
        stderr.contains("NOT SAVED 11 of the 52 files streamed onto tape"),
        "{stderr}"
    );
}

#[test]
fn a_backup_the_catalogues_disk_cannot_take_is_refused_before_any_tape_moves() {
    let home = Home::with_fast_vlib();
    let src = home.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), noise(10_000, 1)).unwrap();
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let (first, _) = common::backup_json(&home, &["--drive", "lto9", "--job", "j"], &[&src], 0);
    assert_eq!(first["status"], "complete", "{first}");
    home.run(&["tape", "unload", "--drive", "lto9"]).success();
    // The job's last backup recorded more files than any disk's catalogue could take
    // again: the next backup of the job expects as many.
    home.sql()
        .execute("UPDATE backups SET files = 1000000000000000", [])
        .unwrap();
    let drive_before = home.library()["drives"][0].clone();

    let (_, stderr) = common::backup_json(&home, &["--drive", "lto9", "--job", "j"], &[&src], 2);
    let db = home.db();
    for part in [
        format!("catalogue {}: its disk has ", db.display()),
        " free, the backup needs about ".into(),
        "1000000000000000 files expected".into(),
        "free some space on that disk".into(),
    ] {
        assert!(stderr.contains(&part), "{part}: {stderr}");
    }
    // Nothing moved and nothing started.
    assert_eq!(home.library()["drives"][0], drive_before);
    let backups: i64 = home.sql_value("SELECT COUNT(*) FROM backups");
    assert_eq!(backups, 1);
    // Without the job's history, the same backup runs.
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let (next, _) = common::backup_json(&home, &["--drive", "lto9"], &[&src], 0);
    assert_eq!(next["status"], "complete", "{next}");
}
