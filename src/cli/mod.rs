//! The command line: argument definitions (clap derive), dispatch, and the mapping from
//! errors to exit codes (0 ok, 1 failure, 2 usage or bad input, 130 interrupted).

/// `println!` for the CLI: see [`output::write_stdout`].
macro_rules! outln {
    () => { $crate::cli::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI: see [`output::write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write_stdout(format_args!($($arg)*)) };
}

/// `eprintln!` for the CLI: see [`output::write_stderr`].
macro_rules! errln {
    () => { $crate::cli::output::write_stderr(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` for the CLI: see [`output::write_stderr`].
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::output::write_stderr(format_args!($($arg)*)) };
}

mod attach;
mod backup;
mod catalog;
mod changer;
mod detach;
mod import_tape;
mod jobrun;
mod jobs;
mod migrate;
mod output;
mod query;
mod rebuild;
mod restore;
mod tape;
mod tape_change;
mod verify;
mod vlib;
mod watch;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tapedeck::catalog::CatalogError;
use tapedeck::config::{Config, ConfigError};
use tapedeck::drives::LookupError;
use tapedeck::label::LabelError;
use tapedeck::tape::TapeError;
use tapedeck::vlib::VlibError;

const AFTER_HELP: &str = "\
Drives are named in the configuration ([[drive]]) or by the virtual library; --drive picks
one (default: $TAPEDECK_DRIVE, then default_drive from the configuration, then the first).
With no configuration at all, a virtual library with an LTO-9 and an LTO-6 drive is created
under $TAPEDECK_HOME/vlib on first use.

Exit codes: 0 ok, 1 failure (drive, medium, I/O), 2 usage or bad input, 130 interrupted.";

/// Tape backup for your own LTO drives and libraries: streams tar to tape, keeps a
/// catalogue, and every tape stays readable with plain GNU tar.
#[derive(Debug, Parser)]
#[command(name = "tapedeck", version, arg_required_else_help = true, after_help = AFTER_HELP)]
pub struct Cli {
    /// More detail on stderr: -v info, -vv debug, -vvv trace (the log file always gets
    /// the configured level)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Configuration file [default: $TAPEDECK_CONFIG, else /etc/tapedeck/config.toml for
    /// root, else ~/.config/tapedeck/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the effective configuration, defaults filled in, and where it came from
    Config {
        /// Print JSON instead of TOML
        #[arg(long)]
        json: bool,
    },
    /// Create and inspect the virtual tape library (file-backed drives and cartridges)
    #[command(subcommand)]
    Vlib(vlib::VlibCommand),
    /// Drive operations in the manner of mt(1): status, positioning, filemarks, block size
    Tape(tape::TapeArgs),
    /// Back up files and directories onto the loaded volume as a tar tape file
    Backup(backup::BackupArgs),
    /// Restore files from tape into a directory: one file, a volume, a backup, or a
    /// job's state at a date (--dry-run shows what would be read)
    Restore(restore::RestoreArgs),
    /// Read a volume or backup back and compare every member with the catalogue
    Verify(verify::VerifyArgs),
    /// Changer: move the cartridge in SLOT into a drive and load it
    Load(changer::LoadArgs),
    /// Changer: unload a drive and put its cartridge into SLOT (default: where it came from)
    Unload(changer::UnloadArgs),
    /// Changer: move a cartridge between slots, import/export slots and drives
    #[command(name = "move")]
    Move(changer::MoveArgs),
    /// Pools: named sets of volumes with a retention period
    #[command(subcommand)]
    Pool(catalog::PoolCommand),
    /// Volumes (tape cartridges): list, show, label
    #[command(subcommand)]
    Volume(catalog::VolumeCommand),
    /// Which backed-up files match a name pattern, or every version of one path
    Find(query::FindArgs),
    /// Files on a volume, or volumes of a pool
    List(query::ListArgs),
    /// Drives, slots, import/export slots and the volumes in them
    Inventory(query::InventoryArgs),
    /// Running and recent backups, per drive
    Status(query::StatusArgs),
    /// Running and recent jobs (backup, restore, verify, rebuild): phase, progress, and
    /// the tape request each waits on
    Jobs(jobs::JobsArgs),
    /// Answer a running job's tape request: loaded, eject, abort or skip
    Answer(jobs::AnswerArgs),
    /// Watch a running job here (progress, its tape requests); leaving stops nothing
    Attach(attach::AttachArgs),
    /// The catalogue itself: integrity check, online backup, rebuild from tapes
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Import pytp's drives, libraries and backup history (snapshot JSON files)
    #[command(name = "migrate-pytp")]
    MigratePytp(migrate::MigrateArgs),
}

/// An error the operator caused: bad arguments or a request that cannot be met (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The operator interrupted the work (exit 130); what was done is recorded.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A command that ends with this exit code, its reason already said (a detached job
/// that ended before it could be reached).
#[derive(Debug, thiserror::Error)]
#[error("the job ended before it could be reached (exit {0})")]
pub struct ExitWith(pub u8);

/// Builds a [`BadInput`] error.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// The exit code an error stands for.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Interrupted>() {
            return 130;
        }
        if let Some(ExitWith(code)) = cause.downcast_ref::<ExitWith>() {
            return *code;
        }
        let bad = if let Some(e) = cause.downcast_ref::<tapedeck::backup::BackupError>() {
            e.is_bad_input()
        } else if cause.is::<BadInput>() || cause.is::<ConfigError>() {
            true
        } else if let Some(e) = cause.downcast_ref::<TapeError>() {
            e.is_bad_input()
        } else if let Some(e) = cause.downcast_ref::<VlibError>() {
            e.is_bad_input()
        } else if let Some(e) = cause.downcast_ref::<LookupError>() {
            e.is_bad_input()
        } else if let Some(e) = cause.downcast_ref::<CatalogError>() {
            e.is_bad_input()
        } else if let Some(LabelError::Tape(e)) = cause.downcast_ref::<LabelError>() {
            e.is_bad_input()
        } else {
            false
        };
        if bad {
            return 2;
        }
    }
    1
}

/// The error and its causes on one line, without repeating a cause its parent already
/// quotes.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> u8 {
    let mut cli = Cli::parse();
    // `migrate-pytp --config FILE` names pytp's config.json (as pytp users know it);
    // tapedeck's own configuration then comes from TAPEDECK_CONFIG or the usual places.
    if let Command::MigratePytp(args) = &mut cli.command {
        if args.pytp_config.is_none() {
            args.pytp_config = cli.config.take();
        }
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    detach::leave_session();
    let log = tapedeck::logging::init(&config, cli.verbose, cli.quiet);
    if let Some(why) = &log.no_file {
        errln!("warning: {why}");
    }
    tracing::debug!(command = ?cli.command, "start");
    match run(cli.command, &config) {
        Ok(()) => 0,
        Err(err) if output::is_closed_pipe(&err) => output::CLOSED_PIPE_EXIT,
        Err(err) => {
            tracing::debug!("failed: {err:?}");
            errln!("error: {}", describe(&err));
            exit_code(&err)
        }
    }
}

fn run(command: Command, config: &Config) -> Result<()> {
    match command {
        Command::Config { json } => show_config(config, json),
        Command::Vlib(cmd) => vlib::run(cmd, config),
        Command::Tape(args) => tape::run(args, config),
        Command::Backup(args) => backup::run(args, config),
        Command::Restore(args) => restore::run(args, config),
        Command::Verify(args) => verify::run(args, config),
        Command::Load(args) => changer::load(args, config),
        Command::Unload(args) => changer::unload(args, config),
        Command::Move(args) => changer::move_medium(args, config),
        Command::MigratePytp(args) => migrate::run(args, config),
        Command::Pool(cmd) => catalog::pool(cmd, config),
        Command::Volume(cmd) => catalog::volume(cmd, config),
        Command::Find(args) => query::find(args, config),
        Command::List(args) => query::list(args, config),
        Command::Inventory(args) => query::inventory(args, config),
        Command::Status(args) => query::status(args, config),
        Command::Jobs(args) => jobs::jobs(args, config),
        Command::Answer(args) => jobs::answer(args, config),
        Command::Attach(args) => attach::run(args, config),
        Command::Catalog(cmd) => catalog::catalog(cmd, config),
    }
}

fn show_config(config: &Config, json: bool) -> Result<()> {
    let effective = config.effective();
    if json {
        let value = serde_json::json!({
            "source": config.source,
            "home": config.home,
            "config": effective,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match &config.source {
        Some(p) => outln!("# configuration from {}", p.display()),
        None => outln!("# no configuration file: defaults"),
    }
    outln!("# data directory {}", config.home.display());
    out!("{}", toml::to_string(&effective)?);
    Ok(())
}
