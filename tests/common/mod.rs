//! What the integration tests share: a scratch `TAPEDECK_HOME` and the binary run in it
//! (here), running backups and the sources they read (`backup`), commands in the
//! background (`background`), what the catalogue knows of a file (`catalog`), tape files
//! read back with GNU tar (`tape`) and a real terminal (`tmux`).
#![allow(dead_code)] // each test crate uses its own part of this

mod background;
mod backup;
pub mod campaign;
mod catalog;
mod tape;
mod tmux;

#[allow(unused_imports)] // as above: not every crate uses every part
pub use background::*;
#[allow(unused_imports)]
pub use backup::*;
#[allow(unused_imports)]
pub use catalog::*;
#[allow(unused_imports)]
pub use tape::*;
#[allow(unused_imports)]
pub use tmux::*;

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};
use tapedeck::catalog::Catalog;

/// A scratch TAPEDECK_HOME with an (empty) configuration file, so nothing outside it counts.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        let home = Home {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        fs::write(home.config(), "").expect("empty configuration");
        home
    }

    /// A home with a virtual library that does not wait for the drive model.
    pub fn with_fast_vlib() -> Self {
        let home = Home::new();
        home.init_fast();
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    pub fn vlib(&self) -> PathBuf {
        self.path().join("vlib")
    }

    /// The virtual library's `library.json`: its drives, slots and mail slot.
    pub fn library(&self) -> serde_json::Value {
        let path = self.vlib().join("library.json");
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Changes `library.json` as `edit` says, replacing it at once (a running command
    /// never reads half of it).
    pub fn edit_library(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut lib = self.library();
        edit(&mut lib);
        let path = self.vlib().join("library.json");
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_string_pretty(&lib).unwrap()).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }

    /// The directory of a virtual cartridge: its tape files and `cartridge.json`.
    pub fn cartridge(&self, label: &str) -> PathBuf {
        self.vlib().join("cartridges").join(label)
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("catalog.db")
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::open(&self.db()).expect("open the catalogue")
    }

    /// The catalogue's database itself, to look at or change what no command shows.
    pub fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open the catalogue database")
    }

    /// The first column of the one row `query` returns.
    pub fn sql_value<T: rusqlite::types::FromSql>(&self, query: &str) -> T {
        self.sql()
            .query_row(query, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// The tapedeck binary with this home and configuration, and no drive from outside.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("tapedeck").expect("the tapedeck binary");
        c.env("TAPEDECK_HOME", self.path())
            .env("TAPEDECK_CONFIG", self.config())
            .env_remove("TAPEDECK_DRIVE");
        c
    }

    /// The tapedeck binary as a plain process in this home, to start in the background:
    /// no terminal, its output piped.
    pub fn process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("tapedeck"));
        c.env("TAPEDECK_HOME", self.path())
            .env("TAPEDECK_CONFIG", self.config())
            .env_remove("TAPEDECK_DRIVE")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    }

    pub fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        self.cmd().args(args).assert()
    }

    pub fn init_fast(&self) {
        self.run(&["vlib", "init", "--time-scale", "0"]).success();
    }

    /// Stdout of a command that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.run(args).success().get_output().stdout.clone();
        String::from_utf8(out).expect("UTF-8 output")
    }

    /// Stdout of a command that must succeed, as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.stdout(args)).expect("JSON output")
    }

    /// A command expected to exit with `code`: its stdout as JSON (`Null` when it printed
    /// none, as on bad input) and its stderr.
    pub fn json_report(&self, args: &[&str], code: i32) -> (serde_json::Value, String) {
        let out = self.cmd().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (report, stderr)
    }
}

/// A library whose LTO-9 drive writes at about 4 MB/s and has a small cache, so a backup
/// of a few tens of MB takes long enough to interrupt.
pub fn slow_library(home: &Home) {
    home.run(&["vlib", "init", "--time-scale", "0.01"])
        .success();
    home.edit_library(|lib| {
        for d in lib["drives"].as_array_mut().unwrap() {
            d["model"]["cache"] = serde_json::json!(2 << 20);
        }
    });
}

pub fn many_files(root: &Path, n: usize, size: usize) -> PathBuf {
    let src = root.join("many");
    fs::create_dir_all(&src).unwrap();
    for i in 0..n {
        let data: Vec<u8> = (0..size).map(|j| ((i * 7 + j) % 253) as u8).collect();
        fs::write(src.join(format!("f{i:03}")), data).unwrap();
    }
    src
}

/// `n` bytes that do not compress and differ by seed (xorshift; the seed is spread over
/// the word first, so that neighbouring seeds give different bytes).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A JSON array of strings.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// Loads the first LTO-9 cartridge and labels it.
pub fn labelled(home: &Home) {
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9"]).success();
}

/// `n` empty files: a stream of nothing but headers.
pub fn empty_files(root: &Path, n: usize) -> PathBuf {
    let src = root.join("empty");
    fs::create_dir_all(&src).unwrap();
    for i in 0..n {
        fs::write(src.join(format!("e{i:06}")), b"").unwrap();
    }
    src
}
