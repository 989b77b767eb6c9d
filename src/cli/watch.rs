//! Watching a job on this terminal, whether it runs in this process or is attached over its
//! socket: a progress bar (or, without a terminal, a plain line every few seconds), and the
//! tape-change prompt, answered here like from anywhere else (the first answer wins).

use std::io::BufRead;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapedeck::job::{Answer, Command, Event, Job, JobState, Stamped, Subscription, TapeRequest};
use tapedeck::units::{format_rate, format_size};

/// What a watched job says next.
pub(super) enum Update {
    State(Box<JobState>),
    Event(Box<Stamped>),
    /// The job has ended or can no longer be reached.
    Ended,
}

/// A job as this terminal reaches it.
pub(super) trait Feed {
    /// The next update within `timeout`, if any.
    fn next(&mut self, timeout: Duration) -> Option<Update>;
    /// Sends a command; the reply, or why it was refused.
    fn send(&mut self, command: Command) -> Result<String, String>;
}

/// A job of this process.
pub(super) struct LocalFeed {
    job: Arc<Job>,
    events: mpsc::Receiver<Stamped>,
    /// Disconnected when the work is done.
    done: mpsc::Receiver<()>,
    last_state: Instant,
}

impl LocalFeed {
    /// Watches `job` until the sender of `done` is dropped.
    pub fn new(job: Arc<Job>, done: mpsc::Receiver<()>) -> LocalFeed {
        let Subscription { events, .. } = job.subscribe();
        LocalFeed {
            job,
            events,
            done,
            last_state: Instant::now(),
        }
    }
}

impl Feed for LocalFeed {
    fn next(&mut self, timeout: Duration) -> Option<Update> {
        if let Ok(e) = self.events.try_recv() {
            return Some(Update::Event(Box::new(e)));
        }
        if self.last_state.elapsed() >= PROGRESS_TICK {
            self.last_state = Instant::now();
            return Some(Update::State(Box::new(self.job.state())));
        }
        match self.done.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            _ => match self.events.try_recv() {
                Ok(e) => Some(Update::Event(Box::new(e))),
                Err(_) => Some(Update::Ended),
            },
        }
    }

    fn send(&mut self, command: Command) -> Result<String, String> {
        self.job
            .command(command, "the terminal")
            .map_err(|e| e.to_string())
    }
}

/// How the job is shown.
pub(super) struct Show {
    /// A progress bar (a terminal on stderr, no --json).
    pub bar: bool,
    /// Without a bar: a plain progress line on stderr every [`PLAIN_EVERY`] (no --json).
    pub plain: bool,
    /// Ask the operator on this terminal when a tape is needed.
    pub prompt: bool,
}

impl Show {
    /// For a job run by this command: a bar and the prompt on a terminal, plain lines
    /// without one; nothing but the summary with `--json`.
    pub fn for_terminal(json: bool) -> Show {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        Show {
            bar: terminal && !json,
            plain: !terminal && !json,
            prompt: terminal && std::io::stdin().is_terminal(),
        }
    }
}

/// How often the bar is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);
/// How often a plain progress line is written without a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Shows the job until it ends; returns its last state.
pub(super) fn watch(feed: &mut dyn Feed, show: &Show) -> Option<JobState> {
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut last: Option<JobState> = None;
    let mut asking: Option<TapeRequest> = None;
    let mut lines = show.prompt.then(stdin_lines);
    let mut plain_at = Instant::now();
    // Requests asked on this terminal already (from an event, or from the state of a job
    // attached while it waited).
    let mut asked = std::collections::HashSet::new();
    loop {
        match feed.next(Duration::from_millis(100)) {
            Some(Update::Ended) => break,
            Some(Update::State(state)) => {
                if let (Some(request), Some(_), None) = (&state.pending, &lines, &asking) {
                    if asked.insert(request.id) {
                        hide(&mut bar);
                        ask(request);
                        asking = Some(request.clone());
                    }
                }
                if asking.is_none() {
                    if show.bar && bar.is_none() {
                        bar = Some(new_bar());
                        super::output::set_progress_bar(bar.clone());
                    }
                    match &bar {
                        Some(bar) => draw(bar, &state),
                        None if show.plain && plain_at.elapsed() >= PLAIN_EVERY => {
                            plain_at = Instant::now();
                            errln!("{}", plain_line(&state));
                        }
                        None => {}
                    }
                }
                let ended = state.outcome.is_some();
                last = Some(*state);
                if ended {
                    break;
                }
            }
            Some(Update::Event(stamped)) => match stamped.event {
                Event::TapeNeeded { request } if lines.is_some() && asked.insert(request.id) => {
                    hide(&mut bar);
                    ask(&request);
                    asking = Some(request);
                }
                Event::RequestAnswered {
                    request,
                    answer,
                    by,
                } if asking.as_ref().is_some_and(|a| a.id == request) => {
                    if by != "the terminal" {
                        errln!("\nAnswered `{}` by {by}.", answer.as_str());
                    }
                    asking = None;
                }
                Event::RequestWithdrawn { request }
                    if asking.as_ref().is_some_and(|a| a.id == request) =>
                {
                    errln!("\nThe drive holds what is needed now.");
                    asking = None;
                }
                // What moved in the library, as it happens (also when attached).
                Event::Media { message, .. } => errln!("{message}"),
                _ => {}
            },
            None => {}
        }
        if let (Some(request), Some(rx)) = (&asking, &lines) {
            match rx.try_recv() {
                Ok(line) => {
                    let answer = match line.trim() {
                        "a" | "abort" => Answer::Abort,
                        "e" | "eject" => Answer::Eject,
                        "s" | "skip" if request.answers.contains(&Answer::Skip) => Answer::Skip,
                        _ => Answer::Loaded,
                    };
                    let command = Command::Answer {
                        request: request.id,
                        answer,
                    };
                    match feed.send(command) {
                        Ok(_) => asking = None,
                        Err(e) => errln!("{e}"),
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    // The terminal closed: the job goes on and waits for an answer from
                    // elsewhere (`tapedeck answer`, `attach`).
                    lines = None;
                    asking = None;
                }
            }
        }
    }
    super::output::set_progress_bar(None);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    last
}

/// Takes the bar off the terminal while the operator is asked; it is drawn anew after.
fn hide(bar: &mut Option<indicatif::ProgressBar>) {
    if let Some(bar) = bar.take() {
        bar.finish_and_clear();
        super::output::set_progress_bar(None);
    }
}

/// The lines that ask for a tape, and the prompt.
fn ask(request: &TapeRequest) {
    errln!();
    errln!(
        "Drive {} needs {}: {}.",
        request.drive,
        request.need,
        request.reason
    );
    let (known, blank): (Vec<_>, Vec<_>) =
        request.candidates.iter().partition(|c| c.status.is_some());
    let list = |c: &[&tapedeck::job::Candidate]| {
        c.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match known.is_empty() {
        true if blank.is_empty() => errln!("No known volume qualifies; a blank cartridge does."),
        true => {}
        false => errln!("Volumes that qualify: {}.", list(&known)),
    }
    if !blank.is_empty() {
        errln!(
            "Cartridges the catalogue does not know (used if blank): {}.",
            list(&blank)
        );
    }
    let which = if request.need.starts_with("volume") {
        "it"
    } else {
        "one"
    };
    let skip = if request.answers.contains(&Answer::Skip) {
        "; s skips this volume"
    } else {
        ""
    };
    err!(
        "Load {which} and press Enter; e ejects the tape in the drive; a aborts{skip} \
         (request {}): ",
        request.id
    );
}

fn new_bar() -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:24} {bytes}/{total_bytes} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn draw(bar: &indicatif::ProgressBar, s: &JobState) {
    bar.set_length(s.progress.bytes_total.max(s.progress.bytes_done));
    bar.set_position(s.progress.bytes_done);
    bar.set_message(status_line(s));
}

/// The rate, buffer, writer and ETA, as the bar and the plain lines show them.
pub(super) fn status_line(s: &JobState) -> String {
    let eta = s
        .progress
        .eta_secs
        .map(format_eta)
        .unwrap_or_else(|| "-".into());
    let mut parts = vec![s.phase.to_string()];
    match s.drives.first() {
        Some(d) if d.buffer_capacity > 0 => {
            let fill = 100.0 * d.buffer_fill as f64 / d.buffer_capacity as f64;
            parts.push(format_rate(d.write_rate));
            parts.push(format!("buffer {fill:.0}%"));
            parts.push(format!("stops {}", d.writer_stops));
        }
        _ => parts.push(format_rate(s.progress.rate)),
    }
    parts.push(format!("ETA {eta}"));
    if !s.progress.current_file.is_empty() {
        parts.push(s.progress.current_file.clone());
    }
    parts.join(" | ")
}

/// A plain progress line (no terminal).
pub(super) fn plain_line(s: &JobState) -> String {
    let volume = s
        .drives
        .first()
        .and_then(|d| d.volume.as_deref())
        .unwrap_or("-");
    let text = format!(
        "progress: {} of {}, volume {volume}, {}",
        format_size(s.progress.bytes_done),
        format_size(s.progress.bytes_total),
        status_line(s)
    );
    tracing::info!("{text}");
    text
}

/// Seconds as the operator reads a duration: 45s, 12m05s, 3h20m.
pub(super) fn format_eta(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Lines typed on the terminal, read by one thread for the whole process (so that Ctrl-C is
/// seen while waiting): a thread per prompt would keep stdin after its prompt was answered
/// and take the first line typed at the next one. What was typed before is dropped.
fn stdin_lines() -> std::sync::MutexGuard<'static, mpsc::Receiver<String>> {
    static LINES: std::sync::OnceLock<std::sync::Mutex<mpsc::Receiver<String>>> =
        std::sync::OnceLock::new();
    let lines = LINES.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::sync::Mutex::new(rx)
    });
    let lines = lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while lines.try_recv().is_ok() {}
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etas_read_as_durations() {
        assert_eq!(format_eta(4.6), "5s");
        assert_eq!(format_eta(725.0), "12m05s");
        assert_eq!(format_eta(12000.0), "3h20m");
    }
}
