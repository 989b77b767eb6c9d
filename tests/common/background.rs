//! Commands started in the background: waiting for what they do, Ctrl-C, their end.

use super::Home;
use std::fs;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Ctrl-C for a command started in the background (SIGINT).
pub fn interrupt(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
}

/// Waits for a command started in the background, which must exit with `code`: its
/// stdout as JSON and its stderr.
pub fn wait_json(child: Child, code: i32) -> (serde_json::Value, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (report, stderr)
}

/// Checks `done` every 50 ms; fails saying `what` did not happen after `secs` seconds.
fn poll(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a backup has written its first data block to `file` (a tape file).
pub fn wait_for_data(file: &Path) {
    poll(10, "the backup wrote nothing", || {
        fs::metadata(file).map(|m| m.len() > 0).unwrap_or(false)
    });
}

/// Waits until a log file of `home` says `text` (a command asking for a tape, say).
pub fn wait_for_log(home: &Home, text: &str) {
    poll(30, &format!("the log never said `{text}`"), || {
        fs::read_dir(home.path().join("logs"))
            .map(|d| {
                d.flatten().any(|f| {
                    fs::read_to_string(f.path())
                        .unwrap_or_default()
                        .contains(text)
                })
            })
            .unwrap_or(false)
    });
}
