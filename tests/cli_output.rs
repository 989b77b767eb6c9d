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
