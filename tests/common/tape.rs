//! What lands on a virtual cartridge, read back as GNU tar (or the index) reads it.

use super::Home;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A data (or index) tape file of a virtual cartridge.
pub fn tape_file(home: &Home, volume: &str, n: u64) -> PathBuf {
    home.cartridge(volume).join(format!("{n:05}.tar"))
}

/// The tar member name of an absolute path (GNU tar drops the leading `/`).
pub fn member_name(path: &Path) -> String {
    path.strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// Where `path` lands when restored (by tar or tapedeck) into `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap())
}

/// The member names of a tar file as GNU tar lists them; the listing must succeed.
pub fn tar_list(file: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// GNU tar extracting `archive` into `into` (made first): how it went, for tape files that
/// may end in a cut.
pub fn tar_extract(archive: &Path, into: &Path) -> Output {
    fs::create_dir_all(into).unwrap();
    Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap()
}

/// GNU tar extracting `archive` into `into`, which must succeed.
pub fn tar_extract_ok(archive: &Path, into: &Path) {
    let out = tar_extract(archive, into);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GNU tar alone extracting a backup spanned over `volumes` from their data tape files
/// (tape file 1 of each), in order, into `into`; it must succeed.
pub fn tar_extract_volumes(home: &Home, volumes: &[String], into: &Path) {
    fs::create_dir_all(into).unwrap();
    let mut tar = Command::new("tar");
    tar.arg("-xM").arg("-C").arg(into);
    for v in volumes {
        tar.arg("-f").arg(tape_file(home, v, 1));
    }
    let done = tar.output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// Every file directly in `src` is in `back` with the same bytes.
pub fn same_files(src: &Path, back: &Path) {
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            fs::read(entry.path()).unwrap(),
            fs::read(back.join(entry.file_name())).unwrap(),
            "{:?} differs",
            entry.file_name()
        );
    }
}

/// An index tape file: the name of its one member and its JSON lines.
pub fn read_index(file: &Path) -> (String, Vec<serde_json::Value>) {
    let mut archive = tar::Archive::new(fs::File::open(file).unwrap());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let name = entry.path().unwrap().display().to_string();
    let mut zst = Vec::new();
    entry.read_to_end(&mut zst).unwrap();
    let lines = String::from_utf8(zstd::decode_all(zst.as_slice()).unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (name, lines)
}
