//! Logging: `tracing` to stderr (warnings and errors unless `-v`, nothing but errors with
//! `-q`) and to a rolling file in the log directory at the configured level, so every run
//! leaves a record even when nobody watched the terminal.

use crate::config::Config;
use std::io::IsTerminal;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Keeps the file writer flushing until dropped (at the end of `main`).
pub struct LogGuard {
    _file: Option<WorkerGuard>,
    /// Why there is no log file, for the CLI to say.
    pub no_file: Option<String>,
}

/// Colour on stderr only for a person at a terminal: never into a log file, a pipe or cron
/// mail, and never when `NO_COLOR` is set (<https://no-color.org>).
pub fn stderr_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn level(name: &str) -> LevelFilter {
    name.parse().unwrap_or(LevelFilter::INFO)
}

/// The stderr level for `-v` counts and `-q`.
pub fn stderr_level(verbose: u8, quiet: bool) -> LevelFilter {
    if quiet {
        return LevelFilter::ERROR;
    }
    match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Installs the subscriber. A log directory that cannot be created leaves the run without a
/// file, and the guard says why.
pub fn init(config: &Config, verbose: u8, quiet: bool) -> LogGuard {
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(stderr_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .without_time()
        .with_filter(stderr_level(verbose, quiet));
    let logging = &config.file.logging;
    let dir = config.log_dir();
    let rotation = match logging.rotation.as_str() {
        "hourly" => Rotation::HOURLY,
        "never" => Rotation::NEVER,
        _ => Rotation::DAILY,
    };
    let appender = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            RollingFileAppender::builder()
                .rotation(rotation)
                .filename_prefix("tapedeck")
                .filename_suffix("log")
                .max_log_files(logging.retain_days.max(1) as usize)
                .build(&dir)
                .map_err(|e| e.to_string())
        });
    let (file_layer, guard, no_file) = match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(level(&logging.level));
            (Some(layer), Some(guard), None)
        }
        Err(e) => (
            None,
            None,
            Some(format!("no log file: cannot use {}: {e}", dir.display())),
        ),
    };
    // A second init (tests calling `run` twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    LogGuard {
        _file: guard,
        no_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_at_a_terminal_and_never_with_no_color() {
        assert!(stderr_colour(true, None));
        assert!(stderr_colour(true, Some("".as_ref())));
        assert!(!stderr_colour(true, Some("1".as_ref())));
        assert!(!stderr_colour(false, None));
    }
}
