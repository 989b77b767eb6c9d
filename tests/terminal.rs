//! The real binary in a real terminal (tmux): what an operator at the console sees.
//!
//! Needs tmux (`.ci/run` installs it); without it the test fails and says so.

mod common;

use common::{many_files, slow_library, Home, TmuxSession};
use std::process::Command;
use std::time::Duration;

fn require_tmux() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "this test drives the binary in tmux: install it (apt-get install -y tmux)"
    );
}

/// Starts `tapedeck backup --drive lto9 --memory-buffer 4MiB SRC` in a new tmux session;
/// the pane shows `EXIT=<code>` when it ends.
fn backup_in_tmux(home: &Home, src: &std::path::Path, tag: &str) -> TmuxSession {
    let exe = assert_cmd::cargo::cargo_bin("tapedeck");
    let script = format!(
        "TAPEDECK_HOME='{}' TAPEDECK_CONFIG='{}' '{}' backup --drive lto9 --memory-buffer 4MiB '{}'; \
         echo EXIT=$?; sleep 60",
        home.path().display(),
        home.config().display(),
        exe.display(),
        src.display()
    );
    TmuxSession::start(format!("{tag}-{}", std::process::id()), 160, &script)
}

#[test]
fn a_backup_in_a_terminal_shows_progress_and_ends_cleanly_on_ctrl_c() {
    require_tmux();
    let home = Home::new();
    slow_library(&home);
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    let src = many_files(home.path(), 60, 1 << 20);
    let session = backup_in_tmux(&home, &src, "tapedeck-test");

    // The progress line: bytes on tape, rate, buffer fill, writer state, ETA, current file.
    let screen = session.wait_for("MB/s | buffer", 30);
    assert!(
        screen.contains("streaming") || screen.contains("paused") || screen.contains("preparing"),
        "{screen}"
    );
    assert!(screen.contains("ETA"), "{screen}");
    assert!(
        screen.contains("many/f"),
        "the current file shows: {screen}"
    );

    // Ctrl-C: the buffer drains, the backup is marked aborted, the exit code is 130.
    session.send_keys("C-c");
    let screen = session.wait_for("EXIT=", 60);
    assert!(screen.contains("interrupted"), "{screen}");
    assert!(screen.contains("aborted"), "the summary says so: {screen}");
    assert!(screen.contains("EXIT=130"), "{screen}");
    let status = home.json(&["status", "--json"]).to_string();
    assert!(status.contains("aborted"), "{status}");
}

#[test]
fn the_operator_is_asked_for_a_tape_and_the_backup_goes_on_once_one_is_loaded() {
    require_tmux();
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    let session = backup_in_tmux(&home, &src, "tapedeck-change");
    let screen = session.wait_for("press Enter", 30);
    assert!(screen.contains("Drive lto9 needs a tape"), "{screen}");
    // Enter with nothing loaded: told again what is missing.
    session.send_keys("Enter");
    std::thread::sleep(Duration::from_millis(500));
    let screen = session.screen();
    assert!(
        screen.matches("needs a tape").count() >= 2,
        "asked again: {screen}"
    );
    // The operator loads a cartridge and presses Enter.
    home.run(&["load", "1", "--drive", "lto9"]).success();
    session.send_keys("Enter");
    let screen = session.wait_for("EXIT=", 30);
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("complete: volume TD0001L9"), "{screen}");
}

#[test]
fn answering_abort_at_a_tape_change_aborts_the_backup_as_ctrl_c_does() {
    require_tmux();
    let home = Home::new();
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "6MiB"])
        .success();
    home.run(&["load", "1", "--drive", "lto9"]).success();
    let src = many_files(home.path(), 4, 3_000_000);
    let session = backup_in_tmux(&home, &src, "tapedeck-abort");
    let screen = session.wait_for("a aborts", 60);
    assert!(screen.contains("needs a tape"), "{screen}");
    session.send_keys("a");
    session.send_keys("Enter");
    let screen = session.wait_for("EXIT=", 30);
    assert!(screen.contains("EXIT=130"), "{screen}");
    let status = home.json(&["status", "--json"]).to_string();
    assert!(status.contains("aborted"), "{status}");
    assert!(!status.contains("\"failed\""), "{status}");
}

#[test]
fn the_second_tape_change_of_a_run_takes_the_first_key_pressed() {
    require_tmux();
    let home = Home::new();
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "6MiB"])
        .success();
    home.run(&["load", "1", "--drive", "lto9"]).success();
    // About 15 MB: three 6 MiB cartridges, two tape changes.
    let src = many_files(home.path(), 5, 3_000_000);
    let session = backup_in_tmux(&home, &src, "tapedeck-twice");
    for (full, slot) in [("TD0001L9", "2"), ("TD0002L9", "3")] {
        session.wait_for(
            &format!("Drive lto9 needs a tape: volume {full} is full"),
            60,
        );
        // The progress bar does not draw over the prompt while it waits.
        std::thread::sleep(Duration::from_millis(1000));
        let screen = session.screen();
        let asked = screen.rsplit("needs a tape: volume").next().unwrap_or("");
        assert!(asked.contains("a aborts"), "{screen}");
        assert!(!asked.to_lowercase().contains("streaming"), "{screen}");
        home.run(&["unload", "--drive", "lto9"]).success();
        home.run(&["load", slot, "--drive", "lto9"]).success();
        // One Enter, once: it must be taken.
        session.send_keys("Enter");
        std::thread::sleep(Duration::from_millis(1500));
    }
    let screen = session.wait_for("EXIT=", 30);
    assert!(screen.contains("EXIT=0"), "{screen}");
}

/// `tapedeck attach ID` in a new tmux session; the pane shows `EXIT=<code>` when it ends.
fn attach_in_tmux(home: &Home, id: &str, tag: &str) -> TmuxSession {
    let exe = assert_cmd::cargo::cargo_bin("tapedeck");
    let script = format!(
        "TAPEDECK_HOME='{}' TAPEDECK_CONFIG='{}' '{}' attach {id}; echo EXIT=$?; sleep 60",
        home.path().display(),
        home.config().display(),
        exe.display(),
    );
    TmuxSession::start(format!("{tag}-{}", std::process::id()), 160, &script)
}

#[test]
fn a_detached_backup_is_attached_answered_on_the_terminal_and_outlives_a_closed_one() {
    require_tmux();
    let home = Home::new();
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "6MiB"])
        .success();
    home.run(&["load", "1", "--drive", "lto9"]).success();
    // About 9 MB: two 6 MiB cartridges, one tape change.
    let src = many_files(home.path(), 3, 3_000_000);
    let out = home
        .cmd()
        .args([
            "backup",
            "--detach",
            "--drive",
            "lto9",
            "--memory-buffer",
            "4MiB",
        ])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("backup-"), "{id}");

    // A first console attaches, sees the request, and its terminal goes away unanswered.
    let first = attach_in_tmux(&home, &id, "tapedeck-attach-1");
    let screen = first.wait_for("press Enter", 60);
    assert!(
        screen.contains("Drive lto9 needs a tape: volume TD0001L9 is full"),
        "{screen}"
    );
    assert!(screen.contains("TD0002L9 (slot 2)"), "{screen}");
    drop(first);
    std::thread::sleep(Duration::from_millis(500));
    let jobs = home.json(&["jobs", "--json"]);
    assert_eq!(jobs[0]["live"], true, "the job runs on: {jobs}");

    // A second one attaches later, is asked the same, and answers it.
    let second = attach_in_tmux(&home, &id, "tapedeck-attach-2");
    second.wait_for("press Enter", 30);
    home.run(&["unload", "--drive", "lto9"]).success();
    home.run(&["load", "2", "--drive", "lto9"]).success();
    second.send_keys("Enter");
    let screen = second.wait_for("EXIT=", 60);
    assert!(screen.contains("ended complete"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    // The job's record is final a moment after its last message.
    let mut jobs = serde_json::Value::Null;
    for _ in 0..100 {
        jobs = home.json(&["jobs", "--json"]);
        if jobs[0]["live"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(jobs[0]["outcome"]["status"], "complete", "{jobs}");
}
