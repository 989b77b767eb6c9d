//! Human output: aligned tables; JSON for scripts; and writing to stdout and stderr so that
//! a reader that has gone away (`tapedeck find x | head`) ends the command quietly, as GNU
//! tools do, instead of a panic.

use serde::Serialize;
use std::io::Write;

/// The exit code of a command whose output pipe was closed: a shell's code for death by
/// SIGPIPE, what GNU tools give there.
pub const CLOSED_PIPE_EXIT: u8 = 141;

/// Writes to stdout, like `print!`. A closed pipe ends the process at once with
/// [`CLOSED_PIPE_EXIT`] and no message; any other write error is said on stderr and ends it
/// with 1. Only the CLI prints, after the engine has recorded its work, so nothing is lost by
/// stopping here.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        stdout_failed(e);
    }
}

/// Ends the process after a failed write to stdout, as [`write_stdout`] does: for output
/// written through a buffer of its own.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(CLOSED_PIPE_EXIT));
    }
    write_stderr(format_args!(
        "error: cannot write to standard output: {e}\n"
    ));
    std::process::exit(1);
}

/// Stdout through a buffer, for output of millions of lines; a failed write ends the process
/// as in [`write_stdout`].
pub struct BufferedStdout(std::io::BufWriter<std::io::StdoutLock<'static>>);

impl BufferedStdout {
    pub fn new() -> Self {
        BufferedStdout(std::io::BufWriter::new(std::io::stdout().lock()))
    }

    pub fn put(&mut self, args: std::fmt::Arguments<'_>) {
        if let Err(e) = self.0.write_fmt(args) {
            stdout_failed(e);
        }
    }

    /// Writes out what the buffer holds.
    pub fn finish(mut self) {
        if let Err(e) = self.0.flush() {
            stdout_failed(e);
        }
    }
}

/// Writes to stderr, like `eprint!`. A stderr that cannot be written is ignored: there is
/// nowhere left to say so.
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    // Above the progress bar, never through it.
    without_progress_bar(|| {
        let _ = std::io::stderr().lock().write_fmt(args);
    })
}

/// Is this error, or one of its causes, a write to a closed pipe?
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The progress bar on stderr now, if one is shown: a prompt hides it while it asks.
static PROGRESS: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Makes `bar` the progress bar on stderr (`None` when it is gone).
pub fn set_progress_bar(bar: Option<indicatif::ProgressBar>) {
    *PROGRESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = bar;
}

/// Runs `f` (a prompt, or lines for the operator to read) with the progress bar taken off
/// the terminal and held still, then draws it again: it never redraws over what `f` says.
pub fn without_progress_bar<T>(f: impl FnOnce() -> T) -> T {
    let bar = PROGRESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// A spinner on stderr for work of unknown length: only for a person at a terminal, never
/// with `--json`.
pub fn spinner(json: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (std::io::stderr().is_terminal() && !json).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    })
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row; columns are padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        out!("{}", self.render());
    }
}

/// `-` for an absent value.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(&["DRIVE", "STATE"]);
        t.row(vec!["lto9".into(), "loaded".into()]);
        t.row(vec!["a-long-name".into(), "empty".into()]);
        assert_eq!(
            t.render(),
            "DRIVE        STATE\nlto9         loaded\na-long-name  empty\n"
        );
    }
}
