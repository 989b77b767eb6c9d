//! The README's "Restore without tapedeck" commands, run as they stand against tape files
//! that `tapedeck backup` wrote to the virtual library: the test reads the README section's
//! shell blocks and runs every line with bash, so the text and the test cannot drift apart.
//!
//! A virtual cartridge keeps each tape file as a file, so the test plays the drive: `mt`
//! lines move a position (rewind, fsf, seek; setblk changes nothing here), `/dev/nst0` in
//! any other command is the tape from that position to the end of its tape file, and the
//! comment that asks for the next volume loads it. Example values are the test's own:
//! variable assignments (`BLOCK=...`) come from the index, `home/me/notes.txt` is the test's
//! file. `tar -M` reading the drive itself runs in tmux, where it asks for the next volume
//! on its terminal: the device then points at the next volume, and the comment that says
//! to press Enter does so. tmux is needed (`.ci/run` installs it).

mod common;

use common::{backup_lto9, noise, pool_library, strings, under, Home, TmuxSession};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const BLOCK: u64 = 512 * 1024;
const EXAMPLE_FILE: &str = "home/me/notes.txt";

/// The shell blocks of the README section, each a list of lines.
fn readme_blocks() -> Vec<Vec<String>> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Restore without tapedeck\n")
        .expect("the README has a `## Restore without tapedeck` section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    let section = &rest[..end];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(lines), l) => lines.push(l.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

/// The drive as the README's commands see it: volumes in order, the one loaded, and a
/// position (tape file, block in it).
struct Tape {
    cartridges: Vec<PathBuf>,
    loaded: usize,
    file: u64,
    block: u64,
    scratch: PathBuf,
}

impl Tape {
    fn tape_file(&self, n: u64) -> PathBuf {
        self.cartridges[self.loaded].join(format!("{n:05}.tar"))
    }

    fn blocks_in(&self, n: u64) -> u64 {
        fs::metadata(self.tape_file(n)).map_or(0, |m| m.len() / BLOCK)
    }

    /// `mt -f /dev/nst0 OP [N]`.
    fn mt(&mut self, words: &[&str]) {
        assert_eq!(&words[..3], ["mt", "-f", "/dev/nst0"], "{words:?}");
        let n = || words[4].parse::<u64>().expect("a count");
        match words[3] {
            "setblk" => {}
            "rewind" => (self.file, self.block) = (0, 0),
            "fsf" => (self.file, self.block) = (self.file + n(), 0),
            "seek" => {
                // Logical objects: every block and every filemark counts.
                let (mut object, mut file) = (n(), 0);
                while object > self.blocks_in(file) {
                    object -= self.blocks_in(file) + 1;
                    file += 1;
                    assert!(self.tape_file(file).exists(), "seek past end of data");
                }
                (self.file, self.block) = (file, object);
            }
            other => panic!("mt {other} is not played by this test"),
        }
    }

    /// The path standing for /dev/nst0: the tape file from the current block on.
    fn device(&self) -> PathBuf {
        let path = self.tape_file(self.file);
        if self.block == 0 {
            return path;
        }
        let bytes = fs::read(&path).unwrap();
        let rest = self.scratch.join("from-block.tar");
        fs::write(&rest, &bytes[(self.block * BLOCK) as usize..]).unwrap();
        rest
    }
}

/// A command running in tmux, waiting for the operator; the session ends with the test.
struct Interactive {
    session: TmuxSession,
    /// The symlink standing for /dev/nst0.
    device: PathBuf,
}

/// Starts `command` (which reads /dev/nst0 and asks on its terminal) in tmux, in `dir`.
fn start_interactive(command: &str, tape: &Tape, dir: &Path) -> Interactive {
    let device = tape.scratch.join("nst0");
    let _ = fs::remove_file(&device);
    std::os::unix::fs::symlink(tape.device(), &device).unwrap();
    let script = format!(
        "cd '{}' && {}; echo EXIT=$?; sleep 120",
        dir.display(),
        command.replace("/dev/nst0", device.to_str().unwrap())
    );
    let session = TmuxSession::start(format!("restore-{}", std::process::id()), 200, &script);
    Interactive { session, device }
}

/// Runs one README block in `dir`; returns each command's stdout.
fn run_block(
    lines: &[String],
    tape: &mut Tape,
    dir: &Path,
    member: &str,
    vars: &[(&str, String)],
) -> Vec<String> {
    fs::create_dir_all(dir).unwrap();
    let mut outputs = Vec::new();
    let mut waiting: Option<Interactive> = None;
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.contains("load the next volume") {
                tape.loaded += 1;
                assert!(tape.loaded < tape.cartridges.len(), "no next volume");
            }
            if comment.contains("press Enter") {
                let tar = waiting.take().expect("a command waiting for Enter");
                fs::remove_file(&tar.device).unwrap();
                std::os::unix::fs::symlink(tape.device(), &tar.device).unwrap();
                tar.session.send_keys("Enter");
                let screen = tar.session.wait_for("EXIT=", 60);
                assert!(screen.contains("EXIT=0"), "`tar -M` failed:\n{screen}");
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.iter().all(|w| {
            w.split_once('=')
                .is_some_and(|(k, _)| vars.iter().any(|(v, _)| v == &k))
        }) {
            continue; // example values: the test sets its own
        }
        if line.starts_with("mt ") {
            for part in line.split(';') {
                // `$NAME` is the shell's: the test's own value.
                let words: Vec<&str> = part
                    .split_whitespace()
                    .map(|w| {
                        w.strip_prefix('$')
                            .and_then(|name| vars.iter().find(|(k, _)| *k == name))
                            .map_or(w, |(_, v)| v.as_str())
                    })
                    .collect();
                tape.mt(&words);
            }
            continue;
        }
        if line.contains(" -M ") && line.contains("-f /dev/nst0") {
            let tar = start_interactive(&line.replace(EXAMPLE_FILE, member), tape, dir);
            tar.session.wait_for("Prepare volume #2", 60);
            waiting = Some(tar);
            continue;
        }
        let command = line
            .replace("/dev/nst0", tape.device().to_str().unwrap())
            .replace(EXAMPLE_FILE, member);
        let out = Command::new("bash")
            .arg("-c")
            .arg(&command)
            .current_dir(dir)
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{line}` (run as `{command}`) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert!(waiting.is_none(), "a command still waits for Enter");
    outputs
}

fn backup(home: &Home, src: &Path) -> serde_json::Value {
    backup_lto9(home, src, &["--pool", "p"])
}

#[test]
fn the_readme_commands_restore_from_tape_files_alone() {
    for tool in ["tar", "zstd", "dd", "tail", "grep"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .status()
            .unwrap();
        assert!(found.success(), "{tool} is needed (apt-get install {tool})");
    }
    let blocks = readme_blocks();
    assert_eq!(blocks.len(), 6, "the section's shell blocks: {blocks:?}");

    // Volume TD0001L9: a first backup (tape files 1, 2), a second (3, 4), then one that
    // starts at tape file 5 and continues on TD0002L9 at tape file 1, as the README says.
    let home = Home::new();
    pool_library(&home, "12MiB");
    home.run(&["tape", "load", "--drive", "lto9"]).success();
    home.run(&["volume", "label", "--drive", "lto9", "--pool", "p"])
        .success();
    let src = home.path().join("src");
    fs::create_dir_all(src.join("home/me")).unwrap();
    let notes = src.join(EXAMPLE_FILE);
    fs::write(&notes, b"remember the milk\n").unwrap();
    for i in 0..30 {
        fs::write(src.join(format!("home/me/page{i:02}.txt")), noise(5000, i)).unwrap();
    }
    let first = backup(&home, &src);
    assert_eq!(first["tape_file"], 1);
    let other = home.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("x"), b"x").unwrap();
    assert_eq!(backup(&home, &other)["tape_file"], 3);
    let big = home.path().join("big");
    fs::create_dir(&big).unwrap();
    for (name, size, seed) in [("a-big", 6_000_000, 1), ("b-big", 5_000_000, 2)] {
        fs::write(big.join(name), noise(size, seed)).unwrap();
    }
    let spanned = backup(&home, &big);
    let volumes = strings(&spanned["volumes"]);
    assert_eq!(volumes, ["TD0001L9", "TD0002L9"], "{spanned}");
    assert_eq!(spanned["tape_file"], 5, "{spanned}");

    let work = home.path().join("work");
    let mut tape = Tape {
        cartridges: volumes.iter().map(|v| home.cartridge(v)).collect(),
        loaded: 0,
        file: 0,
        block: 0,
        scratch: home.path().to_path_buf(),
    };
    let member = notes.to_str().unwrap().trim_start_matches('/').to_string();
    let member = member.as_str();

    // The label.
    let out = run_block(&blocks[0], &mut tape, &work.join("0"), member, &[]);
    let label: serde_json::Value = serde_json::from_str(out.last().unwrap()).unwrap();
    assert_eq!(label["label"], "TD0001L9");
    assert_eq!(label["block_size"], BLOCK);

    // The whole first backup: listed, then restored byte for byte.
    let dir = work.join("1");
    let out = run_block(&blocks[1], &mut tape, &dir, member, &[]);
    assert!(
        out[0].contains("notes.txt") && out[0].contains("page29.txt"),
        "{}",
        out[0]
    );
    assert_eq!(
        fs::read(dir.join(member)).unwrap(),
        fs::read(&notes).unwrap()
    );
    let page = src.join("home/me/page17.txt");
    let page_member = page.to_str().unwrap().trim_start_matches('/');
    assert_eq!(
        fs::read(dir.join(page_member)).unwrap(),
        fs::read(&page).unwrap()
    );

    // Its index, and the file's line in it.
    let dir = work.join("2");
    let out = run_block(&blocks[2], &mut tape, &dir, member, &[]);
    let line: serde_json::Value = serde_json::from_str(out.last().unwrap().trim()).unwrap();
    assert_eq!(line["path"], notes.to_str().unwrap());
    let index = fs::read_to_string(dir.join("index.jsonl")).unwrap();
    assert!(index.lines().count() > 30, "{index}");

    // One file by its place on tape, from the index line.
    let segment = &line["segments"][0];
    let vars = [
        ("BLOCK", segment["block"].to_string()),
        ("OFFSET", segment["offset"].to_string()),
    ];
    let dir = work.join("3");
    run_block(&blocks[3], &mut tape, &dir, member, &vars);
    assert_eq!(
        fs::read(dir.join(member)).unwrap(),
        fs::read(&notes).unwrap()
    );
    let restored: Vec<_> = walk(&dir);
    assert_eq!(restored.len(), 1, "only that file: {restored:?}");

    // The spanned backup from its two volumes' parts, then from the drive with tar asking
    // for the next volume.
    for (block, dir) in [(4, work.join("4")), (5, work.join("5"))] {
        tape.loaded = 0;
        run_block(&blocks[block], &mut tape, &dir, member, &[]);
        assert_eq!(tape.loaded, 1, "the second volume was loaded");
        for name in ["a-big", "b-big"] {
            let back = under(&dir, &big).join(name);
            assert!(
                fs::read(&back).unwrap() == fs::read(big.join(name)).unwrap(),
                "block {block}: {name} differs"
            );
        }
    }
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
