//! `tapedeck verify`: read a volume (or a backup) back and compare every member with the
//! catalogue: its BLAKE3, or with `--quick` only its headers at their recorded places.

use super::restore::{plan_error, plan_reads, run_reading, ReadArgs};
use anyhow::Result;
use clap::Args;
use tapedeck::config::Config;
use tapedeck::job::JobKind;
use tapedeck::restore::read::Mode;
use tapedeck::restore::verify::{self, Target};

const AFTER_HELP: &str = "\
Every member the catalogue places on the volume (or in the backup) is read at its recorded
position: its header must be there with the recorded name, type and size, and its data
must hash to the recorded BLAKE3. Damaged and missing members are listed by path. Files
split across volumes are followed onto the other volumes.

--quick reads only the headers at their positions (LOCATE past large files), not the data.

Exit codes: 0 everything matches, 1 any member damaged or missing, 2 bad input (a volume
or backup the catalogue does not know, or holds no members of), 130 interrupted.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct VerifyArgs {
    /// The volume to verify
    #[arg(
        long,
        value_name = "LABEL",
        required_unless_present = "backup",
        conflicts_with = "backup"
    )]
    tape: Option<String>,
    /// The backup to verify (uuid or a unique prefix), on every volume it went to
    #[arg(long, value_name = "ID")]
    backup: Option<String>,
    /// Headers and positions only; no data read or hashed
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    reading: ReadArgs,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs, config: &Config) -> Result<()> {
    if args.reading.detach {
        return super::detach::start(config, JobKind::Verify, args.json);
    }
    let target = match (&args.tape, &args.backup) {
        (Some(label), _) => Target::Tape(label.clone()),
        (None, Some(id)) => Target::Backup(id.clone()),
        (None, None) => return Err(super::bad_input("give --tape LABEL or --backup ID")),
    };
    let cat = super::catalog::open_for_reading(config)?;
    let members = verify::members(&cat, &target).map_err(plan_error)?;
    let (mut volumes, plan, interrupt) =
        plan_reads(&args.reading, config, &cat, members, args.quick)?;
    drop(cat);
    let what = match &target {
        Target::Tape(label) => format!("verify of volume {label}"),
        Target::Backup(id) => format!("verify of backup {id}"),
    };
    run_reading(
        config,
        (JobKind::Verify, &what),
        interrupt,
        args.json,
        (&plan, &mut volumes),
        Mode::Verify { quick: args.quick },
    )
}
