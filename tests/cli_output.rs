//! How the command line behaves as a citizen of a shell: output to a reader that has gone
//! away, colour, and the smaller messages an operator meets.

mod common;

use common::*;

/// Runs tapedeck with its stdout a pipe whose reader is already closed, as in
/// `tapedeck ... | true` once `true` has exited: returns the exit code and stderr.
fn into_closed_pipe(home: &Home, args: &[&str]) -> (Option<i32>, String) {
    // A socket whose peer is closed fails writes with EPIPE, as such a pipe does.
    let (writer, reader) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(reader);
    let stdout = std::os::fd::OwnedFd::from(writer);
    let out = home.process().args(args).stdout(stdout).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_as_gnu_tools_do() {
    let (home, src, _) = three_files_backed_up(1000);
    let commands: [&[&str]; 4] = [
        &["find", "a"],
        &["find", "no-such-file"],
        &["list", "--tape", "TD0001L9"],
        &["status", "--json"],
    ];
    for args in commands {
        let (code, stderr) = into_closed_pipe(&home, args);
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} said: {stderr}");
    }
    // A backup whose --json summary finds no reader is still recorded complete.
    let (code, stderr) = into_closed_pipe(
        &home,
        &["backup", "--drive", "lto9", "--json", src.to_str().unwrap()],
    );
    assert_eq!(code, Some(141), "{stderr}");
    let complete: i64 = home.sql_value("SELECT count(*) FROM backups WHERE status = 'complete'");
    assert_eq!(complete, 2);
}

#[test]
fn no_colour_escapes_when_stderr_is_not_a_terminal() {
    let home = Home::with_fast_vlib();
    let out = home.cmd().args(["-vv", "status"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.is_empty(), "-vv logs something");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

#[test]
fn retention_takes_weeks_months_and_years() {
    let home = Home::with_fast_vlib();
    for (name, period, days) in [
        ("w", "5w", 35),
        ("m", "6m", 186),
        ("y", "1y", 366),
        ("d", "30", 30),
    ] {
        home.run(&["pool", "create", "--name", name, "--retention", period])
            .success();
        let pools = home.json(&["pool", "list", "--json"]);
        let pool = pools
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name || p["pool"]["name"] == name)
            .unwrap_or_else(|| panic!("{pools}"));
        let retention = pool
            .get("retention_days")
            .or(pool["pool"].get("retention_days"));
        assert_eq!(retention, Some(&serde_json::json!(days)), "{pool}");
    }
    let out = home
        .run(&["pool", "create", "--name", "x", "--retention", "5 weeks"])
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("5w"), "{stderr}");
}

#[test]
fn a_too_small_buffer_is_named_as_asked() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 2, 10);
    let out = home
        .run(&["backup", "--memory-buffer", "1KiB", src.to_str().unwrap()])
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("a memory buffer of 1 KiB is too small"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 4 blocks"), "{stderr}");
}

#[test]
fn a_bare_buffer_size_in_the_configuration_means_gib_as_on_the_command_line() {
    let home = Home::with_fast_vlib();
    std::fs::write(home.config(), "[buffer]\nsize = \"3\"\n").unwrap();
    let config = home.json(&["config", "--json"]);
    assert_eq!(config["config"]["buffer"]["size"], 3u64 << 30, "{config}");
}

#[test]
fn restore_into_a_file_says_it_is_not_a_directory() {
    let (home, src, _) = three_files_backed_up(1000);
    let file = src.join("a");
    let out = home
        .run(&[
            "restore",
            "--tape",
            "TD0001L9",
            "--to",
            file.to_str().unwrap(),
        ])
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("is not a directory"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
}

#[test]
fn a_missing_device_node_is_named_with_the_drive() {
    let home = Home::new();
    std::fs::write(
        home.config(),
        "[[drive]]\nname = \"lto9\"\ndevice = \"/dev/no-such-nst9\"\n",
    )
    .unwrap();
    let out = home.run(&["tape", "status", "--drive", "lto9"]).code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("/dev/no-such-nst9"), "{stderr}");
    assert!(stderr.contains("lto9"), "{stderr}");
}

#[test]
fn backup_help_does_not_ask_for_a_label_first_nor_make_drive_look_required() {
    let home = Home::new();
    let help = home.stdout(&["backup", "--help"]);
    assert!(!help.contains("must be labelled"), "{help}");
    assert!(
        help.contains("Usage: tapedeck backup [OPTIONS] PATH..."),
        "{help}"
    );
}

#[test]
fn without_a_terminal_a_backup_says_how_it_goes_on_stderr_and_on_which_volume() {
    let home = Home::new();
    // About 4 MB/s onto 12 MiB cartridges: 40 MB take some 10 s and four volumes.
    home.run(&[
        "vlib",
        "init",
        "--time-scale",
        "0.01",
        "--capacity",
        "12MiB",
    ])
    .success();
    home.run(&["pool", "create", "--name", "p", "--retention", "7"])
        .success();
    let src = many_files(home.path(), 10, 4_000_000);
    let out = home
        .cmd()
        .args(["backup", "--drive", "lto9", "--pool", "p"])
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(!lines.is_empty(), "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("volume TD000") && !l.contains("volume TD0001L9")),
        "the progress follows the backup onto its next volumes: {stderr}"
    );
}

#[test]
fn list_tape_columns_line_up() {
    let (home, _, _) = three_files_backed_up(1000);
    let out = home.stdout(&["list", "--tape", "TD0001L9"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.pop(); // the total
    let at = lines[0].find("PATH").unwrap();
    for line in &lines[1..] {
        assert_eq!(line.find('/'), Some(at), "{out}");
    }
}
