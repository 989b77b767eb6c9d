//! Which processes hold a file open: scans `/proc/*/fd`, so a "device busy" error can
//! name the process instead of leaving the operator to run `fuser`.

use super::Holder;
use std::fs;
use std::path::Path;

/// Names the holders for a message: `pid 42 (tapedeck), pid 43 (sleep)`.
pub fn describe(holders: &[Holder]) -> String {
    if holders.is_empty() {
        "another process (could not tell which)".to_string()
    } else {
        holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Processes (other than this one) with `path` open. Processes whose `fd` directory
/// cannot be read (other users, when not root) are passed over.
pub fn holders_of(path: &Path) -> Vec<Holder> {
    let Ok(target) = fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|link| link == target));
        if holds {
            let command = fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".to_string());
            found.push(Holder { pid, command });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn names_a_process_holding_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("held");
        fs::write(&file, b"x").unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3<'{}'; sleep 30", file.display()))
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = holders_of(&file);
            if seen.iter().any(|h| h.pid == pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            seen.iter().any(|h| h.pid == pid),
            "holder not found: {seen:?}"
        );
    }

    #[test]
    fn nobody_holds_a_missing_file() {
        assert!(holders_of(Path::new("/nonexistent/tapedeck")).is_empty());
    }
}
