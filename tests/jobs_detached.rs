//! Detached jobs end to end: `backup`, `restore` and `verify` started with `--detach`,
//! watched and answered over their sockets by this test process (another process than the
//! job), listed by `tapedeck jobs --json`, and what the catalogue keeps of them.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tapedeck::job::{registry, Answer, Client, ClientError, Command, Event, Message, TapeRequest};

/// How long anything a test waits for may take: generous, never a measure.
const DEADLINE: Duration = Duration::from_secs(60);

/// Set in the environment of this test binary run again as a client process.
const CLIENT_RUN: &str = "TAPEDECK_TEST_CLIENT_RUN";
const CLIENT_ID: &str = "TAPEDECK_TEST_CLIENT_ID";
/// What the client process prints once it has the job's hello.
const CLIENT_CONNECTED: &str = "client connected";

fn run_dir(home: &Home) -> PathBuf {
    registry::run_dir(home.path())
}

/// Jobs a test started: hard-aborted when the test ends, so a failing test leaves no job
/// waiting for a tape forever.
struct Started<'a> {
    home: &'a Home,
    ids: Vec<String>,
}

impl<'a> Started<'a> {
    fn new(home: &'a Home) -> Self {
        Started {
            home,
            ids: Vec::new(),
        }
    }

    /// `tapedeck ARGS --detach`, which must succeed: the id it prints.
    fn detach(&mut self, args: &[&str]) -> String {
        let out = self.home.cmd().args(args).arg("--detach").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            registry::socket_path(&run_dir(self.home), &id).exists(),
            "{id} is printed once it is reachable: {stderr}"
        );
        self.ids.push(id.clone());
        id
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            if let Ok(mut c) = Client::connect(&run_dir(self.home), id) {
                let _ = c.command(Command::Abort { hard: true });
            }
        }
    }
}

fn connect(home: &Home, id: &str) -> Client {
    Client::connect(&run_dir(home), id).unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// Waits on `client` until its job asks for a tape (a request newer than `after`): from
/// the hello's state, a state message or a `tape_needed` event.
fn wait_request(client: &mut Client, after: u64) -> TapeRequest {
    let deadline = Instant::now() + DEADLINE;
    if let Some(p) = client.state().pending.clone().filter(|p| p.id > after) {
        return p;
    }
    loop {
        assert!(Instant::now() < deadline, "no tape request after {after}");
        match client.next(Duration::from_millis(500)) {
            Ok(Some(Message::Event(e))) => {
                if let Event::TapeNeeded { request } = e.event {
                    if request.id > after {
                        return request;
                    }
                }
            }
            Ok(Some(Message::State { state })) => {
                assert!(state.outcome.is_none(), "ended waiting: {state:?}");
                if let Some(p) = state.pending.filter(|p| p.id > after) {
                    return p;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("waiting for a tape request: {e}"),
        }
    }
}

/// Reads `client` until its job closes the connection: the `job_finished` outcome's status.
fn read_to_end(mut client: Client) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut status = None;
    loop {
        assert!(Instant::now() < deadline, "the job did not end");
        match client.next(Duration::from_millis(500)) {
            Ok(Some(Message::Event(e))) => {
                if let Event::JobFinished { outcome } = e.event {
                    status = Some(outcome.status.to_string());
                }
            }
            Ok(_) => {}
            Err(ClientError::Gone) => break,
            Err(e) => panic!("{e}"),
        }
    }
    status.expect("a job_finished event before the end")
}

/// The entry of `id` in `tapedeck jobs --json`, once the job has ended and is recorded so.
fn ended(home: &Home, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let all = home.json(&["jobs", "--json"]);
        let entry = all
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {all}"))
            .clone();
        if entry["live"] == false && !entry["outcome"].is_null() {
            return entry;
        }
        assert!(Instant::now() < deadline, "{id} never ended: {entry}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The entry of `id` in `tapedeck jobs --json` once it shows a pending request.
fn listed_waiting(home: &Home, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let all = home.json(&["jobs", "--json"]);
        if let Some(entry) = all.as_array().unwrap().iter().find(|j| j["id"] == id) {
            if !entry["state"]["pending"].is_null() {
                return entry.clone();
            }
            assert!(entry["outcome"].is_null(), "{id} ended: {entry}");
        }
        assert!(Instant::now() < deadline, "{id} never waited: {all}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The job's log (its stdout and stderr), for failure messages.
fn log_of(home: &Home, id: &str) -> String {
    std::fs::read_to_string(run_dir(home).join(format!("{id}.log"))).unwrap_or_default()
}

/// Swaps the cartridge in `drive` for the one in `slot`.
fn change_tape(home: &Home, drive: &str, slot: &str) {
    home.run(&["unload", "--drive", drive]).success();
    home.run(&["load", slot, "--drive", drive]).success();
}

fn answer(client: &mut Client, request: &TapeRequest, answer: Answer) -> String {
    client
        .command(Command::Answer {
            request: request.id,
            answer,
        })
        .unwrap_or_else(|e| panic!("answering {}: {e}", request.id))
}

/// A library of 6 MiB cartridges (slots 1-4 LTO-9, 5-8 LTO-6) that does not wait for the
/// drive model, with slot 1 in lto9.
fn small_cartridges(home: &Home) {
    home.run(&["vlib", "init", "--time-scale", "0", "--capacity", "6MiB"])
        .success();
    home.run(&["load", "1", "--drive", "lto9"]).success();
}

/// What a backup on `drive` with 64 KiB blocks passes, no pool (the operator brings the
/// next tape); `buffer`: `--memory-buffer`, none for the default.
fn backup_args<'a>(drive: &'a str, buffer: Option<&'a str>, src: &'a Path) -> Vec<&'a str> {
    let mut args = vec!["backup", "--drive", drive, "--block-size", "64KiB"];
    if let Some(b) = buffer {
        args.extend(["--memory-buffer", b]);
    }
    args.push(src.to_str().unwrap());
    args
}

/// The catalogue's one backup, as `tapedeck status --json` shows it.
fn only_backup(home: &Home) -> serde_json::Value {
    let status = home.json(&["status", "--json"]);
    let all = status.as_array().unwrap();
    assert_eq!(all.len(), 1, "{status}");
    all[0].clone()
}

#[test]
fn a_detached_backup_asks_for_its_second_tape_over_its_socket_and_completes() {
    let home = Home::new();
    small_cartridges(&home);
    // About 7 MiB: more than one 6 MiB cartridge holds.
    let src = many_files(home.path(), 7, 1 << 20);
    let mut jobs = Started::new(&home);
    let id = jobs.detach(&backup_args("lto9", Some("4MiB"), &src));
    assert!(id.starts_with("backup-"), "{id}");

    let mut client = connect(&home, &id);
    assert_eq!(client.state().id, id);
    let request = wait_request(&mut client, 0);
    assert_eq!(request.drive, "lto9");
    assert!(request.reason.contains("TD0001L9 is full"), "{request:?}");
    assert!(request.answers.contains(&Answer::Loaded), "{request:?}");
    // The blank LTO-9 cartridges qualify, each with where it is; the LTO-6 ones do not.
    let candidates: Vec<(String, String)> = request
        .candidates
        .iter()
        .map(|c| (c.volume.clone(), c.location.clone()))
        .collect();
    for (volume, slot) in [("TD0002L9", "slot 2"), ("TD0003L9", "slot 3")] {
        assert!(
            candidates.contains(&(volume.to_string(), slot.to_string())),
            "{candidates:?}"
        );
    }
    assert!(
        candidates.iter().all(|(v, _)| v.ends_with("L9")),
        "{candidates:?}"
    );
    // `jobs` shows the same request.
    let waiting = listed_waiting(&home, &id);
    assert_eq!(waiting["state"]["pending"]["id"], request.id, "{waiting}");
    assert_eq!(waiting["state"]["phase"], "waiting_for_tape", "{waiting}");

    change_tape(&home, "lto9", "2");
    let reply = answer(&mut client, &request, Answer::Loaded);
    assert!(reply.contains("answered: loaded"), "{reply}");
    assert_eq!(read_to_end(client), "complete", "{}", log_of(&home, &id));

    let entry = ended(&home, &id);
    assert_eq!(entry["kind"], "backup", "{entry}");
    assert_eq!(entry["outcome"]["status"], "complete", "{entry}");
    assert_eq!(entry["outcome"]["exit_code"], 0, "{entry}");
    assert_eq!(entry["state"]["phase"], "done", "{entry}");
    let backup = only_backup(&home);
    assert_eq!(backup["status"], "complete", "{backup}");
    assert_eq!(
        strings(&backup["volumes"]),
        ["TD0001L9", "TD0002L9"],
        "{backup}"
    );
    let first = home.json(&["volume", "show", "--tape", "TD0001L9", "--json"]);
    assert_eq!(first["status"], "full", "{first}");
    home.run(&["catalog", "check"]).success();
}

#[test]
fn a_hard_abort_over_the_socket_ends_a_waiting_backup_as_aborted() {
    let home = Home::new();
    small_cartridges(&home);
    let src = many_files(home.path(), 7, 1 << 20);
    let mut jobs = Started::new(&home);
    let id = jobs.detach(&backup_args("lto9", Some("4MiB"), &src));
    let mut client = connect(&home, &id);
    wait_request(&mut client, 0);
    let reply = client.command(Command::Abort { hard: true }).unwrap();
    assert!(reply.contains("stopping now"), "{reply}");
    assert_eq!(read_to_end(client), "aborted", "{}", log_of(&home, &id));

    let entry = ended(&home, &id);
    assert_eq!(entry["outcome"]["status"], "aborted", "{entry}");
    assert_eq!(entry["outcome"]["exit_code"], 130, "{entry}");
    assert!(entry["state"]["pending"].is_null(), "{entry}");
    let backup = only_backup(&home);
    assert_eq!(backup["status"], "aborted", "{backup}");
    home.run(&["catalog", "check"]).success();
    // Nothing is left to answer.
    home.run(&["answer", &id, "loaded"]).code(2);
}

/// A backup on `drive` waiting for its second tape: its id, a client and the request.
struct Waiting {
    id: String,
    client: Client,
    request: TapeRequest,
}

/// Two detached backups of about 7 MiB each with the default buffer, on lto9 (slot 1) and
/// lto6 (slot 5) of a library of 6 MiB cartridges, the second started once the first has
/// its buffer and waits for its second tape; both waiting.
fn two_waiting_backups(home: &Home, jobs: &mut Started<'_>) -> (Waiting, Waiting) {
    small_cartridges(home);
    home.run(&["load", "5", "--drive", "lto6"]).success();
    let mut start = |drive: &str, dir: &str| {
        let src = many_files(&home.path().join(dir), 7, 1 << 20);
        let id = jobs.detach(&backup_args(drive, None, &src));
        let mut client = connect(home, &id);
        let request = wait_request(&mut client, 0);
        assert_eq!(request.drive, drive, "{request:?}");
        Waiting {
            id,
            client,
            request,
        }
    };
    let first = start("lto9", "nine");
    let second = start("lto6", "six");
    (first, second)
}

/// The `buffer` of each job in `tapedeck jobs --json`, by id.
fn buffers(home: &Home) -> std::collections::HashMap<String, u64> {
    let all = home.json(&["jobs", "--json"]);
    all.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                j["buffer"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn two_detached_backups_on_two_drives_each_take_their_own_answers() {
    let home = Home::new();
    let mut jobs = Started::new(&home);
    let (mut nine, mut six) = two_waiting_backups(&home, &mut jobs);
    assert!(
        six.request.reason.contains("TD0005L6 is full"),
        "{:?}",
        six.request
    );
    assert!(
        six.request
            .candidates
            .iter()
            .any(|c| c.volume == "TD0006L6" && c.location == "slot 6"),
        "{:?}",
        six.request
    );
    assert!(
        six.request
            .candidates
            .iter()
            .all(|c| c.volume.ends_with("L6")),
        "an LTO-6 drive writes LTO-6 cartridges only: {:?}",
        six.request
    );
    // Both hold a buffer, recorded for the RAM guard of the jobs after them.
    let held = buffers(&home);
    assert!(held[&nine.id] > 0 && held[&six.id] > 0, "{held:?}");

    // Each answered over its own socket, the second first.
    change_tape(&home, "lto6", "6");
    answer(&mut six.client, &six.request, Answer::Loaded);
    change_tape(&home, "lto9", "2");
    answer(&mut nine.client, &nine.request, Answer::Loaded);
    for w in [six, nine] {
        assert_eq!(
            read_to_end(w.client),
            "complete",
            "{}",
            log_of(&home, &w.id)
        );
        let entry = ended(&home, &w.id);
        assert_eq!(entry["outcome"]["status"], "complete", "{entry}");
        assert_eq!(entry["outcome"]["exit_code"], 0, "{entry}");
    }
    let status = home.json(&["status", "--json"]);
    let volumes: Vec<Vec<String>> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["status"], "complete", "{status}");
            strings(&b["volumes"])
        })
        .collect();
    assert_eq!(volumes.len(), 2, "{status}");
    assert!(
        volumes.contains(&vec!["TD0001L9".into(), "TD0002L9".into()]),
        "{status}"
    );
    assert!(
        volumes.contains(&vec!["TD0005L6".into(), "TD0006L6".into()]),
        "{status}"
    );
}

/// MemTotal of this machine, bytes.
fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn the_ram_guard_keeps_two_default_buffers_under_sixty_percent_of_memory() {
    let home = Home::new();
    let mut jobs = Started::new(&home);
    let (nine, six) = two_waiting_backups(&home, &mut jobs);
    let held = buffers(&home);
    let (first, second) = (held[&nine.id], held[&six.id]);
    assert!(second <= first, "second {second} > first {first}");
    assert!(
        (first + second) as f64 <= 0.6 * mem_total() as f64,
        "{first} + {second} bytes of buffers on a machine of {} bytes",
        mem_total()
    );
}

#[test]
fn a_detached_restore_and_verify_are_jobs_and_the_restore_asks_for_its_volume() {
    let (home, src, summary) = three_files_backed_up(100_000);
    let uuid = summary["uuid"].as_str().unwrap().to_string();
    let mut jobs = Started::new(&home);

    // The volume is in the drive: the verify runs through.
    let verify = jobs.detach(&["verify", "--backup", &uuid]);
    assert!(verify.starts_with("verify-"), "{verify}");
    let entry = ended(&home, &verify);
    assert_eq!(
        entry["kind"],
        "verify",
        "{entry} {}",
        log_of(&home, &verify)
    );
    assert_eq!(entry["outcome"]["status"], "complete", "{entry}");
    assert_eq!(entry["outcome"]["exit_code"], 0, "{entry}");

    // Out of the drive and out of the library (offsite): the restore asks for it.
    home.run(&["unload", "--drive", "lto9"]).success();
    home.edit_library(|lib| {
        for s in lib["slots"].as_array_mut().unwrap() {
            if s == "TD0001L9" {
                *s = serde_json::Value::Null;
            }
        }
    });
    let to = home.path().join("to");
    let restore = jobs.detach(&["restore", "--backup", &uuid, "--to", to.to_str().unwrap()]);
    assert!(restore.starts_with("restore-"), "{restore}");
    let mut client = connect(&home, &restore);
    let request = wait_request(&mut client, 0);
    assert!(request.need.starts_with("volume"), "{request:?}");
    assert_eq!(request.need, "volume TD0001L9", "{request:?}");
    assert!(request.answers.contains(&Answer::Skip), "{request:?}");
    assert_eq!(request.candidates.len(), 1, "{request:?}");
    assert_eq!(request.candidates[0].volume, "TD0001L9", "{request:?}");
    assert!(
        request.candidates[0]
            .location
            .contains("not in the library"),
        "{request:?}"
    );
    // Back through the mail slot; the job loads it from there.
    home.edit_library(|lib| lib["import_export"][0] = serde_json::Value::from("TD0001L9"));
    answer(&mut client, &request, Answer::Loaded);
    assert_eq!(
        read_to_end(client),
        "complete",
        "{}",
        log_of(&home, &restore)
    );
    let entry = ended(&home, &restore);
    assert_eq!(entry["kind"], "restore", "{entry}");
    assert_eq!(entry["outcome"]["status"], "complete", "{entry}");
    assert_eq!(entry["outcome"]["exit_code"], 0, "{entry}");
    same_files(&src, &under(&to, &src));
}

/// Not a test by itself: this binary run again as a client process of a job (named in its
/// environment), reading its socket until the job ends or the process is killed.
#[test]
#[ignore]
fn client_process() {
    let (Some(run), Some(id)) = (std::env::var_os(CLIENT_RUN), std::env::var(CLIENT_ID).ok())
    else {
        return;
    };
    let mut client = Client::connect(Path::new(&run), &id).unwrap();
    println!("{CLIENT_CONNECTED}");
    std::io::stdout().flush().unwrap();
    while !matches!(client.next(Duration::from_secs(1)), Err(ClientError::Gone)) {}
}

/// This test binary as a client process of job `id`, connected.
fn client_child(home: &Home, id: &str) -> std::process::Child {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "client_process", "--ignored", "--nocapture"])
        .env(CLIENT_RUN, run_dir(home))
        .env(CLIENT_ID, id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let connected = out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains(CLIENT_CONNECTED));
    assert!(connected, "the client process did not connect");
    child
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

#[test]
fn a_killed_client_and_a_hangup_leave_the_job_running() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    let mut jobs = Started::new(&home);
    // No tape in the drive: the job asks for one at once.
    let id = jobs.detach(&backup_args("lto9", Some("4MiB"), &src));
    let waiting = listed_waiting(&home, &id);
    let request = waiting["state"]["pending"]["id"].as_u64().unwrap();

    // A client process killed while it watches.
    let mut watcher = client_child(&home, &id);
    signal(watcher.id(), nix::sys::signal::Signal::SIGKILL);
    watcher.wait().unwrap();
    // A client of this process gone without a word.
    drop(connect(&home, &id));
    // A hangup sent to the job itself (its terminal going away) does not stop it.
    let pid = waiting["pid"].as_u64().unwrap() as u32;
    signal(pid, nix::sys::signal::Signal::SIGHUP);

    // Still waiting on the same request, and answered from another terminal.
    let still = listed_waiting(&home, &id);
    assert_eq!(still["state"]["pending"]["id"], request, "{still}");
    assert_eq!(still["live"], true, "{still}");
    home.run(&["load", "1", "--drive", "lto9"]).success();
    home.run(&["answer", &id, "loaded"]).success();
    let entry = ended(&home, &id);
    assert_eq!(
        entry["outcome"]["status"],
        "complete",
        "{entry} {}",
        log_of(&home, &id)
    );
    assert_eq!(only_backup(&home)["status"], "complete");
}

/// The next reply on `reader`, skipping state and event lines.
fn next_reply(reader: &mut BufReader<UnixStream>) -> serde_json::Value {
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the job hung up");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "reply" {
            return v;
        }
    }
}

#[test]
fn bad_lines_on_the_socket_are_refused_and_a_second_answer_too() {
    let home = Home::with_fast_vlib();
    let src = many_files(home.path(), 3, 1000);
    let mut jobs = Started::new(&home);
    let id = jobs.detach(&backup_args("lto9", Some("4MiB"), &src));
    let mut client = connect(&home, &id);
    let request = wait_request(&mut client, 0);

    let mut raw = UnixStream::connect(registry::socket_path(&run_dir(&home), &id)).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reader = BufReader::new(raw.try_clone().unwrap());
    let mut hello = String::new();
    reader.read_line(&mut hello).unwrap();
    assert!(hello.starts_with(r#"{"type":"hello""#), "{hello}");
    for line in [r#"{"command":"format"}"#, "not json"] {
        raw.write_all(format!("{line}\n").as_bytes()).unwrap();
        let reply = next_reply(&mut reader);
        assert_eq!(reply["ok"], false, "{line}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    // An answer the request does not take.
    let skip = format!(
        "{{\"command\":\"answer\",\"request\":{},\"answer\":\"skip\"}}\n",
        request.id
    );
    raw.write_all(skip.as_bytes()).unwrap();
    assert_eq!(next_reply(&mut reader)["ok"], false);

    // Still waiting, and answered once only: `loaded` with nothing loaded is taken, and
    // the job asks again under a new request.
    answer(&mut client, &request, Answer::Loaded);
    let again = wait_request(&mut client, request.id);
    home.run(&[
        "answer",
        &id,
        "loaded",
        "--request",
        &request.id.to_string(),
    ])
    .code(2)
    .stderr(predicates::str::contains("not pending"));
    let twice = Command::Answer {
        request: request.id,
        answer: Answer::Loaded,
    };
    assert!(
        matches!(client.command(twice), Err(ClientError::Refused(_))),
        "a second answer over the socket"
    );
    home.run(&["load", "1", "--drive", "lto9"]).success();
    home.run(&["answer", &id, "loaded"])
        .success()
        .stdout(predicates::str::contains(format!(
            "request {} answered: loaded",
            again.id
        )));
    assert_eq!(read_to_end(client), "complete", "{}", log_of(&home, &id));
    let entry = ended(&home, &id);
    assert_eq!(entry["outcome"]["status"], "complete", "{entry}");
    drop(raw);
}
