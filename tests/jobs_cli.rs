//! `tapedeck jobs` and `tapedeck answer` against the run directory: planted records, and a
//! job served from this test process on its socket as a running backup would be.

mod common;

use common::Home;
use predicates::prelude::*;
use std::sync::Arc;
use tapedeck::interrupt::Interrupt;
use tapedeck::job::hub::Waited;
use tapedeck::job::registry::{self, JobRecord};
use tapedeck::job::{
    Answer, DriveView, Job, JobKind, JobStatus, Outcome, Phase, Progress, Server, TapeRequest,
};

fn run_dir(home: &Home) -> std::path::PathBuf {
    registry::run_dir(home.path())
}

/// A job of this process, reachable on its socket in `home`.
fn serve(home: &Home, id: &str) -> (Arc<Job>, Server) {
    let job = Job::new(id, JobKind::Backup, "/srv to pool weekly", Interrupt::new());
    let server = Server::start(job.clone(), &run_dir(home)).unwrap();
    (job, server)
}

fn request() -> TapeRequest {
    TapeRequest {
        id: 0,
        drive: "lto9".into(),
        need: "a usable tape".into(),
        reason: "volume TD0001L9 is full".into(),
        candidates: Vec::new(),
        answers: vec![Answer::Loaded, Answer::Eject, Answer::Abort],
    }
}

#[test]
fn no_jobs_yet() {
    let h = Home::new();
    h.run(&["jobs"])
        .success()
        .stdout("No jobs running or recent.\n");
    assert_eq!(h.json(&["jobs", "--json"]), serde_json::json!([]));
}

#[test]
fn a_finished_job_is_listed_with_its_outcome() {
    let h = Home::new();
    let run = run_dir(&h);
    registry::ensure_run_dir(&run).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let record = JobRecord {
        id: "restore-c0ffee".into(),
        kind: JobKind::Restore,
        pid: 1,
        started_at: now - 60,
        what: "volume TD0001L9".into(),
        buffer: 0,
        state: None,
        outcome: Some(Outcome::new(
            JobStatus::Failed,
            Some("TD0001L9: medium error".into()),
        )),
        finished_at: Some(now - 30),
    };
    registry::write_record(&run, &record).unwrap();
    let v = h.json(&["jobs", "--json"]);
    assert_eq!(v[0]["id"], "restore-c0ffee");
    assert_eq!(v[0]["kind"], "restore");
    assert_eq!(v[0]["live"], false);
    assert_eq!(v[0]["outcome"]["status"], "failed");
    assert_eq!(v[0]["outcome"]["exit_code"], 1);
    h.run(&["jobs"])
        .success()
        .stdout(predicate::str::contains("restore-c0ffee  restore  failed"))
        .stdout(predicate::str::contains(
            "restore-c0ffee: TD0001L9: medium error",
        ));
}

#[test]
fn answering_an_unknown_job_is_bad_input() {
    let h = Home::new();
    h.run(&["answer", "backup-000000", "loaded"])
        .code(2)
        .stderr(predicate::str::contains("no job backup-000000"));
    h.run(&["answer", "backup-000000", "later"]).code(2);
}

#[test]
fn a_running_job_is_listed_from_its_socket_and_answered() {
    let h = Home::new();
    let (job, server) = serve(&h, "backup-3f0a11");
    job.set_phase(Phase::Streaming);
    job.update(|s| {
        s.progress = Progress {
            bytes_done: 1 << 30,
            bytes_total: 4 << 30,
            ..Progress::default()
        };
        s.drives = vec![DriveView {
            drive: "lto9".into(),
            volume: Some("TD0001L9".into()),
            ..DriveView::default()
        }];
    });
    h.run(&["answer", "backup-3f", "loaded"])
        .code(2)
        .stderr(predicate::str::contains("waits on no request now"));
    let id = job.ask(request());

    let v = h.json(&["jobs", "--json"]);
    assert_eq!(v[0]["live"], true);
    assert_eq!(v[0]["state"]["pending"]["id"], id);
    h.run(&["jobs"])
        .success()
        .stdout(predicate::str::contains("waiting for tape"))
        .stdout(predicate::str::contains(
            "lto9   TD0001L9  1 GiB / 4 GiB (25%)",
        ))
        .stdout(predicate::str::contains(format!(
            "lto9 needs a usable tape (request {id})"
        )));

    h.run(&["answer", "backup-3f", "skip"])
        .code(2)
        .stderr(predicate::str::contains("does not take `skip`"));
    h.run(&[
        "answer",
        "backup-3f",
        "eject",
        "--request",
        &(id + 1).to_string(),
    ])
    .code(2)
    .stderr(predicate::str::contains("not pending"));
    h.run(&["answer", "backup-3f", "retry"])
        .success()
        .stdout(predicate::str::contains(format!(
            "backup-3f0a11: request {id} answered: loaded"
        )));
    assert_eq!(job.await_answer(id, None), Waited::Answered(Answer::Loaded));
    h.run(&[
        "answer",
        "backup-3f0a11",
        "loaded",
        "--request",
        &id.to_string(),
    ])
    .code(2)
    .stderr(predicate::str::contains("not pending"));

    job.finish(Outcome::new(JobStatus::Complete, None));
    server.finish().unwrap();
    h.run(&["answer", "backup-3f", "loaded"])
        .code(2)
        .stderr(predicate::str::contains("has ended (complete)"));
    let v = h.json(&["jobs", "--json"]);
    assert_eq!(v[0]["live"], false);
    assert_eq!(v[0]["state"]["phase"], "done");
}

#[test]
fn the_help_says_what_answers_mean() {
    let h = Home::new();
    let help = h.stdout(&["answer", "--help"]);
    assert!(help.contains("eject the tape in the drive"), "{help}");
    let help = h.stdout(&["jobs", "--help"]);
    assert!(help.contains("$TAPEDECK_HOME/run/"), "{help}");
}
