//! The binary (or any command) in a real terminal: a tmux session and its screen.

use std::process::Command;
use std::time::{Duration, Instant};

/// `tmux ARGS`, outside any tmux the tests themselves run in: its stdout.
pub fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .env_remove("TMUX")
        .output()
        .expect("tmux (apt-get install -y tmux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmux session running a script; killed when the test ends, passed or not.
pub struct TmuxSession {
    pub name: String,
}

impl TmuxSession {
    /// Starts `script` in bash in a new detached session `name`, `width` columns by 30 lines.
    pub fn start(name: String, width: u16, script: &str) -> TmuxSession {
        let width = width.to_string();
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            &width,
            "-y",
            "30",
            "bash",
            "-c",
            script,
        ]);
        TmuxSession { name }
    }

    /// What the pane shows now.
    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Waits until the pane shows `what`, returning the screen.
    pub fn wait_for(&self, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "`{what}` did not appear within {secs} s; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `keys` (tmux key names: `Enter`, `C-c`).
    pub fn send_keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.name, keys]);
    }
}

impl Drop for TmuxSession {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.name]);
    }
}
